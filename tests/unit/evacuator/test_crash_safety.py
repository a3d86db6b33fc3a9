"""Crash safety of recovery (issue 12, findings 3, 4, 5, 8): the real
reconcile loop over a real SQLite journal (tests/unit/evacuator/
test_flapping.py's harness) with a recording Nova stand-in whose answers
the test sets. Against the real Nova: tests/functional/
test_evacuator_crash.py (kill -9 of the leader, 20 servers) and
tests/functional/test_evacuator_orphan.py.
"""

import datetime
import types

from nova_ha.evacuator import engine
from tests.unit.evacuator import test_flapping as harness


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class NovaSays(harness.Ops):
    """Nova's view of each instance, set by the test: ``where[uuid]`` =
    (host, status, task_state); ``actions[uuid]`` = evacuate actions;
    ``migs[uuid]`` = (id, status, dest); ``fail_get`` = uuids whose GET
    raises."""

    def __init__(self, instances):
        super().__init__(harness.HOSTS, instances)
        self.where = {u: (h, 'ACTIVE', None)
                      for h, us in instances.items() for u in us}
        self.actions = {}
        self.migs = {}
        self.fail_get = set()

    def _server(self, uuid):
        host, status, task = self.where[uuid]
        return types.SimpleNamespace(**{
            'id': uuid, 'status': status, 'OS-EXT-SRV-ATTR:host': host,
            'OS-EXT-STS:task_state': task, 'fault': {}})

    def server(self, uuid):
        self.calls.append(('server', uuid))
        if uuid in self.fail_get:
            raise RuntimeError('GET /servers/%s: 500 Internal Server Error'
                               % uuid)
        return self._server(uuid)

    def evacuate_actions(self, uuid, since):
        self.calls.append(('evacuate_actions', uuid))
        return self.actions.get(uuid, [])

    def evacuations_since(self, since, hosts):
        self.calls.append(('evacuations_since', tuple(sorted(hosts))))
        now = utcnow().strftime('%Y-%m-%dT%H:%M:%S.%f')
        out = {}
        for uuid, (mid, status, dest) in self.migs.items():
            src = [h for h, us in self.instances.items() if uuid in us][0]
            out.setdefault(src, {})[uuid] = types.SimpleNamespace(
                id=mid, instance_uuid=uuid, created_at=now,
                source_compute=src, dest_compute=dest, status=status)
        return out


def override(cloud, group, **opts):
    """set_override, undone when the cloud closes (oslo.config keeps
    overrides on the option groups, which other tests' configs share)."""
    conf = cloud.ev.conf
    close = cloud.close

    def undo():
        try:
            close()
        finally:
            for name in opts:
                conf.clear_override(name, group=group)
    for name, value in opts.items():
        conf.set_override(name, value, group=group)
    cloud.close = undo


def make(tmp_path, instances, **opts):
    cloud = harness.Cloud(tmp_path)
    ops = NovaSays(instances)
    cloud.ev.ops = cloud.ops = ops
    override(cloud, 'evacuator', nova_poll_interval=0.05, **opts)
    return cloud


def passes(cloud, host, n=6, beat=None):
    for _ in range(n):
        cloud.tick(0.3, beat=beat if beat is not None
                   else harness.others(host))
        cloud.settle_fence(host)


def evacuating(cloud, host):
    """Recovery of ``host`` opened, fenced, its items evacuating."""
    rec = cloud.down(host)
    passes(cloud, host)
    return rec


def inherit(cloud, rec, uuid, seconds_ago):
    """The item as a leader that died during its evacuate call left it:
    evacuating since ``seconds_ago``, Nova's answer never recorded."""
    j = cloud.journal
    assert j.transition_item(rec.id, uuid, ('evacuating',), 'pending')
    assert j.transition_item(rec.id, uuid, ('pending',), 'evacuating',
                             at=utcnow() - datetime.timedelta(
                                 seconds=seconds_ago))
    item = j.get_recovery_item(rec.id, uuid)
    assert item.accepted_at is None and item.call_started_at is not None
    return item


