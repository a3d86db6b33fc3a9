"""Reconcile decisions when a host comes back, and the per-pass costs.

The engine runs its real reconcile passes over a real SQLite journal and a
real (unstarted) HeartbeatReceiver fed crafted, signed heartbeats through
``handle()`` on a clock the test moves; Nova and the BMCs are recording
stand-ins (behaviour against the real ones: tests/functional/
test_evacuator_flapping.py).
"""

import threading
import time
import types

import pytest
from oslo_config import cfg

import nova_ha.conf
from nova_ha.evacuator import engine
from nova_ha.fencing import base as fencing_base
from nova_ha.fencing import fencer as fencer_mod
from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver
from nova_ha import journal as journal_mod

PLANES = ('management', 'storage')
RING = protocol.Keyring(b'f' * 32)
WINDOW = 1.0
HOSTS = ('c1', 'c2', 'c3', 'c4')


class Ops:
    """The NovaOps calls the engine makes, recorded."""

    def __init__(self, hosts, instances=None):
        self.services = {h: types.SimpleNamespace(
            id='svc-%s' % h, host=h, forced_down=False, status='enabled')
            for h in hosts}
        self.instances = instances or {}
        self.calls = []

    def compute_services(self):
        self.calls.append(('compute_services',))
        return dict(self.services)

    def aggregates(self):
        return []

    def fence_service(self, host, reason, service=None):
        self.calls.append(('fence_service', host))
        svc = self.services[host]
        svc.forced_down, svc.status = True, 'disabled'

    def enable_service(self, host):
        self.calls.append(('enable_service', host))
        svc = self.services[host]
        svc.forced_down, svc.status = False, 'enabled'

    def instances_on(self, host):
        return [dict(instance_uuid=u, name='vm-%s' % u, server_group=None,
                     sal=None, priority=0, source_host=host,
                     state='pending', last_error=None)
                for u in self.instances.get(host, ())]

    def evacuate(self, uuid, host=None):
        self.calls.append(('evacuate', uuid))

    def evacuations_since(self, since, hosts):
        self.calls.append(('evacuations_since', tuple(sorted(hosts))))
        return {}

    def servers_changed_since(self, since):
        # Nothing listed: the engine reads what it needs one by one.
        self.calls.append(('servers_changed_since',))
        return {}

    def evacuate_actions(self, uuid, since):
        self.calls.append(('evacuate_actions', uuid))
        return []

    def server(self, uuid):
        # Still on its failed host, rebuild under way (no migration record
        # in these tests, so it is followed, never finished).
        host = [h for h, us in self.instances.items() if uuid in us][0]
        return types.SimpleNamespace(**{
            'id': uuid, 'status': 'ACTIVE', 'OS-EXT-SRV-ATTR:host': host,
            'OS-EXT-STS:task_state': 'rebuilding'})

    def count(self, name):
        return len([c for c in self.calls if c[0] == name])


class Fencer:
    """Power-off results on demand; ``hold`` keeps one in flight."""

    def __init__(self):
        self.inventory = types.SimpleNamespace(
            lookup=lambda host: types.SimpleNamespace(driver='ipmi'),
            missing=lambda hosts: [], source='test')
        self.outcome = fencing_base.Outcome.FENCED
        self.hold = threading.Event()
        self.hold.set()
        self.calls = []
        self.called = threading.Event()

    def fence(self, host):
        self.calls.append(host)
        self.called.set()
        assert self.hold.wait(10)
        return fencer_mod.FenceResult(host, self.outcome, 'test power-off',
                                      elapsed=0.01, driver='ipmi')


# Several hosts failing together, for tests of what follows the fence
# (the guard holds these back by default: tests/unit/evacuator/
# test_guard_rules.py).
SEVERAL_HOSTS = {'small_cloud_hosts': 0, 'max_failed_fraction': 0.9,
                 'max_failed_fraction_per_domain': 0.9}


