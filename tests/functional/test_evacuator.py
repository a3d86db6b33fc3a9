"""The evacuator as a separate process against ``nova-ha-sim``.

Real Nova over HTTP, real IPMI to the virtual BMCs, real UDP heartbeats
from the sim's per-host agents, the evacuator's own SQLite journal.
"""

import os
import subprocess

import pytest

from tests.functional import procs

RACK_OF = {'compute01': 'r1', 'compute02': 'r1', 'compute03': 'r2',
           'compute04': 'r2', 'compute05': 'r3', 'compute06': 'r3'}


def _sim_and_evacuator(tmp_path, extra_conf=''):
    """Six SAL1 hosts in three racks and one evacuator (its configuration
    with ``extra_conf`` appended); no traceback may reach its stderr."""
    sim = procs.Sim(tmp_path / 'sim', hosts=6, racks=3, sal=1,
                    watchdog_restart_delay=4)
    conf = sim.state['evacuator_configs'][0]
    if extra_conf:
        path = tmp_path / 'ev.conf'
        path.write_text(open(conf).read() + extra_conf)
        os.chmod(path, 0o600)
        conf = str(path)
    ev = procs.Evacuator(conf)
    try:
        ev.wait_running()
        yield sim, ev
    finally:
        out, err = ev.stop()
        sim.stop()
    assert 'Traceback' not in err, err


@pytest.fixture
def cloud(tmp_path):
    yield from _sim_and_evacuator(tmp_path)


@pytest.fixture
def cloud_two_failures(tmp_path):
    """``cloud`` configured to let two hosts of its six be fenced in one
    window (the default small-cloud rule allows one: [guard]
    small_cloud_max_fenced)."""
    yield from _sim_and_evacuator(
        tmp_path, '\n[guard]\nsmall_cloud_max_fenced = 2\n')


@pytest.fixture
def sim_only(tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=2, racks=1)
    try:
        yield sim
    finally:
        sim.stop()


def recoveries(ev):
    j = procs.journal(ev.config_file)
    try:
        return j.list_recoveries()
    finally:
        j.close()


def wait_recovered(ev, host, timeout=60):
    def done():
        j = procs.journal(ev.config_file)
        try:
            for rec in j.list_recoveries(host=host):
                if rec.state in ('done', 'incomplete'):
                    return rec, j.timeline(rec.id), j.list_recovery_items(
                        rec.id)
        finally:
            j.close()
    return procs.wait_for(done, timeout, interval=0.2,
                          what='recovery of %s' % host)


def alarms(ev, **kw):
    j = procs.journal(ev.config_file)
    try:
        return j.list_alarms(status='all', **kw)
    finally:
        j.close()


def compute_service(sim, host):
    return sim.nova.services.list(host=host, binary='nova-compute')[0]


def rack_group(sim, name, size):
    group = sim.nova.server_groups.create(name=name, policy='anti-affinity')
    servers = procs.boot(sim, name, count=size, hints={
        'group': group.id, 'ha_anti_affinity_level': 'rack'})
    return group, servers


def assert_one_per_rack(sim, prefix):
    where = {n: h for n, h in procs.placement(sim).items()
             if n.startswith(prefix)}
    racks = [RACK_OF[h] for h in where.values()]
    assert len(set(racks)) == len(racks), 'rack anti-affinity broken: %s' \
        % where


def step_names(timeline):
    return [t.step.split(':')[0] for t in timeline]


