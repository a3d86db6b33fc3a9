"""What an operator and a VNF manager do, on the simulated cloud, with the
real command lines (issue 15): the README's own examples (openstack and
nova-ha) run as written against the sim (``source STATE_DIR/openrc``), the
nova-ha list commands' machine-readable output, a closed pipe, ``fence
confirm`` (printed once, reason journalled, listed by ``recovery show``),
the exit codes of an unknown host, and ``fence check`` against what the
evacuator needs (an entry per compute host, an authenticated status read:
a wrong BMC password fails it)."""

import csv
import io
import json
import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from tests.functional import procs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
BIN = os.path.dirname(sys.executable)


def openrc_env(state_dir):
    env = dict(os.environ)
    with open(os.path.join(state_dir, 'openrc')) as f:
        for line in f:
            m = re.match(r'export (\w+)=(.*)$', line.strip())
            if m:
                env[m.group(1)] = m.group(2)
    env['PATH'] = BIN + os.pathsep + env.get('PATH', '')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def shell(cmd, env, timeout=180):
    """One README line, in a shell (``&&`` and quotes as written);
    ``nova-ha`` is this tree's (python -m nova_ha.cmd.cli)."""
    cmd = re.sub(r'(^|&& )nova-ha ', r'\1%s -m nova_ha.cmd.cli '
                 % shlex.quote(sys.executable), cmd)
    return subprocess.run(['bash', '-c', cmd], env=env, capture_output=True,
                          text=True, timeout=timeout)


def readme_commands(first_words):
    """The README's command lines starting with one of ``first_words``
    (continuations joined, trailing comments dropped), in order."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        text = f.read()
    out = []
    for block in re.findall(r'```\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            line = re.sub(r'\s+', ' ', line)
            if line.split(' ', 1)[0] in first_words:
                out.append(line)
    return out


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    s = procs.Sim(tmp_path_factory.mktemp('sim'), hosts=4, racks=4)
    yield s
    s.stop()


@pytest.fixture(scope='module')
def evacuator(sim):
    ev = procs.Evacuator(sim.state['evacuator_configs'][0])
    try:
        ev.wait_running(timeout=180)
        yield ev
    finally:
        ev.stop()


def wait_vnf_active(env):
    """The README's four-member VNF ACTIVE, one member per rack (host)."""
    def active():
        servers = json.loads(shell('openstack server list -f json --long',
                                   env).stdout or '[]')
        vnf = [s for s in servers if s['Name'].startswith('vnf-a')]
        assert len(vnf) == 4 and not [s for s in vnf
                                      if s['Status'] == 'ERROR'], vnf
        return all(s['Status'] == 'ACTIVE' for s in vnf) and vnf
    vnf = procs.wait_for(active, 180, interval=2, what='vnf-a ACTIVE')
    assert len({s['Host'] for s in vnf}) == 4


