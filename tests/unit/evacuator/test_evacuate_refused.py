"""An evacuation Nova refuses because an earlier attempt already moved the
instance (it finished after the evacuator had given up on it) ends the
item as done, not as a failure after more refused retries."""

import types

import pytest

from tests.unit.evacuator import test_flapping as harness


class MovedOps(harness.Ops):
    """u1 already runs on c3: Nova refuses to evacuate it from c1."""

    def __init__(self, moved_to, status='ACTIVE', task_state=None):
        super().__init__(harness.HOSTS, {'c1': ['u1']})
        self.moved_to = moved_to
        self.status = status
        self.task_state = task_state

    def evacuate(self, uuid, host=None):
        self.calls.append(('evacuate', uuid))
        raise RuntimeError('Compute service of %s is still in use. '
                           '(HTTP 400)' % self.moved_to)

    def server(self, uuid):
        return types.SimpleNamespace(**{
            'id': uuid, 'status': self.status,
            'OS-EXT-SRV-ATTR:host': self.moved_to,
            'OS-EXT-STS:task_state': self.task_state})


def recover(tmp_path, ops):
    cloud = harness.Cloud(tmp_path)
    cloud.ev.ops = cloud.ops = ops
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    for _ in range(12):
        cloud.tick(0.3, beat=harness.others('c1'))
        cloud.settle_fence('c1')
    return cloud, rec


def test_refused_because_already_moved_is_done(tmp_path):
    cloud, rec = recover(tmp_path, MovedOps('c3'))
    try:
        (item,) = cloud.journal.list_recovery_items(rec.id)
        assert (item.state, item.dest_host) == ('done', 'c3'), item
        assert cloud.ops.count('evacuate') == 1
        assert not cloud.journal.list_alarms(types=['EVACUATION_FAILED'])
        steps = [t.step for t in cloud.journal.timeline(rec.id)]
        assert 'active:u1' in steps
    finally:
        cloud.close()


@pytest.mark.parametrize('moved_to,status,task_state', [
    ('c1', 'ACTIVE', None),          # still on the failed host
    ('c3', 'ERROR', None),           # elsewhere, but broken
])
def test_other_refusals_are_retried_then_fail(tmp_path, moved_to, status,
                                              task_state):
    cloud, rec = recover(tmp_path, MovedOps(moved_to, status, task_state))
    try:
        (item,) = cloud.journal.list_recovery_items(rec.id)
        assert item.state == 'error', item
        assert cloud.ops.count('evacuate') == \
            cloud.ev.opts.max_evacuation_attempts
        assert cloud.journal.list_alarms(types=['EVACUATION_FAILED'])
    finally:
        cloud.close()


def test_refused_while_nova_rebuilds_is_followed_never_reissued(tmp_path):
    """Nova refuses because an evacuation of the instance is in flight
    (task state rebuilding, e.g. a dead leader's call): the item follows
    that evacuation; never a second evacuate while the task state is set
    (issue 12, finding 3)."""
    cloud, rec = recover(tmp_path, MovedOps('c3', 'REBUILD', 'rebuilding'))
    try:
        (item,) = cloud.journal.list_recovery_items(rec.id)
        assert item.state == 'evacuating', item
        assert cloud.ops.count('evacuate') == 1
        assert not cloud.journal.list_alarms(types=['EVACUATION_FAILED'])
    finally:
        cloud.close()
