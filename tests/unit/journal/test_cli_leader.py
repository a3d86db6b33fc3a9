"""``nova-ha journal leader``: which evacuator leads, from the journal."""

from oslo_config import cfg

from nova_ha.cmd import cli
from nova_ha import journal


def test_leader_before_and_after_a_claim(tmp_path, capsys):
    url = 'sqlite:///%s' % (tmp_path / 'j.sqlite')
    journal.upgrade(url)
    conf = tmp_path / 'nova-ha.conf'
    conf.write_text('[journal]\nconnection = %s\n[coordination]\n'
                    'lock_name = pair-a\n' % url)
    argv = ['--config-file', str(conf), 'journal', 'leader',
            '--connection', url]
    try:
        assert cli.main(argv) == 1
        assert "no evacuator has led 'pair-a' yet" in capsys.readouterr().out
        j = journal.Journal(url)
        j.claim_leadership('other', holder='x.1')
        j.claim_leadership('pair-a', holder='evacuator-1.4242')
        j.claim_leadership('pair-a', holder='evacuator-2.77')
        j.close()
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert 'leadership: pair-a' in out
        assert 'epoch:      2' in out
        assert 'holder:     evacuator-2.77' in out
        assert 's ago' in out and 'may be gone' not in out
        assert cli.main(argv + ['--name', 'other']) == 0
        assert 'holder:     x.1' in capsys.readouterr().out
    finally:
        cfg.CONF.reset()
        cfg.CONF.clear()
