"""The engine's fencing decision is safe (issue 12): never fence a host
that is being heard, nothing judged after this evacuator's own stall,
bursts judged together, an episode's alarms clear. Real reconcile passes
over a real journal and receiver on a clock the test moves
(tests/unit/evacuator/test_flapping.py's harness); against real processes:
tests/functional/test_evacuator_safety.py."""

from nova_ha.evacuator import engine
from nova_ha.evacuator import fencing_step
from tests.unit.evacuator import test_flapping as harness
from tests.unit.evacuator.test_flapping import HOSTS, others

import pytest


@pytest.fixture
def cloud(tmp_path):
    c = harness.Cloud(tmp_path)
    yield c
    c.close()


def active(cloud, *types):
    return cloud.journal.list_alarms(types=list(types) or None)


def test_real_failure_is_fenced(cloud):
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_recovery(rec.id).fenced_at is not None


def test_heard_on_one_plane_before_the_power_off_is_not_fenced(cloud):
    """The last look, right before the power-off: a heartbeat on any plane
    since the recovery opened stops it (no fencing attempt at all)."""
    cloud.ev._held_back = lambda rec: True      # open, not yet fencing
    cloud.tick(0.0, beat=HOSTS)
    for _ in range(4):
        cloud.tick(0.3, beat=others('c1'))
    rec = cloud.journal.get_open_recovery('c1')
    assert rec is not None and cloud.fencer.calls == []
    # Without a heartbeat since, the last look lets the power-off go ...
    opened = cloud.ev._opened[rec.id]
    assert cloud.ev.fencing_step.last_look('c1', opened) is None
    cloud.t[0] += 0.05
    cloud.beat('c1', planes=('storage',))
    result = cloud.ev.fencing_step.fence('c1', rec.id, None, rec.detected_at)
    assert isinstance(result, fencing_step.NotFenced) and result.heard
    assert 'storage' in result.reason
    assert cloud.fencer.calls == []
    assert not cloud.journal.list_fencing_attempts(host='c1')


def test_guarded_host_heard_on_one_plane_is_released(cloud):
    conf = cloud.ev.conf
    conf.set_override('max_failed_fraction', 0.1, group='guard')
    try:
        rec = cloud.down('c1')
        cloud.tick(0.1, beat=others('c1'))
        assert cloud.journal.get_host_state('c1').state == 'GUARDED'
        (guard_alarm,) = active(cloud, 'MASS_FAILURE_GUARD')
        assert guard_alarm.host is None and 'c1' in guard_alarm.message
        assert active(cloud, 'HOST_DOWN')
        # Heard again on the storage plane only (a partition).
        cloud.tick(0.1, beat=others('c1'))
        cloud.beat('c1', planes=('storage',))
        cloud.tick(0.05, beat=others('c1'))
    finally:
        conf.clear_override('max_failed_fraction', group='guard')
    assert cloud.journal.get_recovery(rec.id).state == 'failed'
    assert cloud.fencer.calls == []
    # Alarms of the episode clear (finding 7).
    cloud.tick(0.05, beat=HOSTS)
    cloud.tick(0.05, beat=HOSTS)
    assert cloud.journal.get_host_state('c1').state == 'OK'
    assert not active(cloud, 'HOST_DOWN', 'MASS_FAILURE_GUARD', 'PARTITION')


def test_partition_then_down_then_back_clears_every_alarm(cloud):
    conf = cloud.ev.conf
    conf.set_override('max_failed_fraction', 0.1, group='guard')
    try:
        cloud.tick(0.0, beat=HOSTS)
        for _ in range(5):                   # storage only: PARTITION
            cloud.tick(0.3, beat=others('c2'))
            cloud.beat('c2', planes=('storage',))
        assert active(cloud, 'PARTITION')
        for _ in range(6):                   # then silent: HOST_DOWN
            cloud.tick(0.3, beat=others('c2'))
        assert cloud.journal.get_host_state('c2').state == 'GUARDED'
        cloud.tick(0.1, beat=HOSTS)          # back on every plane
        cloud.tick(0.1, beat=HOSTS)
    finally:
        conf.clear_override('max_failed_fraction', group='guard')
    assert cloud.journal.get_host_state('c2').state == 'OK'
    assert not active(cloud, 'HOST_DOWN', 'MASS_FAILURE_GUARD', 'PARTITION')
    assert cloud.fencer.calls == []


def test_nothing_judged_in_the_fresh_window_after_a_stall(cloud):
    cloud.tick(0.0, beat=HOSTS)
    cloud.t[0] += 3.0                        # everyone silent 3 s ...
    cloud.ev.stall.record(cloud.t[0], 3.0, 'test stall')
    cloud.beat('c2', 'c3', 'c4')             # ... c1 stays silent
    cloud.ev.reconcile()
    assert cloud.ev._conditions['c1'] == engine.SUSPECT
    assert cloud.journal.get_open_recovery('c1') is None
    for _ in range(3):                       # < a full window (1 s)
        cloud.tick(0.3, beat=others('c1'))
        assert cloud.journal.get_open_recovery('c1') is None
    cloud.tick(0.2, beat=others('c1'))       # 1.1 s after the stall
    rec = cloud.journal.get_open_recovery('c1')
    assert rec is not None                   # a real failure: still found
    cloud.settle_fence('c1')
    assert cloud.fencer.calls == ['c1']


