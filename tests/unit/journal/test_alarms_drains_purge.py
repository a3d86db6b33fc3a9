"""Alarms (dedup, ack, clear, filters), maintenance drains, retention."""

import datetime

import pytest

from tests.unit.journal.test_hosts_leadership import race
from tests.unit.journal.test_hosts_leadership import s

DAY = datetime.timedelta(days=1)


class TestAlarms:

    def test_dedup_while_active_then_new_after_clear(self, jrnl):
        a, created = jrnl.raise_alarm(
            'HOST_DOWN', 'CRITICAL', 'cmp1 down', host='cmp1', rack='r1',
            power_domain='pd1', availability_zone='az1', at=s(0))
        assert created and a.count == 1 and a.created_at == s(0)
        b, created = jrnl.raise_alarm('HOST_DOWN', 'CRITICAL',
                                      'cmp1 still down', host='cmp1',
                                      at=s(1))
        assert not created and b.id == a.id and b.count == 2
        assert (b.created_at, b.last_seen_at, b.message) == (
            s(0), s(1), 'cmp1 still down')
        assert jrnl.clear_alarms(host='cmp1', type='HOST_DOWN', by='evac',
                                 at=s(2)) == 1
        assert jrnl.clear_alarms(host='cmp1', type='HOST_DOWN') == 0
        c, created = jrnl.raise_alarm('HOST_DOWN', 'CRITICAL', 'again',
                                      host='cmp1', at=s(3))
        assert created and c.id != a.id
        old = jrnl.get_alarm(a.id)
        assert (old.cleared_at, old.cleared_by, old.active_key) == (
            s(2), 'evac', None)

    def test_active_alarm_by_key(self, jrnl):
        key = 'INSTANCE_FAILED|cmp1|vm1|1'
        assert jrnl.get_active_alarm(key) is None
        a, _ = jrnl.raise_alarm('INSTANCE_FAILED', 'MAJOR', 'vm1 crashed',
                                host='cmp1', key=key, at=s(0))
        assert jrnl.get_active_alarm(key).id == a.id
        jrnl.clear_alarms(key=key, by='evac', at=s(1))
        assert jrnl.get_active_alarm(key) is None

    def test_concurrent_raise_is_one_alarm(self, jrnl, second):
        actors = [jrnl, second]
        got = race(2, lambda i: actors[i].raise_alarm(
            'FENCE_FAILED', 'CRITICAL', 'bmc unreachable', host='h'))
        assert sorted(c for _, c in got) == [False, True]
        assert len(jrnl.list_alarms()) == 1
        assert jrnl.list_alarms()[0].count == 2

    def test_acknowledge(self, jrnl):
        a, _ = jrnl.raise_alarm('PARTITION', 'MAJOR', 'storage plane',
                                host='h')
        assert jrnl.acknowledge_alarm(a.id, 'op', at=s(5)) is True
        assert jrnl.acknowledge_alarm(a.id, 'op2') is False
        got = jrnl.get_alarm(a.id)
        assert (got.acknowledged_by, got.acknowledged_at) == ('op', s(5))
        assert got.cleared_at is None

    def test_list_filters(self, jrnl):
        raise_ = jrnl.raise_alarm
        a1, _ = raise_('HOST_DOWN', 'CRITICAL', 'm', host='c1', rack='r1',
                       power_domain='pd1', availability_zone='az1', at=s(1))
        a2, _ = raise_('SERVICE_DOWN', 'MAJOR', 'm', host='c2', rack='r1',
                       availability_zone='az1', at=s(2))
        a3, _ = raise_('PARTITION', 'MINOR', 'm', host='c3', rack='r2',
                       availability_zone='az2', at=s(3))
        a4, _ = raise_('NO_VALID_HOST', 'MAJOR', 'vm1: anti-affinity',
                       host='c1', instance_uuid='u1', rack='r1', at=s(4))
        a5, _ = raise_('MASS_FAILURE_GUARD', 'CRITICAL', 'half of r2',
                       rack='r2', key='guard:rack:r2', at=s(5))
        a6, _ = raise_('FLAPPING', 'WARNING', 'm', host='c2', at=s(6))
        jrnl.clear_alarms(alarm_id=a3.id, at=s(7))
        jrnl.acknowledge_alarm(a2.id, 'op')

        def ids(**kw):
            return [a.id for a in jrnl.list_alarms(**kw)]
        assert ids() == [a6.id, a5.id, a4.id, a2.id, a1.id]   # newest first
        assert ids(status='cleared') == [a3.id]
        assert ids(status='all') == [a6.id, a5.id, a4.id, a3.id, a2.id,
                                     a1.id]
        assert ids(host='c1') == [a4.id, a1.id]
        assert ids(types='HOST_DOWN') == [a1.id]
        assert ids(types=('HOST_DOWN', 'FLAPPING')) == [a6.id, a1.id]
        assert ids(severities='MAJOR') == [a4.id, a2.id]
        assert ids(min_severity='MAJOR') == [a5.id, a4.id, a2.id, a1.id]
        assert ids(min_severity='CRITICAL') == [a5.id, a1.id]
        assert ids(acknowledged=True) == [a2.id]
        assert ids(acknowledged=False) == [a6.id, a5.id, a4.id, a1.id]
        assert ids(rack='r2', status='all') == [a5.id, a3.id]
        assert ids(power_domain='pd1') == [a1.id]
        assert ids(availability_zone='az1') == [a2.id, a1.id]
        assert ids(since=s(2), until=s(5)) == [a4.id, a2.id]
        assert ids(limit=2) == [a6.id, a5.id]
        assert jrnl.list_alarms(types='NO_VALID_HOST')[0].instance_uuid == \
            'u1'
        assert jrnl.clear_alarms(key='guard:rack:r2') == 1
        with pytest.raises(ValueError, match="invalid alarm severity 'HIGH'"):
            jrnl.list_alarms(min_severity='HIGH')
        with pytest.raises(ValueError, match="invalid alarm type 'DOWN'"):
            jrnl.raise_alarm('DOWN', 'CRITICAL', 'x')
        with pytest.raises(ValueError, match='needs alarm_id'):
            jrnl.clear_alarms()


