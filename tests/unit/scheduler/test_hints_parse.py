"""Hint parsing shared by the scheduler filters and the API filter."""

import logging

import pytest

from nova_ha.scheduler import api_filter
from nova_ha.scheduler import request

LEVELS = ('host', 'rack', 'failure_domain')


def test_conflict_logged_with_the_rule_applied_in_the_scheduler(caplog):
    caplog.set_level(logging.WARNING)
    rule = request.anti_affinity_of(
        {'different_failure_domain': 'true',
         'ha_anti_affinity_level': 'rack'}, LEVELS)
    assert (rule.level, rule.hard, rule.max_per_domain) == ('rack', True, 1)
    assert ('conflicting hints different_failure_domain=true and '
            'ha_anti_affinity_level=rack: applying the level hint (hard '
            'anti-affinity at level rack, at most 1 per domain)'
            in caplog.text)


def test_conflict_refused_by_check_hints():
    with pytest.raises(request.BadInput) as exc:
        request.check_hints({'different_failure_domain': 'yes',
                             'ha_anti_affinity_level': 'host'}, LEVELS)
    assert 'conflicts with hint ha_anti_affinity_level=host' in str(exc.value)


def test_paste_config_edit_is_idempotent_and_refuses_unknown_layout():
    text = ('[composite:x]\nkeystone = cors keystonecontext '
            'osapi_compute_app_v21\n')
    once = api_filter.add_to_paste_config(text)
    assert 'keystonecontext nova_ha_hints osapi_compute_app_v21' in once
    assert api_filter.add_to_paste_config(once) == once
    with pytest.raises(ValueError):
        api_filter.add_to_paste_config('[app:x]\nuse = y\n')
