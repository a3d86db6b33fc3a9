"""``openstack ha ...`` (the OpenStackClient plugin) as an operator runs it:
the real ``openstack`` console script in its own process, against the
simulated cloud (``nova-ha-sim serve``), its evacuator's journal and its
Nova. No Keystone: the commands are ``auth_required = False`` and read
nova-ha.conf (the sim's generated evacuator config)."""

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from tests.functional import procs

OPENSTACK = os.path.join(os.path.dirname(sys.executable), 'openstack')


def openstack(conf, *args, timeout=300, env_conf=None):
    """``openstack ha ARGS --ha-config-file CONF`` -> (rc, stdout, stderr);
    no OS_* variable or clouds.yaml reaches it. env_conf: name the file
    with $NOVA_HA_CONFIG instead."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('OS_', 'NOVA_HA_'))}
    env['HOME'] = os.path.dirname(conf or env_conf)
    cmd = [OPENSTACK, 'ha'] + list(args)
    if conf is not None:
        cmd += ['--ha-config-file', conf]
    if env_conf is not None:
        env['NOVA_HA_CONFIG'] = env_conf
    res = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=timeout, env=env)
    return res.returncode, res.stdout, res.stderr


def openstack_json(conf, *args, **kw):
    rc, out, err = openstack(conf, *args, '-f', 'json', **kw)
    assert rc == 0, (args, rc, out, err)
    return json.loads(out)


def parallel(calls):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda c: c(), calls))


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    sim = procs.Sim(tmp_path_factory.mktemp('osc') / 'sim', hosts=3,
                    racks=3)
    ev = procs.Evacuator(sim.state['evacuator_configs'][0])
    try:
        yield sim, ev
    finally:
        out, err = ev.stop()
        sim.stop()
    assert 'Traceback' not in err, err


@pytest.fixture(scope='module')
def recovered(cloud):
    """A real recovery: compute01 loses power with a server on it."""
    sim, ev = cloud
    procs.boot(sim, 'victim', host='compute01')

    def monitoring():
        """The evacuator has created its journal and sees every host."""
        import sqlalchemy
        j = procs.journal(ev.config_file)
        try:
            states = {h.host: h.state for h in j.list_host_states()}
        except sqlalchemy.exc.OperationalError:
            return False          # schema not created yet
        finally:
            j.close()
        return sorted(states) == sorted(sim.state['hosts']) and set(
            states.values()) == {'OK'}
    procs.wait_for(monitoring, 60, interval=0.3,
                   what='the evacuator to see every host OK')
    sim.inject('compute01', 'power_loss')

    def done():
        j = procs.journal(ev.config_file)
        try:
            for rec in j.list_recoveries(host='compute01'):
                if rec.state in ('done', 'incomplete'):
                    return rec
        finally:
            j.close()
    rec = procs.wait_for(done, 90, interval=0.3,
                         what='recovery of compute01')
    return sim, ev, rec


def test_plugin_follows_the_osc_plugin_conventions():
    from importlib import metadata
    from nova_ha.osc import plugin
    [ext] = [ep for ep in metadata.entry_points(
        group='openstack.cli.extension') if ep.name == 'ha']
    assert ext.load() is plugin
    assert plugin.API_NAME == 'ha'
    assert plugin.API_VERSION_OPTION == 'os_ha_api_version'
    assert plugin.DEFAULT_API_VERSION in plugin.API_VERSIONS
    names = {ep.name for ep in metadata.entry_points(group='openstack.ha.v1')}
    assert names == {'ha_host_list', 'ha_alarm_list', 'ha_recovery_list',
                     'ha_recovery_show', 'ha_maintenance_start',
                     'ha_maintenance_status', 'ha_maintenance_abort',
                     'ha_maintenance_complete'}
    for ep in metadata.entry_points(group='openstack.ha.v1'):
        assert ep.load().auth_required is False, ep.name

    class Instance:
        _api_version = {'ha': '1'}
    assert plugin.make_client(Instance()).api_version == '1'
    Instance._api_version = {'ha': '7'}
    with pytest.raises(ValueError, match="'7'"):
        plugin.make_client(Instance())


def test_help_of_every_command_is_complete():
    commands = ['host list', 'alarm list', 'recovery list', 'recovery show',
                'maintenance start', 'maintenance status',
                'maintenance abort', 'maintenance complete']
    results = parallel([lambda c=c: subprocess.run(
        [OPENSTACK, 'help', 'ha'] + c.split(), capture_output=True,
        text=True, timeout=120) for c in commands])
    for command, res in zip(commands, results):
        assert res.returncode == 0, (command, res.stderr)
        text = ' '.join(res.stdout.split())
        assert 'usage: openstack ha %s' % command in text
        assert '--ha-config-file' in text and 'NOVA_HA_CONFIG' in text
        assert 'Exit codes' in text, command
        assert 'provided by the nova-ha plugin' in text, command
    for command, option in (('maintenance start', '--power-off'),
                            ('alarm list', '--min-severity'),
                            ('recovery list', '--state')):
        res = results[commands.index(command)]
        assert option in res.stdout, (command, option)


def test_journal_views_match_the_journal(recovered):
    sim, ev, rec = recovered
    conf = ev.config_file
    hosts, alarms, recs, shown = parallel([
        lambda: openstack_json(conf, 'host', 'list'),
        lambda: openstack_json(conf, 'alarm', 'list', '--all',
                               '--host', 'compute01'),
        lambda: openstack_json(conf, 'recovery', 'list'),
        lambda: openstack_json(conf, 'recovery', 'show', str(rec.id)),
    ])
    j = procs.journal(conf)
    try:
        states = {s.host: s.state for s in j.list_host_states()}
        journal_alarms = j.list_alarms(status='all', host='compute01')
        timeline = j.timeline(rec.id)
        items = j.list_recovery_items(rec.id)
    finally:
        j.close()

    assert {h['Host']: h['State'] for h in hosts} == states
    assert states['compute01'] in ('RECOVERED', 'FORCED_DOWN', 'FENCED')

    assert [a['ID'] for a in alarms] == [a.id for a in journal_alarms]
    host_down = [a for a in alarms if a['Type'] == 'HOST_DOWN']
    assert host_down and host_down[0]['Severity'] == 'CRITICAL'
    assert host_down[0]['Host'] == 'compute01'
    assert host_down[0]['Time'].endswith('Z')

    assert [r['ID'] for r in recs if r['Host'] == 'compute01'] == [rec.id]

    assert shown['ID'] == rec.id and shown['Host'] == 'compute01'
    assert shown['State'] == 'done'
    assert isinstance(shown['Total'], float) and shown['Total'] > 0
    assert [t['step'] for t in shown['Timeline']] == [t.step
                                                      for t in timeline]
    steps = [t['step'].split(':')[0] for t in shown['Timeline']]
    assert steps.index('fenced') < steps.index('forced_down') \
        < steps.index('evacuate')
    assert [i['instance_uuid'] for i in shown['Instances']] == [
        i.instance_uuid for i in items]
    assert shown['Instances'][0]['state'] == 'done'
    assert shown['Instances'][0]['dest_host'] != 'compute01'
    assert shown['Fencing Attempts'][-1]['outcome'] == 'FENCED'

    # $NOVA_HA_CONFIG instead of --ha-config-file
    rc, out, err = openstack(None, 'host', 'list', '-f', 'json',
                             env_conf=conf)
    assert rc == 0 and json.loads(out) == hosts, err

    # -c and the value formatter
    rc, out, err = openstack(conf, 'recovery', 'show', str(rec.id),
                             '-f', 'value', '-c', 'Host', '-c', 'State')
    assert rc == 0 and out.split() == ['compute01', 'done'], (out, err)


def test_journal_views_bad_input(recovered):
    sim, ev, rec = recovered
    conf = ev.config_file
    missing = rec.id + 1000
    (rc1, _, err1), (rc2, _, err2), (rc3, _, err3), (rc4, _, err4) = \
        parallel([
            lambda: openstack(conf, 'recovery', 'show', str(missing)),
            lambda: openstack(conf, 'recovery', 'show', 'first'),
            lambda: openstack(conf, 'alarm', 'list', '--type', 'HOST_GONE'),
            lambda: openstack(conf + '.missing', 'host', 'list'),
        ])
    assert rc1 == 1 and 'no recovery %d' % missing in err1, err1
    assert rc2 == 2 and "invalid int value: 'first'" in err2, err2
    assert rc3 == 2 and "'HOST_GONE'" in err3, err3
    assert rc4 == 2 and 'configuration error' in err4 \
        and conf + '.missing' in err4, err4


def test_maintenance_start_status_complete(recovered):
    sim, ev, rec = recovered
    conf = ev.config_file
    procs.boot(sim, 'tenant', host='compute02')
    # the recovery's evacuated server may be on compute02 too
    on_host = sorted(n for n, h in procs.placement(sim).items()
                     if h == 'compute02')
    assert 'tenant' in on_host

    drain = openstack_json(conf, 'maintenance', 'start', 'compute02',
                           '--reason', 'osc test', '--wait')
    assert drain['Host'] == 'compute02'
    assert drain['State'] == 'ready', drain
    assert drain['Reason'] == 'osc test'
    assert drain['Moved'] == len(on_host) and drain['Blocked'] == 0
    placement = procs.placement(sim)
    assert {placement[n] for n in on_host} == {'compute03'}
    svc = sim.nova.services.list(host='compute02',
                                 binary='nova-compute')[0]
    assert svc.status == 'disabled'

    status, items, active = parallel([
        lambda: openstack_json(conf, 'maintenance', 'status', 'compute02'),
        lambda: openstack_json(conf, 'maintenance', 'status', 'compute02',
                               '--instances'),
        lambda: openstack_json(conf, 'maintenance', 'status'),
    ])
    assert [(d['Drain'], d['State']) for d in status] == [
        (drain['Drain'], 'ready')]
    assert sorted((i['Name'], i['State'], i['Dest']) for i in items) == [
        (n, 'moved', 'compute03') for n in on_host]
    assert drain['Drain'] in [d['Drain'] for d in active]

    # bad input: a clear error naming the host, exit 2
    (rc1, _, err1), (rc2, _, err2), (rc3, _, err3) = parallel([
        lambda: openstack(conf, 'maintenance', 'start', 'compute99'),
        lambda: openstack(conf, 'maintenance', 'start', 'compute02'),
        lambda: openstack(conf, 'maintenance', 'abort', 'compute03'),
    ])
    assert rc1 == 2 and "unknown host 'compute99'" in err1, err1
    assert rc2 == 2 and 'already has an active drain' in err2, err2
    assert rc3 == 2 and 'compute03' in err3, err3

    done = openstack_json(conf, 'maintenance', 'complete', 'compute02')
    assert done['State'] == 'completed' and done['Drain'] == drain['Drain']
    svc = sim.nova.services.list(host='compute02',
                                 binary='nova-compute')[0]
    assert svc.status == 'enabled'
    rc, out, err = openstack(conf, 'maintenance', 'status', '-f', 'json')
    assert rc == 0 and json.loads(out) == [], (out, err)
