"""Validators for ``ha:`` flavor extra specs.

Registered through nova's ``nova.api.extra_spec_validators`` entry point, so
the Nova API itself refuses a bad value (``openstack flavor set --property
ha:sal=7`` fails with a message naming the key and the allowed values) and,
because nova then knows the ``ha`` namespace, an unknown ``ha:`` key too.
"""

import dataclasses

from nova.api.validation.extra_specs import base
from nova import exception


@dataclasses.dataclass
class HAExtraSpecValidator(base.ExtraSpecValidator):
    """nova's validator, with an error that names the key and the values.

    nova's own message says only "'7' is not one of: 1, 2, 3"; an operator
    setting several specs at once needs to know which one was refused.
    """

    def allowed(self):
        value = self.value
        if 'enum' in value:
            return ', '.join(str(v) for v in value['enum'])
        if value['type'] is int:
            text = 'an integer'
            if 'min' in value:
                text += ' >= %d' % value['min']
            if 'max' in value:
                text += (' and' if 'min' in value else '') + \
                    ' <= %d' % value['max']
            return text
        return 'a value of the format %s' % self.value_regex

    def validate(self, name, value):
        try:
            super().validate(name, value)
        except exception.ValidationError:
            raise exception.ValidationError(
                'Validation failed; extra spec %s=%r is invalid; allowed '
                'values: %s.' % (name, value, self.allowed()))


EXTRA_SPEC_VALIDATORS = [
    HAExtraSpecValidator(
        name='ha:sal',
        description=(
            'Service Availability Level the flavor requires (1 strictest, '
            '3 weakest). Instances are placed only on hosts whose aggregate '
            'metadata ha:sal certifies this level or a stricter one.'),
        value={'type': str, 'enum': ['1', '2', '3']},
    ),
    HAExtraSpecValidator(
        name='ha:live_migration',
        description='Whether instances of this flavor may be live migrated.',
        value={'type': str, 'enum': ['allowed', 'forbidden']},
    ),
    HAExtraSpecValidator(
        name='ha:max_interruption_ms',
        description=(
            'Longest interruption (ms) an instance tolerates during a live '
            'migration; compared with the destination aggregate metadata '
            'ha:live_migration_downtime_ms.'),
        value={'type': int, 'min': 0},
    ),
    HAExtraSpecValidator(
        name='ha:recovery_priority',
        description=(
            'Evacuation order within one SAL after a host failure: higher '
            'values are evacuated first.'),
        value={'type': int, 'min': 0, 'max': 1000},
    ),
    HAExtraSpecValidator(
        name='ha:recovery',
        description=(
            'auto: the evacuator recovers instances of this flavor after a '
            'host failure; none: it leaves them alone and lists them.'),
        value={'type': str, 'enum': ['auto', 'none']},
    ),
    # Issue 17 (doc/instance-ha.md).
    HAExtraSpecValidator(
        name='ha:instance_recovery',
        description=(
            'What the evacuator does when an instance of this flavor '
            'crashes, stops unexpectedly or pauses on an error: restart '
            '(hard reboot, the default), rebuild-elsewhere (move it to '
            'another host) or none.'),
        value={'type': str, 'enum': ['restart', 'rebuild-elsewhere',
                                     'none']},
    ),
]


KNOWN = tuple(v.name for v in EXTRA_SPEC_VALIDATORS)


def case_mistake(name):
    """The lower-case key meant by an ``ha:`` key spelt in another case
    (``HA:SAL`` -> ``ha:sal``), or None."""
    prefix = name.split(':', 1)[0]
    if ':' in name and prefix.lower() == 'ha' and name != name.lower():
        return name.lower()
    return None


@dataclasses.dataclass
class CaseValidator(HAExtraSpecValidator):
    """Any other ``ha:`` key, in any case: nova looks a key up by exact
    name and knows the ``ha`` namespace in lower case only, so ``HA:SAL=9``
    would pass unchecked -- and be ignored by the scheduler. Refused here,
    naming the key nova-ha reads."""

    def __post_init__(self):
        super().__post_init__()
        # A character class, not (?i): nova takes the text before the first
        # ':' of this regex as the namespace pattern.
        self.name_regex = '[hH][aA]:.*'

    def validate(self, name, value):
        meant = case_mistake(name)
        if meant is not None:
            raise exception.ValidationError(
                'Validation failed; extra spec %s=%r: nova-ha keys are lower '
                'case (%s)%s.' % (
                    name, value, meant,
                    '' if meant in KNOWN else '; known: %s' % ', '.join(
                        KNOWN)))
        raise exception.ValidationError(
            'Validation failed; extra spec %s=%r is not a nova-ha extra '
            'spec; known: %s.' % (name, value, ', '.join(KNOWN)))


def register():
    return EXTRA_SPEC_VALIDATORS + [CaseValidator(
        name='ha:<any other key>',
        description='Refuses ha: keys nova-ha does not know, in any case.',
        value={'type': str})]
