"""Heartbeat packet format, signing and verification.

One heartbeat is one UDP datagram, sent by ``nova-ha-agent`` on one network
plane. Version 1 layout (network byte order)::

    offset size field
    0      2    magic        b'HB'
    2      1    version      1
    3      1    flags        0 (reserved; receivers ignore it)
    4      8    epoch        u64, agent incarnation (grows at every start)
    12     8    seq          u64, per-epoch counter (one per beat, shared
                             by every plane of that beat)
    20     8    sent_us      u64, agent wall clock, microseconds since 1970
    28     1    host_len     1..255
    29     1    plane_len    1..32
    30     1    n_procs      0..16
    31     ..   host         UTF-8 (Nova's compute host name)
    ..     ..   plane        UTF-8 (e.g. ``management``)
    ..     ..   n_procs x    name_len u8 (1..64), state u8, name UTF-8
    end-32 32   mac          HMAC-SHA256(key, every byte before it)

Everything except the MAC is authenticated, including the plane: a packet
captured on one plane cannot be replayed onto another. :func:`decode`
checks length, magic, version and MAC *before* looking at any variable
field, and never puts packet bytes or key material in its exceptions.

Freshness (time window) and ordering (epoch, seq) are checked by the
receiver (:mod:`nova_ha.heartbeat.receiver`), which holds the per-sender
state; :func:`check_fresh` is the time-window half, usable on its own.
"""

import hmac
import struct
import uuid as uuid_mod

try:  # the C one-shot HMAC that hmac.digest() wraps (half the cost)
    from _hashlib import hmac_digest as _hmac_sha256
except ImportError:  # pragma: no cover
    _hmac_sha256 = hmac.digest
_compare = hmac.compare_digest

MAGIC = b'HB'
VERSION = 1
MAC_LEN = 32
MIN_KEY_LEN = 16
MAX_HOST_LEN = 255
MAX_PLANE_LEN = 32
MAX_PROC_NAME_LEN = 64
MAX_PROCS = 16

_HEADER = struct.Struct('!2sBBQQQBBB')
HEADER_LEN = _HEADER.size  # 31
MIN_PACKET_LEN = HEADER_LEN + 2 + MAC_LEN  # 1-byte host, 1-byte plane
MAX_PACKET_LEN = (HEADER_LEN + MAX_HOST_LEN + MAX_PLANE_LEN +
                  MAX_PROCS * (2 + MAX_PROC_NAME_LEN) + MAC_LEN)

# Process states as reported in heartbeats.
RUNNING = 'running'        # detected alive
DEAD = 'dead'              # not detected; a restart may follow
RESTARTING = 'restarting'  # restart command issued, not yet detected
FAILED = 'failed'          # restarts exhausted (watchdog gave up)
UNKNOWN = 'unknown'        # could not tell (e.g. permission denied)

STATES = (UNKNOWN, RUNNING, DEAD, RESTARTING, FAILED)
_STATE_CODE = {s: i for i, s in enumerate(STATES)}

# Rejection reasons (the receiver counts packets per reason).
REASONS = (
    'truncated',     # shorter than the smallest valid packet
    'oversize',      # longer than the largest valid packet
    'bad_magic',     # not a nova-ha heartbeat
    'bad_version',   # a version this receiver does not speak
    'bad_mac',       # forged, corrupted, or signed with another key
    'malformed',     # MAC fine but fields inconsistent (should not happen)
    'stale',         # sent_us older than now - max_clock_skew
    'future',        # sent_us newer than now + max_clock_skew
    'wrong_plane',   # packet's plane is not the plane it arrived on
    'unknown_host',  # host not in the receiver's known hosts
    'replay',        # (epoch, seq) older than one already accepted
    'duplicate',     # (epoch, seq) equal to the last one accepted
)


class PacketRejected(Exception):
    """A heartbeat failed verification; ``reason`` is one of REASONS.

    The message never contains packet bytes or key material.
    """

    def __init__(self, reason, detail=None):
        self.reason = reason
        super().__init__(reason if detail is None
                         else '%s: %s' % (reason, detail))


