"""Recoveries: one open per host, items with compare-and-set, timeline."""

import datetime

import pytest

from nova_ha import journal
from tests.unit.journal.test_hosts_leadership import race
from tests.unit.journal.test_hosts_leadership import s


class TestOpenRecovery:

    def test_one_open_recovery_per_host(self, jrnl):
        rec, created = jrnl.open_recovery('h', 'HOST_DOWN', detected_at=s(0))
        assert created and rec.state == 'open' and rec.detected_at == s(0)
        again, created = jrnl.open_recovery('h', 'HOST_DOWN',
                                            detected_at=s(5))
        assert not created and again.id == rec.id
        assert again.detected_at == s(0)
        other, created = jrnl.open_recovery('h2', 'HOST_DOWN',
                                            detected_at=s(1))
        assert created and other.id != rec.id
        assert jrnl.get_open_recovery('h').id == rec.id
        assert jrnl.close_recovery(rec.id, 'done', at=s(30)) is True
        assert jrnl.close_recovery(rec.id, 'failed') is False  # once only
        assert jrnl.get_open_recovery('h') is None
        closed = jrnl.get_recovery(rec.id)
        assert (closed.state, closed.finished_at, closed.open_host) == (
            'done', s(30), None)
        # the host fails again later: a new recovery
        new, created = jrnl.open_recovery('h', 'HOST_DOWN', detected_at=s(60))
        assert created and new.id > rec.id
        assert [r.id for r in jrnl.list_recoveries(host='h')] == [new.id,
                                                                  rec.id]
        assert [r.id for r in jrnl.list_recoveries(states='open')] == [
            new.id, other.id]
        with pytest.raises(ValueError, match="invalid recovery state 'open'"):
            jrnl.close_recovery(new.id, 'open')

    def test_two_concurrent_writers(self, jrnl, second):
        """Two evacuators (own engines/connections) race on 8 hosts."""
        actors = [jrnl, second]
        for n in range(8):
            host = 'cmp%d' % n
            got = race(2, lambda i: actors[i].open_recovery(
                host, 'HOST_DOWN', detail='actor %d' % i))
            assert sorted(c for _, c in got) == [False, True], host
            assert got[0][0].id == got[1][0].id
            assert len(jrnl.list_recoveries(host=host)) == 1
            # and a close racing a re-open: still one open at most
            rid = got[0][0].id
            got = race(2, lambda i: (
                actors[0].close_recovery(rid, 'done') if i == 0
                else actors[1].open_recovery(host, 'HOST_DOWN')))
            assert len(jrnl.list_recoveries(host=host, states='open')) <= 1


