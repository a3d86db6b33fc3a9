"""``retry_recovery``: an operator re-opens a recovery that ended
``incomplete`` (NO_VALID_HOST until capacity was added), in one
transaction, and only while its host is still fenced and RECOVERED."""

import pytest

from nova_ha import journal
from tests.unit.journal.test_hosts_leadership import race


def _incomplete(j, host='cmp1'):
    """A recovery as the evacuator closes it: one done, one no valid host,
    one failed after its attempts, one skipped; host RECOVERED."""
    rec, _ = j.open_recovery(host, 'HOST_DOWN')
    j.set_host_state(host, 'EVACUATING', recovery_id=rec.id)
    j.add_recovery_items(rec.id, [
        dict(instance_uuid='u-%s-%s' % (host, n), name=n, source_host=host,
             state='pending')
        for n in ('ok', 'nvh', 'err', 'skip')])
    for name, end, error in (('ok', 'done', None),
                             ('nvh', 'no_valid_host', 'No valid host'),
                             ('err', 'error', 'migration 7 failed')):
        uuid = 'u-%s-%s' % (host, name)
        assert j.transition_item(rec.id, uuid, ('pending',), 'evacuating')
        assert j.transition_item(rec.id, uuid, ('evacuating',), end,
                                 last_error=error)
    assert j.transition_item(rec.id, 'u-%s-skip' % host, ('pending',),
                             'skipped')
    assert j.close_recovery(rec.id, 'incomplete', host_state='RECOVERED')
    return rec


def _states(j, rec):
    return {i.name: i.state for i in j.list_recovery_items(rec.id)}


def test_retry_reopens_the_failed_items_and_the_host(jrnl):
    rec = _incomplete(jrnl)
    got = jrnl.retry_recovery(rec.id, 'alice')
    assert sorted(i.name for i in got) == ['err', 'nvh']
    assert all(i.state == 'pending' and i.finished_at is None for i in got)
    by_name = {i.name: i for i in got}
    assert by_name['nvh'].last_error == \
        'retried by alice (was no_valid_host: No valid host)'
    # attempts are kept: the engine reads Nova before it re-issues
    assert by_name['err'].attempts == 1
    assert _states(jrnl, rec) == {'ok': 'done', 'nvh': 'pending',
                                  'err': 'pending', 'skip': 'skipped'}
    again = jrnl.get_recovery(rec.id)
    assert (again.state, again.open_host, again.finished_at) == (
        'open', 'cmp1', None)
    assert again.detail == 'retried by alice: 2 instance(s)'
    st = jrnl.get_host_state('cmp1')
    assert (st.state, st.recovery_id) == ('EVACUATING', rec.id)
    steps = [x.step for x in jrnl.timeline(rec.id)]
    assert 'incomplete' not in steps
    assert any(x.startswith('retried:') for x in steps)
    # The scheduler still finds no host: the evacuator closes it again,
    # and it can be retried again.
    for name in ('nvh', 'err'):
        uuid = 'u-cmp1-' + name
        assert jrnl.transition_item(rec.id, uuid, ('pending',), 'evacuating')
        assert jrnl.transition_item(rec.id, uuid, ('evacuating',),
                                    'no_valid_host')
    assert jrnl.close_recovery(rec.id, 'incomplete', host_state='RECOVERED')
    assert len(jrnl.retry_recovery(rec.id, 'bob')) == 2


@pytest.mark.parametrize('state,why', [
    ('open', 'is open: the evacuator is still working on it'),
    ('done', 'is done: every instance was recovered'),
    ('failed', 'failed before any evacuation'),
])
def test_only_an_incomplete_recovery(jrnl, state, why):
    rec, _ = jrnl.open_recovery('cmp1', 'HOST_DOWN')
    jrnl.set_host_state('cmp1', 'FENCING', recovery_id=rec.id)
    if state != 'open':
        assert jrnl.close_recovery(rec.id, state, host_state='RECOVERED')
    with pytest.raises(journal.RetryRefused, match=why):
        jrnl.retry_recovery(rec.id, 'alice')
    assert jrnl.get_recovery(rec.id).state == state


@pytest.mark.parametrize('host_state', ['OK', 'HOST_DOWN', 'MAINTENANCE'])
def test_only_while_the_host_is_still_recovered(jrnl, host_state):
    """A host enabled again (OK), failed again, or in maintenance: its
    instances are not evacuated off it any more -- nothing changes."""
    rec = _incomplete(jrnl)
    before = _states(jrnl, rec)
    assert jrnl.set_host_state('cmp1', host_state)
    with pytest.raises(journal.RetryRefused,
                       match='host cmp1 is %s' % host_state):
        jrnl.retry_recovery(rec.id, 'alice')
    assert _states(jrnl, rec) == before
    assert jrnl.get_recovery(rec.id).state == 'incomplete'
    assert jrnl.get_host_state('cmp1').state == host_state


def test_an_older_recovery_of_the_host_is_refused(jrnl):
    old = _incomplete(jrnl)
    jrnl.set_host_state('cmp1', 'OK')
    new = _incomplete(jrnl)           # the host failed again since
    with pytest.raises(journal.RetryRefused,
                       match='not RECOVERED from recovery %s' % old.id):
        jrnl.retry_recovery(old.id, 'alice')
    assert len(jrnl.retry_recovery(new.id, 'alice')) == 2


def test_nothing_to_retry_and_unknown_id(jrnl):
    rec, _ = jrnl.open_recovery('cmp1', 'HOST_DOWN')
    jrnl.add_recovery_items(rec.id, [dict(
        instance_uuid='u1', name='skip', source_host='cmp1',
        state='skipped')])
    assert jrnl.close_recovery(rec.id, 'incomplete', host_state='RECOVERED')
    with pytest.raises(journal.RetryRefused, match='no instance in error'):
        jrnl.retry_recovery(rec.id, 'alice')
    assert jrnl.get_recovery(rec.id).state == 'incomplete'
    with pytest.raises(journal.NotFound, match='no recovery 999'):
        jrnl.retry_recovery(999, 'alice')


def test_two_operators_at_once_retry_it_once(jrnl, second):
    rec = _incomplete(jrnl)
    actors = [jrnl, second]

    def retry(i):
        try:
            return len(actors[i].retry_recovery(rec.id, 'op%d' % i))
        except journal.RetryRefused as exc:
            return str(exc)
        except Exception as exc:      # noqa: BLE001 -- the unique open_host
            return type(exc).__name__
    got = race(2, retry)
    assert sorted(got, key=str).count(2) == 1, got
    assert jrnl.get_recovery(rec.id).state == 'open'
    assert _states(jrnl, rec)['nvh'] == 'pending'
