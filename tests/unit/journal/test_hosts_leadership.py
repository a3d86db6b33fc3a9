"""Host state machine, leadership epochs (fencing tokens), fencing log."""

import datetime
import threading
import time

import pytest

from nova_ha import journal

T0 = datetime.datetime(2026, 1, 2, 3, 4, 5, 123456,
                       tzinfo=datetime.timezone.utc)


def s(seconds):
    return T0 + datetime.timedelta(seconds=seconds)


def race(n, fn):
    """Run fn(i) in n threads released together; return their results."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def run(i):
        try:
            barrier.wait(10)
            results[i] = fn(i)
        except Exception as exc:
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    return results


class TestHostStates:

    def test_set_is_idempotent_and_keeps_state_since(self, jrnl):
        first = jrnl.set_host_state('cmp1', 'SUSPECT', detail='mgmt silent',
                                    at=s(0))
        assert (first.state, first.state_since, first.generation) == (
            'SUSPECT', s(0), 1)
        again = jrnl.set_host_state('cmp1', 'SUSPECT', detail='both silent',
                                    at=s(1))
        assert again.state_since == s(0)          # not a new state
        assert again.detail == 'both silent'
        assert again.generation == 1
        down = jrnl.set_host_state('cmp1', 'HOST_DOWN', at=s(2))
        assert (down.previous_state, down.state_since, down.generation) == (
            'SUSPECT', s(2), 2)
        history = jrnl.host_state_history('cmp1')
        assert [(h.from_state, h.to_state) for h in history] == [
            ('SUSPECT', 'HOST_DOWN'), (None, 'SUSPECT')]
        assert jrnl.count_state_changes('cmp1', since=s(1)) == 1

    def test_compare_and_set(self, jrnl):
        # expected=None: only when the host has no row yet
        assert jrnl.set_host_state('h', 'OK', expected=None) is not None
        assert jrnl.set_host_state('h', 'SUSPECT', expected=None) is None
        assert jrnl.set_host_state('h', 'FENCING',
                                   expected='HOST_DOWN') is None
        assert jrnl.get_host_state('h').state == 'OK'
        got = jrnl.set_host_state('h', 'SUSPECT', expected=('OK', 'PARTITION'))
        assert got.state == 'SUSPECT'
        assert jrnl.set_host_state('nohost', 'OK', expected='OK') is None
        assert jrnl.get_host_state('nohost') is None

    def test_concurrent_cas_only_one_wins(self, jrnl, second):
        jrnl.set_host_state('h', 'HOST_DOWN')
        actors = [jrnl, second]
        for round_ in range(5):
            jrnl.set_host_state('h', 'HOST_DOWN')
            won = race(2, lambda i: actors[i].set_host_state(
                'h', 'FENCING', expected='HOST_DOWN', detail='actor %d' % i))
            assert sum(w is not None for w in won) == 1, round_
        # one history entry per real change
        changes = [c.to_state for c in jrnl.host_state_history('h')]
        assert changes.count('FENCING') == 5

    def test_list_and_validation(self, jrnl):
        jrnl.set_host_state('a', 'OK')
        jrnl.set_host_state('b', 'HOST_DOWN', recovery_id=None)
        jrnl.set_host_state('c', 'MAINTENANCE')
        assert [h.host for h in jrnl.list_host_states()] == ['a', 'b', 'c']
        assert [h.host for h in jrnl.list_host_states(
            states=('HOST_DOWN', 'MAINTENANCE'))] == ['b', 'c']
        with pytest.raises(ValueError, match="invalid host state 'DOWN'"):
            jrnl.set_host_state('a', 'DOWN')

    def test_guard_lift(self, jrnl):
        jrnl.lift_guard('cmp9', 'alice', at=s(0))
        h = jrnl.get_host_state('cmp9')
        assert (h.guard_lifted_by, h.guard_lifted_at) == ('alice', s(0))
        assert jrnl.reset_guard('cmp9') is True
        assert jrnl.get_host_state('cmp9').guard_lifted_by is None
        assert jrnl.reset_guard('cmp9') is False


class TestLeadership:

    def test_epochs_are_monotonic_and_fence_writes(self, jrnl, second):
        a = jrnl.claim_leadership('evacuator', holder='evac-a')
        assert a.epoch == 1
        jrnl.set_host_state('h', 'OK', epoch=a)
        b = second.claim_leadership('evacuator', holder='evac-b')
        assert b.epoch == 2
        assert jrnl.get_leadership('evacuator').holder == 'evac-b'
        # the deposed leader's writes are refused, and nothing is written
        with pytest.raises(journal.StaleEpoch, match='epoch 1 is stale'):
            jrnl.set_host_state('h', 'FENCING', epoch=a)
        with pytest.raises(journal.StaleEpoch):
            jrnl.open_recovery('h', 'HOST_DOWN', epoch=a)
        with pytest.raises(journal.StaleEpoch):
            jrnl.raise_alarm('HOST_DOWN', 'CRITICAL', 'x', host='h', epoch=1)
        with pytest.raises(journal.StaleEpoch):
            jrnl.check_epoch(a)
        assert jrnl.get_host_state('h').state == 'OK'
        assert jrnl.get_open_recovery('h') is None
        assert jrnl.list_alarms() == []
        assert jrnl.renew_leadership(a) is False
        assert second.renew_leadership(b) is True
        # the current leader writes (an int epoch means 'evacuator')
        assert second.set_host_state('h', 'FENCING', epoch=2).state == \
            'FENCING'
        # independent leaderships (host partitions) have their own epochs
        assert jrnl.claim_leadership('partition-1').epoch == 1

    def test_claim_waits_for_writes_of_the_old_epoch(self, jrnl, second):
        """Once claim returns, no write of the deposed epoch can commit."""
        old = jrnl.claim_leadership(holder='old')
        in_txn = threading.Event()
        order = []

        def deposed_writer():
            with jrnl.transaction(epoch=old) as conn:
                in_txn.set()
                time.sleep(0.5)
                conn.execute(journal.api.T_HOSTCHG.insert().values(
                    host='h', to_state='FENCING', at=s(0)))
                order.append('old write')

        t = threading.Thread(target=deposed_writer)
        t.start()
        assert in_txn.wait(10)
        new = second.claim_leadership(holder='new')
        order.append('claimed')
        t.join(10)
        assert new.epoch == old.epoch + 1
        assert order == ['old write', 'claimed']
        with pytest.raises(journal.StaleEpoch):
            with jrnl.transaction(epoch=old):
                pass

    def test_unknown_leadership_refuses(self, jrnl):
        with pytest.raises(journal.StaleEpoch):
            jrnl.set_host_state('h', 'OK', epoch=journal.Epoch('nope', 1))

    def test_concurrent_claims_get_distinct_epochs(self, jrnl, second):
        actors = [jrnl, second]
        got = race(2, lambda i: actors[i].claim_leadership(holder=str(i)))
        assert sorted(e.epoch for e in got) == [1, 2]


class TestFencing:

    def test_attempts_outcomes_and_durations(self, jrnl):
        att = jrnl.start_fencing('h', 'ipmi', at=s(0))
        assert att.outcome is None and att.finished_at is None
        # one attempt in flight per host: a second actor gets that one
        again = jrnl.start_fencing('h', 'redfish', at=s(1))
        assert again == att
        assert [a.id for a in jrnl.list_fencing_attempts(
            'h', unfinished=True)] == [att.id]
        assert jrnl.finish_fencing(att.id, 'UNREACHABLE', reason='timeout',
                                   at=s(2.5)) is True
        # first outcome wins: a re-run after a crash does not overwrite it
        assert jrnl.finish_fencing(att.id, 'FENCED', at=s(3)) is False
        done = jrnl.last_fencing_attempt('h')
        assert (done.outcome, done.reason, done.duration) == (
            'UNREACHABLE', 'timeout', 2.5)
        rec, _ = jrnl.open_recovery('h', 'HOST_DOWN', detected_at=s(0))
        man = jrnl.confirm_fenced_by_operator('h', 'bob', reason='pulled '
                                              'the plug', recovery_id=rec.id,
                                              at=s(10))
        assert (man.outcome, man.operator, man.driver) == (
            'CONFIRMED_BY_OPERATOR', 'bob', 'manual')
        assert jrnl.last_fencing_attempt('h').id == man.id
        assert [a.id for a in jrnl.list_fencing_attempts(
            recovery_id=rec.id)] == [man.id]
        with pytest.raises(ValueError, match="invalid fencing outcome 'OFF'"):
            jrnl.finish_fencing(att.id, 'OFF')
        with pytest.raises(journal.NotFound):
            jrnl.finish_fencing(999999, 'FENCED')
        with pytest.raises(ValueError, match='operator name'):
            jrnl.confirm_fenced_by_operator('h', '')

    def test_two_evacuators_never_fence_one_host_at_once(self, jrnl,
                                                           second):
        actors = [jrnl, second]
        for n in range(5):
            got = race(2, lambda i: actors[i].start_fencing('h', 'ipmi'))
            assert got[0].id == got[1].id     # one attempt, not two
            # a crashed leader's attempt: the next one closes it, then fences
            assert jrnl.finish_fencing(got[0].id, 'INTERRUPTED')
        assert len(jrnl.list_fencing_attempts('h')) == 5
        assert jrnl.list_fencing_attempts('h', unfinished=True) == []

    def test_times_round_trip_in_utc_with_microseconds(self, jrnl):
        naive = datetime.datetime(2026, 5, 6, 7, 8, 9, 654321)
        cet = datetime.timezone(datetime.timedelta(hours=1))
        a = jrnl.start_fencing('h', 'redfish', at=naive)
        assert a.started_at == naive.replace(tzinfo=datetime.timezone.utc)
        b = jrnl.start_fencing('h2', 'redfish',
                               at=naive.replace(tzinfo=cet))
        assert b.started_at == naive.replace(
            tzinfo=datetime.timezone.utc) - datetime.timedelta(hours=1)
        assert b.started_at.tzinfo == datetime.timezone.utc
