"""The devstack plugin (devstack/): shell checks and its config writers.

The config-writing functions of devstack/lib/nova-ha run in bash against
temporary files, with small stand-ins for the devstack helpers they call
(tests/unit/devstack/devstack_stubs.sh); the files they write are then read
the way nova-scheduler and nova-ha read them: oslo.config with nova's and
nova-ha's own options, keystoneauth1, the fencing inventory loader.
"""

import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as oslo_log
import pytest

import nova_ha.conf
from nova_ha.conf import coordination as coord_conf
from nova_ha.conf import heartbeat as hb_conf
from nova_ha.conf import opts as conf_opts
from nova_ha.fencing import inventory as inventory_mod

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
DEVSTACK = os.path.join(REPO, 'devstack')
SHELL_FILES = ['plugin.sh', 'settings', 'lib/nova-ha']
STUBS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     'devstack_stubs.sh')
BIN_DIR = os.path.dirname(sys.executable)

# What devstack's lib/nova writes before the plugin's post-config phase.
NOVA_FILTERS = ('ComputeFilter,ComputeCapabilitiesFilter,'
                'ImagePropertiesFilter,ServerGroupAntiAffinityFilter,'
                'ServerGroupAffinityFilter,SameHostFilter,DifferentHostFilter')
HA_FILTERS = ['SALFilter', 'FaultDomainAntiAffinityFilter',
              'MigrationPolicyFilter']
HA_WEIGHER = 'nova_ha.scheduler.weighers.FaultDomainSpreadWeigher'
DEVSTACK_NOVA_CONF = textwrap.dedent('''\
    [DEFAULT]
    debug = True
    my_ip = 127.0.0.1

    [filter_scheduler]
    track_instance_changes = False
    enabled_filters = %s

    [scheduler]
    workers = 2
    ''' % NOVA_FILTERS)


# -- running the plugin's functions ------------------------------------------

def _env(tmp_path, **overrides):
    """The devstack globals lib/nova-ha reads (as stackrc/lib/* set them),
    pointing every path into tmp_path."""
    env = {
        'DEST': str(tmp_path / 'opt'),
        'DATA_DIR': str(tmp_path / 'data'),
        'NOVA_HA_DIR': REPO,
        'NOVA_HA_CONF_DIR': str(tmp_path / 'etc'),
        'NOVA_HA_STATE_DIR': str(tmp_path / 'state'),
        'GLOBAL_VENV': 'True',
        'DEVSTACK_VENV': os.path.dirname(BIN_DIR),
        'NOVA_HA_PYTHON': sys.executable,
        'STUB_BIN_DIR': BIN_DIR,
        'STUB_RUN_LOG': str(tmp_path / 'run.log'),
        'STUB_PID_DIR': str(tmp_path),
        'SERVICE_HOST': '127.0.0.1',
        'KEYSTONE_SERVICE_URI': 'http://127.0.0.1/identity',
        'SERVICE_PASSWORD': 'svc-secret-pw',
        'SERVICE_DOMAIN_NAME': 'Default',
        'SERVICE_PROJECT_NAME': 'service',
        'REGION_NAME': 'RegionOne',
        'ENABLE_DEBUG_LOG_LEVEL': 'True',
        'VIRT_DRIVER': 'fake',
        'NUMBER_FAKE_NOVA_COMPUTE': '3',
        'HOSTNAME': 'dvs',
        'NOVA_CONF': str(tmp_path / 'nova.conf'),
        'NOVA_CPU_CONF': str(tmp_path / 'nova-cpu.conf'),
        'NOVA_FILTERS': NOVA_FILTERS,
        'ENABLED_SERVICES': 'key,n-api,n-sch,n-cond,n-cpu,placement-api',
    }
    env.update(overrides)
    return env


def run_plugin(tmp_path, commands, check=True, **overrides):
    """Source the stand-ins, devstack/settings and devstack/lib/nova-ha in
    a fresh bash (as devstack does for each phase) and run `commands`."""
    for d in ('etc', 'state', 'data', 'opt'):
        (tmp_path / d).mkdir(exist_ok=True)
    env = _env(tmp_path, **overrides)
    script = ['set -eu -o pipefail']
    script += ['%s=%s' % (k, _sh_quote(v)) for k, v in sorted(env.items())]
    script += ['source %s' % _sh_quote(STUBS),
               'source %s' % _sh_quote(os.path.join(DEVSTACK, 'settings')),
               'source %s' % _sh_quote(os.path.join(DEVSTACK, 'lib',
                                                    'nova-ha')),
               commands]
    proc = subprocess.run(
        ['bash', '-c', '\n'.join(script)], capture_output=True, text=True,
        env={'PATH': os.environ['PATH'], 'LANG': 'C.UTF-8'}, timeout=120)
    if check and proc.returncode != 0:
        pytest.fail('bash failed (%d):\nstdout: %s\nstderr: %s'
                    % (proc.returncode, proc.stdout, proc.stderr))
    return proc


