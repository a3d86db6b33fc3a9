"""An evacuation whose migration record says "done" is finished once Nova
shows the server ACTIVE on another host (issue 12: never on the migration
record alone). Many ended at once are read in ONE server list call, no GET
per instance; a few ended per poll are read one GET each, not with a list
of every server of the recovery each time (issue 14).

The real reconcile loop (tests/unit/evacuator/test_flapping.py's harness)
with a Nova stand-in whose migration records end every evacuation at once;
against the real Nova: tests/functional/test_evacuator.py and
tests/functional/test_sim_processes.py.
"""

import datetime
import types

from tests.unit.evacuator import test_flapping as harness

UUIDS = ['u%d' % i for i in range(1, 6)]


class EndedOps(harness.Ops):
    """Every evacuation issued has ended at once: done to c3, or (for the
    instances in `failed`) failed."""

    def __init__(self, failed=()):
        super().__init__(harness.HOSTS, {'c1': UUIDS})
        self.failed = set(failed)

    def evacuations_since(self, since, hosts):
        self.calls.append(('evacuations_since', tuple(sorted(hosts))))
        now = datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%S.%f')
        evacuated = {c[1] for c in self.calls if c[0] == 'evacuate'}
        return {'c1': {u: types.SimpleNamespace(
            id=i, instance_uuid=u, created_at=now, source_compute='c1',
            dest_compute='c3',
            status='error' if u in self.failed else 'done')
            for i, u in enumerate(sorted(evacuated), 1)}}

    def _view(self, uuid):
        if uuid in self.failed:
            return types.SimpleNamespace(**{
                'id': uuid, 'status': 'ERROR', 'OS-EXT-SRV-ATTR:host': 'c1',
                'OS-EXT-STS:task_state': None,
                'fault': {'message': 'boom'}})
        return types.SimpleNamespace(**{
            'id': uuid, 'status': 'ACTIVE', 'OS-EXT-SRV-ATTR:host': 'c3',
            'OS-EXT-STS:task_state': None})

    def servers_changed_since(self, since):
        self.calls.append(('servers_changed_since',))
        evacuated = {c[1] for c in self.calls if c[0] == 'evacuate'}
        return {u: self._view(u) for u in evacuated}

    def server(self, uuid):
        self.calls.append(('server', uuid))
        return self._view(uuid)


def run(tmp_path, ops):
    cloud = harness.Cloud(tmp_path)
    cloud.ev.ops = cloud.ops = ops
    cloud.ev.opts.nova_poll_interval = 0.0
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    for _ in range(20):
        cloud.tick(0.3, beat=harness.others('c1'))
        cloud.settle_fence('c1')
        items = cloud.journal.list_recovery_items(rec.id)
        if all(i.state in ('done', 'error') for i in items):
            break
    return cloud, rec, items


def test_done_migrations_finish_items_without_server_reads(tmp_path):
    cloud, rec, items = run(tmp_path, EndedOps())
    try:
        assert {(i.instance_uuid, i.state, i.dest_host) for i in items} == {
            (u, 'done', 'c3') for u in UUIDS}
        assert cloud.ops.count('server') == 0
        steps = [t.step for t in cloud.journal.timeline(rec.id)]
        assert {'active:%s' % u for u in UUIDS} <= set(steps)
    finally:
        cloud.close()


def test_failed_migration_still_reads_the_server(tmp_path):
    cloud, rec, items = run(tmp_path, EndedOps(failed={'u3'}))
    try:
        states = {i.instance_uuid: i.state for i in items}
        assert states.pop('u3') in ('pending', 'evacuating', 'error')
        assert set(states.values()) == {'done'}
        # Only the retries of the failed one read the server by itself
        # (no evacuation of it in flight before re-issuing).
        assert {c[1] for c in cloud.ops.calls if c[0] == 'server'} == {'u3'}
    finally:
        cloud.close()


class TricklingOps(EndedOps):
    """Twelve evacuations that end two per look at the migrations, as a
    burst spread over several hosts finishes."""

    UUIDS = ['t%02d' % i for i in range(1, 13)]

    def __init__(self):
        harness.Ops.__init__(self, harness.HOSTS, {'c1': self.UUIDS})
        self.failed = set()

    def evacuations_since(self, since, hosts):
        looks = self.count('evacuations_since')
        migs = super().evacuations_since(since, hosts)['c1']
        for i, uuid in enumerate(sorted(migs)):
            if i >= 2 * (looks + 1):
                migs[uuid].status = 'running'
        return {'c1': migs}

    def _view(self, uuid):
        done = {m.instance_uuid for m in self._last['c1'].values()
                if m.status == 'done'}
        if uuid in done:
            return super()._view(uuid)
        return types.SimpleNamespace(**{
            'id': uuid, 'status': 'REBUILD', 'OS-EXT-SRV-ATTR:host': 'c1',
            'OS-EXT-STS:task_state': 'rebuild_spawning'})


def test_a_trickle_of_finished_evacuations_reads_each_server_once(tmp_path):
    """A few evacuations end per poll: each of their servers is read by
    one GET, never a list of every server of the recovery on every poll
    (that list cost nova-api more CPU than the evacuations: issue 14)."""
    ops = TricklingOps()
    recorded = ops.evacuations_since

    def remember(since, hosts):
        ops._last = recorded(since, hosts)
        return ops._last
    ops.evacuations_since = remember
    cloud, rec, items = run(tmp_path, ops)
    try:
        assert {(i.instance_uuid, i.state) for i in items} == {
            (u, 'done') for u in TricklingOps.UUIDS}
        # One list: the audit before closing reads every done server.
        assert ops.count('servers_changed_since') == 1
        reads = [c[1] for c in ops.calls if c[0] == 'server']
        assert sorted(reads) == TricklingOps.UUIDS
    finally:
        cloud.close()


class UnseenOps(EndedOps):
    """Nova accepted every evacuate call, but its migration records stay
    out of the changes-since poll (Nova leaves ``updated_at`` empty until
    the conductor first touches a record) for the first ``hidden`` looks;
    meanwhile the servers are being rebuilt."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden

    def evacuations_since(self, since, hosts):
        if self.count('evacuations_since') < self.hidden:
            self.calls.append(('evacuations_since', tuple(sorted(hosts))))
            return {}
        return super().evacuations_since(since, hosts)

    def _view(self, uuid):
        if self.count('evacuations_since') <= self.hidden:
            return types.SimpleNamespace(**{
                'id': uuid, 'status': 'REBUILD', 'OS-EXT-SRV-ATTR:host': 'c1',
                'OS-EXT-STS:task_state': 'rebuilding'})
        return super()._view(uuid)


def test_accepted_evacuations_without_a_visible_record_are_not_read_every_poll(
        tmp_path):
    """12 polls (0.3 s apart) that show no record of the 5 accepted
    evacuations: their servers are read every UNSEEN_REREAD seconds, not
    on every poll; once the records show done, the items are done."""
    cloud, rec, items = run(tmp_path, UnseenOps(hidden=12))
    try:
        assert {(i.instance_uuid, i.state) for i in items} == {
            (u, 'done') for u in UUIDS}
        lists = cloud.ops.count('servers_changed_since')
        gets = cloud.ops.count('server')
        # 12 polls over 3.6 s: at most 2 reads of the 5 while unseen (the
        # first poll, then every UNSEEN_REREAD), then one when they are
        # done and one audit before closing.
        assert lists + gets / len(UUIDS) <= 4, (lists, gets)
    finally:
        cloud.close()
