"""``nova-ha recovery retry ID --operator NAME`` (the command line, as a
process, on a SQLite journal): the exit codes and messages an operator
sees, and nothing changed when it is refused."""

import subprocess
import sys

from nova_ha import journal
from tests.unit.journal.test_retry_recovery import _incomplete


def _nova_ha(url, *args):
    p = subprocess.run(
        [sys.executable, '-m', 'nova_ha.cmd.cli', '--config-file',
         '/dev/null'] + list(args) + ['--connection', url],
        capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_retry_from_the_command_line(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal.upgrade(url)
    j = journal.Journal(url)
    try:
        rec = _incomplete(j)
        done, _ = j.open_recovery('cmp2', 'HOST_DOWN')
        assert j.close_recovery(done.id, 'done', host_state='RECOVERED')
    finally:
        j.close()

    rc, out, err = _nova_ha(url, 'recovery', 'retry', '999',
                            '--operator', 'alice')
    assert (rc, out) == (2, '') and 'no recovery 999' in err, err
    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(done.id),
                            '--operator', 'alice')
    assert rc == 3 and 'every instance was recovered' in err, err
    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(rec.id),
                            '--operator', ' ')
    assert rc == 2 and '--operator must name someone' in err, err
    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(rec.id))
    assert rc == 2 and '--operator' in err, err

    # The fenced host answered again: refused until the operator says it
    # is off.
    j = journal.Journal(url)
    try:
        j.raise_alarm('FLAPPING', 'MAJOR', 'cmp1 answers', host='cmp1')
    finally:
        j.close()
    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(rec.id),
                            '--operator', 'alice')
    assert rc == 3 and 'host cmp1 answered again after it was fenced' in err
    assert '--host-is-off' in err

    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(rec.id),
                            '--operator', 'alice', '--host-is-off')
    assert rc == 0, err
    assert 'recovery %d re-opened by alice: 2 instance(s)' % rec.id in out
    assert 'nvh (u-cmp1-nvh)' in out and 'err (u-cmp1-err)' in out
    # Twice: the recovery is open now, the evacuator's to finish.
    rc, out, err = _nova_ha(url, 'recovery', 'retry', str(rec.id),
                            '--operator', 'alice')
    assert rc == 3 and 'is open: the evacuator is still working' in err
    j = journal.Journal(url)
    try:
        assert j.get_recovery(rec.id).state == 'open'
        assert j.get_host_state('cmp1').state == 'EVACUATING'
    finally:
        j.close()
