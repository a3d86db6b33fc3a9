"""The ha: extra-spec validators name key and allowed values."""

import pytest
from nova import exception

from nova_ha.scheduler import extra_specs

VALIDATORS = {v.name: v for v in extra_specs.register()}


@pytest.mark.parametrize('name, value, allowed', [
    ('ha:sal', '7', '1, 2, 3'),
    ('ha:sal', '0', '1, 2, 3'),
    ('ha:live_migration', 'never', 'allowed, forbidden'),
    ('ha:max_interruption_ms', '-1', 'an integer >= 0'),
    ('ha:max_interruption_ms', 'fast', 'an integer >= 0'),
    ('ha:recovery_priority', '1001', 'an integer >= 0 and <= 1000'),
    ('ha:recovery', 'maybe', 'auto, none'),
])
def test_bad_value_names_key_and_allowed_values(name, value, allowed):
    with pytest.raises(exception.ValidationError) as exc:
        VALIDATORS[name].validate(name, value)
    assert str(exc.value) == (
        "Validation failed; extra spec %s=%r is invalid; allowed values: "
        "%s." % (name, value, allowed))


@pytest.mark.parametrize('name, value', [
    ('ha:sal', '1'), ('ha:sal', '3'), ('ha:live_migration', 'forbidden'),
    ('ha:max_interruption_ms', '0'), ('ha:recovery_priority', '1000'),
    ('ha:recovery', 'none')])
def test_good_values(name, value):
    VALIDATORS[name].validate(name, value)


@pytest.mark.parametrize('name, value, message', [
    ('HA:SAL', '9', "extra spec HA:SAL='9': nova-ha keys are lower case "
     "(ha:sal)."),
    ('Ha:Live_Migration', 'x', "nova-ha keys are lower case "
     "(ha:live_migration)."),
    ('HA:RAKC', '1', "nova-ha keys are lower case (ha:rakc); known: ha:sal"),
    ('ha:sal_level', '1', "extra spec ha:sal_level='1' is not a nova-ha "
     "extra spec; known: ha:sal, ha:live_migration"),
])
def test_other_case_and_unknown_keys_refused_through_nova(name, value,
                                                          message):
    # nova's own dispatch (exact name, then regex, then namespace), with
    # nova-ha's validators loaded through the entry point.
    from nova.api.validation.extra_specs import validators
    with pytest.raises(exception.ValidationError) as exc:
        validators.validate(name, value)
    assert message in str(exc.value)
    validators.validate('ha:sal', '1')
    validators.validate('hw:cpu_policy', 'dedicated')