def _sh_quote(value):
    return "'%s'" % str(value).replace("'", "'\"'\"'")


CONFIGURE = '''
configure_nova_ha_scheduler "$NOVA_CONF"
configure_nova_ha
configure_nova_ha_fencing
'''


# -- reading the results as their consumers do -------------------------------

def load_nova_scheduler_conf(path):
    """nova.conf as nova-scheduler reads its [filter_scheduler] options
    (same names and types as nova.conf.scheduler)."""
    conf = cfg.ConfigOpts()
    conf.register_opts([
        cfg.MultiStrOpt('available_filters',
                        default=['nova.scheduler.filters.all_filters']),
        cfg.ListOpt('enabled_filters'),
        cfg.ListOpt('weight_classes',
                    default=['nova.scheduler.weights.all_weighers']),
    ], group='filter_scheduler')
    conf.register_opts([cfg.ListOpt('levels')], group='topology')
    conf([], project='nova', default_config_files=[str(path)])
    return conf


def load_nova_ha_conf(*paths):
    """A fresh ConfigOpts with every nova-ha option (and oslo.log's), the
    files loaded, every value read once (oslo.config checks types on
    access), and every section and option of the files known to nova-ha:
    oslo.config silently ignores a misspelt name, this does not."""
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    oslo_log.register_options(conf)
    args = []
    for p in paths:
        args += ['--config-file', str(p)]
    conf(args, project='nova-ha', default_config_files=[])
    # [nova] auth options of the configured plugin, as nova_api does.
    auth = ks_loading.load_auth_from_conf_options(conf, 'nova')
    watch = hb_conf.watch_specs(conf)
    for group, opts in conf_opts.list_opts():
        name = getattr(group, 'name', group)
        if name.startswith('watch:'):
            continue
        for opt in opts:
            getattr(conf[name] if name != 'DEFAULT' else conf, opt.dest)
    for p in paths:
        for section, options in _ini_sections(p).items():
            if section == 'DEFAULT':
                known = set(conf.keys())
            else:
                assert section in conf, '%s: unknown section [%s]' % (
                    p, section)
                known = set(conf[section].keys())
            unknown = set(options) - known
            assert not unknown, '%s: [%s] unknown options %s' % (
                p, section, sorted(unknown))
    return conf, auth, watch


def _ini_sections(path):
    sections = {}
    current = None
    for line in open(path).read().splitlines():
        s = line.strip()
        if not s or s.startswith(('#', ';')):
            continue
        if s.startswith('[') and s.endswith(']'):
            current = s[1:-1]
            sections.setdefault(current, [])
        else:
            assert current, '%s: option outside a section: %r' % (path, s)
            sections[current].append(s.split('=', 1)[0].strip())
    return sections


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- shell checks ----------------------------------------------------------