def test_readme_operator_examples_run_on_the_sim(sim, evacuator):
    env = openrc_env(sim.dir)
    conf = sim.state['evacuator_configs'][0]
    image = sim.state['images'][0] if isinstance(sim.state['images'], list) \
        else next(iter(sim.state['images'].values()))
    # The aggregates the README's lines name, which a real cloud has:
    # rack-r1 and power-pdu3 exist in the sim already (one per rack and
    # power domain), sal1-hosts is made here.
    res = shell('openstack aggregate create sal1-hosts', env)
    assert res.returncode == 0, res.stderr
    # The README adds compute01 to rack-r1, where the sim has put it.
    res = shell('openstack aggregate remove host rack-r1 compute01', env)
    assert res.returncode == 0, res.stderr
    for host in sorted(sim.state['hosts']):
        res = shell('openstack aggregate add host sal1-hosts %s' % host, env)
        assert res.returncode == 0, res.stderr

    # `openstack flavor create` (it needs an identity v3 client: the sim
    # answers its version discovery), then the README's flavor example.
    res = shell('openstack flavor create --ram 512 --disk 1 --vcpus 1 '
                '--property ha:sal=1 vnf.sal1', env)
    assert res.returncode == 0, res.stderr

    ran = []
    group = None
    # The cloud set-up and the VNF first, then the incident commands
    # (`fence off compute01` powers that host off).
    openstack_lines = readme_commands(('openstack',))
    for line in openstack_lines + ['WAIT'] + readme_commands(('nova-ha',)):
        if line == 'WAIT':
            wait_vnf_active(env)
            continue
        if re.search(r'\b(HOST|ID|IMG|NET)\b|\[', line) and \
                'server create' not in line:
            continue          # placeholders: HOST, ID, [--options]
        cmd = line.replace('/etc/nova-ha/nova-ha.conf', conf)
        if line.startswith('openstack aggregate create rack-r1'):
            # the sim made rack-r1; the rest of the line as written
            cmd = cmd.split('&& ', 1)[1]
        if 'server create' in line:
            cmd = (cmd.replace('<group uuid>', group)
                   .replace('--image IMG', '--image %s' % image)
                   # the sim has no Neutron endpoint: no port
                   .replace('--network NET', '--nic none'))
        res = shell(cmd, env)
        ran.append(line)
        if 'ha:sal=7' in line:
            assert res.returncode != 0
            assert "extra spec ha:sal='7' is invalid; allowed values: 1, " \
                "2, 3." in res.stderr
            continue
        assert res.returncode == 0, (line, res.stdout, res.stderr)
        if line.startswith('openstack server group create'):
            group = shell('openstack server group show vnf-a -f value -c id',
                          env).stdout.strip()
    for expected in ('openstack aggregate set --property ha:rack=r1 rack-r1',
                     'openstack server group create --policy anti-affinity '
                     'vnf-a',
                     'nova-ha --config-file /etc/nova-ha/nova-ha.conf fence '
                     'confirm compute01 --operator alice --reason "checked '
                     'on site"',
                     'nova-ha alarm list', 'nova-ha host list'):
        assert expected in ran, ran
    assert any(line.startswith('openstack server create') for line in ran)
    # The README's four-member VNF, one member per rack.
    # A bad hint is refused by the API, naming it (nova-api's paste filter).
    res = shell('openstack server create --flavor vnf.sal1 --image %s '
                '--nic none --hint ha_max_per_domain=0 --hint '
                'ha_anti_affinity_level=rack bad' % image, env)
    assert res.returncode != 0
    assert "hint ha_max_per_domain='0' is invalid: must be an integer >= 1" \
        in res.stderr


def test_machine_readable_lists_and_closed_pipe(sim, evacuator):
    out = evacuator.nova_ha('host', 'list', '-f', 'json')
    assert out.returncode == 0, out.stderr
    hosts = json.loads(out.stdout)
    assert isinstance(hosts, list)
    for fmt, parse in (('yaml', yaml.safe_load),
                       ('csv', lambda t: list(csv.reader(io.StringIO(t)))),
                       ('json', json.loads)):
        for what in (('alarm', 'list'), ('recovery', 'list'),
                     ('host', 'list')):
            res = evacuator.nova_ha(*what, '-f', fmt)
            assert res.returncode == 0, (what, fmt, res.stderr)
            parse(res.stdout)
    res = evacuator.nova_ha('alarm', 'list', '-f', 'csv', '--all')
    assert res.stdout.splitlines()[0].startswith('"ID","Time","Severity"')

    # `nova-ha ... | head -1`: no BrokenPipe traceback
    res = shell('%s -m nova_ha.cmd.cli --config-file %s alarm list --all '
                '-f yaml --limit 500 | head -c 1; %s -m nova_ha.cmd.cli '
                '--help | head -1' % (sys.executable, evacuator.config_file,
                                      sys.executable),
                openrc_env(sim.dir))
    assert 'Traceback' not in res.stderr and 'BrokenPipe' not in \
        res.stderr, res.stderr


