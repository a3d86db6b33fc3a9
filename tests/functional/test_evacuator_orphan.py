"""Crash between closing a recovery and changing its host's state (issue
12, finding 4), against ``nova-ha-sim`` and the evacuator process.

Before: close_recovery and set_host_state were two transactions; a crash
between them left the host in a recovery state with no open recovery, and
``observe()`` skipped it for ever -- its next failure was never detected.
Now both are one transaction, and a journal left that way by an older
version is repaired at the next pass: the host is monitored again.
"""

from tests.functional import procs
from tests.functional import test_evacuator as base


def test_host_monitored_again_after_crash_between_close_and_state(
        tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=6, racks=3, sal=1)
    conf = sim.state['evacuator_configs'][0]
    ev = None
    try:
        ev = procs.Evacuator(conf).wait_running()
        ev.stop()
        # What the crash left: recovery closed (the host answered again
        # during fencing), host still FENCING -- and one closed done, host
        # still EVACUATING (it awaits `host enable`: RECOVERED).
        j = procs.journal(conf)
        try:
            rec, _ = j.open_recovery('compute02', 'HOST_DOWN')
            j.set_host_state('compute02', 'FENCING', recovery_id=rec.id)
            assert j.close_recovery(rec.id, 'failed')
            done, _ = j.open_recovery('compute05', 'HOST_DOWN')
            j.set_host_state('compute05', 'EVACUATING',
                             recovery_id=done.id)
            assert j.close_recovery(done.id, 'done')
        finally:
            j.close()
        ev = procs.Evacuator(conf).wait_running()
        j = procs.journal(conf)
        try:
            # One pass repairs both, but in two transactions: wait for the
            # pair, not for the first and then read the second.
            procs.wait_for(
                lambda: (j.get_host_state('compute02').state,
                         j.get_host_state('compute05').state) == (
                             'OK', 'RECOVERED'), 30,
                interval=0.2, what='compute02 OK again, compute05 RECOVERED')
            # compute02 fails for real: detected, fenced, recovered.
            (server,) = procs.boot(sim, 'orphan', count=1,
                                   host='compute02')
            sim.inject('compute02', 'power_loss')
            procs.wait_for(
                lambda: [r for r in j.list_recoveries(host='compute02')
                         if r.id != rec.id], 30, interval=0.2,
                what='a new recovery of compute02')
        finally:
            j.close()
        new, _, items = base.wait_recovered(ev, 'compute02', timeout=120)
        assert new.id != rec.id and new.state == 'done'
        assert [i.state for i in items] == ['done']
        s = sim.nova.servers.get(server.id)
        assert s.status == 'ACTIVE' and \
            getattr(s, 'OS-EXT-SRV-ATTR:host') != 'compute02'
    finally:
        if ev is not None:
            out, err = ev.stop()
            assert 'Traceback' not in err, err
        sim.stop()