class Cloud:
    def __init__(self, tmp_path, instances=None, guard=None):
        self.t = [1000.0]
        conf = cfg.ConfigOpts()
        nova_ha.conf.register_opts(conf)
        conf([], project='nova-ha-test')
        # The test moves this clock by whole seconds between passes: that
        # is simulated time, not a stall of the evacuator.
        # (oslo.config keeps overrides in the shared OptGroup: close()
        # clears them.)
        self._guard = dict(guard or {}, stall_threshold=1e6)
        for name, value in self._guard.items():
            conf.set_override(name, value, group='guard')
        conf.set_override('sal3_confirmation_window', WINDOW,
                          group='evacuator')
        conf.set_override('startup_grace', 0.0, group='evacuator')
        conf.set_override('self_check', False, group='guard')
        url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
        journal_mod.upgrade(url)
        self.journal = journal_mod.Journal(url)
        self.recv = hb_receiver.HeartbeatReceiver(
            {p: [('127.0.0.1', 0)] for p in PLANES}, RING,
            clock=self.clock, default_window=WINDOW)
        self.fencer = Fencer()
        self.ev = engine.Evacuator(conf, None, self.fencer, self.journal,
                                   self.recv, clock=self.clock)
        self.ops = self.ev.ops = Ops(HOSTS, instances)
        self.seq = {}
        self.ev.start()

    def clock(self):
        return self.t[0]

    def beat(self, *hosts, planes=PLANES):
        for host in hosts or HOSTS:
            self.seq[host] = seq = self.seq.get(host, 0) + 1
            for plane in planes:
                assert self.recv.handle(protocol.encode(
                    RING, host, plane, 7, seq, time.time(),
                    {'nova-compute': 'running'}), plane, now=self.t[0])

    def tick(self, seconds=0.3, beat=(), planes=PLANES):
        """Time passes; the hosts in ``beat`` send; one reconcile pass."""
        self.t[0] += seconds
        if beat:
            self.beat(*beat, planes=planes)
        self.ev.reconcile()

    def settle_fence(self, host):
        fut = self.ev.fencing_step.in_flight.get(host)
        if fut is not None:
            fut.result(10)

    def down(self, host):
        """``host`` goes silent (the others keep beating) until its
        recovery opens and its fence is issued."""
        others = [h for h in HOSTS if h != host]
        self.tick(0.0, beat=HOSTS)
        for _ in range(10):
            self.tick(0.3, beat=others)
            rec = self.journal.get_open_recovery(host)
            if rec is not None:
                return rec
        raise AssertionError('no recovery of %s opened' % host)

    def flapping(self, host):
        return [a for a in self.journal.list_alarms(status='all', host=host,
                                                    types=['FLAPPING'])]

    def close(self):
        self.fencer.hold.set()
        self.ev.stop()
        self.journal.close()
        for name in self._guard:
            self.ev.conf.clear_override(name, group='guard')


@pytest.fixture
def cloud(tmp_path):
    c = Cloud(tmp_path)
    yield c
    c.close()


@pytest.fixture
def cloud_vm(tmp_path):
    c = Cloud(tmp_path, instances={'c1': ['u1']})
    yield c
    c.close()


def opened(cloud, host='c1'):
    """``host``'s recovery, open and not fenced (the guard holds it)."""
    cloud.ev._held_back = lambda rec: True
    rec = cloud.down(host)
    assert cloud.fencer.calls == []
    del cloud.ev._held_back
    return rec


def others(host):
    return [h for h in HOSTS if h != host]


def test_back_while_fence_in_flight_then_fence_confirms(cloud):
    cloud.fencer.hold.clear()
    rec = cloud.down('c1')
    assert cloud.fencer.called.wait(10)
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_host_state('c1').state == 'FENCING'
    # The host answers on every plane while the power-off is in flight.
    cloud.tick(0.1, beat=HOSTS)
    cloud.tick(0.1, beat=HOSTS)
    (alarm,) = cloud.flapping('c1')
    assert alarm.severity == 'MAJOR' and alarm.recovery_id == rec.id
    assert 'c1' in alarm.message and 'being fenced' in alarm.message
    # The power-off goes through: the recovery goes on, no second fence.
    cloud.fencer.hold.set()
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.fenced_at is not None
    for _ in range(5):
        cloud.tick(0.3, beat=others('c1'))
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    assert cloud.fencer.calls == ['c1']
    assert cloud.ops.count('fence_service') == 1
    assert len(cloud.flapping('c1')) == 1
    # Powered on again once recovered: still that one alarm of the
    # recovery, worded for the phase it was first seen in; no fence.
    for _ in range(3):
        cloud.tick(0.3, beat=HOSTS)
    (alarm,) = cloud.flapping('c1')
    assert 'being fenced' in alarm.message and alarm.cleared_at is None
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'


