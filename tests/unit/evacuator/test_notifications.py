"""nova_ha.evacuator.notifications: alarms and recovery steps are
published once, with the recovery's host and its location, and a broken
notifier never stops the evacuator. A real journal (SQLite); the
Evacuator is a stand-in with what Notifications reads of it."""

import types

import pytest

from nova_ha.evacuator import notifications
from nova_ha import journal as journal_mod


class Notifier:
    def __init__(self, fail=False):
        self.sent = []
        self.fail = fail

    def emit(self, event_type, severity, payload):
        if self.fail:
            raise RuntimeError('bus down')
        self.sent.append((event_type, severity, payload))


class Metrics:
    def __init__(self):
        self.alarms = []
        self.steps = []

    def observe_alarm(self, type_, severity):
        self.alarms.append((type_, severity))

    def observe_step(self, kind, duration, detail):
        self.steps.append(kind)


@pytest.fixture
def ev(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal_mod.upgrade(url)
    journal = journal_mod.Journal(url)
    ev = types.SimpleNamespace(
        journal=journal, epoch=None, notifier=Notifier(), metrics=Metrics(),
        location=lambda host: {'rack': 'r-%s' % host, 'power_domain': None,
                               'availability_zone': 'az1'})
    ev.notifications = notifications.Notifications(ev)
    yield ev
    journal.close()


def test_a_new_alarm_is_published_once_with_its_host(ev):
    n = ev.notifications
    alarm = n.alarm('HOST_DOWN', 'CRITICAL', 'c1 is down', host='c1',
                    recovery_id=None, extra={'phase': 'x'})
    assert alarm.host == 'c1' and alarm.rack == 'r-c1'
    ((event, severity, payload),) = ev.notifier.sent
    assert event == 'nova_ha.alarm.host_down' and severity == 'CRITICAL'
    assert payload['host'] == 'c1' and payload['alarm_id'] == alarm.id
    assert payload['location']['rack'] == 'r-c1'
    assert payload['phase'] == 'x' and 'recovery_id' not in payload
    # Raised again (refreshed): neither published nor counted again.
    again = n.alarm('HOST_DOWN', 'CRITICAL', 'c1 is down', host='c1')
    assert again.id == alarm.id
    assert len(ev.notifier.sent) == 1
    assert ev.metrics.alarms == [('HOST_DOWN', 'CRITICAL')]


def test_a_cloud_wide_alarm_has_no_location(ev):
    ev.notifications.alarm('SELF_CHECK', 'CRITICAL', 'cut off',
                           key='SELF_CHECK')
    ((_, _, payload),) = ev.notifier.sent
    assert payload['host'] is None and payload['location'] == {}
    assert payload['key'] == 'SELF_CHECK'


def test_a_step_is_published_with_the_recoverys_host(ev):
    rec, _ = ev.journal.open_recovery('c7', reason='HOST_DOWN')
    looked = []
    get_recovery = ev.journal.get_recovery
    ev.journal.get_recovery = lambda rid: looked.append(rid) or \
        get_recovery(rid)
    n = ev.notifications
    n.step(rec.id, 'fenced', detail='ipmi: off', duration=0.5)
    n.step(rec.id, 'active:u1#2', duration=3.0)
    assert looked == [rec.id]                # the host, looked up once
    (fenced, active) = [p for _, _, p in ev.notifier.sent]
    assert fenced['host'] == 'c7' and fenced['type'] == 'fenced'
    assert fenced['location']['rack'] == 'r-c7'
    assert fenced['detail'] == 'ipmi: off' and fenced['duration'] == 0.5
    assert active['instance_uuid'] == 'u1' and active['type'] == 'active'
    assert [e for e, _, _ in ev.notifier.sent] == [
        'nova_ha.recovery.fenced', 'nova_ha.recovery.active']
    # A step the journal already has is not published again.
    n.step(rec.id, 'fenced', detail='ipmi: off')
    assert len(ev.notifier.sent) == 2
    assert ev.metrics.steps == ['fenced', 'active']
    steps = [s.step for s in ev.journal.timeline(rec.id)]
    assert 'fenced' in steps and 'active:u1#2' in steps


def test_notify_step_names_the_host_it_is_given(ev):
    ev.notifications.notify_step(42, 'detected', host='c9')
    ((event, _, payload),) = ev.notifier.sent
    assert event == 'nova_ha.recovery.detected' and payload['host'] == 'c9'
    assert payload['recovery_id'] == 42 and payload['instance_uuid'] is None


def test_without_a_notifier_steps_are_still_counted(ev):
    ev.notifier = None
    ev.notifications.notify_step(1, 'listed', detail='3 instance(s)')
    assert ev.metrics.steps == ['listed']


def test_a_broken_notifier_never_stops_the_evacuator(ev, caplog):
    ev.notifier = Notifier(fail=True)
    alarm = ev.notifications.alarm('FENCE_FAILED', 'CRITICAL', 'x',
                                   host='c1')
    assert ev.journal.list_alarms(types=['FENCE_FAILED'])[0].id == alarm.id
    assert 'could not emit nova_ha.alarm.fence_failed' in caplog.text
