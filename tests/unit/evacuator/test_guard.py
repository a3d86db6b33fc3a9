"""Engine.mass_failure(): the thresholds of the mass-failure guard (pure
decision logic over a real SQLite journal; behaviour against Nova is in
tests/functional/test_evacuator_guard.py)."""

import types

import pytest
from oslo_config import cfg

import nova_ha.conf
from nova_ha import journal as journal_mod
from nova_ha.evacuator import engine
from nova_ha.evacuator import metrics as metrics_mod


@pytest.fixture
def ev(tmp_path):
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    conf([], project='nova-ha-test')
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal_mod.upgrade(url)
    j = journal_mod.Journal(url)
    e = engine.Evacuator(conf, None, None, j, receiver=None)
    e.services = {'c%02d' % i: None for i in range(1, 11)}
    rack = {h: 'r%d' % ((i // 4) + 1) for i, h in
            enumerate(sorted(e.services))}     # r1: 4, r2: 4, r3: 2
    e.location = lambda h: {'rack': rack.get(h), 'power_domain': None,
                            'availability_zone': None}
    yield e
    e.stop()
    j.close()


def down(ev, *hosts):
    ev._conditions = {h: engine.OK for h in ev.services}
    ev._conditions.update({h: engine.HOST_DOWN for h in hosts})


def test_below_every_threshold(ev):
    down(ev, 'c01', 'c05', 'c09', 'c10')      # 40 %, 1/4 of r1, all of r3
    assert ev.mass_failure() is None          # r3 has < 3 hosts


def test_more_than_half_of_all_hosts(ev):
    down(ev, *sorted(ev.services)[:6])
    assert '6 of 10' in ev.mass_failure()


def test_more_than_half_of_a_rack(ev):
    down(ev, 'c01', 'c02', 'c03')
    reason = ev.mass_failure()
    assert 'rack r1' in reason and '3 of 4' in reason


def test_recovered_hosts_do_not_count(ev):
    for h in ('c01', 'c02', 'c03'):
        ev.journal.set_host_state(h, 'RECOVERED')
    down(ev, 'c01', 'c02', 'c03', 'c05')
    assert ev.mass_failure() is None


def test_too_many_in_the_window(ev):
    ev.conf.set_override('max_failures_in_window', 2, group='guard')
    for h in ('c01', 'c05'):
        rec, _ = ev.journal.open_recovery(h, 'HOST_DOWN')
        ev.journal.close_recovery(rec.id, 'done')
    down(ev, 'c09')
    assert 'within 60 s' in ev.mass_failure()


def test_metrics_text():
    m = metrics_mod.Metrics(types.SimpleNamespace(leader=None,
                                                  receiver=None))
    m.observe_step('detected', 0.4)
    m.observe_step('fenced', 0.1)
    m.observe_step('active', 2.0)
    m.observe_step('finished', 3.0, 'done')
    m.observe_alarm('HOST_DOWN', 'CRITICAL')
    text = m.text()
    assert 'nova_ha_detection_seconds_count 1.0' in text
    assert 'nova_ha_fencing_total{outcome="FENCED"} 1.0' in text
    assert 'nova_ha_recoveries_total{state="done"} 1.0' in text
    assert 'nova_ha_alarms_total{severity="CRITICAL",type="HOST_DOWN"} ' \
        '1.0' in text
    assert 'nova_ha_is_leader 1.0' in text
