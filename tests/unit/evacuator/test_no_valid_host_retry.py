"""The evacuator's own retry of instances that found no valid host
(``[evacuator] no_valid_host_retry_interval``): once capacity is back they
are evacuated again, their alarm clears, and nothing else is touched --
not while the host is back in service, not the instances that failed
their evacuations, not before the interval."""

import time

import pytest

from nova_ha.evacuator import evacuation
from tests.unit.evacuator import test_flapping as harness
from tests.unit.evacuator import test_placement_plan as placing


class Ops(placing.PlacingOps):
    """An evacuation's outcome is decided when it is asked for: a refused
    instance stays in ERROR on c1 until it is evacuated again."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.outcomes = {}

    def evacuate(self, uuid, host=None):
        super().evacuate(uuid, host)
        self.outcomes[uuid] = super()._outcome(uuid)

    def _outcome(self, uuid):
        return self.outcomes[uuid]


@pytest.fixture
def stranded(tmp_path, monkeypatch):
    """c1 fails; the scheduler refuses every host: its two instances end
    no_valid_host and the recovery incomplete. Audits run on every pass."""
    monkeypatch.setattr(evacuation, 'AUDIT_INTERVAL', 0.0)
    ops = Ops(count=2, refuse={'c2', 'c3', 'c4'}, refuse_any=True)
    cloud, rec, items = placing.run(tmp_path, ops)
    try:
        for _ in range(20):
            if cloud.journal.get_recovery(rec.id).state != 'open':
                break
            cloud.tick(0.3, beat=harness.others('c1'))
        assert cloud.journal.get_recovery(rec.id).state == 'incomplete'
        assert {i.state for i in items} == {'no_valid_host'}
        assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
        yield cloud, ops, rec
    finally:
        cloud.close()


def _ticks(cloud, n=20, beat=None):
    for _ in range(n):
        cloud.tick(0.3, beat=harness.others('c1') if beat is None else beat)


def _alarms(cloud):
    return cloud.journal.list_alarms(types=['NO_VALID_HOST'])


def test_capacity_back_recovers_them_and_clears_the_alarms(stranded):
    cloud, ops, rec = stranded
    cloud.ev.opts.no_valid_host_retry_interval = 0.5
    assert len(_alarms(cloud)) == 2
    ops.refuse, ops.refuse_any = set(), False      # a host was repaired
    asked = len(ops.asked)
    time.sleep(0.6)                 # the interval runs from the close
    _ticks(cloud)
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    items = cloud.journal.list_recovery_items(rec.id)
    assert {(i.state, i.dest_host) for i in items} == {('done', 'c2')}
    assert all(i.last_error.startswith('retried by evacuator ')
               for i in items), [i.last_error for i in items]
    assert len(ops.asked) == asked + 2
    assert _alarms(cloud) == []
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
    steps = [t.step for t in cloud.journal.timeline(rec.id)]
    assert any(s.startswith('retried:') for s in steps), steps


def test_still_no_capacity_retries_each_interval_only(stranded):
    cloud, ops, rec = stranded
    opts = cloud.ev.opts
    opts.no_valid_host_retry_interval = 30.0
    asked = len(ops.asked)
    _ticks(cloud)                          # within the interval: nothing
    assert len(ops.asked) == asked
    opts.no_valid_host_retry_interval = 0.5
    time.sleep(0.6)
    for _ in range(40):                    # one retry, refused again
        cloud.tick(0.3, beat=harness.others('c1'))
        if len(ops.asked) > asked and \
                cloud.journal.get_recovery(rec.id).state != 'open':
            # closed again: the next retry is an interval away (long, so
            # that a slow machine's ticks cannot reach it)
            opts.no_valid_host_retry_interval = 30.0
            break
    _ticks(cloud)
    assert len(ops.asked) == asked + 2
    assert cloud.journal.get_recovery(rec.id).state == 'incomplete'
    assert {i.state for i in cloud.journal.list_recovery_items(rec.id)} \
        == {'no_valid_host'}
    assert len(_alarms(cloud)) == 2        # the same alarms, refreshed


def test_never_once_the_host_is_back_in_service(stranded):
    cloud, ops, rec = stranded
    cloud.ev.opts.no_valid_host_retry_interval = 0.5
    ops.refuse, ops.refuse_any = set(), False
    cloud.journal.set_host_state('c1', 'OK')      # `host enable`
    asked = len(ops.asked)
    time.sleep(0.6)
    _ticks(cloud, beat=harness.HOSTS)             # and c1 heard again
    assert len(ops.asked) == asked
    assert cloud.journal.get_recovery(rec.id).state == 'incomplete'


def test_never_on_our_own_while_the_fenced_host_is_heard(stranded):
    """Powered on again (for repair?) but not enabled: its instances
    might be started there, so the evacuator does not move them on its
    own -- the operator's `recovery retry` still can."""
    cloud, ops, rec = stranded
    cloud.ev.opts.no_valid_host_retry_interval = 0.5
    ops.refuse, ops.refuse_any = set(), False
    asked = len(ops.asked)
    time.sleep(0.6)
    _ticks(cloud, beat=harness.HOSTS)
    assert len(ops.asked) == asked
    assert cloud.journal.get_recovery(rec.id).state == 'incomplete'
    assert cloud.journal.get_host_state('c1').state == 'RECOVERED'
    # Silent again (powered off): retried.
    _ticks(cloud, n=40)
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    assert len(ops.asked) == asked + 2


def test_off_and_failed_evacuations_are_left_to_the_operator(stranded):
    cloud, ops, rec = stranded
    (first, second) = cloud.journal.list_recovery_items(rec.id)
    # One of them failed its evacuations instead (EVACUATION_FAILED).
    with cloud.journal.transaction() as conn:
        from nova_ha.journal import api
        conn.execute(api.T_ITEM.update().where(
            api.T_ITEM.c.id == second.id).values(state='error'))
    ops.refuse, ops.refuse_any = set(), False
    asked = len(ops.asked)
    cloud.ev.opts.no_valid_host_retry_interval = 0.0      # off
    time.sleep(0.6)
    _ticks(cloud)
    assert len(ops.asked) == asked
    cloud.ev.opts.no_valid_host_retry_interval = 0.5      # on
    _ticks(cloud)
    assert [u for u, _ in ops.asked[asked:]] == [first.instance_uuid]
    states = {i.id: i.state for i in
              cloud.journal.list_recovery_items(rec.id)}
    assert states == {first.id: 'done', second.id: 'error'}
    assert cloud.journal.get_recovery(rec.id).state == 'incomplete'


def test_not_while_this_evacuator_cannot_judge_silence(stranded):
    """Just (re)started -- or after its own stall -- the evacuator does not
    know yet whether the fenced host is silent (SUSPECT at most): no retry
    until it does."""
    cloud, ops, rec = stranded
    cloud.ev.opts.no_valid_host_retry_interval = 0.5
    ops.refuse, ops.refuse_any = set(), False
    cloud.ev.opts.startup_grace = 30.0
    cloud.ev.started_at = cloud.ev.clock()        # a new term begins
    asked = len(ops.asked)
    time.sleep(0.6)
    _ticks(cloud, n=20)                           # 6 s into the grace
    assert len(ops.asked) == asked
    assert cloud.journal.get_recovery(rec.id).state == 'incomplete'
    _ticks(cloud, n=120)                          # past it: judged silent
    assert cloud.journal.get_recovery(rec.id).state == 'done'
    assert len(ops.asked) == asked + 2
