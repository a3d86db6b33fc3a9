"""Journal.host_state_map(): every host's state in one read (the
evacuator's reconcile pass), on SQLite, MariaDB and PostgreSQL."""

import pytest

from nova_ha.journal import api


def test_host_state_map_matches_rows(jrnl):
    assert jrnl.host_state_map() == {}
    jrnl.set_host_state('c1', 'OK')
    jrnl.set_host_state('c2', 'OK')
    rec, _ = jrnl.open_recovery('c2', 'HOST_DOWN')
    jrnl.set_host_state('c2', 'HOST_DOWN', recovery_id=rec.id)
    jrnl.set_host_state('c3', 'PARTITION', detail='silent: management')
    jrnl.set_host_state('c3', 'PARTITION', detail='silent: storage')
    got = jrnl.host_state_map()
    rows = {s.host: s for s in jrnl.list_host_states()}
    assert set(got) == set(rows) == {'c1', 'c2', 'c3'}
    for host, brief in got.items():
        row = rows[host]
        assert (brief.state, brief.recovery_id, brief.generation) == (
            row.state, row.recovery_id, row.generation)
    assert got['c2'] == api.HostStateBrief('HOST_DOWN', rec.id, 2)
    assert got['c3'].generation == 1        # same state: no new generation


def test_host_state_map_filters_by_state(jrnl):
    for host, state in (('a', 'OK'), ('b', 'RECOVERED'), ('c', 'RECOVERED'),
                        ('d', 'MAINTENANCE')):
        jrnl.set_host_state(host, state)
    assert set(jrnl.host_state_map(states=['RECOVERED'])) == {'b', 'c'}
    assert set(jrnl.host_state_map(states=('OK', 'MAINTENANCE'))) == {
        'a', 'd'}


def test_host_state_map_rejects_unknown_state(jrnl):
    with pytest.raises(ValueError) as exc:
        jrnl.host_state_map(states=['BROKEN'])
    assert 'BROKEN' in str(exc.value)