class TestDrains:

    def test_one_active_drain_per_host(self, jrnl):
        d, created = jrnl.start_drain('h', reason='BIOS update',
                                      power_off=True, by='alice', at=s(0))
        assert created and d.state == 'draining' and d.power_off
        again, created = jrnl.start_drain('h', reason='other')
        assert not created and again.id == d.id and again.reason == \
            'BIOS update'
        assert jrnl.get_active_drain('h').id == d.id
        for to in ('ready', 'incomplete', 'draining', 'ready'):
            assert jrnl.transition_drain(d.id, ('draining', 'ready',
                                                'incomplete'), to)
            # still active: no second drain
            assert jrnl.start_drain('h')[1] is False
        assert jrnl.transition_drain(d.id, 'ready', 'completed', by='bob',
                                     powered_off_by_nova_ha=True, at=s(9))
        assert jrnl.transition_drain(d.id, 'ready', 'completed') is False
        done = jrnl.get_drain(d.id)
        assert (done.state, done.finished_by, done.finished_at,
                done.powered_off_by_nova_ha, done.active_host) == (
            'completed', 'bob', s(9), True, None)
        assert jrnl.get_active_drain('h') is None
        d2, created = jrnl.start_drain('h')
        assert created and d2.id != d.id
        assert [x.id for x in jrnl.list_drains(host='h')] == [d2.id, d.id]
        assert [x.id for x in jrnl.list_drains(states='completed')] == [d.id]

    def test_concurrent_start(self, jrnl, second):
        actors = [jrnl, second]
        for n in range(5):
            got = race(2, lambda i: actors[i].start_drain('h%d' % n))
            assert sorted(c for _, c in got) == [False, True]
            assert got[0][0].id == got[1][0].id

    def test_abort_then_new_drain(self, jrnl):
        d, _ = jrnl.start_drain('h')
        assert jrnl.transition_drain(d.id, 'draining', 'aborting')
        assert jrnl.get_active_drain('h').state == 'aborting'
        assert jrnl.transition_drain(d.id, 'aborting', 'aborted', by='op')
        assert jrnl.start_drain('h')[1] is True
        # resurrecting the old drain would make two active: refused
        assert jrnl.transition_drain(d.id, 'aborted', 'draining') is False

    def test_items_cas_and_progress(self, jrnl, second):
        d, _ = jrnl.start_drain('h')
        items = [dict(instance_uuid='u%d' % n, name='vm%d' % n,
                      server_group='g%d' % (n % 2), method='live')
                 for n in range(6)]
        items.append(dict(instance_uuid='pinned', name='pinned',
                          state='blocked', reason='ha:migration=never'))
        assert jrnl.add_drain_items(d.id, items) == 7
        assert jrnl.add_drain_items(d.id, items) == 0
        assert jrnl.drain_progress(d.id) == dict(waiting=6, moving=0,
                                                 moved=0, blocked=1)
        actors = [jrnl, second]
        won = race(2, lambda i: actors[i].transition_drain_item(
            d.id, 'u0', 'waiting', 'moving', migration_id=i))
        assert sorted(won) == [False, True]
        assert jrnl.transition_drain_item(d.id, 'u1', 'waiting', 'moving',
                                          method='cold', at=s(1))
        assert [i.instance_uuid for i in jrnl.list_drain_items(
            d.id, states='moving', server_group='g1')] == ['u1']
        assert jrnl.count_drain_items(server_group='g1') == 1
        assert jrnl.count_drain_items(server_group='g0') == 1
        assert jrnl.count_drain_items(states=('waiting', 'moving')) == 6
        assert jrnl.update_drain_item(d.id, 'u1', 'moving', migration_id=5)
        assert jrnl.update_drain_item(d.id, 'u1', 'waiting',
                                      migration_id=6) is False
        assert jrnl.transition_drain_item(d.id, 'u1', 'moving', 'moved',
                                          dest_host='h9', at=s(2))
        assert jrnl.transition_drain_item(d.id, 'u2', 'waiting', 'blocked',
                                          reason='No valid host: rack '
                                          'anti-affinity')
        assert jrnl.drain_progress(d.id) == dict(waiting=3, moving=1,
                                                 moved=1, blocked=2)
        u1 = [i for i in jrnl.list_drain_items(d.id)
              if i.instance_uuid == 'u1'][0]
        assert (u1.method, u1.attempts, u1.started_at, u1.finished_at,
                u1.dest_host, u1.source_host) == ('cold', 1, s(1), s(2),
                                                  'h9', 'h')
        assert u1.migration_id == 5
        assert jrnl.transition_drain(d.id, 'draining', 'aborted')
        assert jrnl.count_drain_items(states='waiting') == 0  # not active
        assert jrnl.count_drain_items(states='waiting',
                                      active_only=False) == 3
        with pytest.raises(ValueError, match="invalid drain method 'warm'"):
            jrnl.transition_drain_item(d.id, 'u3', 'waiting', 'moving',
                                       method='warm')


