"""``nova-ha journal ...`` and the ``[journal]`` options."""

import datetime
import os
import signal
import subprocess
import sys
import textwrap

from oslo_config import cfg
import pytest

from nova_ha.cmd import cli
from nova_ha.conf import journal as journal_conf
from nova_ha import journal
from tests.unit.journal.test_hosts_leadership import s

HEAD = '0003'


def run(capsys, *argv):
    """Run a ``nova-ha`` command line through its real parser."""
    args = cli.build_parser().parse_args(list(argv))
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out, err


class TestCLI:

    def test_upgrade_twice_version_and_views(self, tmp_path, capsys):
        url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
        rc, out, _ = run(capsys, 'journal', 'version', '--connection', url)
        assert rc == 0 and 'current: (empty)' in out
        rc, out, _ = run(capsys, 'journal', 'upgrade', '--connection', url)
        assert rc == 0 and 'upgraded (empty) -> %s' % HEAD in out
        rc, out, _ = run(capsys, 'journal', 'upgrade', '--connection', url)
        assert rc == 0 and 'already at %s' % HEAD in out

        j = journal.Journal(url)
        rec, _ = j.open_recovery('cmp1', 'HOST_DOWN', detected_at=s(0))
        att = j.start_fencing('cmp1', 'ipmi', recovery_id=rec.id, at=s(0.1))
        j.finish_fencing(att.id, 'FENCED', at=s(0.4))
        j.record_step(rec.id, 'fenced', at=s(0.4), duration=0.3)
        j.add_recovery_items(rec.id, [dict(instance_uuid='u1', name='vnf-1',
                                           sal=1)])
        j.record_step(rec.id, 'evacuate:u1', at=s(0.6))
        j.raise_alarm('HOST_DOWN', 'CRITICAL', 'cmp1 lost power',
                      host='cmp1', rack='r1', at=s(0))
        j.close_recovery(rec.id, 'done', at=s(2))
        j.close()

        rc, out, _ = run(capsys, 'journal', 'recovery', str(rec.id),
                         '--connection', url)
        assert rc == 0
        lines = out.splitlines()
        assert lines[0] == 'recovery %d  host cmp1  reason HOST_DOWN  ' \
                           'state done' % rec.id
        steps = [ln.split()[2] for ln in lines
                 if ln.startswith(('0.', '1.', '2.'))]
        assert steps == ['detected', 'fenced', 'evacuate:u1', 'done']
        assert 'vnf-1' in out and 'FENCED' in out and 'total 2.000s' in out
        rc, out, _ = run(capsys, 'journal', 'recoveries', '--connection',
                         url, '--state', 'done')
        assert rc == 0 and 'cmp1' in out
        rc, out, _ = run(capsys, 'journal', 'alarms', '--connection', url,
                         '--min-severity', 'MAJOR', '--host', 'cmp1')
        assert rc == 0 and 'cmp1 lost power' in out and 'r1' in out
        rc, out, _ = run(capsys, 'journal', 'alarms', '--connection', url,
                         '--cleared')
        assert rc == 0 and out.strip() == 'no alarms'
        rc, out, _ = run(capsys, 'journal', 'purge', '--connection', url,
                         '--older-than-days', '1')
        assert rc == 0 and 'recoveries=1' in out
        rc, _, err = run(capsys, 'journal', 'recovery', '999',
                         '--connection', url)
        assert rc == 1 and 'no recovery 999' in err

    def test_errors(self, tmp_path, capsys):
        rc, _, err = run(capsys, 'journal', 'upgrade', '--connection',
                         'oracle://scott:tiger@db/x')
        assert rc == 2 and "unsupported database 'oracle'" in err
        assert 'tiger' not in err
        empty = 'sqlite:///%s' % (tmp_path / 'empty.sqlite')
        rc, _, err = run(capsys, 'journal', 'alarms', '--connection', empty)
        assert rc == 1 and 'nova-ha journal upgrade' in err
        rc, _, err = run(capsys, 'journal', 'upgrade', '--connection',
                         'mysql+pymysql://u:s3cret@127.0.0.1:1/x')
        assert rc == 1 and 'database error' in err and 's3cret' not in err
        with pytest.raises(SystemExit):
            run(capsys, 'journal', 'purge', '--older-than-days', '0')
        assert 'must be a positive number' in capsys.readouterr().err

    def test_main_with_config_file(self, tmp_path, capsys):
        url = 'sqlite:///%s' % (tmp_path / 'conf.sqlite')
        conf = tmp_path / 'nova-ha.conf'
        conf.write_text('[journal]\nconnection = %s\n' % url)
        try:
            assert cli.main(['--config-file', str(conf), 'journal',
                             'upgrade']) == 0
        finally:
            cfg.CONF.reset()
            cfg.CONF.clear()
        assert journal.current(url) == HEAD