@pytest.mark.parametrize('name', SHELL_FILES)
def test_bash_syntax(name):
    proc = subprocess.run(['bash', '-n', os.path.join(DEVSTACK, name)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_bash_syntax_check_catches_errors(tmp_path):
    bad = tmp_path / 'plugin.sh'
    bad.write_text(open(os.path.join(DEVSTACK, 'plugin.sh')).read()
                   .replace('\nfi\n', '\n', 1))
    proc = subprocess.run(['bash', '-n', str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode != 0


def _shellcheck():
    path = shutil.which('shellcheck')
    if path is None:
        pytest.skip('shellcheck not installed (Debian package shellcheck; '
                    'CI installs it)')
    return path


def _run_shellcheck(files, cwd):
    # No -e/-x here: devstack/.shellcheckrc (shell, source path, why its
    # one exclude exists) applies to every file under devstack/, whatever
    # the working directory.
    return subprocess.run([_shellcheck(), '-f', 'gcc'] + files, cwd=cwd,
                          capture_output=True, text=True)


@pytest.mark.parametrize('name', SHELL_FILES)
def test_shellcheck(name, tmp_path):
    proc = _run_shellcheck([os.path.join(DEVSTACK, name)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_stubs_too(tmp_path):
    proc = _run_shellcheck([STUBS, '--shell=bash'], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_catches_errors(tmp_path):
    """The shellcheckrc does not silence real problems."""
    shutil.copytree(DEVSTACK, tmp_path / 'devstack')
    lib = tmp_path / 'devstack' / 'lib' / 'nova-ha'
    lib.write_text(lib.read_text().replace(
        'local conf=${1:-$NOVA_CONF}',
        'local conf=${1:-$NOVA_CONF}\n    local unused=1\n'
        '    if [ $NOVA_HA_RACKS == 1 ]; then :; fi', 1))
    proc = _run_shellcheck([str(lib)], cwd=tmp_path)
    assert proc.returncode != 0
    assert 'SC2034' in proc.stdout      # unused variable, outside settings
    assert 'SC2086' in proc.stdout      # unquoted expansion


# -- nova.conf ---------------------------------------------------------------

def test_nova_conf_gets_filters_and_weigher_once(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(DEVSTACK_NOVA_CONF)
    run_plugin(tmp_path, CONFIGURE)
    first = nova_conf.read_text()
    run_plugin(tmp_path, CONFIGURE)
    assert nova_conf.read_text() == first          # idempotent

    conf = load_nova_scheduler_conf(nova_conf)
    fs = conf.filter_scheduler
    assert fs.available_filters == ['nova.scheduler.filters.all_filters',
                                    'nova_ha.scheduler.filters.all_filters']
    assert fs.enabled_filters == NOVA_FILTERS.split(',') + HA_FILTERS
    assert fs.weight_classes == ['nova.scheduler.weights.all_weighers',
                                 HA_WEIGHER]
    assert conf.topology.levels == ['host', 'rack', 'power_domain',
                                    'availability_zone']
    for name in HA_FILTERS + ['nova_ha.scheduler.filters.all_filters',
                              HA_WEIGHER]:
        assert first.count(name) == 1, name
    # the rest of nova.conf untouched
    assert 'track_instance_changes = False' in first
    assert 'workers = 2' in first
    assert 'my_ip = 127.0.0.1' in first


def test_nova_conf_keeps_operator_choices(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(textwrap.dedent('''\
        [filter_scheduler]
        available_filters = nova.scheduler.filters.all_filters
        available_filters = my_filters.RackFilter
        enabled_filters = ComputeFilter, SALFilter, RackFilter
        weight_classes = nova.scheduler.weights.ram.RAMWeigher
        '''))
    for _ in range(2):
        run_plugin(tmp_path, 'configure_nova_ha_scheduler "$NOVA_CONF"')
    fs = load_nova_scheduler_conf(nova_conf).filter_scheduler
    assert fs.available_filters == ['nova.scheduler.filters.all_filters',
                                    'my_filters.RackFilter',
                                    'nova_ha.scheduler.filters.all_filters']
    assert fs.enabled_filters == ['ComputeFilter', 'SALFilter', 'RackFilter',
                                  'FaultDomainAntiAffinityFilter',
                                  'MigrationPolicyFilter']
    assert fs.weight_classes == ['nova.scheduler.weights.ram.RAMWeigher',
                                 HA_WEIGHER]


def test_nova_conf_without_filter_settings_gets_novas_defaults(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text('[DEFAULT]\ndebug = True\n')
    run_plugin(tmp_path, 'configure_nova_ha_scheduler "$NOVA_CONF"')
    fs = load_nova_scheduler_conf(nova_conf).filter_scheduler
    assert fs.available_filters == ['nova.scheduler.filters.all_filters',
                                    'nova_ha.scheduler.filters.all_filters']
    assert fs.enabled_filters == NOVA_FILTERS.split(',') + HA_FILTERS


# -- nova-ha.conf, agents, inventory -----------------------------------------

def test_nova_ha_conf_loads_with_nova_ha_options(tmp_path):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    run_plugin(tmp_path, CONFIGURE)
    etc = tmp_path / 'etc'
    main = etc / 'nova-ha.conf'
    assert set(_ini_sections(main)) == {
        'DEFAULT', 'nova', 'heartbeat', 'topology', 'fencing', 'journal',
        'coordination'}
    hosts = ['dvs1', 'dvs2', 'dvs3']
    assert sorted(p.name for p in etc.glob('agent-*.conf')) == [
        'agent-%s.conf' % h for h in hosts]

    # the evacuator's view
    conf, auth, _ = load_nova_ha_conf(main)
    assert type(auth).__name__ == 'Password'
    assert conf.nova.auth_url == 'http://127.0.0.1/identity'
    assert conf.nova.username == 'nova-ha'
    assert conf.nova.password == 'svc-secret-pw'
    assert conf.nova.project_name == 'service'
    assert conf.nova.user_domain_name == 'Default'
    assert conf.nova.region_name == 'RegionOne'
    assert conf.debug is True
    assert hb_conf.plane_addresses(conf, 'listen') == {
        'management': [('127.0.0.1', 4800)]}
    hb_conf.load_keyring(conf, receiver=True)
    coord_conf.validate(conf)
    assert conf.coordination.backend_url == 'file://%s/coordination' % (
        tmp_path / 'state')
    assert conf.journal.connection == 'sqlite:///%s/journal.sqlite' % (
        tmp_path / 'state')
    assert conf.fencing.inventory_file == str(etc / 'fencing-inventory.yaml')
    inv = inventory_mod.load(conf.fencing.inventory_file,
                             expected_hosts=hosts)
    assert sorted(inv.hosts()) == hosts
    password = (etc / 'vbmc.pass').read_text().strip()
    for port, host in enumerate(hosts, 16230):
        entry = inv.lookup(host)
        assert (entry.driver, entry.address, entry.port, entry.username) == (
            'ipmi', '127.0.0.1', port, 'admin')
        assert entry.password.reveal() == password

    # each agent's view
    for host in hosts:
        conf, _, watch = load_nova_ha_conf(main, etc / ('agent-%s.conf'
                                                        % host))
        assert conf.heartbeat.host == host
        assert conf.heartbeat.state_file == str(
            tmp_path / 'state' / ('heartbeat-epoch-%s' % host))
        assert hb_conf.plane_addresses(conf, 'target') == {
            'management': [('127.0.0.1', 4800)]}
        hb_conf.load_keyring(conf)
        assert hb_conf.interval_for(conf) == 0.2
        # the fake driver's computes are not told apart by process name
        assert watch == []


def test_secrets_are_private_and_kept(tmp_path):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    run_plugin(tmp_path, CONFIGURE)
    etc = tmp_path / 'etc'
    key = (etc / 'heartbeat.key').read_text()
    bmc = (etc / 'vbmc.pass').read_text()
    assert len(key.strip()) == 64 and int(key, 16)
    assert len(bmc.strip()) == 16 and int(bmc, 16)   # IPMI: <= 20 bytes
    for name in ('heartbeat.key', 'vbmc.pass', 'fencing-inventory.yaml'):
        assert _mode(etc / name) == 0o600, name
    assert _mode(etc / 'nova-ha.conf') == 0o640   # holds SERVICE_PASSWORD
    run_plugin(tmp_path, CONFIGURE)
    assert (etc / 'heartbeat.key').read_text() == key
    assert (etc / 'vbmc.pass').read_text() == bmc
    # an explicit key (multi-node: the same on every node) replaces it
    run_plugin(tmp_path, CONFIGURE,
               NOVA_HA_HEARTBEAT_KEY='0123456789abcdef0123456789abcdef')
    assert (etc / 'heartbeat.key').read_text() == (
        '0123456789abcdef0123456789abcdef\n')
    assert _mode(etc / 'heartbeat.key') == 0o600


def test_libvirt_node_two_planes_sal1(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(DEVSTACK_NOVA_CONF.replace(
        '[DEFAULT]\n', '[DEFAULT]\nhost = cmp-a.example.org\n'))
    run_plugin(tmp_path, CONFIGURE, VIRT_DRIVER='libvirt',
               NOVA_HA_HEARTBEAT_PLANES='management, storage',
               NOVA_HA_HEARTBEAT_HOST='127.0.0.2', NOVA_HA_SAL='1')
    etc = tmp_path / 'etc'
    agent = etc / 'agent-cmp-a.example.org.conf'
    assert [p.name for p in etc.glob('agent-*.conf')] == [agent.name]
    conf, _, watch = load_nova_ha_conf(etc / 'nova-ha.conf', agent)
    addrs = {'management': [('127.0.0.2', 4800)],
             'storage': [('127.0.0.2', 4801)]}
    assert hb_conf.plane_addresses(conf, 'target') == addrs
    assert hb_conf.plane_addresses(conf, 'listen') == addrs
    assert conf.heartbeat.sal == 1
    assert conf.heartbeat.host == 'cmp-a.example.org'
    assert {w.name: w.restart_command for w in watch} == {
        'nova-compute': ['sudo', 'systemctl', 'restart',
                         'devstack@n-cpu.service'],
        'libvirtd': ['sudo', 'systemctl', 'restart', 'libvirtd']}
    inv = inventory_mod.load(conf.fencing.inventory_file,
                             expected_hosts=['cmp-a.example.org'])
    entry = inv.lookup('cmp-a.example.org')
    assert (entry.driver, entry.address, entry.port) == (
        'ipmi', '127.0.0.1', 16230)


def test_fenced_hosts_of_a_multinode_devstack(tmp_path):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    # names YAML would read as a number or a boolean stay names
    run_plugin(tmp_path, 'configure_nova_ha_fencing',
               NOVA_HA_FENCED_HOSTS='ctl, sub1,0123,true',
               NOVA_HA_VBMC_BASE_PORT='17000', NOVA_HA_VBMC_USER="o'ps")
    inv = inventory_mod.load(str(tmp_path / 'etc' /
                                 'fencing-inventory.yaml'),
                             expected_hosts=['ctl', 'sub1', '0123', 'true'])
    assert {e.host: (e.port, e.username) for e in inv} == {
        'ctl': (17000, "o'ps"), 'sub1': (17001, "o'ps"),
        '0123': (17002, "o'ps"), 'true': (17003, "o'ps")}


@pytest.mark.parametrize('hosts', ['ok,bad/host', 'ok,-dash', 'ok,x:y'])
def test_bad_host_name_is_refused_by_name(tmp_path, hosts):
    proc = run_plugin(tmp_path, 'configure_nova_ha_fencing', check=False,
                      NOVA_HA_FENCED_HOSTS=hosts)
    assert proc.returncode != 0
    bad = hosts.split(',')[1]
    assert "compute host name '%s'" % bad in proc.stderr
    assert not (tmp_path / 'etc' / 'fencing-inventory.yaml').exists()


def test_too_long_bmc_password_is_refused(tmp_path):
    proc = run_plugin(tmp_path, 'configure_nova_ha_fencing', check=False,
                      NOVA_HA_VBMC_PASSWORD='x' * 21)
    assert proc.returncode != 0
    assert 'NOVA_HA_VBMC_PASSWORD is longer than 20 bytes' in proc.stderr
    assert 'x' * 21 not in proc.stderr
    run_plugin(tmp_path, 'configure_nova_ha_fencing',
               NOVA_HA_VBMC_PASSWORD='y' * 20)
    assert (tmp_path / 'etc' / 'vbmc.pass').read_text() == 'y' * 20 + '\n'


@pytest.mark.parametrize('var,value', [
    ('NOVA_HA_SAL', '4'), ('NOVA_HA_SAL', 'gold'), ('NOVA_HA_RACKS', 'two'),
    ('NOVA_HA_HEARTBEAT_PORT', '70000'), ('NOVA_HA_VBMC_BASE_PORT', '0'),
    ('NOVA_HA_HEARTBEAT_INTERVAL_MS', '0.2')])
def test_bad_setting_is_refused_by_name(tmp_path, var, value):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    for fn in ('configure_nova_ha', 'configure_nova_ha_fencing'):
        proc = run_plugin(tmp_path, fn, check=False, **{var: value})
        assert proc.returncode != 0
        assert "%s='%s'" % (var, value) in proc.stderr
    assert not (tmp_path / 'etc' / 'nova-ha.conf').exists()


def test_weigher_can_be_left_out(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(DEVSTACK_NOVA_CONF)
    run_plugin(tmp_path, 'configure_nova_ha_scheduler "$NOVA_CONF"',
               NOVA_HA_WEIGHER='')
    fs = load_nova_scheduler_conf(nova_conf).filter_scheduler
    assert fs.weight_classes == ['nova.scheduler.weights.all_weighers']
    assert fs.enabled_filters == NOVA_FILTERS.split(',') + HA_FILTERS


def test_short_heartbeat_key_is_refused(tmp_path):
    proc = run_plugin(tmp_path, 'configure_nova_ha', check=False,
                      NOVA_HA_HEARTBEAT_KEY='short-key')
    assert proc.returncode != 0
    assert 'NOVA_HA_HEARTBEAT_KEY is shorter than 16 bytes' in proc.stderr
    assert 'short-key' not in proc.stderr


def test_no_plane_is_refused(tmp_path):
    proc = run_plugin(tmp_path, 'configure_nova_ha', check=False,
                      NOVA_HA_HEARTBEAT_PLANES=' , ')
    assert proc.returncode != 0
    assert "NOVA_HA_HEARTBEAT_PLANES=' , '" in proc.stderr


def test_runtime_requirements_leave_devstack_nova_alone(tmp_path):
    out = run_plugin(tmp_path, 'nova_ha_runtime_requirements').stdout
    got = out.split()
    names = [r.split('>')[0].split('=')[0].split('<')[0].lower()
             for r in got]
    assert 'nova' not in names and 'openstack-placement' not in names
    expected = []
    for line in open(os.path.join(REPO, 'requirements.txt')):
        line = line.split('#')[0].replace(' ', '').strip()
        if line and not line.lower().startswith(('nova=', 'nova>',
                                                 'openstack-placement')):
            expected.append(line)
    assert got == expected


def test_rack_split_is_contiguous(tmp_path):
    out = run_plugin(tmp_path, '''
        for i in 0 1 2 3 4 5; do nova_ha_rack_of $i 6 3; done
        for i in 0 1 2 3 4; do nova_ha_rack_of $i 5 2; done
        for i in 0 1; do nova_ha_rack_of $i 2 3; done
    ''').stdout.split()
    assert out == ['1', '1', '2', '2', '3', '3',
                   '1', '1', '1', '2', '2',
                   '1', '2']


# -- plugin.sh: what each phase runs ----------------------------------------

# Stand-ins for the devstack helpers only plugin.sh's phases reach (package
# installs, keystone, sudo): they record their arguments.
PHASE_STUBS = r'''
function pip_install { echo "pip_install $*" >> "$CALL_LOG"; }
function install_package { echo "install_package $*" >> "$CALL_LOG"; }
function create_service_user { echo "create_service_user $*" >> "$CALL_LOG"; }
function sudo { echo "sudo $*" >> "$CALL_LOG"; "$@"; }
'''


def run_phase(tmp_path, *args, **overrides):
    overrides.setdefault('CALL_LOG', str(tmp_path / 'calls.log'))
    overrides.setdefault('STACK_USER', pwd.getpwuid(os.getuid()).pw_name)
    return run_plugin(tmp_path, PHASE_STUBS + 'source %s %s' % (
        _sh_quote(os.path.join(DEVSTACK, 'plugin.sh')),
        ' '.join(_sh_quote(a) for a in args)), **overrides)


def _calls(tmp_path):
    log = tmp_path / 'calls.log'
    return log.read_text().splitlines() if log.exists() else []


ALL_SERVICES = ('key,keystone,n-api,n-sch,n-cpu,nova-ha,nova-ha-evacuator,'
                'nova-ha-agent,nova-ha-fencing')


def test_phase_install(tmp_path):
    run_phase(tmp_path, 'stack', 'install', ENABLED_SERVICES=ALL_SERVICES)
    calls = _calls(tmp_path)
    assert calls[0].startswith('pip_install ')
    reqs = calls[0].split()[1:]
    assert 'nova==34.0.0' not in reqs and any(
        r.startswith('pyghmi') for r in reqs)
    assert calls[1:] == ['pip_install --no-deps -e %s' % REPO,
                         'install_package ipmitool']


def test_phase_post_config_controller(tmp_path):
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(DEVSTACK_NOVA_CONF)
    state = tmp_path / 'var-nova-ha'
    run_phase(tmp_path, 'stack', 'post-config', ENABLED_SERVICES=ALL_SERVICES,
              NOVA_HA_STATE_DIR=str(state))
    assert state.is_dir() and _mode(state) == 0o750
    assert 'create_service_user nova-ha admin' in _calls(tmp_path)
    fs = load_nova_scheduler_conf(nova_conf).filter_scheduler
    assert fs.enabled_filters == NOVA_FILTERS.split(',') + HA_FILTERS
    etc = tmp_path / 'etc'
    for name in ('nova-ha.conf', 'heartbeat.key', 'fencing-inventory.yaml',
                 'agent-dvs1.conf', 'agent-dvs3.conf'):
        assert (etc / name).exists(), name


def test_phase_post_config_compute_subnode(tmp_path):
    """A compute-only subnode: no scheduler, evacuator or fencing."""
    nova_conf = tmp_path / 'nova.conf'
    nova_conf.write_text(DEVSTACK_NOVA_CONF)
    # local.conf: disable_service nova-ha-evacuator nova-ha-fencing
    subnode = dict(ENABLED_SERVICES='n-cpu',
                   DISABLED_SERVICES='nova-ha-evacuator,nova-ha-fencing',
                   NUMBER_FAKE_NOVA_COMPUTE='1', HOSTNAME='sub')
    # without the controller's heartbeat key its hosts would look dead
    proc = run_plugin(tmp_path, PHASE_STUBS + 'source %s stack post-config'
                      % _sh_quote(os.path.join(DEVSTACK, 'plugin.sh')),
                      check=False, CALL_LOG=str(tmp_path / 'calls.log'),
                      STACK_USER=pwd.getpwuid(os.getuid()).pw_name,
                      **subnode)
    assert proc.returncode != 0
    assert 'set NOVA_HA_HEARTBEAT_KEY' in proc.stderr
    key = 'k3y-of-the-controller-0123456789'
    run_phase(tmp_path, 'stack', 'post-config', NOVA_HA_HEARTBEAT_KEY=key,
              **subnode)
    assert (tmp_path / 'etc' / 'heartbeat.key').read_text() == key + '\n'
    assert nova_conf.read_text() == DEVSTACK_NOVA_CONF
    assert not any(c.startswith('create_service_user')
                   for c in _calls(tmp_path))
    etc = tmp_path / 'etc'
    assert sorted(p.name for p in etc.iterdir()) == [
        'agent-sub1.conf', 'heartbeat.key', 'nova-ha.conf']


def test_phases_do_nothing_without_the_nova_ha_service(tmp_path):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    for phase in (('stack', 'install'), ('stack', 'post-config'),
                  ('stack', 'extra'), ('unstack',), ('clean',)):
        # local.conf: disable_service nova-ha
        run_phase(tmp_path, *phase, ENABLED_SERVICES='n-api,n-sch,n-cpu',
                  DISABLED_SERVICES='nova-ha')
    assert _calls(tmp_path) == []
    assert (tmp_path / 'nova.conf').read_text() == DEVSTACK_NOVA_CONF
    assert list((tmp_path / 'etc').iterdir()) == []


def test_phase_clean_removes_config_and_state(tmp_path):
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    run_phase(tmp_path, 'stack', 'post-config', ENABLED_SERVICES=ALL_SERVICES)
    assert (tmp_path / 'etc' / 'nova-ha.conf').exists()
    run_phase(tmp_path, 'clean', ENABLED_SERVICES=ALL_SERVICES)
    assert not (tmp_path / 'etc').exists()
    assert not (tmp_path / 'state').exists()


# A stand-in for the openstack client: a cloud whose compute services and
# aggregates live in files; every call is logged.
FAKE_OPENSTACK = r'''
function openstack {
    echo "$*" >> "$OSC_LOG"
    [[ "$1 $2" == "--os-cloud devstack-admin" ]] || return 2
    shift 2
    case "$1 $2" in
        "compute service")
            cat "$OSC_DIR/computes" ;;
        "aggregate show")
            [[ -f "$OSC_DIR/agg-$3" ]] || return 1
            if [[ "${4:-}" == "-f" ]]; then
                printf '['; sed "s/.*/'&'/" "$OSC_DIR/agg-$3" | paste -sd, |
                    sed 's/,/, /g' | tr -d '\n'; echo ']'
            fi ;;
        "aggregate create")
            : > "$OSC_DIR/agg-$3" ;;
        "aggregate set")
            echo "$4" > "$OSC_DIR/prop-$5" ;;
        "aggregate add")
            [[ -f "$OSC_DIR/agg-$4" ]] || return 1
            echo "$5" >> "$OSC_DIR/agg-$4" ;;
        *) return 2 ;;
    esac
}
'''


def test_topology_aggregates(tmp_path):
    osc = tmp_path / 'osc'
    osc.mkdir()
    # the service list may repeat a host and is not sorted
    (osc / 'computes').write_text('h4\nh1\nh5\nh2\nh3\nh1\n')
    env = dict(OSC_DIR=str(osc), OSC_LOG=str(tmp_path / 'osc.log'),
               NOVA_HA_RACKS='2', NOVA_HA_SAL='1')
    for _ in range(2):   # idempotent
        run_plugin(tmp_path, FAKE_OPENSTACK + 'create_nova_ha_topology',
                   **env)

    def read(name):
        return (osc / name).read_text().split()
    assert read('agg-nova-ha-rack-r1') == ['h1', 'h2', 'h3']
    assert read('agg-nova-ha-rack-r2') == ['h4', 'h5']
    assert read('agg-nova-ha-sal') == ['h1', 'h2', 'h3', 'h4', 'h5']
    assert read('prop-nova-ha-rack-r1') == ['ha:rack=r1']
    assert read('prop-nova-ha-rack-r2') == ['ha:rack=r2']
    assert read('prop-nova-ha-sal') == ['ha:sal=1']
    log = (tmp_path / 'osc.log').read_text()
    assert log.count('aggregate create') == 3
    assert log.count('aggregate add host') == 10


def test_topology_without_racks_or_sal(tmp_path):
    osc = tmp_path / 'osc'
    osc.mkdir()
    (osc / 'computes').write_text('h1\n')
    run_plugin(tmp_path, FAKE_OPENSTACK + 'create_nova_ha_topology',
               OSC_DIR=str(osc), OSC_LOG=str(tmp_path / 'osc.log'),
               NOVA_HA_RACKS='0')
    assert sorted(p.name for p in osc.iterdir()) == ['computes']


# -- start and stop ----------------------------------------------------------

def _wait_ready(log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and 'ready' in log.read_text():
            return
        time.sleep(0.05)
    pytest.fail('%s: virtual BMC not ready: %s' % (
        log, log.read_text() if log.exists() else '(no output)'))


def _free_udp_base(count):
    for base in range(20000, 60000, 97):
        socks = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(('127.0.0.1', base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    pytest.skip('no free UDP ports on 127.0.0.1')


def test_start_runs_one_agent_per_compute_and_fencing_works(tmp_path):
    """start_nova_ha's units (run_process), and the virtual BMCs it starts
    really fence: ipmitool through `nova-ha fence` with the written
    nova-ha.conf and inventory."""
    if shutil.which('ipmitool') is None:
        pytest.skip('ipmitool not installed (Debian package ipmitool)')
    (tmp_path / 'nova.conf').write_text(DEVSTACK_NOVA_CONF)
    services = ('key,n-api,n-sch,n-cpu,nova-ha,nova-ha-evacuator,'
                'nova-ha-agent,nova-ha-fencing')
    base = _free_udp_base(3)
    env = dict(ENABLED_SERVICES=services, NOVA_HA_VBMC_BASE_PORT=str(base),
               STUB_RUN_MATCH='nova-ha-vbmc-*')
    pids = []
    try:
        run_plugin(tmp_path, CONFIGURE + 'init_nova_ha\nstart_nova_ha\n',
                   **env)
        pids = [int(p.read_text()) for p in tmp_path.glob('*.pid')]
        records = [line.split('\t') for line in
                   (tmp_path / 'run.log').read_text().splitlines()]
        units = {r[0]: r[1] for r in records}
        etc = tmp_path / 'etc'
        conf = str(etc / 'nova-ha.conf')
        assert units == {
            'nova-ha-vbmc-1': '%s -m nova_ha.sim.vbmc --port %d --address '
                              '127.0.0.1 --user admin' % (sys.executable,
                                                          base),
            'nova-ha-vbmc-2': '%s -m nova_ha.sim.vbmc --port %d --address '
                              '127.0.0.1 --user admin' % (sys.executable,
                                                          base + 1),
            'nova-ha-vbmc-3': '%s -m nova_ha.sim.vbmc --port %d --address '
                              '127.0.0.1 --user admin' % (sys.executable,
                                                          base + 2),
            'nova-ha-evacuator': '%s/nova-ha-evacuator --config-file %s'
                                 % (BIN_DIR, conf),
            'nova-ha-agent-1': '%s/nova-ha-agent --config-file %s '
                               '--config-file %s/agent-dvs1.conf'
                               % (BIN_DIR, conf, etc),
            'nova-ha-agent-2': '%s/nova-ha-agent --config-file %s '
                               '--config-file %s/agent-dvs2.conf'
                               % (BIN_DIR, conf, etc),
            'nova-ha-agent-3': '%s/nova-ha-agent --config-file %s '
                               '--config-file %s/agent-dvs3.conf'
                               % (BIN_DIR, conf, etc),
        }
        password = (etc / 'vbmc.pass').read_text().strip()
        assert {r[2] for r in records} == {'', 'NOVA_HA_VBMC_PASSWORD=%s'
                                           % password}
        # init_nova_ha created the journal
        assert (tmp_path / 'state' / 'journal.sqlite').stat().st_size > 0

        for i in (1, 2, 3):
            _wait_ready(tmp_path / ('nova-ha-vbmc-%d.log' % i))
        fence = [os.path.join(BIN_DIR, 'nova-ha'), '--config-file', conf,
                 'fence']
        status = subprocess.run(fence + ['status', 'dvs2'],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0, status.stdout + status.stderr
        assert 'power on' in status.stdout
        off = subprocess.run(fence + ['off', 'dvs2'], capture_output=True,
                             text=True, timeout=60)
        assert off.returncode == 0, off.stdout + off.stderr
        assert 'dvs2: FENCED' in off.stdout
        other = subprocess.run(fence + ['status', 'dvs3'],
                               capture_output=True, text=True, timeout=60)
        assert 'power on' in other.stdout
        assert password not in status.stdout + off.stdout + off.stderr

        # unstack stops every unit it started
        (tmp_path / 'run.log').write_text('')
        run_plugin(tmp_path, 'stop_nova_ha', **env)
        stopped = sorted(line.split('\t')[1] for line in
                         (tmp_path / 'run.log').read_text().splitlines())
        assert stopped == sorted(units)
        assert not list(tmp_path.glob('*.pid'))
        for pid in pids:
            _wait_gone(pid)
    finally:
        # whatever run_process started, even if a step above failed
        pids += [int(p.read_text()) for p in tmp_path.glob('*.pid')]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_gone(pid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # not our child (bash started it and exited): no waitpid; a
        # zombie nobody reaps (PID 1 of a container may not) is gone too
        try:
            with open('/proc/%d/stat' % pid) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.05)
    pytest.fail('process %d still running after stop_nova_ha' % pid)