def test_back_after_failed_fence_stops_without_second_fence(cloud):
    cloud.fencer.outcome = fencing_base.Outcome.UNREACHABLE
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert cloud.journal.get_host_state('c1').state == 'FENCE_FAILED'
    assert cloud.journal.list_alarms(host='c1', types=['FENCE_FAILED'])
    # Back before the retry: the recovery stops, nothing more is fenced.
    cloud.tick(0.1, beat=HOSTS)
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.state == 'failed' and 'answered again' in rec.detail
    assert cloud.journal.get_host_state('c1').state == 'OK'
    assert not cloud.journal.list_alarms(host='c1', types=['FENCE_FAILED'])
    (alarm,) = cloud.flapping('c1')
    assert alarm.severity == 'MAJOR' and 'being fenced' in alarm.message
    for _ in range(10):
        cloud.tick(0.3, beat=HOSTS)
    assert cloud.fencer.calls == ['c1']
    assert cloud.ops.count('fence_service') == 0
    assert cloud.journal.list_recoveries(states=['open']) == []


def test_back_while_failed_fence_in_flight(cloud):
    cloud.fencer.outcome = fencing_base.Outcome.FAILED
    cloud.fencer.hold.clear()
    rec = cloud.down('c1')
    assert cloud.fencer.called.wait(10)
    cloud.tick(0.1, beat=HOSTS)
    cloud.fencer.hold.set()
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=HOSTS)
    rec = cloud.journal.get_recovery(rec.id)
    assert rec.state == 'failed'
    assert not cloud.journal.list_alarms(host='c1', types=['FENCE_FAILED'])
    for _ in range(5):
        cloud.tick(0.3, beat=HOSTS)
    assert cloud.fencer.calls == ['c1']
    assert [a.severity for a in cloud.flapping('c1')] == ['MAJOR']


def test_back_after_fence_during_evacuation(cloud_vm):
    cloud = cloud_vm
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert cloud.ops.count('evacuate') == 1
    assert cloud.journal.get_host_state('c1').state == 'EVACUATING'
    assert cloud.flapping('c1') == []
    # Powered on by someone while its instance is being evacuated.
    cloud.tick(0.1, beat=HOSTS)
    (alarm,) = cloud.flapping('c1')
    assert alarm.severity == 'MAJOR' and 'evacuating' in alarm.message
    for _ in range(10):
        cloud.tick(0.3, beat=HOSTS)
    assert cloud.fencer.calls == ['c1']
    assert cloud.journal.get_recovery(rec.id).state == 'open'
    assert cloud.journal.get_host_state('c1').state == 'EVACUATING'
    assert cloud.ops.services['c1'].forced_down
    assert len(cloud.flapping('c1')) == 1


def test_recovered_host_powered_on_stays_out_until_enabled(cloud):
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
    for _ in range(3):
        cloud.tick(0.3, beat=others('c1'))
    assert cloud.flapping('c1') == []
    # Someone powers it on: alarm, no fence, it stays forced down.
    for _ in range(5):
        cloud.tick(0.3, beat=HOSTS)
    (alarm,) = cloud.flapping('c1')
    assert alarm.severity == 'MAJOR' and alarm.recovery_id == rec.id
    assert 'nova-ha host enable c1' in alarm.message
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
    assert cloud.fencer.calls == ['c1']
    assert cloud.ops.services['c1'].forced_down
    assert cloud.ops.count('enable_service') == 0
    assert cloud.journal.list_recoveries(states=['open']) == []
    # The operator returns it; the alarm clears and it is monitored again.
    cloud.ev.enable_host('c1')
    assert not cloud.ops.services['c1'].forced_down
    assert all(a.cleared_at for a in cloud.flapping('c1'))
    cloud.tick(0.3, beat=HOSTS)
    assert cloud.journal.get_host_state('c1').state == 'OK'