# -- finding 3: re-issue only on evidence ------------------------------------

def test_inherited_call_with_no_trace_waits_for_reissue_after(tmp_path):
    cloud = make(tmp_path, {'c1': ['u1']}, evacuate_reissue_after=30.0)
    try:
        rec = evacuating(cloud, 'c1')
        assert cloud.ops.count('evacuate') == 1
        # Nova shows nothing (yet) of the dead leader's call, 5 s old:
        # it may still be inside Nova's API -- no second evacuate.
        inherit(cloud, rec, 'u1', 5.0)
        passes(cloud, 'c1')
        assert cloud.ops.count('evacuate') == 1
        item = cloud.journal.get_recovery_item(rec.id, 'u1')
        assert item.state == 'evacuating'
    finally:
        cloud.close()


def test_inherited_call_with_no_trace_is_reissued_after_it(tmp_path):
    cloud = make(tmp_path, {'c1': ['u1']}, evacuate_reissue_after=30.0)
    try:
        rec = evacuating(cloud, 'c1')
        inherit(cloud, rec, 'u1', 31.0)
        passes(cloud, 'c1')
        # Checked Nova's instance actions, then issued once more.
        assert cloud.ops.count('evacuate_actions') >= 1
        assert cloud.ops.count('evacuate') == 2
        item = cloud.journal.get_recovery_item(rec.id, 'u1')
        assert item.state == 'evacuating' and item.accepted_at is not None
    finally:
        cloud.close()


def test_inherited_call_in_flight_is_never_reissued(tmp_path):
    """The dead leader's call reached Nova: task state set (no migration
    record yet), or an evacuate action recorded. Never a second call."""
    cloud = make(tmp_path, {'c1': ['u1', 'u2']}, evacuate_reissue_after=1.0)
    try:
        rec = evacuating(cloud, 'c1')
        assert cloud.ops.count('evacuate') == 2
        inherit(cloud, rec, 'u1', 60.0)
        inherit(cloud, rec, 'u2', 60.0)
        cloud.ops.where['u1'] = ('c1', 'ACTIVE', 'rebuilding')
        cloud.ops.actions['u2'] = [types.SimpleNamespace(
            action='evacuate', request_id='req-1',
            start_time=utcnow().isoformat())]
        passes(cloud, 'c1', n=10)
        assert cloud.ops.count('evacuate') == 2
        states = {i.instance_uuid: i.state
                  for i in cloud.journal.list_recovery_items(rec.id)}
        assert states == {'u1': 'evacuating', 'u2': 'evacuating'}
        # Nova finishes the dead leader's evacuations: done, no new call.
        cloud.ops.where['u1'] = ('c3', 'ACTIVE', None)
        cloud.ops.where['u2'] = ('c4', 'ACTIVE', None)
        passes(cloud, 'c1')
        items = cloud.journal.list_recovery_items(rec.id)
        assert {(i.instance_uuid, i.state, i.dest_host) for i in items} == {
            ('u1', 'done', 'c3'), ('u2', 'done', 'c4')}
        assert cloud.ops.count('evacuate') == 2
        assert cloud.journal.get_recovery(rec.id).state == 'done'
    finally:
        cloud.close()


def test_done_only_when_nova_shows_active_elsewhere(tmp_path):
    """The migration record says done, the server still rebuilds (or is
    in ERROR): not done."""
    cloud = make(tmp_path, {'c1': ['u1']})
    try:
        rec = evacuating(cloud, 'c1')
        cloud.ops.migs['u1'] = (7, 'done', 'c3')
        cloud.ops.where['u1'] = ('c3', 'REBUILD', 'rebuild_spawning')
        passes(cloud, 'c1')
        assert cloud.journal.get_recovery_item(rec.id, 'u1').state == \
            'evacuating'
        cloud.ops.where['u1'] = ('c3', 'ACTIVE', None)
        passes(cloud, 'c1')
        item = cloud.journal.get_recovery_item(rec.id, 'u1')
        assert (item.state, item.dest_host, item.migration_id) == \
            ('done', 'c3', 7)
        assert cloud.ops.count('evacuate') == 1
    finally:
        cloud.close()