class Keyring:
    """Heartbeat HMAC keys: the first signs, every one verifies.

    More than one key lets an operator rotate the shared key without a flag
    day: add the new key second everywhere, then first everywhere, then
    drop the old one. ``repr()``/``str()`` never show key material.
    """

    __slots__ = ('_keys',)
    per_host = False

    def __init__(self, keys):
        if isinstance(keys, (bytes, str)):
            keys = [keys]
        out = []
        for i, k in enumerate(keys):
            if isinstance(k, str):
                k = k.encode('utf-8')
            if not isinstance(k, bytes):
                raise TypeError('heartbeat key #%d must be bytes or str, '
                                'not %s' % (i + 1, type(k).__name__))
            if len(k) < MIN_KEY_LEN:
                # Length only: never the key.
                raise ValueError('heartbeat key #%d is too short (%d bytes; '
                                 'at least %d required)'
                                 % (i + 1, len(k), MIN_KEY_LEN))
            out.append(k)
        if not out:
            raise ValueError('no heartbeat key configured')
        self._keys = tuple(out)

    def __repr__(self):
        return '<Keyring: %d key(s)>' % len(self._keys)

    __str__ = __repr__

    def __reduce__(self):
        # Keyrings are handed to threads, not pickled into logs or queues.
        raise TypeError('Keyring cannot be pickled')

    def __len__(self):
        return len(self._keys)

    def sign(self, msg):
        return _hmac_sha256(self._keys[0], msg, 'sha256')

    def verify(self, msg, mac):
        for k in self._keys:
            if _compare(_hmac_sha256(k, msg, 'sha256'), mac):
                return True
        return False


HOST_KEY_LABEL = b'nova-ha heartbeat host key v1\x00'


def derive_host_key(master, host):
    """The per-host key of `host` under `master` (``key_mode = per_host``):
    the hex HMAC-SHA256(master, label + host), as the text an agent's
    key_file holds. Returns str; never log it."""
    if isinstance(master, str):
        master = master.encode('utf-8')
    if isinstance(host, str):
        host = host.encode('utf-8')
    return _hmac_sha256(master, HOST_KEY_LABEL + host, 'sha256').hex()


class HostKeyring:
    """Receiver side of per-host keys: holds the master key(s) and checks
    each packet with the key derived for the host it names, so a compute
    host (which holds only its own derived key) cannot sign heartbeats for
    any other host. Verifies only; never signs."""

    __slots__ = ('_masters', '_cache')
    per_host = True
    _CACHE_MAX = 65536

    def __init__(self, master_keys):
        self._masters = Keyring(master_keys)._keys
        self._cache = {}

    def __repr__(self):
        return '<HostKeyring: %d master key(s)>' % len(self._masters)

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError('HostKeyring cannot be pickled')

    def __len__(self):
        return len(self._masters)

    def for_host(self, host):
        """Keyring of `host` (bytes or str) under every master key."""
        if isinstance(host, str):
            host = host.encode('utf-8')
        ring = self._cache.get(host)
        if ring is None:
            ring = Keyring([derive_host_key(m, host)
                            for m in self._masters])
            if len(self._cache) >= self._CACHE_MAX:
                self._cache.clear()
            self._cache[host] = ring
        return ring

    def sign(self, msg):
        raise TypeError('a HostKeyring verifies only; agents sign with '
                        'their derived host key')


class Heartbeat(tuple):
    """A verified heartbeat (immutable). Fields:

    version, host, plane, epoch, seq, sent_time (float, seconds since
    1970, the agent's clock), processes (tuple of (name, state)).
    """

    __slots__ = ()
    _fields = ('version', 'host', 'plane', 'epoch', 'seq', 'sent_time',
               'processes')

    def __new__(cls, version, host, plane, epoch, seq, sent_time, processes):
        return tuple.__new__(cls, (version, host, plane, epoch, seq,
                                   sent_time, processes))

    version = property(lambda self: self[0])
    host = property(lambda self: self[1])
    plane = property(lambda self: self[2])
    epoch = property(lambda self: self[3])
    seq = property(lambda self: self[4])
    sent_time = property(lambda self: self[5])
    processes = property(lambda self: self[6])

    def __repr__(self):
        return ('Heartbeat(host=%r, plane=%r, epoch=%d, seq=%d, '
                'sent_time=%.6f, processes=%r)'
                % (self.host, self.plane, self.epoch, self.seq,
                   self.sent_time, dict(self.processes)))


def _utf8(value, what, limit):
    b = value.encode('utf-8') if isinstance(value, str) else bytes(value)
    if not 1 <= len(b) <= limit:
        raise ValueError('%s %r must be 1..%d bytes of UTF-8'
                         % (what, value, limit))
    return b


