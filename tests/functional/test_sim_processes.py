"""``nova-ha-sim serve --nova processes``: Nova as one process per service
(API, conductor, scheduler, placement, a nova-compute per host) on the
machine's MariaDB and RabbitMQ, and the evacuator recovering a host of it.
"""

import configparser
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.functional import procs
from tests.functional import test_evacuator as evac


def _answers(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(('127.0.0.1', port)) == 0


pytestmark = pytest.mark.skipif(
    not (_answers(3306) and _answers(5672)),
    reason='--nova processes needs MariaDB on 127.0.0.1:3306 and RabbitMQ '
           'on 127.0.0.1:5672')


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_power_loss_on_multiprocess_nova(tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=4, racks=2, sal=1,
                    nova='processes')
    ev = None
    try:
        pids = sim.state['nova']['pids']
        assert sim.state['nova']['kind'] == 'processes'
        # Every Nova service is a process of its own, not the sim.
        assert {'api', 'conductor', 'scheduler', 'placement',
                'compute-compute01', 'compute-compute04'} <= set(pids)
        assert sim.proc.pid not in pids.values()
        assert len(set(pids.values())) == len(pids)

        ev = procs.Evacuator(sim.state['evacuator_configs'][0])
        ev.wait_running()
        group = sim.nova.server_groups.create(name='vnf',
                                              policy='anti-affinity')
        procs.boot(sim, 'vnf', count=2, host=None, hints={
            'group': group.id, 'ha_anti_affinity_level': 'rack'})
        victim = procs.placement(sim)['vnf-1']
        procs.boot(sim, 'plain', count=2, host=victim)

        sim.inject(victim, 'power_loss')
        rec, timeline, items = evac.wait_recovered(ev, victim, timeout=120)

        assert rec.state == 'done', (rec, items)
        names = evac.step_names(timeline)
        assert names.index('fenced') < names.index('forced_down') \
            < names.index('evacuate') < names.index('active')
        assert [i.state for i in items] == ['done'] * 3
        # The victim's nova-compute process is gone (power off kills it).
        assert not _alive(pids['compute-%s' % victim])
        assert sim.host(victim)['power'] == 'off'
        where = procs.placement(sim)
        for server in sim.nova.servers.list():
            assert server.status == 'ACTIVE', server.name
            assert where[server.name] != victim
        racks = {h: 'r1' if h in ('compute01', 'compute02') else 'r2'
                 for h in where.values()}
        assert racks[where['vnf-1']] != racks[where['vnf-2']]
        # The evacuator reads placement (recovery placement's disabled
        # hosts, capacity) at the endpoint the sim gives it, with its own
        # token: that worked only in-process before.
        conf = configparser.ConfigParser(strict=False, interpolation=None)
        conf.read(sim.state['evacuator_configs'][0])
        resp = requests.get(
            conf['capacity']['placement_endpoint'] + '/resource_providers',
            headers={'X-Auth-Token': conf['nova']['token'],
                     'OpenStack-API-Version': 'placement 1.18'}, timeout=30)
        assert resp.status_code == 200, resp.text
        assert len(resp.json()['resource_providers']) == 4
        with open(conf['DEFAULT']['log_file']) as f:
            log = f.read()
        assert 'cannot read the disabled compute providers' not in log

        # Repaired and returned to service, the host's nova-compute starts
        # again (its node identity kept in its own state_path) and takes
        # instances.
        sim.heal(victim)
        # Enabled once its heartbeats are back, as an operator would (a
        # host enabled before it is heard is detected again).
        procs.wait_for(lambda: sim.host(victim)['power'] == 'on', 30)
        time.sleep(2.0)
        tries = []

        def enabled():
            tries.append(ev.nova_ha('host', 'enable', victim))
            return tries[-1].returncode == 0
        try:
            procs.wait_for(enabled, 60, interval=1.0,
                           what='host enable %s' % victim)
        except AssertionError as exc:
            raise AssertionError('%s: %s' % (exc, tries[-1].stderr))

        def back():
            (svc,) = sim.nova.services.list(host=victim,
                                            binary='nova-compute')
            return svc.state == 'up' and svc.status == 'enabled' and \
                not svc.forced_down
        procs.wait_for(back, 120, interval=1.0,
                       what='nova-compute of %s up again' % victim)
        procs.boot(sim, 'after', count=1, host=victim)
        assert procs.placement(sim)['after'] == victim
    finally:
        if ev is not None:
            ev.stop()
        sim.stop()
    # Stopping the sim stops every Nova process it started.
    for name, pid in pids.items():
        procs.wait_for(lambda: not _alive(pid), 30, interval=0.2,
                       what='%s (pid %d) to exit' % (name, pid))


def serve(tmp_path, *args):
    """``nova-ha-sim serve`` with bad arguments: it must refuse at once."""
    return subprocess.run(
        [sys.executable, '-m', 'nova_ha.sim.cli', 'serve', '--hosts', '1',
         '--state-dir', str(tmp_path)] + list(args),
        capture_output=True, text=True, timeout=120)


def test_bad_database_url_is_one_line_error(tmp_path):
    res = serve(tmp_path, '--nova', 'processes', '--database-url',
                'mysql+pymysql://nobody:secret@127.0.0.1:1')
    assert res.returncode == 2, res
    err = res.stderr.strip().splitlines()
    assert len(err) == 1, res.stderr
    assert '--database-url' in err[0] and 'secret' not in err[0], err


def test_database_url_needs_processes(tmp_path):
    res = serve(tmp_path, '--database-url',
                'mysql+pymysql://root@127.0.0.1:3306')
    assert res.returncode == 2, res
    assert res.stderr.strip() == (
        'nova-ha-sim: error: --database-url, --transport-url and '
        '--nova-option need --nova processes')


def test_bad_nova_option_is_refused(tmp_path):
    res = serve(tmp_path, '--nova', 'processes',
                '--nova-option', 'host_subset_size=3')
    assert res.returncode == 2, res
    assert "--nova-option" in res.stderr
    assert "'host_subset_size=3'" in res.stderr