def test_journal_done_but_not_in_nova_is_reopened(tmp_path):
    """A closed recovery (host RECOVERED) whose journal says done while
    Nova shows the server back on the failed host: re-opened (recovery,
    host state, item) and evacuated again."""
    cloud = make(tmp_path, {'c1': ['u1']})
    try:
        rec = evacuating(cloud, 'c1')
        cloud.ops.migs['u1'] = (7, 'done', 'c3')
        cloud.ops.where['u1'] = ('c3', 'ACTIVE', None)
        passes(cloud, 'c1')
        assert cloud.journal.get_recovery(rec.id).state == 'done'
        assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
        # Nova disagrees with the journal now.
        cloud.ops.where['u1'] = ('c1', 'ERROR', None)
        cloud.ops.migs.clear()
        cloud.ev._forget(None)        # a new term audits at once
        passes(cloud, 'c1')
        rec2 = cloud.journal.get_recovery(rec.id)
        assert rec2.state == 'open', rec2
        assert cloud.journal.get_host_state('c1').state in (
            'EVACUATING', 'FORCED_DOWN')
        item = cloud.journal.get_recovery_item(rec.id, 'u1')
        assert item.state == 'evacuating' and \
            'journal said done' in item.last_error
        assert cloud.ops.count('evacuate') == 2
        steps = [t.step for t in cloud.journal.timeline(rec.id)]
        assert any(s.startswith('reopened:') for s in steps)
        # The wrong "active" step is gone: the real one is recorded later.
        assert 'active:u1' not in steps and 'done' not in steps
    finally:
        cloud.close()


# -- finding 4: close and host state in one transaction ----------------------

def test_close_recovery_sets_host_state_in_the_same_transaction(tmp_path):
    cloud = make(tmp_path, {})
    try:
        j = cloud.journal
        rec, _ = j.open_recovery('c2', 'HOST_DOWN')
        j.set_host_state('c2', 'EVACUATING', recovery_id=rec.id)
        assert j.close_recovery(rec.id, 'done', host_state='RECOVERED')
        st = j.get_host_state('c2')
        assert (st.state, st.recovery_id) == ('RECOVERED', rec.id)
        assert not j.close_recovery(rec.id, 'done', host_state='OK')
        assert j.get_host_state('c2').state == 'RECOVERED'
    finally:
        cloud.close()


def test_orphan_host_state_is_repaired_and_monitored_again(tmp_path):
    """The old two-transaction close crashed in between: recovery closed,
    host left in a recovery state. After a restart the host's state is
    derived from its recovery, and a failed-closed one is monitored again:
    its next failure opens a new recovery."""
    cloud = make(tmp_path, {})
    try:
        j = cloud.journal
        rec, _ = j.open_recovery('c2', 'HOST_DOWN')
        j.set_host_state('c2', 'FENCING', recovery_id=rec.id)
        assert j.close_recovery(rec.id, 'failed')   # crash: no host state
        rec3, _ = j.open_recovery('c3', 'HOST_DOWN')
        j.set_host_state('c3', 'EVACUATING', recovery_id=rec3.id)
        assert j.close_recovery(rec3.id, 'done')
        # Restart: a new evacuator on the same journal.
        cloud.ev.stop()
        cloud.ev = engine.Evacuator(cloud.ev.conf, None, cloud.fencer, j,
                                    cloud.recv, clock=cloud.clock)
        cloud.ev.ops = cloud.ops
        cloud.ev.start()
        cloud.tick(0.1, beat=harness.HOSTS)
        assert j.get_host_state('c2').state == 'OK'
        assert j.get_host_state('c3').state == 'RECOVERED'
        new = cloud.down('c2')
        assert new.id != rec.id and new.host == 'c2'
    finally:
        cloud.close()


# -- finding 5: per-recovery error isolation ---------------------------------