@pytest.mark.parametrize('fault', ['power_loss', 'hang'])
def test_host_failure_is_fenced_then_evacuated(cloud, fault):
    sim, ev = cloud
    rack_group(sim, 'vnf', 3)
    assert_one_per_rack(sim, 'vnf')
    victim = procs.placement(sim)['vnf-1']
    procs.boot(sim, 'plain', count=2, host=victim)

    sim.inject(victim, fault)
    rec, timeline, items = wait_recovered(ev, victim)

    assert rec.state == 'done', (rec, items)
    names = step_names(timeline)
    # Fence first, then force down, then evacuate.
    assert names.index('detected') < names.index('fenced') \
        < names.index('forced_down') < names.index('evacuate') \
        < names.index('active')
    assert {i.state for i in items} == {'done'}
    assert len(items) == 3
    # The BMC says off, nova has the service forced down and disabled.
    assert sim.host(victim)['power'] == 'off'
    svc = compute_service(sim, victim)
    assert svc.forced_down and svc.status == 'disabled'
    assert 'nova-ha' in svc.disabled_reason
    # Every instance is ACTIVE elsewhere; the group still one per rack.
    for server in sim.nova.servers.list():
        assert server.status == 'ACTIVE'
        assert getattr(server, 'OS-EXT-SRV-ATTR:host') != victim
    assert_one_per_rack(sim, 'vnf')
    # The member had only one legal destination: the other host of its rack.
    assert RACK_OF[procs.placement(sim)['vnf-1']] == RACK_OF[victim]
    host_down = alarms(ev, host=victim, types=['HOST_DOWN'])
    assert host_down and host_down[0].severity == 'CRITICAL'
    assert host_down[0].rack == RACK_OF[victim]

    # The operator view of the same recovery.
    res = ev.nova_ha('recovery', 'show', str(rec.id))
    assert res.returncode == 0, res.stderr
    assert 'fenced' in res.stdout and 'forced_down' in res.stdout

    # The host stays out until an operator returns it.
    sim.heal(victim)
    procs.wait_for(lambda: ev.nova_ha('host', 'enable', victim).returncode
                   == 0, 30, interval=0.5, what='host enable')
    svc = compute_service(sim, victim)
    assert not svc.forced_down and svc.status == 'enabled'


def test_service_crash_alarms_and_restarts_without_evacuation(cloud):
    sim, ev = cloud
    procs.boot(sim, 'plain', count=1, host='compute03')
    sim.inject('compute03', 'service_crash')
    found = procs.wait_for(lambda: alarms(ev, host='compute03',
                                          types=['SERVICE_DOWN']), 15,
                           what='SERVICE_DOWN alarm')
    assert found[0].severity == 'MAJOR'
    # The agent's watchdog restarts nova-compute; the alarm clears.
    procs.wait_for(lambda: alarms(ev, host='compute03',
                                  types=['PROCESS_RESTARTED']), 20,
                   what='PROCESS_RESTARTED')
    procs.wait_for(lambda: compute_service(sim, 'compute03').state == 'up',
                   15, what='nova-compute up again')
    assert all(a.cleared_at for a in alarms(ev, host='compute03',
                                            types=['SERVICE_DOWN']))
    assert not recoveries(ev)
    assert procs.placement(sim)['plain'] == 'compute03'
    assert sim.host('compute03')['power'] == 'on'     # not fenced


def test_mgmt_partition_alarms_without_evacuation(cloud):
    sim, ev = cloud
    procs.boot(sim, 'plain', count=1, host='compute04')
    sim.inject('compute04', 'mgmt_partition')
    found = procs.wait_for(lambda: alarms(ev, host='compute04',
                                          types=['PARTITION']), 15,
                           what='PARTITION alarm')
    assert 'management' in found[0].message
    assert not recoveries(ev)
    assert procs.placement(sim)['plain'] == 'compute04'
    assert sim.host('compute04')['power'] == 'on'


def test_dead_bmc_blocks_evacuation_until_operator_confirms(cloud):
    sim, ev = cloud
    procs.boot(sim, 'plain', count=2, host='compute05')
    sim.inject('compute05', 'bmc_unreachable')
    sim.inject('compute05', 'hang')
    crit = procs.wait_for(
        lambda: alarms(ev, host='compute05', types=['FENCE_FAILED']), 40,
        what='FENCE_FAILED alarm')
    assert crit[0].severity == 'CRITICAL'
    # Never evacuated while the power state is unknown.
    assert set(procs.placement(sim).values()) == {'compute05'}
    rec = recoveries(ev)[0]
    assert rec.state == 'open' and rec.fenced_at is None

    res = ev.nova_ha('fence', 'confirm', 'compute05', '--operator',
                     'alice', '--reason', 'pulled the power cord')
    assert res.returncode == 0, res.stderr
    rec, timeline, items = wait_recovered(ev, 'compute05')
    assert rec.state == 'done'
    fenced = [t for t in timeline if t.step == 'fenced'][0]
    assert 'alice' in fenced.detail
    assert all(h != 'compute05' for h in procs.placement(sim).values())