def test_stale_heartbeats_after_fence_are_not_a_return(cloud):
    """Heartbeats from before the power-off, still inside the window when
    the fence is confirmed, are not the host coming back."""
    cloud.fencer.hold.clear()
    rec = cloud.down('c1')
    assert cloud.fencer.called.wait(10)
    cloud.tick(0.1, beat=HOSTS)          # back during fencing ...
    cloud.fencer.hold.set()              # ... then powered off for good
    cloud.settle_fence('c1')
    cloud.tick(0.1, beat=others('c1'))   # last c1 beat 0.1 s ago (< window)
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    cloud.tick(0.1, beat=others('c1'))
    (alarm,) = cloud.flapping('c1')
    assert 'being fenced' in alarm.message   # not "powered on by someone"


def test_before_fencing_is_a_warning_and_nothing_happens(cloud):
    conf = cloud.ev.conf
    conf.set_override('max_failed_fraction', 0.1, group='guard')
    try:
        rec = cloud.down('c1')                # 1 of 4 > 10 %: guarded
        assert cloud.journal.get_host_state('c1').state == 'GUARDED'
        cloud.tick(0.1, beat=HOSTS)
    finally:
        conf.clear_override('max_failed_fraction', group='guard')
    assert cloud.journal.get_recovery(rec.id).state == 'failed'
    (alarm,) = cloud.flapping('c1')
    assert alarm.severity == 'WARNING'
    assert cloud.fencer.calls == []


def test_hosts_nova_does_not_list_are_not_recovered(cloud, caplog):
    cloud.beat('stray')
    cloud.tick(0.1, beat=HOSTS)
    for _ in range(6):
        cloud.tick(0.3, beat=HOSTS)       # 'stray' silent for 1.8 s
    assert 'stray' in caplog.text and 'Nova does not list' in caplog.text
    assert cloud.journal.list_recoveries() == []
    assert cloud.journal.get_host_state('stray') is None
    assert cloud.fencer.calls == []


def test_unchanged_partition_is_not_rewritten_every_pass(cloud):
    cloud.tick(0.0, beat=HOSTS)
    for _ in range(8):
        cloud.tick(0.3, beat=others('c2'))
        cloud.beat('c2', planes=('storage',))
    assert cloud.journal.get_host_state('c2').state == 'PARTITION'
    changes = cloud.journal.host_state_history(host='c2')
    assert [c.to_state for c in changes] == ['PARTITION', 'OK']
    (alarm,) = cloud.journal.list_alarms(host='c2', types=['PARTITION'])
    assert alarm.count == 1
    # ... but refreshed after ALARM_REFRESH, and cleared when it heals.
    for _ in range(int(engine.ALARM_REFRESH / 0.9) + 1):
        cloud.t[0] += 0.9
        cloud.beat(*others('c2'))
        cloud.beat('c2', planes=('storage',))
    cloud.ev.reconcile()
    assert cloud.journal.list_alarms(host='c2',
                                     types=['PARTITION'])[0].count == 2
    cloud.tick(0.1, beat=HOSTS)
    assert cloud.journal.get_host_state('c2').state == 'OK'
    assert not cloud.journal.list_alarms(host='c2', types=['PARTITION'])


def test_one_nova_poll_for_every_recovery_in_flight(tmp_path):
    cloud = Cloud(tmp_path, instances={'c1': ['u1'], 'c2': ['u2']},
                  guard=SEVERAL_HOSTS)
    try:
        cloud.tick(0.0, beat=HOSTS)
        for _ in range(5):
            cloud.tick(0.3, beat=('c3', 'c4'))
        cloud.settle_fence('c1')
        cloud.settle_fence('c2')
        cloud.tick(0.1, beat=('c3', 'c4'))
        assert cloud.ops.count('evacuate') == 2
        before = len(cloud.ops.calls)
        cloud.tick(cloud.ev.opts.nova_poll_interval + 0.01,
                   beat=('c3', 'c4'))
        polls = [c for c in cloud.ops.calls[before:]
                 if c[0] == 'evacuations_since']
        assert polls == [('evacuations_since', ('c1', 'c2'))]
        # Steady state: no Nova call per host and pass.
        n = len(cloud.ops.calls)
        cloud.tick(0.01, beat=('c3', 'c4'))
        assert cloud.ops.calls[n:] == []
    finally:
        cloud.close()
