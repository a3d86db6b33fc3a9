"""A fenced host that comes back during its recovery (someone powers it on)
against ``nova-ha-sim``: one fence only, a MAJOR FLAPPING alarm naming the
host and the phase, the recovery finishes, and the host stays forced down
and disabled until ``nova-ha host enable``.

Real Nova over HTTP, real IPMI to the virtual BMCs, real UDP heartbeats
from the sim's per-host agents, the evacuator as its own process.
"""

import pytest

from nova_ha.sim import client as sim_client
from tests.functional import procs
from tests.functional.test_evacuator import alarms
from tests.functional.test_evacuator import compute_service
from tests.functional.test_evacuator import wait_recovered


@pytest.fixture
def cloud(tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=4, racks=2, sal=1)
    ev = procs.Evacuator(sim.state['evacuator_configs'][0])
    try:
        yield sim, ev
    finally:
        out, err = ev.stop()
        sim.stop()
    assert 'Traceback' not in err, err


def journal_view(ev, host):
    j = procs.journal(ev.config_file)
    try:
        recs = j.list_recoveries(host=host)
        steps = [t.step for t in j.timeline(recs[0].id)] if recs else []
        return recs, steps, j.list_fencing_attempts(host=host), \
            j.get_host_state(host)
    finally:
        j.close()


def test_host_powered_on_during_recovery_is_not_fenced_twice(cloud):
    sim, ev = cloud
    victim = 'compute02'
    procs.boot(sim, 'vm', count=6, host=victim)

    sim.inject(victim, 'power_loss')
    # Fenced (power-off confirmed): now someone powers it back on while
    # its instances are being evacuated (straight through the control API,
    # as the BMC would).
    j = procs.journal(ev.config_file)
    try:
        procs.wait_for(lambda: any(
            r.fenced_at for r in j.list_recoveries(host=victim)), 60,
            interval=0.02, what='%s fenced' % victim)
    finally:
        j.close()
    sim_client.control(sim.state, 'DELETE', '/hosts/%s/faults' % victim)
    assert sim.host(victim)['power'] == 'on'

    rec, timeline, items = wait_recovered(ev, victim, timeout=120)
    assert rec.state == 'done', items
    found = procs.wait_for(
        lambda: alarms(ev, host=victim, types=['FLAPPING']), 30,
        what='FLAPPING alarm')
    assert len(found) == 1, found
    alarm = found[0]
    assert alarm.severity == 'MAJOR'
    assert alarm.recovery_id == rec.id
    assert victim in alarm.message
    assert 'not fencing it again' in alarm.message.lower()
    # Raised while the recovery was still running (phase named).
    assert alarm.created_at <= rec.finished_at, (alarm, rec)
    assert any(phase in alarm.message for phase in (
        'fenced phase', 'evacuating phase')), alarm.message

    recs, steps, attempts, state = journal_view(ev, victim)
    assert len(recs) == 1
    # Exactly one successful fence: nothing powered the host off again.
    assert [a.outcome for a in attempts] == ['FENCED'], attempts
    assert sim.host(victim)['power'] == 'on'
    # Every instance ACTIVE on another host.
    for server in sim.nova.servers.list():
        assert server.status == 'ACTIVE'
        assert getattr(server, 'OS-EXT-SRV-ATTR:host') != victim
    # The host stays out (forced down, disabled, RECOVERED) ...
    assert state.state == 'RECOVERED'
    svc = compute_service(sim, victim)
    assert svc.forced_down and svc.status == 'disabled'
    # ... and the alarm stays active, until an operator returns it.
    assert alarms(ev, host=victim, types=['FLAPPING'])[0].cleared_at is None
    # The operator restarts its nova-compute (which moves Nova's
    # evacuation records of the host to 'completed'; Nova refuses to lift
    # forced_down before), then returns the host.
    sim.inject(victim, 'service_crash')
    sim.heal(victim)
    procs.wait_for(lambda: ev.nova_ha('host', 'enable', victim).returncode
                   == 0, 60, interval=0.5, what='host enable')
    svc = compute_service(sim, victim)
    assert not svc.forced_down and svc.status == 'enabled'
    assert all(a.cleared_at for a in alarms(ev, host=victim,
                                            types=['FLAPPING']))
    assert [a.outcome for a in journal_view(ev, victim)[2]] == ['FENCED']
