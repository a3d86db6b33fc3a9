"""The mass-failure guard's rules (nova_ha.evacuator.guard.judge): pure
decisions over named structures, no journal, no clock. The rules as
run by the engine against real processes: tests/functional/
test_evacuator_safety.py and test_evacuator_guard.py."""

import types

import pytest
from oslo_config import cfg

import nova_ha.conf
from nova_ha.evacuator import guard
from nova_ha.evacuator import metrics as metrics_mod

POLICY = guard.GuardPolicy()          # the defaults of nova_ha/conf/guard.py
BIG = guard.GuardPolicy(small_cloud_hosts=0)


def cloud(n, racks=None, **state):
    """``n`` hosts c01.., in ``racks`` contiguous racks; ``state``: host
    -> dict of GuardHost fields."""
    racks = racks or 1
    per = -(-n // racks)
    out = []
    for i in range(n):
        name = 'c%02d' % (i + 1)
        out.append(guard.GuardHost(
            name=name, domains={'rack': 'r%d' % (i // per + 1),
                                'power_domain': 'pdu%d' % (i // per + 1),
                                'availability_zone': 'nova'},
            **state.get(name, {})))
    return out


DOWN = {'silence': guard.SILENT, 'silent_planes': ('management', 'storage'),
        'open_recovery': True}
SUSPECT = {'silence': guard.SUSPECT,
           'silent_planes': ('management', 'storage')}
FENCED = {'fenced_recently': True}
PLANES = ('management', 'storage')


def test_defaults_match_the_options():
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    conf([], project='nova-ha-test')
    assert guard.GuardPolicy.from_conf(conf.guard) == POLICY


def test_nothing_failing_goes():
    v = guard.judge(POLICY, cloud(6), PLANES)
    assert v.go and not v.failing


def test_one_host_of_six_goes():
    v = guard.judge(POLICY, cloud(6, 3, c02=DOWN), PLANES)
    assert v.go and v.failing == {'c02'}


def test_burst_waits_while_a_window_is_open():
    """4 of 6 hang within 100 ms: when the first window ends the others
    are still inside theirs: wait (no alarm), never let the first through.
    """
    v = guard.judge(POLICY, cloud(6, 3, c01=DOWN, c02=SUSPECT, c03=SUSPECT,
                                  c04=SUSPECT), PLANES)
    assert not v.go and v.wait and v.reason is None
    assert 'c02' in v.wait and v.rule == 'burst'
    # ... then all four windows have ended: guarded, all together.
    v = guard.judge(POLICY, cloud(6, 3, c01=DOWN, c02=DOWN, c03=DOWN,
                                  c04=DOWN), PLANES)
    assert v.reason and '4 of 6' in v.reason and v.rule == 'cloud-wide'


def test_exactly_half_is_guarded():
    v = guard.judge(BIG, cloud(6, 3, c01=DOWN, c03=DOWN, c05=DOWN), PLANES)
    assert v.rule == 'cloud-wide' and '3 of 6' in v.reason


def test_just_below_half_goes():
    v = guard.judge(BIG, cloud(10, 1, **{'c0%d' % i: DOWN
                                         for i in (1, 2, 3, 4)}),
                    PLANES)
    assert v.go, v


def test_open_recoveries_and_recent_fences_count():
    """Hosts already fenced (recently) or with a recovery open count with
    the one failing now: rolling waves of < 50 % add up."""
    hosts = cloud(6, 3, c01=FENCED, c03={'open_recovery': True}, c05=DOWN)
    v = guard.judge(BIG, hosts, PLANES)
    assert v.rule == 'cloud-wide' and '3 of 6' in v.reason


def test_small_cloud_loses_at_most_one_host_per_window():
    v = guard.judge(POLICY, cloud(6, 3, c01=FENCED, c04=DOWN), PLANES)
    assert v.rule == 'small-cloud', v
    assert 'at most 1' in v.reason
    # Configured: two are allowed.
    two = guard.GuardPolicy(small_cloud_max_fenced=2)
    assert guard.judge(two, cloud(6, 3, c01=FENCED, c04=DOWN), PLANES).go


def test_per_rack_power_domain():
    hosts = cloud(12, 3, c01=DOWN, c02=DOWN)     # 2 of rack r1's 4
    v = guard.judge(BIG, hosts, PLANES)
    assert v.rule == 'domain' and 'rack r1' in v.reason, v
    # A rack smaller than domain_min_hosts is not judged on its own.
    hosts = cloud(12, 6, c01=DOWN)               # 1 of rack r1's 2
    assert guard.judge(BIG, hosts, PLANES).go
    # Power domains are judged too.
    hosts = [dataclasses_replace(h, domains={'power_domain': 'p1'
                                             if h.name < 'c05' else 'p2'})
             for h in cloud(12, 1, c01=DOWN, c02=DOWN)]
    v = guard.judge(BIG, hosts, PLANES)
    assert v.rule == 'domain' and 'power_domain p1' in v.reason, v


def dataclasses_replace(obj, **kw):
    import dataclasses
    return dataclasses.replace(obj, **kw)


def test_per_plane():
    """Half the hosts silent on one plane (each still heard on another):
    this evacuator more likely lost the plane."""
    part = {'silent_planes': ('storage',)}
    hosts = cloud(6, 3, c01=DOWN, c02=part, c03=part)
    v = guard.judge(BIG, hosts, PLANES)
    assert v.rule == 'plane' and 'storage' in v.reason, v


def test_too_many_in_the_window():
    policy = guard.GuardPolicy(small_cloud_hosts=0, max_failures_in_window=2)
    hosts = cloud(20, 1, c01=FENCED, c02=FENCED, c03=DOWN)
    v = guard.judge(policy, hosts, PLANES)
    assert v.rule == 'window' and 'more than 2' in v.reason


@pytest.mark.parametrize('fraction,count,guarded', [
    (0.5, 2, False), (0.5, 3, True), (1.0, 5, False), (1.0, 6, True),
    (0.0, 1, True)])
def test_fraction_is_inclusive(fraction, count, guarded):
    policy = guard.GuardPolicy(small_cloud_hosts=0,
                               max_failed_fraction=fraction,
                               max_failed_fraction_per_domain=1.0)
    hosts = cloud(6, 1, **{'c0%d' % (i + 1): DOWN for i in range(count)})
    assert (guard.judge(policy, hosts, ()).reason is not None) == guarded


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
