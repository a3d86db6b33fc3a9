"""LeaderElector against real tooz backends: file:// (embedded) and the
Redis on 127.0.0.1:6379 (skipped when absent), with a real SQLite journal.
"""

import socket
import time
import uuid

import pytest

from nova_ha import journal as journal_mod
from nova_ha.evacuator import leader as leader_mod


def _redis_up():
    try:
        socket.create_connection(('127.0.0.1', 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def jrnl(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal_mod.upgrade(url)
    j = journal_mod.Journal(url)
    yield j
    j.close()


@pytest.fixture(params=['file', 'redis'])
def backend(request, tmp_path):
    if request.param == 'redis':
        if not _redis_up():
            pytest.skip('Redis is not running on 127.0.0.1:6379')
        return 'redis://127.0.0.1:6379'
    return 'file://%s' % (tmp_path / 'coord')


def wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def make(backend, name, jrnl, lock, **kw):
    return leader_mod.LeaderElector(backend, name, jrnl, name=lock,
                                    lease=0.8, renew_interval=0.1, **kw)


def test_one_leader_then_takeover(backend, jrnl):
    lock = 'test-%s' % uuid.uuid4().hex[:8]
    a = make(backend, 'a', jrnl, lock).start()
    assert wait(lambda: a.is_leader)
    b = make(backend, 'b', jrnl, lock).start()
    try:
        time.sleep(0.5)
        assert a.is_leader and not b.is_leader
        first = a.epoch
        assert jrnl.get_leadership(lock).holder == 'a'
        a.stop()                       # releases the lock
        assert not a.is_leader
        assert wait(lambda: b.is_leader, 3.0)
        assert b.epoch.epoch == first.epoch + 1
        # The old epoch's writes are refused.
        with pytest.raises(journal_mod.StaleEpoch):
            jrnl.set_host_state('h1', 'OK', epoch=first)
        jrnl.set_host_state('h1', 'OK', epoch=b.epoch)
    finally:
        b.stop()


def test_stale_journal_epoch_deposes(backend, jrnl):
    lock = 'test-%s' % uuid.uuid4().hex[:8]
    a = make(backend, 'a', jrnl, lock).start()
    try:
        assert wait(lambda: a.is_leader)
        old = a.epoch
        jrnl.claim_leadership(lock, holder='intruder')
        # The next renewal sees the newer epoch and stands down.
        assert wait(lambda: a.epoch != old, 2.0)
    finally:
        a.stop()


def test_lease_runs_out_without_renewal(backend, jrnl):
    lock = 'test-%s' % uuid.uuid4().hex[:8]
    # The lease (0.8 s) runs out, the lock (5 s) does not: on a loaded
    # machine the default 1 s lock could expire too before the next tick,
    # and the renewal would rightly fail.
    a = make(backend, 'a', jrnl, lock, lock_ttl=5)
    a.connect()
    a.tick()
    assert a.is_leader
    time.sleep(0.85)                   # no renewal thread: lease expires
    assert not a.is_leader
    a.tick()                           # renewal works again: same epoch
    assert a.is_leader
    a.stop()


@pytest.mark.skipif(not _redis_up(), reason='Redis is not running on '
                    '127.0.0.1:6379')
def test_redis_lock_expiry_hands_over(jrnl):
    """A leader that stops renewing (paused, partitioned) stops acting at
    its lease; the standby gets the lock only after the TTL; the old
    leader's next renewal fails and its writes are refused."""
    lock = 'test-%s' % uuid.uuid4().hex[:8]
    url = 'redis://127.0.0.1:6379'
    a = make(url, 'a', jrnl, lock)
    a.connect()
    a.tick()
    assert a.is_leader
    old = a.epoch
    b = make(url, 'b', jrnl, lock).start()
    try:
        t0 = time.monotonic()
        assert wait(lambda: b.is_leader, 3.0)
        took = time.monotonic() - t0
        assert took >= 0.8               # not before a's lease ran out
        assert not a.is_leader
        a.tick()                         # a wakes up: loses at once
        assert a.epoch is None and not a.is_leader
        with pytest.raises(journal_mod.StaleEpoch):
            jrnl.raise_alarm('HOST_DOWN', 'CRITICAL', 'x', epoch=old)
    finally:
        b.stop()
        a.stop()


def test_url_defaults():
    u = leader_mod.backend_url_with_defaults('redis://127.0.0.1:6379', 1)
    assert 'lock_timeout=1' in u
    u = leader_mod.backend_url_with_defaults(
        'redis://127.0.0.1:6379?lock_timeout=3', 1)
    assert u.count('lock_timeout') == 1
    assert leader_mod.backend_url_with_defaults('file:///x', 1) == 'file:///x'
    assert '***' in leader_mod.redact('redis://:pw@127.0.0.1:6379')
