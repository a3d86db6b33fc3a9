"""A paused evacuator must not keep a standby from taking over.

Every epoch-guarded write holds a shared lock on the leadership row until
its transaction ends; a process stopped (SIGSTOP, frozen VM) inside such a
transaction would block ``claim_leadership`` for as long as it is stopped.
``[journal] transaction_timeout`` makes MariaDB/PostgreSQL cut such a
session. SQLite has no equivalent (documented; a multi-node group needs a
server database), so these tests run on the two servers only.
"""

import threading
import time

import pytest

from nova_ha import journal

TIMEOUT = 1.0


@pytest.fixture(scope='module', params=('mysql', 'postgresql'))
def backend(request):
    """The two servers only: SQLite has no server-side timeout."""
    return request.param


@pytest.fixture
def server_db(backend, module_db):
    return module_db


def _paused_writer(url, epoch, pause, timeout):
    """A thread that opens an epoch-guarded transaction and then stops
    issuing statements for ``pause`` seconds, like a SIGSTOPped leader."""
    j = journal.Journal(url, transaction_timeout=timeout)
    inside = threading.Event()
    result = {}

    def run():
        try:
            with j.transaction(epoch=epoch) as conn:
                inside.set()
                time.sleep(pause)
                conn.exec_driver_sql('SELECT 1')
            result['outcome'] = 'committed'
        except Exception as exc:   # the server cut the session
            result['outcome'] = type(exc).__name__
        finally:
            inside.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert inside.wait(10)
    return j, t, result


def test_standby_claims_while_old_leader_is_paused(server_db):
    url = server_db.url
    old = journal.Journal(url, transaction_timeout=TIMEOUT)
    new = journal.Journal(url, transaction_timeout=TIMEOUT)
    try:
        name = 'paused-%s' % time.monotonic_ns()
        e1 = old.claim_leadership(name, holder='old')
        paused, t, result = _paused_writer(url, e1, 4 * TIMEOUT, TIMEOUT)
        t0 = time.monotonic()
        e2 = new.claim_leadership(name, holder='new')
        took = time.monotonic() - t0
        assert e2.epoch == e1.epoch + 1
        assert took < 3 * TIMEOUT, took
        t.join(10)
        # On resuming, the old leader's transaction is gone, not committed.
        assert result['outcome'] != 'committed', result
        assert old.renew_leadership(e1) is False
        with pytest.raises(journal.StaleEpoch):
            old.check_epoch(e1)
        paused.close()
    finally:
        old.close()
        new.close()


def test_without_timeout_the_claim_waits_for_the_paused_writer(server_db):
    """The control: the same pause with the setting off blocks the claim
    until the paused transaction ends (what the option is for)."""
    url = server_db.url
    name = 'blocked-%s' % time.monotonic_ns()
    first = journal.Journal(url, transaction_timeout=0)
    e1 = first.claim_leadership(name, holder='old')
    paused, t, result = _paused_writer(url, e1, 2.5, 0)
    claimant = journal.Journal(url, transaction_timeout=0)
    done = {}
    c = threading.Thread(target=lambda: done.setdefault(
        'epoch', claimant.claim_leadership(name, holder='new')), daemon=True)
    try:
        c.start()
        c.join(1.5)
        assert 'epoch' not in done, 'claim did not wait for the lock'
        t.join(10)
        c.join(10)
        assert result['outcome'] == 'committed'
        assert done['epoch'].epoch == e1.epoch + 1
    finally:
        for j in (first, paused, claimant):
            j.close()


def test_setting_reaches_the_server_session(server_db, backend):
    j = journal.Journal(server_db.url, transaction_timeout=1.5)
    try:
        with j.transaction(write=False) as conn:
            if backend == 'postgresql':
                value = conn.exec_driver_sql(
                    'SHOW idle_in_transaction_session_timeout').scalar()
                assert value == '1500ms'
            else:
                value = conn.exec_driver_sql(
                    'SELECT @@SESSION.idle_transaction_timeout').scalar()
                assert int(value) == 2
    finally:
        j.close()