class TestConf:

    def test_options(self):
        conf = cfg.ConfigOpts()
        journal_conf.register_opts(conf)
        conf([])
        assert conf.journal.connection == \
            'sqlite:////var/lib/nova-ha/journal.sqlite'
        assert conf.journal.retention_days == 90
        opts = dict((o.name, o) for o in journal_conf.list_opts()[0][1])
        assert opts['connection'].secret is True
        assert journal_conf.list_opts()[0][0].name == 'journal'

    def test_from_conf(self, tmp_path):
        conf = cfg.ConfigOpts()
        journal_conf.register_opts(conf)
        conf([])
        url = 'sqlite:///%s' % (tmp_path / 'x' / 'j.sqlite')
        conf.set_override('connection', url, group='journal')
        conf.set_override('auto_upgrade', True, group='journal')
        conf.set_override('retention_days', 3, group='journal')
        j = journal.Journal.from_conf(conf)
        try:
            j.check_schema()
            assert j.retention_days == 3
            assert 'x/j.sqlite' in repr(j)
        finally:
            j.close()

    def test_bad_connection_names_key_not_password(self):
        with pytest.raises(cfg.Error) as e:
            journal_conf.validate_connection('mongodb://u:hunter2@h/db')
        assert '[journal] connection' in str(e.value)
        assert 'hunter2' not in str(e.value)
        with pytest.raises(cfg.Error, match=r'\[journal\] connection'):
            journal_conf.validate_connection('not a url')


CHILD = textwrap.dedent('''
    import sys, datetime
    from nova_ha import journal
    j = journal.Journal(sys.argv[1])
    rec, _ = j.open_recovery('h', 'HOST_DOWN')
    j.add_recovery_items(rec.id, [dict(instance_uuid='u1')])
    with j.transaction() as conn:   # a write transaction left open...
        conn.execute(journal.api.T_ITEM.update().values(state='done'))
        print('ready', flush=True)
        sys.stdin.readline()        # ...until we are killed
''')


def test_kill_9_mid_transaction_leaves_nothing_half_written(tmp_path):
    """A writer killed inside a transaction: rolled back, the file usable."""
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal.upgrade(url)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.Popen([sys.executable, '-c', CHILD, url],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             env=env, text=True)
    try:
        assert child.stdout.readline().strip() == 'ready'
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    j = journal.Journal(url, busy_timeout=5)
    try:
        rec = j.get_open_recovery('h')
        items = j.list_recovery_items(rec.id)
        assert [i.state for i in items] == ['pending']
        # and the next leader carries on (the lock died with the process)
        assert j.transition_item(rec.id, 'u1', 'pending', 'evacuating',
                                 at=datetime.datetime.now())
    finally:
        j.close()


class TestRetries:

    def _err(self, cls, code, msg):
        import pymysql
        import sqlalchemy as sa
        return getattr(sa.exc, cls)('SQL', {}, pymysql.err.OperationalError(
            code, msg))

    def test_deadlocks_are_retried(self, tmp_path):
        from nova_ha.journal import api
        deadlock = self._err('OperationalError', 1213, 'Deadlock found')
        assert api._is_retryable(deadlock)
        # a failed ROLLBACK TO SAVEPOINT hiding the deadlock
        hidden = self._err('OperationalError', 1305, 'SAVEPOINT x does '
                           'not exist')
        hidden.__context__ = deadlock
        assert api._is_retryable(hidden)
        assert not api._is_retryable(self._err('IntegrityError', 1062,
                                               'Duplicate entry'))
        j = journal.Journal('sqlite:///%s' % (tmp_path / 'r.sqlite'))
        calls = []

        def flaky(conn):
            calls.append(1)
            if len(calls) < 3:
                raise deadlock
            return 'ok'
        try:
            assert j._run(flaky) == 'ok' and len(calls) == 3
            j.max_retries = 1
            calls.clear()
            with pytest.raises(type(deadlock)):
                j._run(flaky)
        finally:
            j.close()


WORKER = textwrap.dedent('''
    import sys, time
    from nova_ha import journal
    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    j = journal.Journal(url, busy_timeout=20)
    while time.time() < start:
        time.sleep(0.001)
    won = 0
    for n in range(30):
        rec, created = j.open_recovery('h%d' % (n % 3), 'HOST_DOWN')
        j.add_recovery_items(rec.id, [dict(instance_uuid='u%d' % n)])
        won += j.transition_item(rec.id, 'u%d' % n, 'pending', 'evacuating')
        j.raise_alarm('HOST_DOWN', 'CRITICAL', name, host='h%d' % (n % 3))
        if n % 5 == 4:
            j.close_recovery(rec.id, 'done')
    print(won)
''')


def test_two_processes_share_one_sqlite_file(tmp_path):
    """The evacuator and the CLI (two processes) on the embedded default."""
    import time
    url = 'sqlite:///%s' % (tmp_path / 'shared.sqlite')
    journal.upgrade(url)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    start = '%f' % (time.time() + 1.5)
    procs = [subprocess.Popen([sys.executable, '-c', WORKER, url, name,
                               start], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, text=True)
             for name in ('a', 'b')]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    won = sum(int(o.strip()) for o, _ in outs)
    j = journal.Journal(url)
    try:
        items = j.list_recovery_items()
        # every (recovery, instance) once; each instance evacuating once,
        # even when the two processes put it in two recoveries
        assert len({(i.recovery_id, i.instance_uuid) for i in items}) == \
            len(items)
        assert won == len({i.instance_uuid for i in items}) == 30
        assert sum(i.attempts for i in items) == 30
        for host in ('h0', 'h1', 'h2'):
            assert len(j.list_recoveries(host=host, states='open')) <= 1
            assert len(j.list_alarms(host=host)) == 1
    finally:
        j.close()
