"""Heartbeat packets: crafted, forged, replayed, truncated, garbage."""

import hmac
import os
import struct
import time

import pytest

from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver

KEY = b'k' * 8 + os.urandom(24)
OTHER_KEY = os.urandom(32)
RING = protocol.Keyring(KEY)


def packet(host='cmp1', plane='management', epoch=100, seq=1,
           sent=None, procs=None, ring=RING):
    return protocol.encode(ring, host, plane, epoch, seq,
                           time.time() if sent is None else sent,
                           procs or {'nova-compute': 'running'})


def reason(data, ring=RING):
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode(data, ring)
    return exc.value.reason


def test_roundtrip():
    now = time.time()
    data = packet(sent=now, procs={'nova-compute': 'dead',
                                   'libvirtd': 'running',
                                   'ovs-vswitchd': 'restarting'})
    hb = protocol.decode(data, RING)
    assert hb.host == 'cmp1' and hb.plane == 'management'
    assert (hb.epoch, hb.seq, hb.version) == (100, 1, 1)
    assert abs(hb.sent_time - now) < 1e-5
    assert dict(hb.processes) == {'nova-compute': 'dead',
                                  'libvirtd': 'running',
                                  'ovs-vswitchd': 'restarting'}
    assert len(data) < 120


def test_unicode_host_and_no_processes():
    data = protocol.encode(RING, 'hôte-1', 'storage', 1, 2, time.time())
    hb = protocol.decode(data, RING)
    assert hb.host == 'hôte-1' and hb.processes == ()


def test_forged_mac():
    data = bytearray(packet())
    data[-1] ^= 1
    assert reason(bytes(data)) == 'bad_mac'


def test_tampered_body():
    data = bytearray(packet(seq=5))
    data[19] ^= 0x40   # seq's last byte; MAC unchanged
    assert reason(bytes(data)) == 'bad_mac'


def test_wrong_key():
    assert reason(packet(ring=protocol.Keyring(OTHER_KEY))) == 'bad_mac'


def test_attacker_recomputes_mac_without_key():
    # A plain SHA-256 in place of the HMAC does not pass.
    import hashlib
    body = packet()[:-32]
    assert reason(body + hashlib.sha256(body).digest()) == 'bad_mac'


def test_key_rotation_keyring():
    old, new = protocol.Keyring(KEY), protocol.Keyring(OTHER_KEY)
    both = protocol.Keyring([OTHER_KEY, KEY])
    assert protocol.decode(packet(ring=old), both).host == 'cmp1'
    assert protocol.decode(packet(ring=new), both).host == 'cmp1'
    # the first key signs
    assert protocol.decode(packet(ring=both), new).host == 'cmp1'


@pytest.mark.parametrize('cut', [0, 1, 10, 30, 33, 64])
def test_truncated(cut):
    assert reason(packet()[:cut]) == 'truncated'


def test_truncated_keeps_mac_check():
    data = packet()
    # Cutting the middle but keeping the length valid fails the MAC.
    assert reason(data[:40] + data[-32:]) == 'bad_mac'


def test_garbage_and_oversize():
    assert reason(os.urandom(200)) in ('bad_magic', 'bad_version', 'bad_mac')
    assert reason(b'HB' + os.urandom(200)) in ('bad_version', 'bad_mac')
    assert reason(b'\x00' * 5000) == 'oversize'


def test_wrong_version():
    body = bytearray(packet()[:-32])
    body[2] = 2
    body = bytes(body)
    assert reason(body + hmac.digest(KEY, body, 'sha256')) == 'bad_version'


def test_malformed_but_signed():
    # Lengths inconsistent with the payload, correctly signed: a bug in a
    # sender with the key, not an attack; still rejected cleanly.
    hdr = struct.pack('!2sBBQQQBBB', b'HB', 1, 0, 1, 1,
                      int(time.time() * 1e6), 200, 5, 0)
    body = hdr + b'cmp1management'
    assert reason(body + hmac.digest(KEY, body, 'sha256')) == 'malformed'
    hdr = struct.pack('!2sBBQQQBBB', b'HB', 1, 0, 1, 1,
                      int(time.time() * 1e6), 4, 10, 1)
    body = hdr + b'cmp1management' + bytes((3, 9)) + b'abc'
    assert reason(body + hmac.digest(KEY, body, 'sha256')) == 'malformed'
    body = hdr.replace(b'\x04\x0a\x01', b'\x04\x0a\x00') + b'cmp1manage\xffent'
    assert reason(body + hmac.digest(KEY, body, 'sha256')) == 'malformed'


