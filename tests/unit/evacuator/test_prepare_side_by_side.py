"""Hosts that fail together are forced down and listed side by side.

The real reconcile loop (tests/unit/evacuator/test_flapping.py's harness).
Nova's force-down call of each host waits at a barrier for the other
host's: made one after another, as before, the first would wait alone and
the barrier would break.
"""

import threading

from tests.unit.evacuator import test_flapping as harness


class BarrierOps(harness.Ops):
    def __init__(self, parties):
        super().__init__(harness.HOSTS, {'c1': ['u1'], 'c2': ['u2']})
        self.barrier = threading.Barrier(parties, timeout=10)

    def fence_service(self, host, reason, service=None):
        super().fence_service(host, reason, service)
        self.barrier.wait()


def test_two_failed_hosts_are_prepared_side_by_side(tmp_path):
    cloud = harness.Cloud(tmp_path, guard=harness.SEVERAL_HOSTS)
    cloud.ev.ops = cloud.ops = BarrierOps(2)
    try:
        cloud.tick(0.0, beat=harness.HOSTS)
        recs = {}
        for _ in range(15):
            cloud.tick(0.3, beat=['c3', 'c4'])
            cloud.settle_fence('c1')
            cloud.settle_fence('c2')
            for host in ('c1', 'c2'):
                rec = cloud.journal.get_open_recovery(host)
                if rec is not None:
                    recs[host] = rec
            if len(recs) == 2 and all(
                    cloud.journal.list_recovery_items(r.id)
                    for r in recs.values()):
                break
        assert not cloud.ops.barrier.broken
        assert cloud.ops.count('fence_service') == 2
        for host, rec in recs.items():
            steps = [t.step for t in cloud.journal.timeline(rec.id)]
            assert steps.index('fenced') < steps.index('forced_down') \
                < steps.index('listed'), steps
            (item,) = cloud.journal.list_recovery_items(rec.id)
            assert item.source_host == host
    finally:
        cloud.close()
