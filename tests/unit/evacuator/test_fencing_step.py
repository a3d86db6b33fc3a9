"""nova_ha.evacuator.fencing_step: the rules of the fencing step, called
directly on a real journal and receiver (tests/unit/evacuator/
test_flapping.py's harness); through whole reconcile passes:
test_safety.py and test_flapping.py."""

import types

import pytest

from nova_ha.evacuator import engine
from nova_ha.evacuator import fencing_step
from nova_ha.fencing import base as fencing_base
from tests.unit.evacuator.test_flapping import (  # noqa: F401
    HOSTS, cloud, opened, others)


def test_last_look_refuses_a_host_heard_since_detection(cloud):
    rec = opened(cloud)
    step = cloud.ev.fencing_step
    assert step.last_look('c1', rec.detected_at) is None
    cloud.t[0] += 0.05
    cloud.beat('c1', planes=('management',))
    stop = step.last_look('c1', rec.detected_at)
    assert isinstance(stop, fencing_step.NotFenced)
    assert stop.heard and not stop.fenced and 'management' in stop.reason
    # fence() takes the same look first: no attempt, no power-off.
    assert step.fence('c1', rec.id, None, rec.detected_at) == stop
    assert cloud.fencer.calls == []
    assert cloud.journal.list_fencing_attempts(host='c1') == []


def test_heard_policy_fences_heard_hosts(cloud):
    """[guard] fence_heard_hosts: the operator's choice to fence a host
    heard since detection (its heartbeats are not trusted)."""
    rec = opened(cloud)
    cloud.t[0] += 0.05
    cloud.beat('c1', planes=('management',))
    cloud.ev.conf.set_override('fence_heard_hosts', True, group='guard')
    try:
        assert cloud.ev.fencing_step.last_look('c1', rec.detected_at) \
            is None
    finally:
        cloud.ev.conf.clear_override('fence_heard_hosts', group='guard')


def test_second_look_after_the_journal_record_interrupts_the_attempt(
        cloud):
    """Heard between the attempt's journal record and the power-off: the
    attempt is finished INTERRUPTED and the BMC is never called."""
    rec = opened(cloud)
    looks = []
    catch_up = cloud.recv.catch_up

    def late_heartbeat():
        looks.append(1)
        if len(looks) == 2:                  # the look after the record
            cloud.beat('c1', planes=('storage',))
        return catch_up()
    cloud.recv.catch_up = late_heartbeat
    cloud.t[0] += 0.05
    stop = cloud.ev.fencing_step.fence('c1', rec.id, None, rec.detected_at)
    assert len(looks) == 2 and stop.heard
    (attempt,) = cloud.journal.list_fencing_attempts(host='c1')
    assert attempt.outcome == 'INTERRUPTED'
    assert 'not powered off' in attempt.reason
    assert cloud.fencer.calls == []


def test_a_deposed_leader_never_calls_the_bmc(cloud):
    """The attempt is journalled first (a new leader resumes it), then
    the leadership is checked: lost -> no power-off."""
    rec = opened(cloud)
    cloud.ev.leader = types.SimpleNamespace(is_leader=False, epoch=None)
    try:
        with pytest.raises(engine.NotLeader):
            cloud.ev.fencing_step.fence('c1', rec.id)
    finally:
        cloud.ev.leader = None
    assert cloud.fencer.calls == []
    (attempt,) = cloud.journal.list_fencing_attempts(host='c1')
    assert attempt.outcome is None and attempt.recovery_id == rec.id


def test_last_look_waits_while_the_receiver_is_down(cloud):
    rec = opened(cloud)
    assert not cloud.recv.healthy()          # never started in the harness
    cloud.ev.conf.set_override('self_check', True, group='guard')
    try:
        stop = cloud.ev.fencing_step.last_look('c1', rec.detected_at)
    finally:
        cloud.ev.conf.set_override('self_check', False, group='guard')
    assert not stop.heard and 'receiver not running' in stop.reason