def test_everyone_silent_opens_no_recovery(cloud):
    cloud.tick(0.0, beat=HOSTS)
    for _ in range(10):
        cloud.tick(0.3)                      # nobody beats for 3 s
    assert not cloud.journal.list_recoveries()
    assert all(c == engine.SUSPECT for c in cloud.ev._conditions.values())
    assert 'every one of 4' in cloud.ev.stall.last.cause
    (alarm,) = active(cloud, 'SELF_CHECK')      # said, once
    assert alarm.severity == 'CRITICAL' and 'cut off' in alarm.message
    cloud.tick(0.1, beat=HOSTS)
    assert cloud.fencer.calls == []
    assert not active(cloud, 'SELF_CHECK')      # cleared once heard


def test_burst_is_judged_together(tmp_path):
    """c1's window ends while c2 is still inside its own: nothing is
    fenced until c2 is decided; c2 answers -> c1 (1 of 4) is fenced."""
    cloud = harness.Cloud(tmp_path)
    try:
        cloud.tick(0.0, beat=HOSTS)
        cloud.tick(0.3, beat=others('c1'))
        cloud.tick(0.3, beat=('c3', 'c4'))   # c2 silent from here
        cloud.tick(0.3, beat=('c3', 'c4'))
        cloud.tick(0.3, beat=('c3', 'c4'))   # c1 1.2 s, c2 0.9 s silent
        assert cloud.journal.get_open_recovery('c1') is not None
        assert cloud.ev._verdict.wait and 'c2' in cloud.ev._verdict.wait
        cloud.settle_fence('c1')
        assert cloud.fencer.calls == []
        cloud.tick(0.05, beat=others('c1'))  # c2 heard again
        cloud.settle_fence('c1')
        cloud.tick(0.05, beat=others('c1'))
        cloud.settle_fence('c1')
        assert cloud.fencer.calls == ['c1']
    finally:
        cloud.close()


def test_two_hosts_of_a_small_cloud_are_guarded(tmp_path):
    cloud = harness.Cloud(tmp_path)
    try:
        cloud.tick(0.0, beat=HOSTS)
        for _ in range(6):
            cloud.tick(0.3, beat=('c3', 'c4'))
        for h in ('c1', 'c2'):
            cloud.settle_fence(h)
        cloud.tick(0.1, beat=('c3', 'c4'))
        assert cloud.fencer.calls == []
        assert {s.host for s in cloud.journal.list_host_states(
            states=['GUARDED'])} == {'c1', 'c2'}
        (alarm,) = active(cloud, 'MASS_FAILURE_GUARD')
        assert '2 of 4' in alarm.message
    finally:
        cloud.close()


def test_stall_holds_an_open_recovery_with_an_alarm_that_clears(cloud):
    cloud.tick(0.0, beat=HOSTS)
    cloud.tick(0.3, beat=others('c1'))
    for _ in range(3):                       # c2 silent from here
        cloud.tick(0.3, beat=('c3', 'c4'))
    rec = cloud.journal.get_open_recovery('c1')
    assert rec is not None and cloud.ev._verdict.wait   # burst: c2
    cloud.ev.stall.record(cloud.t[0], 5.0, 'test stall')
    cloud.tick(0.05, beat=others('c1'))      # c2 back; the stall holds
    cloud.settle_fence('c1')
    assert cloud.fencer.calls == []
    (alarm,) = active(cloud, 'SELF_CHECK')
    assert 'test stall' in alarm.message
    cloud.tick(0.05, beat=HOSTS)             # c1 heard again: closes
    cloud.tick(0.05, beat=HOSTS)
    assert cloud.journal.get_recovery(rec.id).state == 'failed'
    assert not active(cloud, 'SELF_CHECK', 'HOST_DOWN')
    assert cloud.fencer.calls == []


def test_last_look_defers_when_a_burst_starts_after_the_decision(cloud):
    cloud.ev._held_back = lambda rec: True      # open, not yet fencing
    cloud.tick(0.0, beat=HOSTS)
    for _ in range(4):
        cloud.tick(0.3, beat=others('c1'))
    rec = cloud.journal.get_open_recovery('c1')
    assert rec is not None
    cloud.t[0] += 0.6                           # c2 silent 0.6 s of 1.0
    cloud.beat('c3', 'c4')
    result = cloud.ev.fencing_step.fence('c1', rec.id, None, rec.detected_at)
    assert isinstance(result, fencing_step.NotFenced) and not result.heard
    assert 'c2' in result.reason and cloud.fencer.calls == []
