"""nova-ha-sim as a separate process: real Nova over HTTP, real IPMI BMCs."""

import os
import socket
import subprocess
import sys
import time

import pytest
from pyghmi.ipmi import command as ipmi_command

from nova_ha.sim import client as sim_client

SIM = [sys.executable, '-m', 'nova_ha.sim.cli']


def run_sim(*args, state_dir=None, timeout=60):
    cmd = SIM + list(args)
    if state_dir:
        cmd += ['--state-dir', state_dir]
    return subprocess.run(cmd, capture_output=True, text=True,
                          timeout=timeout)


def wait_for(predicate, timeout, interval=0.2, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out after %.1f s waiting for %s'
                         % (timeout, what))


def bmc_answers(bmc, timeout=1.0):
    """Send IPMI 'Get Channel Authentication Capabilities' (sessionless)
    and report whether the BMC answers within `timeout`."""
    msg = bytes([0x20, 0x18, 0xc8, 0x81, 0x00, 0x38, 0x8e, 0x04])
    msg += bytes([(-sum(msg[3:]) & 0xff)])
    pkt = bytes([0x06, 0x00, 0xff, 0x07, 0x00]) + bytes(8) + bytes([len(msg)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(pkt + msg, (bmc['address'], bmc['port']))
        try:
            return bool(s.recv(512))
        except socket.timeout:
            return False


def bmc_command(bmc):
    return ipmi_command.Command(bmc['address'], bmc['username'],
                                bmc['password'], port=bmc['port'])


@pytest.fixture(scope='module')
def sim(tmp_path_factory):
    state_dir = str(tmp_path_factory.mktemp('sim'))
    proc = subprocess.Popen(
        SIM + ['serve', '--hosts', '6', '--racks', '3',
               '--state-dir', state_dir],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert 'up in' in line, (line, proc.stderr.read()
                                 if proc.poll() is not None else '')
        state = sim_client.load_state(state_dir)
        yield {'dir': state_dir, 'state': state, 'proc': proc,
               'nova': sim_client.nova_client(state)}
    finally:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert 'stopped' in out
    assert not os.path.exists(os.path.join(state_dir, 'state.json'))


def service_state(nova, host):
    return nova.services.list(host=host, binary='nova-compute')[0].state


def host_view(sim, host):
    return sim_client.control(sim['state'], 'GET', '/hosts/' + host)


def test_state_file_and_hypervisors_over_http(sim):
    state = sim['state']
    assert state['api']['endpoint'].startswith('http://127.0.0.1:')
    assert len(state['hosts']) == 6
    for name, host in state['hosts'].items():
        assert host['bmc']['address'] == '127.0.0.1'
        assert host['bmc']['port'] > 0 and host['bmc']['password']
    assert state['hosts']['compute01']['topology']['rack'] == 'r1'
    assert state['hosts']['compute06']['topology']['rack'] == 'r3'
    hypervisors = sim['nova'].hypervisors.list()
    assert sorted(h.hypervisor_hostname for h in hypervisors) == sorted(
        state['hosts'])
    mode = os.stat(os.path.join(sim['dir'], 'state.json')).st_mode
    assert mode & 0o077 == 0, 'state file holds secrets: must be 0600'


def test_wrong_token_is_refused(sim):
    import requests
    resp = requests.get(sim['state']['api']['endpoint'] + '/servers',
                        headers={'X-Auth-Token': 'wrong'}, timeout=10)
    assert resp.status_code == 401


def test_bmc_power_off_stops_compute_and_reports_off(sim):
    host = 'compute01'
    bmc = sim['state']['hosts'][host]['bmc']
    ipmi = bmc_command(bmc)
    assert ipmi.get_power()['powerstate'] == 'on'
    assert service_state(sim['nova'], host) == 'up'

    ipmi.set_power('off')
    assert ipmi.get_power()['powerstate'] == 'off'
    wait_for(lambda: service_state(sim['nova'], host) == 'down', 10,
             what='nova-compute on %s to be down' % host)
    view = host_view(sim, host)
    assert view['power'] == 'off' and not view['compute_running']
    assert view['planes'] == {'management': False, 'storage': False}

    ipmi.set_power('on')
    wait_for(lambda: service_state(sim['nova'], host) == 'up', 10,
             what='nova-compute on %s to be up again' % host)
    ipmi.ipmi_session.logout()


def test_power_loss(sim):
    host = 'compute02'
    bmc = sim['state']['hosts'][host]['bmc']
    res = run_sim('inject', host, 'power_loss', state_dir=sim['dir'])
    assert res.returncode == 0, res.stderr
    ipmi = bmc_command(bmc)
    assert ipmi.get_power()['powerstate'] == 'off'
    wait_for(lambda: service_state(sim['nova'], host) == 'down', 10,
             what='service down')
    assert host_view(sim, host)['planes'] == {'management': False,
                                              'storage': False}
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0
    assert ipmi.get_power()['powerstate'] == 'on'
    wait_for(lambda: service_state(sim['nova'], host) == 'up', 10,
             what='service up')
    ipmi.ipmi_session.logout()


def test_hang_then_bmc_power_off(sim):
    host = 'compute03'
    bmc = sim['state']['hosts'][host]['bmc']
    assert run_sim('inject', host, 'hang',
                   state_dir=sim['dir']).returncode == 0
    ipmi = bmc_command(bmc)
    # A hung host is silent but its BMC still says "on".
    assert ipmi.get_power()['powerstate'] == 'on'
    wait_for(lambda: service_state(sim['nova'], host) == 'down', 10,
             what='service down')
    view = host_view(sim, host)
    assert view['planes'] == {'management': False, 'storage': False}
    ipmi.set_power('off')
    assert ipmi.get_power()['powerstate'] == 'off'
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0
    wait_for(lambda: service_state(sim['nova'], host) == 'up', 10,
             what='service up')
    ipmi.ipmi_session.logout()


def test_service_crash(sim):
    host = 'compute04'
    assert run_sim('inject', host, 'service_crash',
                   state_dir=sim['dir']).returncode == 0
    wait_for(lambda: service_state(sim['nova'], host) == 'down', 10,
             what='service down')
    view = host_view(sim, host)
    assert view['power'] == 'on'
    assert view['planes'] == {'management': True, 'storage': True}
    assert bmc_answers(sim['state']['hosts'][host]['bmc'])
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0
    wait_for(lambda: service_state(sim['nova'], host) == 'up', 10,
             what='service up')


def test_mgmt_partition(sim):
    host = 'compute05'
    assert run_sim('inject', host, 'mgmt_partition',
                   state_dir=sim['dir']).returncode == 0
    view = host_view(sim, host)
    assert view['planes'] == {'management': False, 'storage': True}
    assert view['power'] == 'on'
    wait_for(lambda: service_state(sim['nova'], host) == 'down', 10,
             what='service down')
    assert bmc_answers(sim['state']['hosts'][host]['bmc'])
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0
    assert host_view(sim, host)['planes']['management'] is True


def test_bmc_unreachable(sim):
    host = 'compute06'
    bmc = sim['state']['hosts'][host]['bmc']
    assert bmc_answers(bmc)
    assert run_sim('inject', host, 'bmc_unreachable',
                   state_dir=sim['dir']).returncode == 0
    assert not bmc_answers(bmc, timeout=1.0)
    # The host itself is fine.
    assert service_state(sim['nova'], host) == 'up'
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0
    assert bmc_answers(bmc)


def test_status_lists_hosts(sim):
    res = run_sim('status', state_dir=sim['dir'])
    assert res.returncode == 0, res.stderr
    assert 'compute01' in res.stdout and 'r3' in res.stdout


@pytest.mark.parametrize('args, needle', [
    (('inject', 'nosuchhost', 'power_loss'), "unknown host 'nosuchhost'"),
    (('inject', 'compute01', 'meteor'), "unknown fault 'meteor'"),
    (('heal', 'nosuchhost'), "unknown host 'nosuchhost'"),
])
def test_bad_arguments_one_line_error(sim, args, needle):
    res = run_sim(*args, state_dir=sim['dir'])
    assert res.returncode == 2
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_no_sim_running(tmp_path):
    res = run_sim('status', state_dir=str(tmp_path))
    assert res.returncode == 2
    assert 'no simulated cloud' in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_sim('serve', '--hosts', '1', '--api-port', str(port),
                      state_dir=str(tmp_path))
    assert res.returncode == 2
    assert 'port %d/tcp' % port in res.stderr and 'in use' in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.parametrize('args, needle', [
    (('serve', '--hosts', '0'), 'must be >= 1'),
    (('serve', '--hosts', '2', '--racks', '3'), '--racks must be between'),
    (('frobnicate',), 'invalid choice'),
])
def test_bad_serve_arguments(tmp_path, args, needle):
    res = run_sim(*args, state_dir=None if args[0] == 'frobnicate'
                  else str(tmp_path))
    assert res.returncode == 2
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_casts_are_asynchronous(sim):
    """An evacuation returns before it completes, as in a real cloud."""
    nova = sim['nova']
    host = 'compute02'
    flavor = nova.flavors.create('async-test', 256, 1, 1)
    server = nova.servers.create('async', sim['state']['images'][0], flavor,
                                 nics='none', availability_zone='nova:' + host)
    wait_for(lambda: nova.servers.get(server.id).status == 'ACTIVE', 30,
             what='server ACTIVE')
    assert run_sim('inject', host, 'power_loss',
                   state_dir=sim['dir']).returncode == 0
    svc = nova.services.list(host=host, binary='nova-compute')[0]
    nova.services.force_down(svc.id, True)
    nova.servers.evacuate(server.id)
    status_at_return = nova.servers.get(server.id)
    assert getattr(status_at_return, 'OS-EXT-STS:task_state') is not None, \
        'evacuation had already finished when the API call returned'
    moved = wait_for(
        lambda: (lambda s: s if s.status == 'ACTIVE' and getattr(
            s, 'OS-EXT-SRV-ATTR:host') != host else None)(
                nova.servers.get(server.id)), 30, what='evacuated')
    assert getattr(moved, 'OS-EXT-SRV-ATTR:host') != host
    # Bring the source back the way nova wants it: restart its compute (it
    # cleans up the evacuated instance), then lift forced_down.
    assert run_sim('heal', host, state_dir=sim['dir']).returncode == 0

    def unforce():
        try:
            nova.services.force_down(svc.id, False)
            return True
        except Exception:
            return False
    wait_for(unforce, 15, what='forced_down lifted on %s' % host)


# -- the sim's harness speed-ups (novastack.SimTuning) -----------------------

def _sqlite_engine_facts(path):
    import sqlalchemy as sa
    from oslo_db.sqlalchemy import engines
    engine = engines.create_engine('sqlite:///%s' % path)
    try:
        with engine.connect() as conn:
            sync = conn.execute(sa.text('PRAGMA synchronous')).scalar()
        return type(engine.pool).__name__, sync
    finally:
        engine.dispose()


def test_sim_tuning_pools_sqlite_and_is_undone(tmp_path):
    from nova_ha.sim import novastack
    db = tmp_path / 'x.sqlite'
    before = _sqlite_engine_facts(db)
    assert before[0] == 'NullPool'          # oslo.db's choice for files
    tuning = novastack.SimTuning().install()
    try:
        assert _sqlite_engine_facts(db) == ('QueuePool', 0)
    finally:
        tuning.remove()
    assert _sqlite_engine_facts(db) == before


def test_sim_tuning_wakes_a_fake_rpc_listener_on_delivery():
    """A listener blocked in poll() gets a message as soon as it is
    delivered, and stop() ends the wait; neither waits for POLL_WAIT."""
    import threading

    import oslo_messaging
    from oslo_messaging._drivers import impl_fake

    from nova_ha.sim import novastack

    original_poll = impl_fake.FakeListener.poll
    tuning = novastack.SimTuning()
    tuning.POLL_WAIT = 60.0
    tuning.install()
    try:
        assert impl_fake.FakeListener.poll is not original_poll
        manager = impl_fake.FakeExchangeManager('sim-tuning-test')
        target = oslo_messaging.Target(topic='t', server='s',
                                       exchange='sim-tuning-test')
        listener = impl_fake.FakeListener(manager, [target])
        got = []
        poller = threading.Thread(
            target=lambda: got.extend(listener.poll(timeout=120)))
        t0 = time.monotonic()
        poller.start()
        time.sleep(0.3)
        manager.get_exchange('sim-tuning-test').deliver_message(
            't', {}, {'method': 'ping'}, server='s')
        poller.join(30)
        assert not poller.is_alive(), 'delivery did not wake the listener'
        assert [m.message for m in got] == [{'method': 'ping'}]
        assert time.monotonic() - t0 < 30

        poller = threading.Thread(target=lambda: got.extend(
            listener.poll(timeout=120)))
        poller.start()
        time.sleep(0.3)
        listener.stop()
        poller.join(30)
        assert not poller.is_alive(), 'stop() did not wake the listener'
        assert len(got) == 1
    finally:
        tuning.remove()
        impl_fake.FakeExchangeManager.cleanup()
    assert impl_fake.FakeListener.poll is original_poll


def test_agent_process_beats_per_plane_and_follows_updates():
    """The sim's heartbeat agents (a child process) send on every enabled
    plane, stop a plane the sim cuts, and exit when the sim closes them."""
    from nova_ha.sim import agents as sim_agents

    socks = {}
    for plane in ('management', 'storage'):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(('127.0.0.1', 0))
        s.settimeout(0.05)
        socks[plane] = s

    def received(plane, seconds):
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                socks[plane].recv(2048)
                n += 1
            except socket.timeout:
                pass
        return n

    up = {'management': True, 'storage': True}
    proc = sim_agents.AgentProcess(
        'ab' * 32, {p: [s.getsockname()] for p, s in socks.items()},
        {'compute01': {'interval': 0.05, 'planes': up,
                       'processes': {'nova-compute': 'running'}}})
    try:
        assert received('management', 1.0) >= 3
        assert received('storage', 0.3) >= 3
        proc.update('compute01', {'management': False, 'storage': True},
                    {'nova-compute': 'running'})
        time.sleep(0.3)
        while True:                     # what was queued before the cut
            try:
                socks['management'].recv(2048)
            except socket.timeout:
                break
        assert received('management', 1.0) == 0
        assert received('storage', 0.5) >= 3
    finally:
        proc.close()
        for s in socks.values():
            s.close()
    assert proc._proc.returncode == 0