def test_freshness():
    now = time.time()
    hb = protocol.decode(packet(sent=now - 5), RING)
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.check_fresh(hb, now, 2.0)
    assert exc.value.reason == 'stale'
    hb = protocol.decode(packet(sent=now + 5), RING)
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.check_fresh(hb, now, 2.0)
    assert exc.value.reason == 'future'
    protocol.check_fresh(protocol.decode(packet(sent=now - 1), RING),
                         now, 2.0)


def test_encode_rejects_bad_fields():
    with pytest.raises(ValueError, match='state'):
        packet(procs={'nova-compute': 'zombie'})
    with pytest.raises(ValueError, match='plane'):
        packet(plane='x' * 40)
    with pytest.raises(ValueError, match='host'):
        packet(host='')


def test_keyring_never_shows_key():
    ring = protocol.Keyring([KEY, OTHER_KEY])
    assert KEY.hex() not in repr(ring) and str(KEY) not in repr(ring)
    assert repr(ring) == '<Keyring: 2 key(s)>'
    with pytest.raises(ValueError) as exc:
        protocol.Keyring('short-secret')
    assert 'short-secret' not in str(exc.value)
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(ring)


def test_rejection_message_has_no_packet_bytes():
    data = bytearray(packet())
    data[-1] ^= 1
    with pytest.raises(protocol.PacketRejected) as exc:
        protocol.decode(bytes(data), RING)
    assert str(exc.value) == 'bad_mac'


# -- the receiver's ordering and freshness checks, without sockets --------

def make_receiver(**kw):
    kw.setdefault('max_clock_skew', 2.0)
    return hb_receiver.HeartbeatReceiver(
        {'management': [('127.0.0.1', 0)], 'storage': [('127.0.0.1', 0)]},
        RING, **kw)


def test_receiver_replay_and_older_seq():
    r = make_receiver()
    p5 = packet(seq=5)
    assert r.handle(p5, 'management') is not None
    assert r.handle(p5, 'management') is None            # same packet
    assert r.handle(packet(seq=4), 'management') is None  # older seq
    assert r.handle(packet(seq=6), 'management') is not None
    # same seq on another plane is fine (one beat, two planes)
    assert r.handle(packet(seq=6, plane='storage'), 'storage') is not None
    rej = r.counters()['rejected']
    assert rej['duplicate'] == 1 and rej['replay'] == 1
    assert r.counters()['accepted'] == 3


def test_receiver_new_epoch_after_restart():
    r = make_receiver()
    events = []
    r.subscribe(events.append)
    assert r.handle(packet(epoch=100, seq=900), 'management')
    # restarted agent: new epoch, seq from 1
    assert r.handle(packet(epoch=101, seq=1), 'management')
    assert any(e.kind == 'restart' for e in events)
    # the old incarnation's packets are now replays
    assert r.handle(packet(epoch=100, seq=901), 'management') is None
    assert r.counters()['rejected']['replay'] == 1


def test_receiver_epoch_backwards_after_long_silence():
    t = [1000.0]
    r = make_receiver(clock=lambda: t[0])
    assert r.handle(packet(epoch=500, seq=3), 'management')
    t[0] += 1.0
    assert r.handle(packet(epoch=400, seq=1), 'management') is None
    t[0] += 10.0   # > 2 x max_clock_skew of silence: forget ordering
    assert r.handle(packet(epoch=400, seq=2), 'management')


def test_receiver_stale_future_wrong_plane_unknown_host():
    r = make_receiver(known_hosts={'cmp1'})
    assert r.handle(packet(sent=time.time() - 10), 'management') is None
    assert r.handle(packet(sent=time.time() + 10), 'management') is None
    assert r.handle(packet(plane='storage'), 'management') is None
    assert r.handle(packet(host='intruder'), 'management') is None
    rej = r.counters()['rejected']
    assert (rej['stale'], rej['future'], rej['wrong_plane'],
            rej['unknown_host']) == (1, 1, 1, 1)
    assert r.hosts() == []
    assert r.last_seen('cmp1', 'management') is None


def test_forged_packet_does_not_refresh_dead_host():
    base = time.time()
    t = [0.0]
    r = make_receiver(clock=lambda: t[0], wall_clock=lambda: base + t[0])
    p1 = packet(seq=1, sent=base)
    assert r.handle(p1, 'management')
    t[0] = 1.0   # the host dies; an attacker replays and forges
    forged = bytearray(packet(seq=2, sent=base + 1.0))
    forged[-5] ^= 0xff
    assert r.handle(bytes(forged), 'management') is None
    assert r.handle(p1, 'management') is None      # replay: ordering
    t[0] = 5.0
    assert r.handle(p1, 'management') is None      # replay: time window
    rej = r.counters()['rejected']
    assert (rej['bad_mac'], rej['duplicate'], rej['stale']) == (1, 1, 1)
    assert r.last_seen('cmp1', 'management') == 0.0
    assert r.silent_planes('cmp1', now=5.0, window=0.8) == [
        'management', 'storage']
    assert r.heartbeat_state('cmp1', now=5.0, window=0.8) == 'SILENT'


