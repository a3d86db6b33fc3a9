"""HeartbeatReceiver.snapshot(): the same answers as heartbeat_state() and
silent_planes(), for many hosts at one instant."""

import time

from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver

RING = protocol.Keyring(b's' * 32)
PLANES = ('management', 'storage')


def test_snapshot_matches_per_host_queries():
    t = [100.0]
    windows = {'slow': 5.0}
    r = hb_receiver.HeartbeatReceiver(
        {p: [('127.0.0.1', 0)] for p in PLANES}, RING,
        clock=lambda: t[0], window_for=lambda h: windows.get(h, 0.8))

    def beat(host, planes=PLANES, procs=None, seq=[0]):
        seq[0] += 1
        for plane in planes:
            assert r.handle(protocol.encode(
                RING, host, plane, 1, seq[0], time.time(),
                procs or {'nova-compute': 'running'}), plane, now=t[0])

    beat('alive')
    beat('partitioned')
    beat('silent')
    beat('slow')
    beat('crashed', procs={'nova-compute': 'dead', 'libvirtd': 'running'})
    beat('unknown-proc', procs={'nova-compute': 'unknown'})
    t[0] += 1.0
    beat('alive')
    beat('crashed', procs={'nova-compute': 'dead'})
    beat('unknown-proc', procs={'nova-compute': 'unknown'})
    beat('partitioned', planes=('storage',))
    hosts = ['alive', 'partitioned', 'silent', 'slow', 'crashed',
             'unknown-proc', 'never']
    snap = r.snapshot(hosts)
    assert snap == {h: (r.heartbeat_state(h), r.silent_planes(h))
                    for h in hosts}
    assert {h: s[0] for h, s in snap.items()} == {
        'alive': 'ALIVE', 'partitioned': 'PARTITION', 'silent': 'SILENT',
        'slow': 'ALIVE', 'crashed': 'SERVICE_DOWN',
        'unknown-proc': 'ALIVE', 'never': 'UNKNOWN'}
    assert snap['partitioned'][1] == ['management']
    # An explicit window_for and now, as the evacuator passes them.
    later = r.snapshot(hosts, now=t[0] + 10, window_for=lambda h: 60.0)
    assert later['silent'] == ('ALIVE', [])
    assert later['never'] == ('UNKNOWN', list(PLANES))