def test_unknown_host_exit_codes_agree(sim, evacuator):
    enable = evacuator.nova_ha('host', 'enable', 'compute99')
    start = evacuator.nova_ha('maintenance', 'start', 'compute99')
    fence = evacuator.nova_ha('fence', 'status', 'compute99')
    assert (enable.returncode, start.returncode, fence.returncode) == \
        (2, 2, 2), (enable.stderr, start.stderr, fence.stderr)
    for res in (enable, start, fence):
        assert 'compute99' in res.stderr


def test_fence_check_checks_what_the_evacuator_needs(sim, evacuator,
                                                     tmp_path):
    # The sim's 1 s BMC timeout, widened for a loaded test machine (a
    # timeout, not what is checked).
    slow = tmp_path / 'slow-bmc.conf'
    slow.write_text('[fencing]\ncommand_timeout = 15\n')
    slow.chmod(0o600)
    conf = evacuator.config_file

    def check(*extra):
        return procs.run('nova_ha.cmd.cli', '--config-file', conf,
                         '--config-file', str(slow), 'fence', 'check',
                         *extra, timeout=180)
    good = check()
    assert good.returncode == 0, good.stdout + good.stderr
    assert '4 compute host(s) in Nova; OK' in good.stdout
    assert good.stdout.count('power on') + good.stdout.count(
        'power off') == 4

    with open(os.path.join(sim.dir, 'fencing-inventory.yaml')) as f:
        inv = yaml.safe_load(f)
    names = sorted(inv['hosts'])
    inv['hosts'][names[1]]['password'] = 'Wr0ng-Passw0rd'
    del inv['hosts'][names[3]]
    path = tmp_path / 'inventory.yaml'
    path.write_text(yaml.safe_dump(inv))
    os.chmod(path, 0o600)
    res = check('--inventory', str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert re.search(r'%s: ipmi FAILED .*credentials' % names[1],
                     res.stdout), res.stdout
    assert '%s: no (unambiguous) entry in %s' % (names[3], path) in \
        res.stdout
    assert 'Wr0ng-Passw0rd' not in res.stdout + res.stderr


def test_fence_confirm_printed_once_and_listed_by_recovery_show(
        sim, evacuator):
    victim = sorted(sim.state['hosts'])[2]
    # A host whose BMC is dead and which lost power: the evacuator cannot
    # fence it and waits for an operator.
    sim.inject(victim, 'bmc_unreachable')
    sim.inject(victim, 'power_loss')
    try:
        def open_recovery():
            res = evacuator.nova_ha('recovery', 'list', '--host', victim,
                                    '-f', 'json')
            recs = json.loads(res.stdout or '[]')
            return [r for r in recs if r['State'] == 'open']
        rec = procs.wait_for(open_recovery, 120, interval=1,
                             what='recovery of %s' % victim)[0]
        res = evacuator.nova_ha('fence', 'confirm', victim, '--operator',
                                'alice', '--reason', 'PDU outlet 7 off')
        assert res.returncode == 0, res.stderr
        out = res.stdout + res.stderr
        assert out.count('operator alice') == 1, out     # printed once
        assert 'recovery %d' % rec['ID'] in res.stdout
        show = evacuator.nova_ha('recovery', 'show', str(rec['ID']), '-f',
                                 'json')
        record = json.loads(show.stdout)
        confirmations = [f for f in record['Fencing Attempts']
                         if f['outcome'] == 'CONFIRMED_BY_OPERATOR']
        assert len(confirmations) == 1, record['Fencing Attempts']
        assert confirmations[0]['operator'] == 'alice'
        assert 'PDU outlet 7 off' in confirmations[0]['reason']
        text = evacuator.nova_ha('recovery', 'show', str(rec['ID']))
        assert 'CONFIRMED_BY_OPERATOR' in text.stdout
        assert 'PDU outlet 7 off' in text.stdout
    finally:
        sim.heal(victim)