def encode_processes(processes):
    """Pre-encode a {name: state} mapping (or (name, state) pairs)."""
    items = processes.items() if hasattr(processes, 'items') else processes
    items = list(items)
    if len(items) > MAX_PROCS:
        raise ValueError('at most %d processes per heartbeat, got %d'
                         % (MAX_PROCS, len(items)))
    parts = []
    for name, state in items:
        nb = _utf8(name, 'process name', MAX_PROC_NAME_LEN)
        try:
            code = _STATE_CODE[state]
        except KeyError:
            raise ValueError('process %r: state %r is not one of %s'
                             % (name, state, ', '.join(STATES))) from None
        parts.append(bytes((len(nb), code)) + nb)
    return len(items), b''.join(parts)


def encode(keyring, host, plane, epoch, seq, sent_time, processes=()):
    """Build one signed heartbeat datagram.

    :param keyring: a :class:`Keyring`
    :param sent_time: seconds since 1970 (``time.time()``)
    :param processes: {name: state} or a pre-encoded ``(count, bytes)``
        pair from :func:`encode_processes`
    """
    hb = _utf8(host, 'host', MAX_HOST_LEN)
    pb = _utf8(plane, 'plane', MAX_PLANE_LEN)
    if isinstance(processes, tuple) and len(processes) == 2 and \
            isinstance(processes[1], bytes):
        nprocs, procs = processes
    else:
        nprocs, procs = encode_processes(processes)
    body = _HEADER.pack(MAGIC, VERSION, 0, epoch, seq,
                        int(sent_time * 1e6), len(hb), len(pb),
                        nprocs) + hb + pb + procs
    return body + keyring.sign(body)


def _authenticated(data, keyring, magic, version, min_len, max_len):
    """(bytes, length, header fields) of a datagram of one kind whose
    length, magic, version and MAC check; else raise PacketRejected. The
    MAC covers everything before it, with the per-host key when the
    keyring has them."""
    if type(data) is not bytes:
        data = bytes(data)
    n = len(data)
    if n < min_len:
        raise PacketRejected('truncated')
    if n > max_len:
        raise PacketRejected('oversize')
    header = _HEADER.unpack_from(data)
    if header[0] != magic:
        raise PacketRejected('bad_magic')
    if header[1] != version:
        raise PacketRejected('bad_version', 'version %d' % header[1])
    hlen = header[6]
    if keyring.per_host:
        if hlen == 0 or HEADER_LEN + hlen > n - MAC_LEN:
            raise PacketRejected('bad_mac')
        keyring = keyring.for_host(data[HEADER_LEN:HEADER_LEN + hlen])
    if not keyring.verify(data[:-MAC_LEN], data[-MAC_LEN:]):
        raise PacketRejected('bad_mac')
    return data, n, header


def decode(data, keyring):
    """Verify and parse one datagram; raise :class:`PacketRejected`.

    Checks, in order: length, magic, version, MAC, field consistency.
    Freshness and ordering are the receiver's job (:func:`check_fresh`).
    """
    data, n, (_magic, version, _flags, epoch, seq, sent_us, hlen, plen,
              nprocs) = _authenticated(data, keyring, MAGIC, VERSION,
                                       MIN_PACKET_LEN, MAX_PACKET_LEN)
    # Only authenticated bytes reach here. Agents send the same host,
    # plane and process section beat after beat: parse each distinct one
    # once (bounded cache keyed by the raw bytes, length bytes included).
    tail = data[28:-MAC_LEN]
    parsed = _TAIL_CACHE.get(tail)
    if parsed is None:
        parsed = _parse_tail(data, n, hlen, plen, nprocs)
        if len(_TAIL_CACHE) >= _TAIL_CACHE_MAX:
            _TAIL_CACHE.clear()
        _TAIL_CACHE[tail] = parsed
    return Heartbeat(version, parsed[0], parsed[1], epoch, seq,
                     sent_us / 1e6, parsed[2])


_TAIL_CACHE = {}
_TAIL_CACHE_MAX = 8192


def _parse_tail(data, n, hlen, plen, nprocs):
    try:
        end = n - MAC_LEN
        off = HEADER_LEN
        if hlen == 0 or plen == 0 or plen > MAX_PLANE_LEN or \
                nprocs > MAX_PROCS:
            raise ValueError
        host = data[off:off + hlen].decode('utf-8')
        off += hlen
        plane = data[off:off + plen].decode('utf-8')
        off += plen
        procs = []
        for _ in range(nprocs):
            nl = data[off]
            code = data[off + 1]
            if nl == 0 or off + 2 + nl > end or code >= len(STATES):
                raise ValueError
            procs.append((data[off + 2:off + 2 + nl].decode('utf-8'),
                          STATES[code]))
            off += 2 + nl
        if off != end or off - HEADER_LEN < hlen + plen:
            raise ValueError
    except (ValueError, IndexError, UnicodeDecodeError):
        raise PacketRejected('malformed') from None
    return host, plane, tuple(procs)


