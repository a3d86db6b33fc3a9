"""The one migration-policy parser, shared by the scheduler and the drain."""

import subprocess
import sys

import pytest

from nova_ha import migration_policy as mp
from nova_ha.maintenance import policy as drain_policy
from nova_ha.scheduler import request


@pytest.mark.parametrize('key, value, expected', [
    ('ha_live_migration', 'never', 'must be one of allowed, forbidden'),
    ('ha_live_migration', 'Forbidden', 'must be one of allowed, forbidden'),
    ('ha_max_interruption_ms', '-3', 'must be an integer >= 0'),
    ('ha_max_interruption_ms', '05', 'must be an integer >= 0'),
    ('ha_max_concurrent_moves', 'x', 'must be an integer >= 0'),
])
def test_scheduler_and_drain_refuse_the_same_values_alike(key, value,
                                                          expected):
    with pytest.raises(request.BadInput) as hint:
        request.migration_of({key: value}, {})
    with pytest.raises(drain_policy.BadValue) as md:
        drain_policy.policy_of({'metadata': {key: value}})
    assert str(hint.value) == 'hint %s=%r is invalid: %s' % (key, value,
                                                              expected)
    assert str(md.value) == 'metadata %s=%r is invalid: %s' % (key, value,
                                                                expected)


def test_scheduler_and_drain_read_the_same_policy():
    specs = {'ha:live_migration': 'allowed', 'ha:max_interruption_ms': '800'}
    values = {'ha_live_migration': 'forbidden',
              'ha_max_interruption_ms': ' 300 ',
              'ha_max_concurrent_moves': '2'}
    hint = request.migration_of(values, specs)
    md = drain_policy.policy_of({'flavor': {'extra_specs': specs},
                                 'metadata': values})
    assert hint == mp.Policy(
        live_forbidden_by='hint ha_live_migration=forbidden',
        max_interruption_ms=300,
        max_interruption_by='hint ha_max_interruption_ms=300',
        max_moves=2, max_moves_by='hint ha_max_concurrent_moves=2')
    assert md == mp.Policy(
        live_forbidden_by='metadata ha_live_migration=forbidden',
        max_interruption_ms=300,
        max_interruption_by='metadata ha_max_interruption_ms=300',
        max_moves=2, max_moves_by='metadata ha_max_concurrent_moves=2')


def test_flavor_wins_ties_and_cannot_be_loosened():
    pol = mp.parse({'ha:live_migration': 'forbidden',
                    'ha:max_interruption_ms': '300'},
                   {'ha_live_migration': 'allowed',
                    'ha_max_interruption_ms': '300'}, mp.METADATA)
    assert pol.live_forbidden_by == \
        'flavor extra spec ha:live_migration=forbidden'
    assert pol.max_interruption_by == \
        'flavor extra spec ha:max_interruption_ms=300'


def test_cold_and_pinned_are_metadata_keys_only():
    values = {'ha_cold_migration': 'forbidden', 'ha_pinned': 'perhaps'}
    assert mp.parse({}, values, mp.HINT).empty
    with pytest.raises(mp.BadValue) as exc:
        mp.parse({}, values, mp.METADATA)
    assert str(exc.value) == ("metadata ha_pinned='perhaps' is invalid: "
                              "must be true or false")
    pol = mp.parse({}, {'ha_cold_migration': 'forbidden',
                        'ha_pinned': 'Yes'}, mp.METADATA)
    assert pol.cold_forbidden_by == 'metadata ha_cold_migration=forbidden'
    assert pol.pinned_by == 'metadata ha_pinned=Yes'


def test_a_hint_given_twice_is_refused():
    with pytest.raises(mp.BadValue) as exc:
        mp.parse({}, {'ha_max_concurrent_moves': ['1', '2']}, mp.HINT)
    assert 'give it once' in str(exc.value)
    assert mp.parse({}, {'ha_max_concurrent_moves': ['1']},
                    mp.HINT).max_moves == 1


def test_imports_neither_nova_nor_oslo():
    code = ('import sys; import nova_ha.migration_policy; '
            'print(sorted(m for m in sys.modules '
            'if m.split(".")[0] in ("nova", "oslo_config", "oslo_utils", '
            '"novaclient")))')
    out = subprocess.run([sys.executable, '-c', code], check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == '[]'
