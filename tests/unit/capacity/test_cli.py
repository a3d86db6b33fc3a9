"""``nova-ha capacity check``: bad arguments and configuration are refused
(exit code 2) with the option and the value named, before Nova is asked."""

import subprocess
import sys


def run(tmp_path, *args, conf=''):
    path = tmp_path / 'nova-ha.conf'
    path.write_text(conf)
    return subprocess.run(
        [sys.executable, '-m', 'nova_ha.cmd.cli', '--config-file',
         str(path), 'capacity', 'check'] + list(args),
        capture_output=True, text=True, timeout=120)


def test_bad_tolerance_argument(tmp_path):
    p = run(tmp_path, '--sal', '1', '--tolerate', '2 galaxies')
    assert p.returncode == 2, p.stderr
    assert "--tolerate sal1='2 galaxies'" in p.stderr
    assert "unknown topology level 'galaxies'" in p.stderr


def test_bad_scope_and_missing_sal(tmp_path):
    p = run(tmp_path, '--sal', '7')
    assert p.returncode == 2 and "--sal: '7' is not a scope" in p.stderr
    p = run(tmp_path, '--tolerate', '1 rack')
    assert p.returncode == 2 and 'needs --sal' in p.stderr


def test_bad_config_entry(tmp_path):
    p = run(tmp_path, conf='[capacity]\ntolerate = sal1:1 rack,sal9:2 hosts\n')
    assert p.returncode == 2, p.stderr
    assert '[capacity] tolerate' in p.stderr and "'sal9'" in p.stderr
    p = run(tmp_path, conf='[capacity]\ntolerate = sal1:lots\n')
    assert p.returncode == 2
    assert "[capacity] tolerate sal1='lots'" in p.stderr


def test_no_policy(tmp_path):
    p = run(tmp_path)
    assert p.returncode == 2 and 'no policy' in p.stderr
