"""Every option is read and range-checked at start-up (issue 12 finding
6, issue 15 "Config"): the real console scripts, run as an operator runs
them."""

import subprocess
import sys

import pytest


def run(module, conf_text, tmp_path, *extra):
    path = tmp_path / 'nova-ha.conf'
    path.write_text(conf_text)
    return subprocess.run(
        [sys.executable, '-m', module, '--config-file', str(path)]
        + list(extra), capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('section,option,value,reason', [
    ('evacuator', 'sal1_confirmation_window', '-1', '>= 0.05'),
    ('evacuator', 'tick', '-1', '>= 0.01'),
    ('evacuator', 'max_evacuation_attempts', 'three', 'integer'),
    ('guard', 'max_failed_fraction', '2', '<= 1'),
    ('fencing', 'retries', '-1', '>= 0'),
    ('fencing', 'poll_interval', '0', '>= 0.01'),
])
def test_evacuator_refuses_bad_value_in_one_line(tmp_path, section, option,
                                                 value, reason):
    res = run('nova_ha.cmd.evacuator',
              '[%s]\n%s = %s\n' % (section, option, value), tmp_path)
    assert res.returncode == 2, res
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr         # no eventlet warning, no log
    assert lines[0].startswith(
        'nova-ha-evacuator: configuration error: [%s] %s = %s: '
        % (section, option, value)), lines[0]
    words = {'>= 0.05': 'greater than or equal to 0.05',
             '>= 0.01': 'greater than or equal to 0.01',
             '<= 1': 'less than or equal to 1',
             '>= 0': 'greater than or equal to 0',
             'integer': 'not an integer'}
    assert words[reason] in lines[0].lower()
    assert 'LocationInfo' not in res.stderr


def test_agent_refuses_bad_value_in_one_line(tmp_path):
    res = run('nova_ha.cmd.agent', '[heartbeat]\ninterval_ms = -5\n',
              tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        'nova-ha-agent: configuration error: [heartbeat] interval_ms = -5: '
        'should be greater than or equal to 10 (%s)'
        % (tmp_path / 'nova-ha.conf')]


def test_nova_ha_cli_refuses_bad_value(tmp_path):
    res = run('nova_ha.cmd.cli', '[journal]\nretention_days = -3\n',
              tmp_path, 'alarm', 'list')
    assert res.returncode == 2
    assert res.stderr.startswith(
        'nova-ha: configuration error: [journal] retention_days = -3: ')
    assert len(res.stderr.splitlines()) == 1


def test_typos_are_warned_with_the_closest_name(tmp_path):
    # A typo'd option and section start with the default otherwise; the
    # evacuator then stops on the missing inventory (exit 2), after the
    # warnings.
    res = run('nova_ha.cmd.evacuator',
              '[DEFAULT]\ndebug = false\n'
              '[evacuator]\nsal1_confirmaton_window = 0.3\n'
              '[fencng]\nretries = 1\n'
              '[fencing]\ninventory_file = %s\n'
              '[oslo_messaging_notifications]\ndriver = noop\n'
              '[watch:libvirtd]\npidfile = /run/libvirtd.pid\n'
              % (tmp_path / 'missing.yaml'), tmp_path)
    assert res.returncode == 2
    out = res.stdout + res.stderr     # the daemon's log: oslo.log's choice
    assert ('unknown option [evacuator] sal1_confirmaton_window (%s) is '
            'ignored; did you mean sal1_confirmation_window?'
            % (tmp_path / 'nova-ha.conf')) in out
    assert 'unknown section [fencng]' in out
    assert 'did you mean [fencing]?' in out
    # known names of libraries and dynamic sections are not warned about
    assert out.count('unknown ') == 2, out
    assert 'Eventlet' not in out


def test_nova_ha_cli_warns_typo(tmp_path):
    res = run('nova_ha.cmd.cli', '[jornal]\nconnection = sqlite://\n',
              tmp_path, 'fence', 'check', '--inventory',
              str(tmp_path / 'none.yaml'))
    assert 'unknown section [jornal]' in res.stderr
    assert 'did you mean [journal]?' in res.stderr
