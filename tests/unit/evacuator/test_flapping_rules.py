"""nova_ha.evacuator.flapping: the rules for a host that answers again,
called directly on a real journal and receiver (tests/unit/evacuator/
test_flapping.py's harness, which runs them through reconcile passes)."""

import datetime
import types

from nova_ha.evacuator import flapping
from tests.unit.evacuator.test_flapping import (  # noqa: F401
    HOSTS, cloud, opened, others)


def alarms(cloud, host='c1', status='active'):
    return cloud.journal.list_alarms(status=status, host=host,
                                     types=['FLAPPING'])


def test_phase_of_an_open_recovery():
    rec = types.SimpleNamespace(fenced_at=None, forced_down_at=None)
    assert flapping.phase_of(rec) == 'fencing'
    rec.fenced_at = 1
    assert flapping.phase_of(rec) == 'fenced'
    rec.forced_down_at = 2
    assert flapping.phase_of(rec) == 'evacuating'


def test_answers_needs_every_plane_and_beats_after_since(cloud):
    fl = cloud.ev.flapping
    rec = opened(cloud)
    assert not fl.answers('c1')              # this pass: HOST_DOWN
    cloud.t[0] += 0.1
    cloud.beat('c1', planes=('storage',))
    cloud.ev._conditions.clear()             # classified afresh
    assert not fl.answers('c1')              # one plane: a partition
    cloud.beat('c1')
    assert fl.answers('c1')
    # Heard on every plane, but not since a moment after those beats.
    later = datetime.datetime.now(datetime.timezone.utc) + \
        datetime.timedelta(seconds=5)
    assert not fl.answers('c1', since=later)
    assert fl.answers('c1', since=rec.detected_at)


def test_heard_since_counts_any_plane_unless_the_policy_fences_heard(
        cloud):
    fl = cloud.ev.flapping
    rec = opened(cloud)
    assert fl.heard(rec) == []
    cloud.t[0] += 0.05
    cloud.beat('c1', planes=('management',))
    assert fl.heard(rec) == ['management']
    assert fl.heard_since('c1', rec.detected_at) == ['management']
    cloud.ev.conf.set_override('fence_heard_hosts', True, group='guard')
    try:
        assert fl.heard(rec) == []
    finally:
        cloud.ev.conf.clear_override('fence_heard_hosts', group='guard')


def test_close_not_fenced_stops_the_recovery_with_a_warning(cloud):
    rec = opened(cloud)
    assert cloud.journal.list_alarms(host='c1', types=['HOST_DOWN'])
    cloud.ev.flapping.close_not_fenced(rec, 'heard again on storage')
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.state == 'failed' and 'heard again on storage' in rec.detail
    assert cloud.journal.get_host_state('c1').state == 'OK'
    (alarm,) = alarms(cloud)
    assert alarm.severity == 'WARNING' and alarm.recovery_id == rec.id
    # The episode is over: its alarms clear.
    assert not cloud.journal.list_alarms(host='c1', types=['HOST_DOWN'])
    # Closed once: a second call (another pass) raises nothing more.
    cloud.ev.flapping.close_not_fenced(rec, 'again')
    assert len(alarms(cloud, status='all')) == 1


def test_close_returned_stops_without_a_second_fence(cloud):
    rec = opened(cloud)
    cloud.ev.alarm('FENCE_FAILED', 'CRITICAL', 'test', host='c1',
                   recovery_id=rec.id)
    cloud.ev.flapping.close_returned(rec, 'fence not confirmed (x: y)')
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.state == 'failed' and 'not fencing it again' in rec.detail
    assert not cloud.journal.list_alarms(host='c1', types=['FENCE_FAILED'])
    (alarm,) = alarms(cloud)
    assert alarm.severity == 'MAJOR' and 'being fenced' in alarm.message
    assert cloud.fencer.calls == []


def test_one_returned_alarm_per_recovery_worded_for_its_first_phase(
        cloud):
    rec = opened(cloud)
    fl = cloud.ev.flapping
    fl.returned('c1', rec.id, 'fenced')
    fl.returned('c1', rec.id, 'evacuating')
    fl.forget()                              # a new term looks it up
    fl.returned('c1', rec.id, 'recovered')
    (alarm,) = alarms(cloud)
    assert alarm.severity == 'MAJOR' and alarm.recovery_id == rec.id
    assert 'during the fenced phase' in alarm.message
    # A later recovery of the host: an alarm of its own.
    cloud.journal.close_recovery(rec.id, 'failed', detail='test')
    rec2, _ = cloud.journal.open_recovery('c1', reason='HOST_DOWN')
    fl.returned('c1', rec2.id, 'recovered')
    assert len(alarms(cloud)) == 2


def test_returned_looks_the_journal_up_once_per_refresh(cloud):
    rec = opened(cloud)
    fl = cloud.ev.flapping
    looked = []
    list_alarms = cloud.journal.list_alarms
    cloud.journal.list_alarms = lambda **kw: looked.append(kw) or \
        list_alarms(**kw)
    try:
        for _ in range(3):
            fl.returned('c1', rec.id, 'fencing')
        assert len(looked) == 1
        cloud.t[0] += flapping.ALARM_REFRESH
        fl.returned('c1', rec.id, 'fencing')
        assert len(looked) == 2
    finally:
        del cloud.journal.list_alarms
    assert len(alarms(cloud)) == 1


def test_watch_recovered_alarms_a_recovered_host_heard_again(cloud):
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
    states = cloud.journal.host_state_map()
    cloud.ev.flapping.watch_recovered(states, cloud.t[0])
    assert alarms(cloud) == []               # silent: nothing to say
    # Powered on by someone: every plane heard since the fence.
    cloud.tick(0.3, beat=HOSTS)
    (alarm,) = alarms(cloud)
    assert alarm.recovery_id == rec.id
    assert 'nova-ha host enable c1' in alarm.message
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