def test_burst_now_names_hosts_silent_past_half_their_window(cloud):
    cloud.tick(0.0, beat=HOSTS)
    cloud.t[0] += 0.6                        # 0.6 s of a 1.0 s window
    cloud.beat('c3', 'c4')
    assert cloud.ev.fencing_step.burst_now('c1') == ['c2']
    cloud.t[0] += 0.6                        # c2 past its window: decided
    cloud.beat('c3', 'c4')
    assert cloud.ev.fencing_step.burst_now('c1') == []


def test_one_power_off_in_flight_per_host(cloud):
    cloud.fencer.hold.clear()
    rec = opened(cloud)
    step = cloud.ev.fencing_step
    assert step.run(rec) is False
    assert cloud.fencer.called.wait(10)
    rec = cloud.journal.get_recovery(rec.id)
    for _ in range(3):
        assert step.run(rec) is False
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_host_state('c1').state == 'FENCING'
    cloud.fencer.hold.set()
    cloud.settle_fence('c1')
    assert step.run(rec) is True
    assert 'c1' not in step.in_flight
    assert cloud.journal.get_host_state('c1').state == 'FENCED'
    assert [s.step for s in cloud.journal.timeline(rec.id)].count(
        'fenced') == 1


def test_not_confirmed_is_never_fenced_and_alarms(cloud):
    cloud.fencer.outcome = fencing_base.Outcome.UNREACHABLE
    rec = opened(cloud)
    step = cloud.ev.fencing_step
    assert step.run(rec) is False
    cloud.settle_fence('c1')
    assert step.run(rec) is False
    assert cloud.journal.get_host_state('c1').state == 'FENCE_FAILED'
    (alarm,) = cloud.journal.list_alarms(host='c1', types=['FENCE_FAILED'])
    assert alarm.severity == 'CRITICAL' and 'fence confirm c1' in \
        alarm.message
    # Inside fence_retry_interval: no second power-off.
    assert step.run(cloud.journal.get_recovery(rec.id)) is False
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_recovery(rec.id).fenced_at is None


def test_fence_of_a_previous_term_is_carried_on(cloud):
    """A confirmed power-off recorded by a leader that died before the
    'fenced' step: no second power-off."""
    rec = opened(cloud)
    att = cloud.journal.start_fencing('c1', 'ipmi', recovery_id=rec.id)
    cloud.journal.finish_fencing(att.id, 'FENCED', reason='earlier term')
    assert cloud.ev.fencing_step.run(rec) is True
    assert cloud.fencer.calls == []
    assert cloud.journal.get_host_state('c1').state == 'FENCED'


def test_operator_confirmation_fences_without_a_power_off(cloud):
    rec = opened(cloud)
    cloud.journal.confirm_fenced_by_operator('c1', 'alice',
                                             recovery_id=rec.id)
    assert cloud.ev.fencing_step.run(rec) is True
    assert cloud.fencer.calls == []
    (fenced,) = [s for s in cloud.journal.timeline(rec.id)
                 if s.step == 'fenced']
    assert 'alice' in fenced.detail


def test_answering_before_the_fence_closes_the_recovery(cloud):
    """Flapping closes a recovery not yet fenced when the host answers."""
    rec = opened(cloud)
    cloud.tick(0.1, beat=HOSTS)              # every plane, one pass
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.state == 'failed' and 'not fenced' in rec.detail
    assert cloud.fencer.calls == []
    assert cloud.journal.list_fencing_attempts(host='c1') == []


def test_forget_drops_the_old_terms_futures(cloud):
    cloud.fencer.hold.clear()
    opened(cloud)
    cloud.tick(0.1, beat=others('c1'))       # the fence is issued
    assert cloud.fencer.called.wait(10)
    step = cloud.ev.fencing_step
    future = step.in_flight['c1']
    cloud.ev._forget('test: a new term')
    assert step.in_flight == {}
    cloud.fencer.hold.set()
    future.result(10)                        # finishes on its own