def test_group_members_on_failed_hosts_all_recovered(cloud_two_failures):
    """Four members of one anti-affinity group, two on each failed host's
    rack: evacuated one at a time, no late-check failures."""
    sim, ev = cloud_two_failures
    group = sim.nova.server_groups.create(name='g4', policy='anti-affinity')
    procs.boot(sim, 'g4', count=4, hints={'group': group.id})
    where = procs.placement(sim)
    victims = sorted({where['g4-1'], where['g4-2']})
    for host in victims:
        sim.inject(host, 'power_loss')
    results = [wait_recovered(ev, h) for h in victims]
    for rec, timeline, items in results:
        assert rec.state == 'done', items
        assert all(i.attempts == 1 for i in items), items
    after = {n: h for n, h in procs.placement(sim).items()
             if n.startswith('g4')}
    assert len(set(after.values())) == 4, after
    assert not set(after.values()) & set(victims)
    for s in sim.nova.servers.list():
        assert s.status == 'ACTIVE'


def test_refuses_to_start_without_inventory_entry(sim_only, tmp_path):
    sim = sim_only
    conf = open(sim.state['evacuator_configs'][0]).read()
    inv = tmp_path / 'inventory.yaml'
    import yaml
    full = yaml.safe_load(open(sim.dir + '/fencing-inventory.yaml'))
    del full['hosts']['compute02']
    inv.write_text(yaml.safe_dump(full))
    bad = tmp_path / 'bad.conf'
    bad.write_text(conf.replace(sim.dir + '/fencing-inventory.yaml',
                                str(inv)).replace('journal.sqlite',
                                                  'other.sqlite'))
    res = subprocess.run([procs.PY, '-m', 'nova_ha.cmd.evacuator',
                          '--config-file', str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert 'compute02' in res.stderr and 'inventory' in res.stderr


def test_refuses_to_start_with_unknown_plane(sim_only, tmp_path):
    sim = sim_only
    conf = open(sim.state['evacuator_configs'][0]).read()
    bad = tmp_path / 'bad.conf'
    bad.write_text(conf.replace('listen = storage=', 'listen = backup=')
                   .replace('journal.sqlite', 'other.sqlite'))
    res = subprocess.run([procs.PY, '-m', 'nova_ha.cmd.evacuator',
                          '--config-file', str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert 'backup' in res.stderr


def test_recovery_plan_leaves_out_hosts_placement_marks_disabled(sim_only):
    """Issue 14: a host whose placement provider has COMPUTE_STATUS_DISABLED
    (nova's scheduler asks placement for providers without it) is read
    through the evacuator's own configuration and left out of the plan."""
    import types

    from oslo_config import cfg

    import nova_ha.conf
    from nova_ha import nova_api
    from nova_ha.evacuator import placement_plan
    sim = sim_only
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    conf(['--config-file', sim.state['evacuator_configs'][0]],
         project='nova-ha-test')
    engine = types.SimpleNamespace(conf=conf, ops=types.SimpleNamespace(
        nova=nova_api.client(conf=conf)))
    planner = placement_plan.Planner(engine)
    assert planner._read_disabled() == set()
    svc = compute_service(sim, 'compute02')
    sim.nova.services.disable(svc.id)
    procs.wait_for(lambda: planner._read_disabled() == {'compute02'}, 30,
                   interval=0.2, what='compute02 disabled in placement')
    sim.nova.services.enable(svc.id)
    procs.wait_for(lambda: planner._read_disabled() == set(), 30,
                   interval=0.2, what='compute02 enabled in placement')
