"""Instance-report datagrams (issue 17): format, verification, the
receiver's failure table, backward compatibility with heartbeats."""

import time
import uuid as uuid_mod

import pytest

from nova_ha.heartbeat import agent as hb_agent
from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver

RING = protocol.Keyring(b'k' * 32)
U1 = str(uuid_mod.uuid4())
U2 = str(uuid_mod.uuid4())


def pkt(reports, host='c1', plane='management', epoch=5, seq=1, sent=None,
        ring=RING, full=False):
    return protocol.encode_instances(
        ring, host, plane, epoch, seq, time.time() if sent is None else sent,
        reports, full=full)


def test_round_trip():
    now = time.time()
    data = pkt([(U1, 'crashed', 'failed', now - 0.1),
                protocol.InstanceReport(U2, 'paused_error', 'ioerror', now)],
               full=True, sent=now)
    p = protocol.decode_instances(data, RING)
    assert (p.host, p.plane, p.epoch, p.seq, p.full) == \
        ('c1', 'management', 5, 1, True)
    assert abs(p.sent_time - now) < 1e-5
    assert [(r.uuid, r.kind, r.reason) for r in p.reports] == [
        (U1, 'crashed', 'failed'), (U2, 'paused_error', 'ioerror')]
    assert abs(p.reports[0].since - (now - 0.1)) < 1e-5


def test_heartbeat_decoder_refuses_instance_packets_and_vice_versa():
    # An evacuator that predates instance reports drops them, counted
    # as bad_magic; heartbeats are still version 1, byte for byte.
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode(pkt([(U1, 'crashed', 'failed', 1.0)]), RING)
    assert exc.value.reason == 'bad_magic'
    hb = protocol.encode(RING, 'c1', 'management', 1, 1, time.time())
    assert hb[:3] == b'HB\x01'
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode_instances(hb + b'\0' * 26, RING)
    assert exc.value.reason == 'bad_magic'


@pytest.mark.parametrize('mutate,reason', [
    (lambda d: d[:-1], 'bad_mac'),
    (lambda d: d[:40], 'truncated'),
    (lambda d: d + b'\0' * 2000, 'oversize'),
    (lambda d: d[:2] + b'\x02' + d[3:], 'bad_version'),
    (lambda d: d[:50] + bytes([d[50] ^ 1]) + d[51:], 'bad_mac'),
])
def test_rejections(mutate, reason):
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode_instances(mutate(pkt([(U1, 'crashed', 'failed',
                                               1.0)])), RING)
    assert exc.value.reason == reason


def test_other_key_rejected():
    other = protocol.Keyring(b'o' * 32)
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode_instances(pkt([(U1, 'crashed', 'failed', 1.0)],
                                      ring=other), RING)
    assert exc.value.reason == 'bad_mac'


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="kind 'exploded'"):
        pkt([(U1, 'exploded', 'failed', 1.0)])
    with pytest.raises(ValueError, match="'not-a-uuid'"):
        pkt([('not-a-uuid', 'crashed', 'failed', 1.0)])
    with pytest.raises(ValueError, match='1..32'):
        pkt([(U1, 'crashed', 'failed', 1.0)] * 33)
    with pytest.raises(ValueError, match='1..32'):
        pkt([])


def test_per_host_keys():
    master = b'm' * 32
    host_ring = protocol.Keyring(protocol.derive_host_key(master, 'c1'))
    recv_ring = protocol.HostKeyring([master])
    data = pkt([(U1, 'crashed', 'failed', 1.0)], ring=host_ring)
    assert protocol.decode_instances(data, recv_ring).host == 'c1'
    # c1's key cannot speak for c2.
    forged = pkt([(U1, 'crashed', 'failed', 1.0)], host='c2',
                 ring=host_ring)
    with pytest.raises(protocol.PacketRejected):
        protocol.decode_instances(forged, recv_ring)


