"""etc/: the generated nova-ha.conf.sample is current and deterministic; the
nova.conf snippet names real nova filters and weighers; the topology example
builds a consistent two-rack topology."""

import configparser
import difflib
import os
import socket
import stat
import subprocess
import sys

from oslo_config import cfg
from oslo_config import generator
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
GEN_CONF = os.path.join(ROOT, 'etc', 'oslo-config-generator', 'nova-ha.conf')
SAMPLE = os.path.join(ROOT, 'etc', 'nova-ha.conf.sample')
SNIPPET = os.path.join(ROOT, 'etc', 'nova.conf.snippet')
TOPOLOGY = os.path.join(ROOT, 'etc', 'topology-example.sh')

STALE = 'etc/nova-ha.conf.sample is stale: run make sample-config'


def _generator_conf(output_file):
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(['--config-file', GEN_CONF, '--output-file', str(output_file)])
    return conf


def _generate(output_file):
    generator.generate(_generator_conf(output_file))
    with open(output_file) as f:
        return f.read()


def test_generator_config_names_the_checked_in_sample():
    parser = configparser.ConfigParser(strict=False)
    parser.read(GEN_CONF)
    assert parser['DEFAULT']['output_file'] == 'etc/nova-ha.conf.sample'
    assert parser['DEFAULT']['wrap_width'] == '79'


def test_sample_is_current(tmp_path):
    fresh = _generate(tmp_path / 'nova-ha.conf.sample')
    with open(SAMPLE) as f:
        checked_in = f.read()
    if fresh != checked_in:
        diff = ''.join(list(difflib.unified_diff(
            checked_in.splitlines(True), fresh.splitlines(True),
            'etc/nova-ha.conf.sample (checked in)',
            'etc/nova-ha.conf.sample (generated now)'))[:60])
        pytest.fail('%s\n%s' % (STALE, diff))


def test_sample_has_every_nova_ha_group():
    from nova_ha.conf import opts
    with open(SAMPLE) as f:
        text = f.read()
    for group, _ in opts.list_opts():
        name = getattr(group, 'name', group)
        assert '\n[%s]\n' % name in text, name
    for library_group in ('oslo_messaging_notifications',):
        assert '\n[%s]\n' % library_group in text


def _namespace_opts():
    conf = _generator_conf(os.devnull)
    groups = generator._get_groups(
        generator._list_opts(conf.namespace))
    for group_name, group in groups.items():
        for namespace, opts in group['namespaces']:
            for opt in opts:
                yield namespace, group_name, opt


def test_no_machine_specific_default_leaks_into_the_sample():
    """An option whose default is computed from this machine (host name,
    paths of the checkout or the virtualenv, the user's home) must set
    sample_default, or the sample differs from one machine to the next."""
    host = socket.gethostname()
    local = [p for p in (ROOT, sys.prefix, os.path.expanduser('~'),
                         os.getcwd()) if p and p != '/']
    leaks = []
    for namespace, group, opt in _namespace_opts():
        if opt.sample_default is not None:
            continue
        values = opt.default if isinstance(opt.default, (list, tuple)) \
            else [opt.default]
        for value in values:
            if not isinstance(value, str):
                continue
            if value == host or any(p in value for p in local):
                leaks.append('[%s] %s (from %s) defaults to %r'
                             % (group, opt.dest, namespace, value))
    assert not leaks, 'set sample_default= on: %s' % '; '.join(leaks)


def test_computed_defaults_show_placeholders():
    with open(SAMPLE) as f:
        text = f.read()
    # [evacuator] name and [heartbeat] host default to this machine's name.
    assert '#name = <host>\n' in text
    assert '#host = <hostname>\n' in text


# --- etc/nova.conf.snippet ---------------------------------------------------

def _snippet():
    """The snippet's options: {(section, key): [values]} (keys may repeat,
    as nova's MultiStrOpt available_filters does)."""
    values = {}
    section = None
    with open(SNIPPET) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if line.startswith('['):
                section = line.strip('[]')
                continue
            key, sep, value = line.partition('=')
            assert sep and section, 'etc/nova.conf.snippet:%d: %r' % (
                n, line)
            values.setdefault((section, key.strip()), []).append(
                value.strip())
    return values


def test_snippet_filters_load_through_nova():
    from nova.scheduler import filters
    snippet = _snippet()
    available = snippet[('filter_scheduler', 'available_filters')]
    assert 'nova_ha.scheduler.filters.all_filters' in available
    classes = filters.HostFilterHandler().get_matching_classes(available)
    by_name = {c.__name__: c for c in classes}
    enabled = snippet[('filter_scheduler', 'enabled_filters')][0].split(',')
    missing = [n for n in enabled if n not in by_name]
    assert not missing, 'enabled_filters names unknown filters: %s' % missing
    for name in enabled:
        assert issubclass(by_name[name], filters.BaseHostFilter), name
    for name in ('SALFilter', 'FaultDomainAntiAffinityFilter',
                 'MigrationPolicyFilter'):
        assert name in enabled
        assert by_name[name].__module__.startswith('nova_ha.'), name