class TestItems:

    def _recovery(self, jrnl, host='h'):
        return jrnl.open_recovery(host, 'HOST_DOWN', detected_at=s(0))[0]

    def test_add_is_idempotent_and_ordered(self, jrnl):
        rec = self._recovery(jrnl)
        items = [dict(instance_uuid='u-low', name='low', priority=1),
                 dict(instance_uuid='u-sal2', name='sal2', sal=2),
                 dict(instance_uuid='u-high', name='high', priority=9),
                 dict(instance_uuid='u-sal1', name='sal1', sal=1,
                      server_group='g1'),
                 dict(instance_uuid='u-none', name='none', state='skipped',
                      last_error='ha:recovery=none')]
        assert jrnl.add_recovery_items(rec.id, items) == 5
        assert jrnl.add_recovery_items(rec.id, items) == 0   # re-run
        got = jrnl.list_recovery_items(rec.id)
        assert [i.name for i in got] == ['sal1', 'sal2', 'high', 'low',
                                         'none']
        assert {i.source_host for i in got} == {'h'}
        assert [i.name for i in jrnl.list_recovery_items(
            rec.id, states='skipped')] == ['none']
        assert jrnl.list_recovery_items(rec.id, server_group='g1')[0].sal \
            == 1
        with pytest.raises(ValueError, match='unknown recovery item'):
            jrnl.add_recovery_items(rec.id, [dict(instance_uuid='x',
                                                  colour='red')])
        with pytest.raises(ValueError, match="invalid recovery item state"):
            jrnl.add_recovery_items(rec.id, [dict(instance_uuid='x',
                                                  state='done')])
        with pytest.raises(journal.NotFound):
            jrnl.add_recovery_items(424242, [dict(instance_uuid='x')])

    def test_compare_and_set_transitions(self, jrnl):
        rec = self._recovery(jrnl)
        jrnl.add_recovery_items(rec.id, [dict(instance_uuid='u1')])
        assert jrnl.transition_item(rec.id, 'u1', 'pending', 'evacuating',
                                    at=s(1), migration_id=7) is True
        assert jrnl.transition_item(rec.id, 'u1', 'pending',
                                    'evacuating') is False
        it = jrnl.get_recovery_item(rec.id, 'u1')
        assert (it.state, it.attempts, it.migration_id, it.started_at) == (
            'evacuating', 1, 7, s(1))
        assert jrnl.count_items() == 1
        # Nova answered: record the migration id, no state change
        assert jrnl.update_item(rec.id, 'u1', 'evacuating', migration_id=70)
        assert jrnl.update_item(rec.id, 'u1', 'pending',
                                migration_id=71) is False
        it = jrnl.get_recovery_item(rec.id, 'u1')
        assert (it.state, it.attempts, it.migration_id) == (
            'evacuating', 1, 70)
        with pytest.raises(TypeError, match='state'):
            jrnl.update_item(rec.id, 'u1', 'evacuating', state='done')
        # error -> retried (attempts counts evacuations, started_at stays)
        assert jrnl.transition_item(rec.id, 'u1', 'evacuating', 'error',
                                    at=s(2), last_error='boom')
        assert jrnl.get_recovery_item(rec.id, 'u1').finished_at == s(2)
        assert jrnl.transition_item(rec.id, 'u1', ('error', 'pending'),
                                    'evacuating', at=s(3), migration_id=8)
        it = jrnl.get_recovery_item(rec.id, 'u1')
        assert (it.attempts, it.started_at, it.finished_at,
                it.migration_id) == (2, s(1), None, 8)
        assert jrnl.transition_item(rec.id, 'u1', 'evacuating', 'done',
                                    at=s(4), dest_host='h7')
        it = jrnl.get_recovery_item(rec.id, 'u1')
        assert (it.state, it.dest_host, it.finished_at,
                it.evacuating_uuid) == ('done', 'h7', s(4), None)
        assert jrnl.count_items() == 0
        with pytest.raises(TypeError, match='colour'):
            jrnl.transition_item(rec.id, 'u1', 'done', 'done', colour=1)
        with pytest.raises(ValueError, match="'moving'"):
            jrnl.transition_item(rec.id, 'u1', 'done', 'moving')

    def test_two_actors_cannot_both_start_an_evacuation(self, jrnl, second):
        rec = self._recovery(jrnl)
        uuids = ['u%d' % n for n in range(10)]
        jrnl.add_recovery_items(rec.id, [dict(instance_uuid=u)
                                         for u in uuids])
        actors = [jrnl, second]
        for u in uuids:
            won = race(2, lambda i: actors[i].transition_item(
                rec.id, u, 'pending', 'evacuating', migration_id=i))
            assert sorted(won) == [False, True], u
        assert {i.attempts for i in jrnl.list_recovery_items(rec.id)} == {1}

    def test_one_evacuation_per_instance_across_recoveries(self, jrnl):
        a = self._recovery(jrnl, 'ha')
        b = self._recovery(jrnl, 'hb')
        jrnl.add_recovery_items(a.id, [dict(instance_uuid='u1',
                                            server_group='g')])
        jrnl.add_recovery_items(b.id, [dict(instance_uuid='u1',
                                            server_group='g')])
        assert jrnl.transition_item(a.id, 'u1', 'pending', 'evacuating')
        assert jrnl.transition_item(b.id, 'u1', 'pending',
                                    'evacuating') is False
        assert jrnl.get_recovery_item(b.id, 'u1').state == 'pending'
        assert jrnl.count_items(server_group='g') == 1
        jrnl.transition_item(a.id, 'u1', 'evacuating', 'done')
        assert jrnl.transition_item(b.id, 'u1', 'pending', 'evacuating')


class TestTimeline:

    def test_ordering_durations_and_idempotent_steps(self, jrnl):
        rec, _ = jrnl.open_recovery('h', 'HOST_DOWN', detected_at=s(0))
        # recorded out of order (e.g. by a resumed leader): sorted by time
        assert jrnl.record_step(rec.id, 'active:u1', at=s(3.2), duration=2.1)
        assert jrnl.record_step(rec.id, 'fenced', at=s(0.4), duration=0.3)
        assert jrnl.record_step(rec.id, 'evacuate:u1', at=s(1.1))
        assert jrnl.record_step(rec.id, 'forced_down', at=s(0.7))
        # a re-run after a crash records nothing new
        assert jrnl.record_step(rec.id, 'fenced', at=s(9)) is False
        jrnl.close_recovery(rec.id, 'done', at=s(3.3))
        tl = jrnl.timeline(rec.id)
        assert [e.step for e in tl] == ['detected', 'fenced', 'forced_down',
                                        'evacuate:u1', 'active:u1', 'done']
        assert [round(e.since_detected, 3) for e in tl] == [
            0, 0.4, 0.7, 1.1, 3.2, 3.3]
        assert tl[1].duration == 0.3 and tl[4].duration == 2.1
        got = jrnl.get_recovery(rec.id)
        assert (got.fenced_at, got.forced_down_at) == (s(0.4), s(0.7))
        with pytest.raises(journal.NotFound):
            jrnl.timeline(999999)

    def test_same_time_keeps_insertion_order(self, jrnl):
        rec, _ = jrnl.open_recovery('h', 'HOST_DOWN', detected_at=s(0))
        for step in ('a', 'b', 'c'):
            jrnl.record_step(rec.id, step, at=s(1))
        assert [e.step for e in jrnl.timeline(rec.id)] == [
            'detected', 'a', 'b', 'c']


def test_aware_default_times(jrnl):
    rec, _ = jrnl.open_recovery('h', 'HOST_DOWN')
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - rec.detected_at).total_seconds()) < 60