def check_fresh(hb, now, max_clock_skew):
    """Raise PacketRejected('stale'/'future') if hb.sent_time is more than
    ``max_clock_skew`` seconds away from ``now`` (receiver wall clock)."""
    age = now - hb.sent_time
    if age > max_clock_skew:
        raise PacketRejected('stale', 'host %s, %.3f s old'
                             % (hb.host, age))
    if age < -max_clock_skew:
        raise PacketRejected('future', 'host %s, %.3f s ahead'
                             % (hb.host, -age))



# -- instance reports (issue 17) ---------------------------------------------
#
# A second datagram type, sent by the same agent with the same key: the
# domains of this host that crashed, stopped unexpectedly or paused on an
# error (and the ones running again). A heartbeat is unchanged (version 1,
# byte for byte), so an evacuator that does not know this type keeps
# working: it drops these datagrams as 'bad_magic'. Layout (network byte
# order)::
#
#     offset size field
#     0      2    magic        b'HI'
#     2      1    version      1
#     3      1    flags        bit 0 FULL: the packet repeats the host's
#                              current failures (sent with every heartbeat
#                              while there are any); 0: new events
#     4      8    epoch        u64, the agent's epoch (as its heartbeats)
#     12     8    seq          u64, per-epoch counter of instance packets
#     20     8    sent_us      u64, agent wall clock
#     28     1    host_len     1..255
#     29     1    plane_len    1..32
#     30     1    n_reports    1..MAX_REPORTS
#     31     ..   host, plane  UTF-8
#     ..     ..   n_reports x  uuid 16 bytes, kind u8, reason u8,
#                              since_us u64 (agent clock: when the domain
#                              entered this state)
#     end-32 32   mac          HMAC-SHA256(key, every byte before it)
#
# Same checks as a heartbeat: MAC before any variable field, then the time
# window, the plane and, per (host, plane), a strictly newer (epoch, seq).

INSTANCE_MAGIC = b'HI'
INSTANCE_VERSION = 1
FLAG_FULL = 0x01
MAX_REPORTS = 32
_REPORT = struct.Struct('!16sBBQ')
INSTANCE_MIN_LEN = HEADER_LEN + 2 + _REPORT.size + MAC_LEN
INSTANCE_MAX_LEN = (HEADER_LEN + MAX_HOST_LEN + MAX_PLANE_LEN +
                    MAX_REPORTS * _REPORT.size + MAC_LEN)

# What happened to a domain. RUNNING clears an earlier failure.
INSTANCE_RUNNING = 'running'
INSTANCE_CRASHED = 'crashed'            # qemu died, guest panic
INSTANCE_STOPPED = 'stopped'            # shut down / destroyed
INSTANCE_PAUSED_ERROR = 'paused_error'  # paused on I/O error, watchdog...
INSTANCE_GONE = 'gone'                  # undefined (deleted)
INSTANCE_KINDS = (INSTANCE_RUNNING, INSTANCE_CRASHED, INSTANCE_STOPPED,
                  INSTANCE_PAUSED_ERROR, INSTANCE_GONE)
INSTANCE_FAILURES = (INSTANCE_CRASHED, INSTANCE_STOPPED,
                     INSTANCE_PAUSED_ERROR)
# Why (libvirt's event detail, in words).
INSTANCE_REASONS = ('unknown', 'failed', 'crashed', 'panicked', 'shutdown',
                    'destroyed', 'ioerror', 'watchdog', 'api_error',
                    'postcopy_failed', 'started', 'resumed', 'undefined',
                    'found_at_scan',
                    'process_exit')   # qemu exited, seen before libvirt
_KIND_CODE = {k: i for i, k in enumerate(INSTANCE_KINDS)}
_REASON_CODE = {r: i for i, r in enumerate(INSTANCE_REASONS)}