def test_snippet_weighers_load_through_nova():
    from nova.scheduler import weights
    snippet = _snippet()
    [value] = snippet[('filter_scheduler', 'weight_classes')]
    paths = value.split(',')
    classes = weights.HostWeightHandler().get_matching_classes(paths)
    ours = [c for c in classes if c.__module__.startswith('nova_ha.')]
    assert [c.__name__ for c in ours] == ['FaultDomainSpreadWeigher']
    assert all(issubclass(c, weights.BaseHostWeigher) for c in classes)


def test_snippet_nova_ha_options_exist_and_parse(tmp_path):
    """The nova-ha groups of the snippet are nova-ha options with valid
    values (nova-scheduler registers them when it loads the filters)."""
    import nova_ha.conf
    snippet = _snippet()
    ours = {(s, k): v for (s, k), v in snippet.items()
            if s != 'filter_scheduler'}
    assert ours
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    path = tmp_path / 'nova.conf'
    path.write_text(open(SNIPPET).read())
    conf(['--config-file', str(path)], project='nova')
    for (section, key), [value] in ours.items():
        assert key in conf[section], '[%s] %s' % (section, key)
        conf[section][key]        # parses (raises on a bad value)


# --- etc/topology-example.sh --------------------------------------------------

FAKE_OPENSTACK = '''#!%s
import json, sys
with open(%r, 'a') as f:
    f.write(json.dumps(sys.argv[1:]) + '\\n')
'''


def _run_topology_example(tmp_path):
    log = tmp_path / 'calls.jsonl'
    fake = tmp_path / 'openstack'
    fake.write_text(FAKE_OPENSTACK % (sys.executable, str(log)))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, OPENSTACK=str(fake))
    res = subprocess.run(['bash', TOPOLOGY], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    import json
    return [json.loads(line) for line in log.read_text().splitlines()]


def _aggregates(calls):
    """Replay `openstack aggregate create/set/add host` calls."""
    aggs = {}
    for argv in calls:
        assert argv[0] == 'aggregate', argv
        verb, rest = argv[1], argv[2:]
        if verb in ('create', 'set'):
            name = rest[-1]
            agg = aggs.setdefault(name, {'name': name, 'hosts': [],
                                         'metadata': {}})
            if verb == 'create':
                assert len([a for a in calls if a[:2] == ['aggregate',
                            'create'] and a[-1] == name]) == 1, name
            it = iter(rest[:-1])
            for opt in it:
                if opt == '--property':
                    key, _, value = next(it).partition('=')
                    agg['metadata'][key] = value
                elif opt == '--zone':
                    agg['availability_zone'] = next(it)
                else:
                    raise AssertionError('unexpected option %r' % opt)
        elif verb == 'add':
            assert rest[0] == 'host', argv
            aggs[rest[1]]['hosts'].append(rest[2])
        else:
            raise AssertionError('unexpected command %r' % argv)
    return list(aggs.values())


def test_topology_example_is_valid_bash():
    res = subprocess.run(['bash', '-n', TOPOLOGY], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr


def test_topology_example_builds_a_consistent_two_rack_cloud(tmp_path):
    from nova_ha.cmd import status
    from nova_ha import topology
    aggs = _aggregates(_run_topology_example(tmp_path))
    hosts = sorted({h for a in aggs for h in a['hosts']})
    topo = topology.Topology.from_aggregates(aggs, hosts=hosts)
    racks = topo.domains('rack')
    assert len(racks) == 2 and all(len(h) == 2 for h in racks.values())
    assert len(topo.domains('power_domain')) == 2
    for host in hosts:
        assert topo.domain(host, 'rack') not in (None, topology.CONFLICT)
        assert topo.domain(host, 'power_domain') not in (
            None, topology.CONFLICT)
        assert topo.host(host).sal == 1, host
        assert topo.host(host).downtime_ms is not None, host
    assert not topo.conflicts and not topo.problems
    assert not topo.nesting_violations()
    assert not topo.unknown_keys()
    # What `nova-ha-status upgrade check` says about these aggregates.
    checks = status.Checks(lambda: status.NovaView(aggs, hosts, []),
                           levels=topology.DEFAULT_LEVELS)
    for check in (checks._check_topology, checks._check_ha_keys):
        result = check()
        assert result.code == status.SUCCESS, result.details
