"""A journal on SQLite holding realistic recoveries, written through the
Journal API the way the evacuator and the maintenance drain write it."""

import datetime

import pytest

from nova_ha import journal

T0 = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=datetime.timezone.utc)
G1 = '11111111-1111-1111-1111-111111111111'     # vnf-a
G2 = '22222222-2222-2222-2222-222222222222'     # vnf-b
A1 = 'aaaaaaaa-0000-0000-0000-000000000001'
A2 = 'aaaaaaaa-0000-0000-0000-000000000002'
A3 = 'aaaaaaaa-0000-0000-0000-000000000003'
B1 = 'bbbbbbbb-0000-0000-0000-000000000001'
C1 = 'cccccccc-0000-0000-0000-000000000001'
NAMES = {G1: 'vnf-a', G2: 'vnf-b'}


def at(seconds, base=T0):
    return base + datetime.timedelta(seconds=seconds)


def recover(j, host, detected, fenced, items, finished, last_heartbeat=None,
            state='done'):
    """One recovery as the evacuator writes it. ``items``: dicts with
    uuid, name, group, sal, start (evacuate request, seconds after
    detection) and end (ACTIVE) or error/skipped."""
    rec, created = j.open_recovery(host, 'HOST_DOWN',
                                   detected_at=at(0, detected))
    assert created
    if last_heartbeat is not None:
        j.record_step(rec.id, 'last_heartbeat',
                      at=at(-last_heartbeat, detected))
    att = j.start_fencing(host, 'ipmi', recovery_id=rec.id,
                          at=at(0.05, detected))
    j.finish_fencing(att.id, 'FENCED', at=at(fenced, detected))
    j.record_step(rec.id, 'fenced', at=at(fenced, detected),
                  duration=fenced - 0.05)
    j.record_step(rec.id, 'forced_down', at=at(fenced + 0.2, detected))
    j.add_recovery_items(rec.id, [
        dict(instance_uuid=i['uuid'], name=i['name'],
             server_group=i.get('group'), sal=i.get('sal'),
             state='skipped' if i.get('skipped') else 'pending',
             last_error='ha:recovery=none' if i.get('skipped') else None)
        for i in items], at=at(fenced + 0.3, detected))
    j.record_step(rec.id, 'listed', at=at(fenced + 0.3, detected))
    for i in items:
        if i.get('skipped'):
            continue
        assert j.transition_item(rec.id, i['uuid'], 'pending', 'evacuating',
                                 at=at(i['start'], detected))
        j.record_step(rec.id, 'evacuate:%s' % i['uuid'],
                      at=at(i['start'], detected), detail=i['name'])
        if 'end' in i:
            assert j.transition_item(rec.id, i['uuid'], 'evacuating', 'done',
                                     at=at(i['end'], detected),
                                     dest_host=i.get('dest', 'compute09'),
                                     migration_id=1)
            j.record_step(rec.id, 'active:%s' % i['uuid'],
                          at=at(i['end'], detected),
                          duration=i['end'] - i['start'])
        elif 'error' in i:
            assert j.transition_item(rec.id, i['uuid'], 'evacuating',
                                     'error', at=at(i['error'], detected),
                                     last_error='boom')
    if finished is not None:
        j.close_recovery(rec.id, state, at=at(finished, detected))
    return rec


@pytest.fixture
def url(tmp_path):
    u = 'sqlite:///%s' % (tmp_path / 'journal.sqlite')
    journal.upgrade(u)
    return u


def populate(j):
    """Three recoveries and a drain; sets j.r1, j.r2, j.r3."""
    # Recovery 1, compute01 at T0: fenced after 1.5 s; a1 ACTIVE at 5.6 s,
    # b1 at 9.1 s, c1 skipped (ha:recovery=none). No last heartbeat.
    j.r1 = recover(j, 'compute01', T0, 1.5, [
        dict(uuid=A1, name='vnf-a-1', group=G1, sal=1, start=2.1, end=5.6,
             dest='compute05'),
        dict(uuid=B1, name='vnf-b-1', group=G2, sal=2, start=2.1, end=9.1),
        dict(uuid=C1, name='batch-1', skipped=True),
    ], finished=9.2)
    # Recovery 2, compute02 one hour later; last heartbeat 0.8 s before
    # detection; a2 ACTIVE 4.0 s after detection, a3 fails at 30 s.
    j.r2 = recover(j, 'compute02', at(3600), 2.0, [
        dict(uuid=A2, name='vnf-a-2', group=G1, sal=1, start=2.5, end=4.0),
        dict(uuid=A3, name='vnf-a-3', group=G1, sal=1, start=2.5, error=30),
    ], finished=30.1, last_heartbeat=0.8, state='incomplete')
    # Recovery 3, compute05 two hours later: a1 fails again, 7.0 s (over
    # SAL1's 6 s).
    j.r3 = recover(j, 'compute05', at(7200), 3.0, [
        dict(uuid=A1, name='vnf-a-1', group=G1, sal=1, start=3.5, end=7.0),
    ], finished=7.1)
    # A maintenance drain of compute07 at T0+3h: b1 moved live in 3.25 s.
    d, _ = j.start_drain('compute07', reason='firmware', at=at(10800))
    j.add_drain_items(d.id, [dict(instance_uuid=B1, name='vnf-b-1',
                                  server_group=G2, method='live')],
                      at=at(10800))
    j.transition_drain_item(d.id, B1, 'waiting', 'moving', at=at(10801))
    j.transition_drain_item(d.id, B1, 'moving', 'moved',
                            at=at(10804.25), dest_host='compute08')
    j.transition_drain(d.id, 'draining', 'ready', at=at(10805))
    return j


@pytest.fixture
def jrnl(url):
    j = populate(journal.Journal(url))
    yield j
    j.close()