class InstanceReport(tuple):
    """One domain's state: uuid (str), kind, reason, since (float, seconds
    since 1970 on the agent's clock)."""

    __slots__ = ()
    _fields = ('uuid', 'kind', 'reason', 'since')

    def __new__(cls, uuid, kind, reason, since):
        return tuple.__new__(cls, (uuid, kind, reason, since))

    uuid = property(lambda self: self[0])
    kind = property(lambda self: self[1])
    reason = property(lambda self: self[2])
    since = property(lambda self: self[3])

    def __repr__(self):
        return ('InstanceReport(uuid=%r, kind=%r, reason=%r, since=%.6f)'
                % self)


class InstancePacket(tuple):
    """A verified instance-report datagram: host, plane, epoch, seq,
    sent_time, full (bool), reports (tuple of InstanceReport)."""

    __slots__ = ()
    _fields = ('host', 'plane', 'epoch', 'seq', 'sent_time', 'full',
               'reports')

    def __new__(cls, host, plane, epoch, seq, sent_time, full, reports):
        return tuple.__new__(cls, (host, plane, epoch, seq, sent_time, full,
                                   reports))

    host = property(lambda self: self[0])
    plane = property(lambda self: self[1])
    epoch = property(lambda self: self[2])
    seq = property(lambda self: self[3])
    sent_time = property(lambda self: self[4])
    full = property(lambda self: self[5])
    reports = property(lambda self: self[6])


def _uuid_bytes(value):
    try:
        return uuid_mod.UUID(str(value)).bytes
    except ValueError:
        raise ValueError('instance uuid %r is not a UUID' % (value,)) \
            from None


def encode_instances(keyring, host, plane, epoch, seq, sent_time, reports,
                     full=False):
    """One signed instance-report datagram (1..MAX_REPORTS reports, each an
    InstanceReport or a (uuid, kind, reason, since) tuple)."""
    hb = _utf8(host, 'host', MAX_HOST_LEN)
    pb = _utf8(plane, 'plane', MAX_PLANE_LEN)
    reports = list(reports)
    if not 1 <= len(reports) <= MAX_REPORTS:
        raise ValueError('1..%d instance reports per packet, got %d'
                         % (MAX_REPORTS, len(reports)))
    parts = []
    for uuid, kind, reason, since in reports:
        try:
            kc = _KIND_CODE[kind]
        except KeyError:
            raise ValueError('instance %s: kind %r is not one of %s'
                             % (uuid, kind, ', '.join(INSTANCE_KINDS))) \
                from None
        rc = _REASON_CODE.get(reason, 0)
        parts.append(_REPORT.pack(_uuid_bytes(uuid), kc, rc,
                                  max(0, int(since * 1e6))))
    body = _HEADER.pack(INSTANCE_MAGIC, INSTANCE_VERSION,
                        FLAG_FULL if full else 0, epoch, seq,
                        int(sent_time * 1e6), len(hb), len(pb),
                        len(reports)) + hb + pb + b''.join(parts)
    return body + keyring.sign(body)


def decode_instances(data, keyring):
    """Verify and parse an instance-report datagram; raise PacketRejected
    (same reasons as :func:`decode`)."""
    data, n, (_magic, _version, flags, epoch, seq, sent_us, hlen, plen,
              count) = _authenticated(data, keyring, INSTANCE_MAGIC,
                                      INSTANCE_VERSION, INSTANCE_MIN_LEN,
                                      INSTANCE_MAX_LEN)
    try:
        off = HEADER_LEN
        if hlen == 0 or plen == 0 or plen > MAX_PLANE_LEN or \
                not 1 <= count <= MAX_REPORTS or \
                off + hlen + plen + count * _REPORT.size != n - MAC_LEN:
            raise ValueError
        host = data[off:off + hlen].decode('utf-8')
        off += hlen
        plane = data[off:off + plen].decode('utf-8')
        off += plen
        reports = []
        for _ in range(count):
            ub, kc, rc, since_us = _REPORT.unpack_from(data, off)
            off += _REPORT.size
            if kc >= len(INSTANCE_KINDS):
                raise ValueError
            reports.append(InstanceReport(
                str(uuid_mod.UUID(bytes=ub)), INSTANCE_KINDS[kc],
                INSTANCE_REASONS[rc] if rc < len(INSTANCE_REASONS)
                else 'unknown', since_us / 1e6))
    except (ValueError, UnicodeDecodeError, struct.error):
        raise PacketRejected('malformed') from None
    return InstancePacket(host, plane, epoch, seq, sent_us / 1e6,
                          bool(flags & FLAG_FULL), tuple(reports))
