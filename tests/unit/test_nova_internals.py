"""nova_ha.sim.nova_internals: every private nova internal the harness uses
exists in the installed nova, and the threading mode per release."""

import pytest

from nova_ha.sim import nova_internals


def test_every_listed_internal_exists_in_this_nova():
    assert nova_internals.check() == []


def test_the_harness_runs_in_the_selected_mode():
    from nova_ha.sim import novastack
    assert novastack.THREADING_MODE == nova_internals.threading_mode()


@pytest.mark.parametrize('version, mode', [
    ((31, 3, 1), 'eventlet'), ((33, 0, 2), 'eventlet'),
    ((34, 0, 0), 'threading'), ((35, 0, 0), 'threading')])
def test_release_default(monkeypatch, version, mode):
    monkeypatch.setattr(nova_internals, 'nova_version', lambda: version)
    assert nova_internals.threading_mode({}) == mode
    env = {}
    assert nova_internals.select_threading_mode(env) == mode
    assert env == {
        'NOVA_HA_NOVA_THREADING': mode,
        'OS_NOVA_DISABLE_EVENTLET_PATCHING':
            '1' if mode == 'threading' else '0'}


def test_explicit_choices_win(monkeypatch):
    monkeypatch.setattr(nova_internals, 'nova_version', lambda: (34, 0, 0))
    assert nova_internals.threading_mode(
        {'NOVA_HA_NOVA_THREADING': 'Eventlet'}) == 'eventlet'
    assert nova_internals.threading_mode(
        {'OS_NOVA_DISABLE_EVENTLET_PATCHING': '0'}) == 'eventlet'
    assert nova_internals.threading_mode(
        {'NOVA_HA_NOVA_THREADING': 'threading',
         'OS_NOVA_DISABLE_EVENTLET_PATCHING': '0'}) == 'threading'


def test_bad_mode_names_the_variable_and_value():
    with pytest.raises(ValueError) as exc:
        nova_internals.threading_mode({'NOVA_HA_NOVA_THREADING': 'green'})
    assert 'NOVA_HA_NOVA_THREADING' in str(exc.value)
    assert "'green'" in str(exc.value)


_SIM_CLI_PROBE = '''
import sys
from nova_ha.sim import cli

def probe():
    # What the command finds once it parses its arguments: is the process
    # patched, which selector does socketserver (the sim's HTTP servers)
    # bind, has nova been imported?
    import socketserver
    from eventlet import patcher
    print(patcher.is_monkey_patched('thread'),
          socketserver._ServerSelector.__name__, 'nova' in sys.modules)
    sys.exit(0)

cli.build_parser = probe
cli.main(sys.argv[1:])
'''


@pytest.mark.parametrize('argv, seen', [
    (['serve', '--hosts', '2'], 'True SelectSelector True'),
    (['demo'], 'True SelectSelector True'),
    (['status', '--state-dir', 'x'], 'False PollSelector False')])
def test_sim_cli_patches_before_its_servers_are_imported(argv, seen):
    """nova-ha-sim serve/demo host nova in their process: in eventlet mode
    they patch before socketserver is imported (a server thread blocking
    in the real poll() never yields and the sim hung); the small commands
    import no nova."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NOVA_HA_NOVA_THREADING='eventlet')
    env.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
    res = subprocess.run([sys.executable, '-c', _SIM_CLI_PROBE] + argv,
                         env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split('\n')[-2] == seen, res.stdout