def test_one_failing_recovery_does_not_stop_another(tmp_path):
    cloud = make(tmp_path, {'c1': ['u1'], 'c2': ['u2']})
    # Two of four hosts fail on purpose: the mass-failure guard and its
    # small-cloud rule would (rightly) hold the second back.
    override(cloud, 'guard', max_failed_fraction=1.0,
             max_failed_fraction_per_domain=1.0, small_cloud_hosts=0)
    try:
        cloud.ops.fail_get = {'u1'}
        cloud.tick(0.0, beat=harness.HOSTS)
        for _ in range(10):
            cloud.tick(0.3, beat=['c3', 'c4'])
            cloud.settle_fence('c1')
            cloud.settle_fence('c2')
        rec1 = cloud.journal.get_open_recovery('c1')
        (rec2,) = [r for r in cloud.journal.list_recoveries(host='c2')]
        # u2's evacuation finishes in Nova (its migration record done)
        # while u1's GET keeps failing.
        cloud.ops.where['u2'] = ('c4', 'ACTIVE', None)
        cloud.ops.migs['u2'] = (2, 'done', 'c4')
        for _ in range(8):
            cloud.tick(0.3, beat=['c3', 'c4'])
        rec2 = cloud.journal.get_recovery(rec2.id)
        assert rec2.state == 'done', rec2
        assert cloud.journal.get_host_state('c2').state == 'RECOVERED'
        rec1 = cloud.journal.get_recovery(rec1.id)
        assert rec1.state == 'open'
        assert rec1.failures >= 1 and rec1.retry_at is not None
        assert '500 Internal Server Error' in rec1.last_error
        from nova_ha.journal import cli as journal_cli
        shown = journal_cli.format_recovery(rec1, [])
        assert 'failing: %d pass(es) in a row' % rec1.failures in shown
        # The backoff is honoured: no GET of u1 before retry_at.
        # Nova answers again: the failing recovery goes on and resets.
        cloud.ops.fail_get = set()
        cloud.ops.where['u1'] = ('c3', 'ACTIVE', None)
        cloud.ops.migs['u1'] = (1, 'done', 'c3')
        import time
        time.sleep(max(0.0, (rec1.retry_at - utcnow()).total_seconds()))
        for _ in range(6):
            cloud.tick(0.3, beat=['c3', 'c4'])
        rec1 = cloud.journal.get_recovery(rec1.id)
        assert rec1.state == 'done' and rec1.failures == 0, rec1
    finally:
        cloud.close()


# -- finding 8: a stuck evacuation raises a MAJOR alarm ----------------------

def test_stuck_evacuation_raises_major_alarm(tmp_path):
    # 3 s: the first passes must finish inside it on a loaded CI machine.
    cloud = make(tmp_path, {'c1': ['u1']}, evacuation_stall_alarm=3.0)
    try:
        rec = evacuating(cloud, 'c1')
        cloud.ops.migs['u1'] = (42, 'accepted', None)
        cloud.ops.where['u1'] = ('c1', 'REBUILD', 'rebuilding')
        passes(cloud, 'c1', n=2)
        assert not cloud.journal.list_alarms(types=['EVACUATION_STUCK'])
        import time
        time.sleep(3.2)
        passes(cloud, 'c1', n=2)
        (alarm,) = cloud.journal.list_alarms(types=['EVACUATION_STUCK'])
        assert alarm.severity == 'MAJOR' and alarm.instance_uuid == 'u1'
        for word in ('vm-u1', 'migration 42 accepted', 'rebuilding'):
            assert word in alarm.message, alarm.message
        # It moves on and finishes: the alarm clears with the recovery.
        cloud.ops.migs['u1'] = (42, 'done', 'c3')
        cloud.ops.where['u1'] = ('c3', 'ACTIVE', None)
        passes(cloud, 'c1', n=3)
        assert cloud.journal.get_recovery(rec.id).state == 'done'
        assert not cloud.journal.list_alarms(types=['EVACUATION_STUCK'])
    finally:
        cloud.close()