@pytest.fixture
def recv():
    r = hb_receiver.HeartbeatReceiver(
        {'management': [('127.0.0.1', 0)], 'storage': [('127.0.0.1', 0)]},
        RING, known_hosts={'c1', 'c2'})
    events = []
    r.subscribe(events.append)
    r.events = events
    return r


def test_receiver_table(recv):
    now = time.time()
    gen = recv.generation
    assert recv.handle(pkt([(U1, 'crashed', 'failed', now)]), 'management')
    assert recv.generation > gen
    (f,) = recv.instances.failures().values()
    assert (f.host, f.uuid, f.kind, f.reason) == ('c1', U1, 'crashed',
                                                  'failed')
    assert [e.kind for e in recv.events] == ['instance']
    assert recv.events[0].detail['uuid'] == U1
    # The same failure repeated (next beat, other plane): no new event.
    recv.handle(pkt([(U1, 'crashed', 'failed', now)], seq=2, full=True),
                'management')
    recv.handle(pkt([(U1, 'crashed', 'failed', now)], plane='storage'),
                'storage')
    assert len(recv.events) == 1
    # Running again clears it.
    recv.handle(pkt([(U1, 'running', 'started', now + 1)], seq=3),
                'management')
    assert recv.instances.failures() == {}
    assert len(recv.events) == 2


def test_receiver_checks(recv):
    now = time.time()
    data = pkt([(U1, 'crashed', 'failed', now)])
    # Arrived on the wrong plane.
    assert recv.handle(data, 'storage') is None
    assert recv.handle(data, 'management')
    # Replayed.
    assert recv.handle(data, 'management') is None
    # Stale, unknown host, forged.
    assert recv.handle(pkt([(U2, 'crashed', 'failed', now)], seq=9,
                           sent=now - 60), 'management') is None
    assert recv.handle(pkt([(U2, 'crashed', 'failed', now)], host='c9'),
                       'management') is None
    assert recv.handle(pkt([(U2, 'crashed', 'failed', now)], seq=10,
                           ring=protocol.Keyring(b'x' * 32)),
                       'management') is None
    rej = recv.counters()['rejected']
    assert (rej['wrong_plane'], rej['stale'], rej['unknown_host'],
            rej['bad_mac']) == (1, 1, 1, 1)
    assert list(recv.instances.failures()) == [U1]


def test_failures_not_repeated_go_stale(recv):
    t = [100.0]
    recv._clock = lambda: t[0]
    recv.instances.stale_after = 5.0
    recv.handle(pkt([(U1, 'crashed', 'failed', time.time())]),
                'management')
    t[0] += 4.0
    assert U1 in recv.instances.failures()
    t[0] += 2.0
    assert recv.instances.failures() == {}


def test_forget_host(recv):
    recv.handle(pkt([(U1, 'crashed', 'failed', time.time())]),
                'management')
    recv.forget('c1')
    assert recv.instances.failures() == {}


def test_agent_sends_immediately_and_with_every_beat(recv):
    recv.start()
    try:
        targets = {p: a for p, a in recv.addresses.items()}
        a = hb_agent.Agent('c1', targets, RING, interval=0.05, epoch=3)
        now = time.time()
        reports = [protocol.InstanceReport(str(uuid_mod.uuid4()), 'crashed',
                                           'failed', now)
                   for _ in range(50)]
        # 50 at once: two datagrams per plane, nothing blocks.
        assert a.send_instances(reports) == 4
        deadline = time.monotonic() + 5
        while len(recv.instances.failures()) < 50 and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(recv.instances.failures()) == 50
        # The 50 may all be in from one plane while the other plane's two
        # datagrams are still queued; forgetting before those are read
        # would let them re-add the 50 after the forget.
        deadline = time.monotonic() + 5
        while recv.instances.accepted < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recv.instances.accepted == 4
        # The beat repeats the current failures (FULL) after a loss.
        recv.instances.forget('c1')
        a.instance_failures = lambda: reports[:3]
        a.beat()
        deadline = time.monotonic() + 5
        while len(recv.instances.failures()) < 3 and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(recv.instances.failures()) == 3
        a.close()
    finally:
        recv.stop()