def test_receiver_per_host_windows_and_silent_events():
    """window_for(host) (the SAL confirmation window) drives the silent
    events; the deadline timer fires them without any polling call."""
    base = time.time()
    t = [0.0]
    windows = {'sal1': 0.8, 'sal3': 8.0}
    r = make_receiver(clock=lambda: t[0], wall_clock=lambda: base + t[0],
                      window_for=windows.__getitem__)
    events = []
    r.subscribe(events.append)
    for host in windows:
        for plane in ('management', 'storage'):
            assert r.handle(packet(host=host, plane=plane, sent=base),
                            plane)
    assert [e.kind for e in events].count('alive') == 4
    gen = r.generation
    t[0] = 0.7
    assert r._expire(t[0]) == pytest.approx(0.1)
    assert r.generation == gen
    t[0] = 0.81
    r._expire(t[0])
    silent = sorted((e.host, e.plane) for e in events if e.kind == 'silent')
    assert silent == [('sal1', 'management'), ('sal1', 'storage')]
    assert r.generation == gen + 1
    assert r.wait_for_change(gen, timeout=0) == gen + 1
    assert r.heartbeat_state('sal1') == 'SILENT'
    assert r.heartbeat_state('sal3') == 'ALIVE'
    assert r.host_view('sal1').planes['management'].silent
    # the host comes back on one plane: alive event, PARTITION
    t[0] = 1.0
    assert r.handle(packet(host='sal1', seq=2, sent=base + 1.0),
                    'management')
    assert events[-1].kind == 'alive'
    assert r.heartbeat_state('sal1') == 'PARTITION'
    t[0] = 8.5
    r._expire(t[0])
    assert ('sal3', 'storage') in [(e.host, e.plane) for e in events
                                   if e.kind == 'silent']
    r.forget('sal3')
    assert r.host_view('sal3') is None
    assert r.heartbeat_state('sal3') == 'UNKNOWN'
    assert 'sal3' not in r.hosts()


def test_per_host_keys():
    """key_mode = per_host: a host's derived key signs only for itself."""
    master = os.urandom(32)
    ring = protocol.HostKeyring(master)
    key_a = protocol.derive_host_key(master, 'cmp-a')
    assert len(key_a) == 64 and key_a != protocol.derive_host_key(
        master, 'cmp-b')
    agent_a = protocol.Keyring(key_a)
    assert protocol.decode(packet(host='cmp-a', ring=agent_a),
                           ring).host == 'cmp-a'
    # cmp-a's key cannot speak for cmp-b; the master key is no host key
    assert reason(packet(host='cmp-b', ring=agent_a), ring) == 'bad_mac'
    assert reason(packet(host='cmp-a', ring=protocol.Keyring(master)),
                  ring) == 'bad_mac'
    # rotation: two masters, the agent's file holds both derived keys
    new_master = os.urandom(32)
    both = protocol.HostKeyring([new_master, master])
    assert protocol.decode(packet(host='cmp-a', ring=agent_a), both)
    agent_new = protocol.Keyring(
        [protocol.derive_host_key(new_master, 'cmp-a'), key_a])
    assert protocol.decode(packet(host='cmp-a', ring=agent_new), both)
    assert reason(packet(host='cmp-a', ring=agent_new), ring) == 'bad_mac'
    with pytest.raises(TypeError):
        ring.sign(b'x')
    assert master.hex() not in repr(ring) and key_a not in repr(ring)
    # a lying host length cannot make the receiver read past the packet
    data = bytearray(packet(host='cmp-a', ring=agent_a))
    data[28] = 250
    assert reason(bytes(data), ring) == 'bad_mac'


@pytest.mark.parametrize('state,expected', [
    ('running', 'ALIVE'), ('dead', 'SERVICE_DOWN'),
    ('restarting', 'SERVICE_DOWN'), ('failed', 'SERVICE_DOWN'),
    ('unknown', 'ALIVE')])
def test_heartbeat_state_from_process_state(state, expected):
    r = make_receiver()
    for seq, plane in enumerate(('management', 'storage'), 1):
        assert r.handle(packet(plane=plane, seq=seq,
                               procs={'nova-compute': state,
                                      'libvirtd': 'dead'}), plane)
    assert r.heartbeat_state('cmp1') == expected