class TestPurge:

    def test_purge_closed_records_older_than(self, jrnl):
        now = s(0) + 100 * DAY
        old, recent = s(0), now - DAY
        # recoveries: old closed (purged), old open (kept), recent closed
        r_old, _ = jrnl.open_recovery('a', 'HOST_DOWN', detected_at=old)
        jrnl.add_recovery_items(r_old.id, [dict(instance_uuid='u1')])
        jrnl.record_step(r_old.id, 'fenced', at=old)
        f_old = jrnl.start_fencing('a', 'ipmi', recovery_id=r_old.id,
                                   at=old)
        jrnl.finish_fencing(f_old.id, 'FENCED', at=old)
        al_rec, _ = jrnl.raise_alarm('NO_VALID_HOST', 'MAJOR', 'x', host='a',
                                     recovery_id=r_old.id, at=recent)
        jrnl.close_recovery(r_old.id, 'done', at=old)
        r_open, _ = jrnl.open_recovery('b', 'HOST_DOWN', detected_at=old)
        jrnl.add_recovery_items(r_open.id, [dict(instance_uuid='u2')])
        r_new, _ = jrnl.open_recovery('c', 'HOST_DOWN', detected_at=recent)
        jrnl.close_recovery(r_new.id, 'incomplete', at=recent)
        f_open = jrnl.start_fencing('b', 'ipmi', at=old)   # never finished
        # alarms: old cleared (purged), old active (kept), recent cleared
        a_old, _ = jrnl.raise_alarm('HOST_DOWN', 'CRITICAL', 'x', host='a',
                                    at=old)
        jrnl.clear_alarms(alarm_id=a_old.id, at=old)
        a_act, _ = jrnl.raise_alarm('HOST_DOWN', 'CRITICAL', 'x', host='b',
                                    at=old)
        a_new, _ = jrnl.raise_alarm('FLAPPING', 'WARNING', 'x', host='c',
                                    at=old)
        jrnl.clear_alarms(alarm_id=a_new.id, at=recent)
        # drains: old completed (purged), old active (kept)
        d_old, _ = jrnl.start_drain('a', at=old)
        jrnl.add_drain_items(d_old.id, [dict(instance_uuid='u1')])
        jrnl.transition_drain(d_old.id, 'draining', 'completed', at=old)
        d_act, _ = jrnl.start_drain('b', at=old)
        jrnl.set_host_state('a', 'HOST_DOWN', at=old)
        jrnl.set_host_state('a', 'RECOVERED', at=recent)
        jrnl.claim_leadership()

        counts = jrnl.purge(datetime.timedelta(days=30), now=now)
        assert counts == dict(alarms=1, fencing_attempts=1, recoveries=1,
                              recovery_items=1, recovery_steps=3,
                              drains=1, drain_items=1,
                              host_state_changes=1)
        assert jrnl.get_recovery(r_old.id) is None
        assert jrnl.get_recovery(r_open.id) is not None
        assert jrnl.get_recovery(r_new.id) is not None
        assert len(jrnl.list_recovery_items(r_open.id)) == 1
        assert [f.id for f in jrnl.list_fencing_attempts()] == [f_open.id]
        assert {a.id for a in jrnl.list_alarms(status='all')} == {
            a_act.id, a_new.id, al_rec.id}
        assert jrnl.get_alarm(al_rec.id).recovery_id is None
        assert jrnl.get_drain(d_old.id) is None
        assert jrnl.get_active_drain('b').id == d_act.id
        assert jrnl.get_host_state('a').state == 'RECOVERED'
        assert jrnl.get_leadership() is not None
        # idempotent
        assert set(jrnl.purge(datetime.timedelta(days=30),
                              now=now).values()) == {0}

    def test_default_retention_and_validation(self, jrnl):
        r, _ = jrnl.open_recovery('a', 'HOST_DOWN', detected_at=s(0))
        jrnl.close_recovery(r.id, 'done', at=s(0))
        with pytest.raises(ValueError, match='retention_days'):
            jrnl.purge()
        with pytest.raises(ValueError, match='negative'):
            jrnl.purge(datetime.timedelta(days=-1))
        jrnl.retention_days = 10
        assert jrnl.purge(now=s(0) + 9 * DAY)['recoveries'] == 0
        assert jrnl.purge(now=s(0) + 11 * DAY)['recoveries'] == 1
