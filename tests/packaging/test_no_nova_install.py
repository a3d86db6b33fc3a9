"""A control-plane node without nova: the evacuator, the agent and the CLI
talk to Nova over its REST API only, so nova-ha installs and runs there with
no nova (or placement) package at all.

The virtualenv is built by ``make matrix`` (tools/matrix.py: a bare venv,
then ``pip install -c upper-constraints/<default>.txt .``, downloads from
the package index, cached) and named by NOVA_HA_NO_NOVA_VENV; `make test`
skips these tests. The commands run from that venv's own console scripts,
as an operator runs them.
"""

import os
import shutil
import socket
import subprocess

import pytest
import yaml

from nova_ha.fencing import testing
from nova_ha.sim.vbmc import VBMCProcess

VENV = os.environ.get('NOVA_HA_NO_NOVA_VENV')
pytestmark = pytest.mark.skipif(
    not VENV, reason='needs a virtualenv without nova (NOVA_HA_NO_NOVA_VENV):'
                     ' built and run by `make matrix`')
PASSWORD = 'NoNova-Pa55-7Qx'


def bin_path(name):
    return os.path.join(VENV, 'bin', name)


def run(cmd, **kw):
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)      # only what the venv has
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=env, cwd='/', **kw)
    return p.returncode, p.stdout, p.stderr


def test_the_venv_has_no_nova_and_no_placement():
    rc, out, err = run([bin_path('python'), '-c',
                        'import importlib.util as u; '
                        'print([m for m in ("nova", "placement") '
                        'if u.find_spec(m)])'])
    assert (rc, out.strip()) == (0, '[]'), err
    rc, out, err = run([bin_path('python'), '-c',
                        'import nova_ha, os; print(os.path.dirname('
                        'nova_ha.__file__))'])
    assert rc == 0, err
    assert out.strip().startswith(VENV), out     # the installed copy


@pytest.mark.parametrize('script', ['nova-ha-evacuator', 'nova-ha-agent',
                                    'nova-ha', 'nova-ha-status'])
def test_console_script_help(script):
    rc, out, err = run([bin_path(script), '--help'])
    assert rc == 0, err
    assert 'usage' in out.lower()
    assert 'Traceback' not in err


@pytest.fixture
def bmc():
    if not shutil.which('ipmitool'):
        pytest.skip('ipmitool is not installed (make system-deps)')
    b = VBMCProcess(testing.free_port(socket.SOCK_DGRAM), 'admin',
                    PASSWORD).start()
    yield b
    b.stop()


def _inventory(tmp_path, bmc):
    inv = tmp_path / 'inventory.yaml'
    inv.write_text(yaml.safe_dump({'hosts': {'compute-1': {
        'driver': 'ipmi', 'address': '127.0.0.1', 'port': bmc.port,
        'username': 'admin', 'password': PASSWORD}}}))
    conf = tmp_path / 'nova-ha.conf'
    conf.write_text('[fencing]\ncommand_timeout = 5.0\n'
                    'inventory_file = %s\n' % inv)
    return str(conf)


def test_fence_status_against_a_virtual_bmc(tmp_path, bmc):
    conf = _inventory(tmp_path, bmc)
    rc, out, err = run([bin_path('nova-ha'), '--config-file', conf,
                        'fence', 'status', 'compute-1'])
    assert rc == 0, (out, err)
    assert 'compute-1' in out and 'on' in out.lower(), out
    assert PASSWORD not in out + err


def test_fence_status_of_an_unknown_host_is_a_clean_error(tmp_path, bmc):
    conf = _inventory(tmp_path, bmc)
    rc, out, err = run([bin_path('nova-ha'), '--config-file', conf,
                        'fence', 'status', 'compute-9'])
    assert rc != 0
    assert 'compute-9' in out + err
    assert 'Traceback' not in err


def test_journal_commands(tmp_path):
    conf = tmp_path / 'nova-ha.conf'
    conf.write_text('[journal]\nconnection = sqlite:///%s\n'
                    % (tmp_path / 'journal.sqlite'))
    for args, expected in ((['journal', 'upgrade'], 'upgraded'),
                           (['recovery', 'list'], 'no recoveries'),
                           (['maintenance', 'status'], 'no active drain')):
        rc, out, err = run([bin_path('nova-ha'), '--config-file', str(conf)]
                           + args)
        assert rc == 0, (args, out, err)
        assert expected in out, (args, out)
