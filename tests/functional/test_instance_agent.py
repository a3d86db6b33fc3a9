"""``nova-ha-agent`` with ``[instance_ha] monitor = true`` as a process,
against a real private libvirtd: a kill -9 of a domain's qemu reaches the
receiver as a signed instance report; without libvirt-python the agent
refuses to start with a clear message (issue 17)."""

import builtins
import signal
import subprocess
import time
import uuid as uuid_mod

import pytest
from oslo_config import cfg

from nova_ha.cmd import agent as agent_cmd
from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver
from nova_ha.sim import libvirtd
from tests.unit.heartbeat import test_agent_cmd as base

WHY = libvirtd.unavailable()


@pytest.mark.skipif(WHY is not None, reason=WHY or '')
def test_agent_reports_a_crashed_domain(tmp_path):
    import libvirt
    recv = hb_receiver.HeartbeatReceiver(
        {'management': [('127.0.0.1', 0)]}, protocol.Keyring(base.KEY))
    recv.start()
    lv = libvirtd.LibvirtdProcess().start()
    proc = None
    try:
        (mg,) = recv.addresses['management']
        path = base.write_conf(tmp_path, (
            'target = management=127.0.0.1:%d\ninterval_ms = 100\n'
            'host = agent-host-1\n[instance_ha]\nmonitor = true\n'
            'libvirt_uri = %s\n') % (mg[1], lv.uri))
        proc = subprocess.Popen([base.BIN, '--config-file', path],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        base.until(lambda: recv.heartbeat_state('agent-host-1') == 'ALIVE')
        conn = libvirt.open(lv.uri)
        u = str(uuid_mod.uuid4())
        conn.defineXML(libvirtd.domain_xml(u)).create()
        base.until(lambda: lv.qemu_pid(u))
        time.sleep(0.5)   # the agent is watching (it scans at connect)
        t = lv.crash(u)
        base.until(lambda: u in recv.instances.failures())
        f = recv.instances.failures()[u]
        # The pidfd of the qemu process usually fires before libvirt's
        # STOPPED (FAILED) event.
        assert (f.host, f.kind) == ('agent-host-1', 'crashed')
        assert f.reason in ('process_exit', 'failed'), f
        assert f.heard_wall - t < 10.0     # liveness only; see benchmark
        conn.lookupByUUIDString(u).create()
        base.until(lambda: u not in recv.instances.failures())
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        lv.close()
        recv.stop()
    assert sum(recv.counters()['rejected'].values()) == 0


def test_monitor_without_libvirt_python_exits_2(tmp_path, capsys,
                                                 monkeypatch):
    real = builtins.__import__

    def no_libvirt(name, *a, **kw):
        if name == 'libvirt':
            raise ImportError(name)
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, '__import__', no_libvirt)
    path = base.write_conf(tmp_path, 'target = management=127.0.0.1:4800\n'
                           '[instance_ha]\nmonitor = true\n')
    rc = agent_cmd.main(['--config-file', path], conf=cfg.ConfigOpts())
    err = capsys.readouterr().err
    assert rc == 2
    assert '[instance_ha] monitor = true' in err
    assert 'libvirt-python' in err


def _create(dom, tries=20):
    """Start a domain whose killed qemu libvirtd may still be tearing down
    ("qemu unexpectedly closed the monitor": libvirtd's SIGTERM to the old
    process raced the new start): the harness retries."""
    import libvirt
    for n in range(tries):
        try:
            return dom.create()
        except libvirt.libvirtError:
            if n == tries - 1:
                raise
            libvirtd.destroy(dom)
            time.sleep(0.1)


@pytest.mark.timeout(900)
@pytest.mark.skipif(WHY is not None, reason=WHY or '')
def test_simultaneous_crashes_none_lost():
    """Repeated: N domains killed at once, every crash reaches the
    receiver (NOVA_HA_SOAK_RUNS rounds, default 2; the benchmark runs 50
    at once)."""
    import os
    import libvirt
    from nova_ha.heartbeat import agent as hb_agent
    from nova_ha.heartbeat import instances
    runs = int(os.environ.get('NOVA_HA_SOAK_RUNS', '2'))
    n = 8
    ring = protocol.Keyring(base.KEY)
    recv = hb_receiver.HeartbeatReceiver(
        {'management': [('127.0.0.1', 0)]}, ring).start()
    lv = libvirtd.LibvirtdProcess().start()
    agent = hb_agent.Agent('h1', dict(recv.addresses), ring, interval=0.2)
    mon = instances.InstanceMonitor(lv.uri, on_reports=agent.send_instances,
                                    read_only=False)
    agent.instance_failures = mon.failures
    mon.start()
    lost = 0
    try:
        assert mon.wait_connected(20)
        conn = libvirt.open(lv.uri)
        doms = []
        for _ in range(n):
            u = str(uuid_mod.uuid4())
            doms.append((u, conn.defineXML(libvirtd.domain_xml(u))))
        for r in range(runs):
            for u, d in doms:
                # As nova's hard reboot: destroy (libvirtd may not have
                # processed the kill yet), then start.
                libvirtd.destroy(d)
                _create(d)
            # Starting 8 TCG domains is the precondition, not what is
            # measured: on a loaded 2-core machine (CI's other worker runs
            # the kill -9 tests) it has taken over 120 s.
            base.until(lambda: all(lv.qemu_pid(u) for u, _ in doms), 360)
            base.until(lambda: not recv.instances.failures(), 30)
            for u, _ in doms:
                lv.crash(u)
            try:
                base.until(lambda: len(recv.instances.failures()) == n, 30)
            except AssertionError:
                lost += n - len(recv.instances.failures())
        conn.close()
    finally:
        mon.stop()
        agent.close()
        lv.close()
        recv.stop()
    assert lost == 0, '%d of %d crashes lost' % (lost, n * runs)
