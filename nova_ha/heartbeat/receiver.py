"""Heartbeat receiver, embedded in the evacuator.

One thread, one UDP socket per (plane, listen address). Every datagram is
verified (:func:`nova_ha.heartbeat.protocol.decode`: MAC, version), checked
for freshness (sent time within ``max_clock_skew`` of this host's clock),
for the plane it arrived on, and for ordering: per (host, plane) only a
strictly newer (epoch, seq) is accepted, so a replayed or reordered packet
never refreshes a host. The receiver keeps, per (host, plane), the
*monotonic* time of the last accepted packet, and per host the process
states of its newest heartbeat.

Public API (all methods thread-safe)::

    r = HeartbeatReceiver(listen={'management': [('10.0.0.5', 4800)],
                                  'storage': [('10.1.0.5', 4800)]},
                          keyring=Keyring(key), max_clock_skew=2.0,
                          window_for=lambda host: 0.8)
    r.start()                       # binds (port 0 allowed), starts thread
    r.addresses                     # {plane: [(addr, port), ...]} bound
    r.planes                        # configured plane names, in order
    r.last_seen(host, plane)        # time.monotonic() of last packet, None
    r.silent_planes(host, now=None, window=None)   # [plane, ...]
    r.host_view(host)               # HostView or None (never heard of)
    r.heartbeat_state(host, now=None, window=None)
                                    # ALIVE / SERVICE_DOWN / PARTITION /
                                    # SILENT / UNKNOWN (see below)
    r.snapshot(hosts, now=None, window_for=None)
                                    # {host: (state, [silent planes])} for
                                    # many hosts at one instant, one lock
                                    # (the evacuator's reconcile pass)
    r.hosts()                       # hosts ever accepted
    r.plane_status(now=None)        # {plane: (last_packet, hosts_alive)}
    r.healthy()                     # receiver thread running
    r.forget(host)                  # drop a deleted host's state
    r.counters()                    # {'accepted': n, 'rejected': {reason:
                                    #  n}, 'errors': n}
    r.subscribe(callback)           # callback(Event), receiver thread
    gen = r.wait_for_change(gen, timeout)   # block until generation > gen
    r.stop()

From configuration: ``nova_ha.conf.heartbeat.make_receiver(conf,
window_for=...)`` (``[heartbeat] listen``, key, ``key_mode``; per-host keys
use a ``protocol.HostKeyring``).

``now`` is ``time.monotonic()``. ``window`` defaults to
``window_for(host)`` (the SAL confirmation window, e.g. 4 x 200 ms for
SAL1). A plane is *silent* when it has never been heard from or its last
accepted packet is older than the window.

Events (delivered to subscribers and counted in the change generation the
moment they happen, so detection does not wait for a polling interval):
``alive`` (plane heard again, or first time), ``silent`` (plane passed its
window -- fired by a deadline timer in the receiver thread, not by
polling), ``processes`` (a process state changed), ``restart`` (the agent
started a new epoch), ``instance`` (a host reported an instance failed or
running again; detail: uuid, kind, reason, since -- the failures
themselves are in ``r.instances``, :mod:`nova_ha.heartbeat.instances`).

heartbeat_state() classifies from heartbeats only -- the evacuator combines
it with Nova's service state and the BMC:

* ``UNKNOWN``: never heard from on any plane;
* ``SILENT``: every plane silent (HOST_DOWN candidate);
* ``PARTITION``: some planes silent, some not;
* ``SERVICE_DOWN``: every plane fine, ``nova-compute``
  (``service_process``) reported dead, restarting or failed (``unknown``
  -- the agent could not tell -- is not down);
* ``ALIVE``: otherwise.
"""

import collections
import errno
import heapq
import logging
import selectors
import socket
import threading
import time

from nova_ha.heartbeat import instances as instances_mod
from nova_ha.heartbeat import protocol

LOG = logging.getLogger(__name__)

ALIVE = 'ALIVE'
SERVICE_DOWN = 'SERVICE_DOWN'
PARTITION = 'PARTITION'
SILENT = 'SILENT'
UNKNOWN = 'UNKNOWN'

Event = collections.namedtuple('Event', 'kind host plane at detail')
Event.__doc__ = ('A receiver state change. kind: alive | silent | '
                 'processes | restart | instance; at: time.monotonic(); '
                 'plane: None '
                 'for processes; detail: dict of processes, or epochs.')

PlaneView = collections.namedtuple(
    'PlaneView', 'last_seen epoch seq sent_time silent')
HostView = collections.namedtuple(
    'HostView', 'host planes processes processes_seen epoch')
HostView.__doc__ = ('planes: {plane: PlaneView} (configured planes only; '
                    'a never-heard plane has last_seen None); processes: '
                    '{name: state} from the newest heartbeat; '
                    'processes_seen: monotonic time of that heartbeat.')

_DOWN_STATES = frozenset((protocol.DEAD, protocol.RESTARTING,
                          protocol.FAILED))   # 'unknown' is not down
_RECV_SIZE = 4096
_RCVBUF = 4 * 1024 * 1024
_LOG_EVERY = 60.0  # seconds between log lines for one rejection reason


class _PlaneState:
    __slots__ = ('last_seen', 'epoch', 'seq', 'sent_time', 'silent',
                 'armed')

    def __init__(self):
        self.last_seen = None
        self.epoch = -1
        self.seq = -1
        self.sent_time = None
        self.silent = True
        self.armed = False


class _HostState:
    __slots__ = ('epoch', 'seq', 'processes', 'processes_seen')

    def __init__(self):
        self.epoch = -1
        self.seq = -1
        self.processes = ()
        self.processes_seen = None


def parse_address(text, default_port=None):
    """'10.0.0.5:4800', '[2001:db8::5]:4800', 'host:4800' -> (addr, port).

    Raises ValueError naming the value.
    """
    text = text.strip()
    host, port = text, None
    if text.startswith('['):
        end = text.find(']')
        if end < 0:
            raise ValueError('bad address %r: missing "]"' % text)
        host, rest = text[1:end], text[end + 1:]
        if rest:
            if not rest.startswith(':'):
                raise ValueError('bad address %r' % text)
            port = rest[1:]
    elif text.count(':') == 1:
        host, port = text.split(':')
    elif text.count(':') > 1:
        raise ValueError('bad address %r: write IPv6 as [addr]:port' % text)
    if port is None:
        if default_port is None:
            raise ValueError('bad address %r: no port' % text)
        port = default_port
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise ValueError('bad address %r: port %r is not a number'
                         % (text, port)) from None
    if not 0 <= port <= 65535 or not host:
        raise ValueError('bad address %r: need host:port with port '
                         '0..65535' % text)
    return host, port


class HeartbeatReceiver:
    """Receive, verify and track heartbeats. See the module docstring."""

    def __init__(self, listen, keyring, max_clock_skew=2.0,
                 window_for=None, default_window=0.8, known_hosts=None,
                 service_process='nova-compute', batch_delay=0.005,
                 clock=time.monotonic, wall_clock=time.time):
        """
        :param listen: {plane: [(addr, port), ...]} (order = plane order)
        :param keyring: protocol.Keyring (or a key / list of keys), or a
            protocol.HostKeyring for per-host keys
        :param max_clock_skew: seconds; packets whose sent time is further
            than this from our wall clock are rejected (stale/future)
        :param window_for: callable(host) -> seconds, the silence window
            used for ``silent`` events and as the default ``window``;
            called from the receiver thread (never with the receiver's
            lock held), so it must be quick
        :param batch_delay: seconds the receiver thread pauses after a
            batch so that the next one is larger (CPU vs. a few ms of
            latency); 0 to disable
        :param known_hosts: None (any authenticated host) or a container /
            callable(host) -> bool; others are rejected as unknown_host
        """
        if not listen:
            raise ValueError('no heartbeat plane to listen on')
        self.planes = tuple(listen)
        self._listen = {p: [tuple(a) for a in addrs]
                        for p, addrs in listen.items()}
        for p, addrs in self._listen.items():
            if not addrs:
                raise ValueError('plane %r has no listen address' % p)
        if not isinstance(keyring, (protocol.Keyring,
                                    protocol.HostKeyring)):
            keyring = protocol.Keyring(keyring)
        self._keyring = keyring
        self.max_clock_skew = float(max_clock_skew)
        # After this long without a packet a (host, plane)'s ordering
        # state is forgotten, so an agent whose epoch went backwards (clock
        # stepped back, state file lost) is heard again. Safe: a replayed
        # packet that old fails the time window anyway.
        self._reset_after = max(2 * self.max_clock_skew, 1.0)
        self._window_for = window_for or (lambda host: default_window)
        if known_hosts is None or callable(known_hosts):
            self._known = known_hosts
        else:
            known = frozenset(known_hosts)
            self._known = known.__contains__
        self.service_process = service_process
        self._batch_delay = batch_delay
        self._clock = clock
        self._wall = wall_clock

        self._lock = threading.Lock()
        # One drainer at a time (the receiver thread, or catch_up() in a
        # caller's): datagrams of one plane are handled in arrival order
        # (two readers would make the later of two look like a replay).
        self._drain_lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._gen = 0
        self._planes_state = {}   # (host, plane) -> _PlaneState
        self._hosts = {}          # host -> _HostState
        self._deadlines = []      # heap of (deadline, host, plane)
        self._accepted = 0
        self._errors = 0
        self._plane_last = dict.fromkeys(self.planes)
        self._rejected = dict.fromkeys(protocol.REASONS, 0)
        self._last_log = {}
        self._listeners = []
        self._socks = []
        self.addresses = {}
        self._thread = None
        self._stop = threading.Event()
        self._wake_r = self._wake_w = None
        # Issue 17: instance-failure datagrams (see _publish, handle).
        self.instances = instances_mod.InstanceReports(self)

    def __repr__(self):
        return '<HeartbeatReceiver planes=%s>' % ','.join(self.planes)

    # -- lifecycle ---------------------------------------------------------

    def bind(self):
        """Bind every socket (idempotent); raises OSError naming it."""
        if self._socks:
            return
        try:
            for plane, addrs in self._listen.items():
                bound = []
                for addr, port in addrs:
                    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
                    s = socket.socket(fam, socket.SOCK_DGRAM)
                    try:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                     _RCVBUF)
                        s.bind((addr, port))
                    except OSError as exc:
                        s.close()
                        raise OSError(exc.errno, 'heartbeat plane %s: cannot '
                                      'bind %s:%d: %s' % (plane, addr, port,
                                                          exc.strerror))
                    s.setblocking(False)
                    self._socks.append((s, plane))
                    bound.append(s.getsockname()[:2])
                self.addresses[plane] = bound
        except OSError:
            self._close()
            raise

    def start(self):
        self.bind()
        if self._thread is not None:
            return self
        self._stop.clear()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._thread = threading.Thread(target=self._run,
                                        name='heartbeat-receiver',
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        if self._thread is not None:
            try:
                self._wake_w.send(b'x')
            except OSError:
                pass
            self._thread.join(timeout)
            self._thread = None
        self._close()

    def _close(self):
        for s, _ in self._socks:
            s.close()
        self._socks = []
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()
        self._wake_r = self._wake_w = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- queries -----------------------------------------------------------

    def last_seen(self, host, plane):
        with self._lock:
            st = self._planes_state.get((host, plane))
            return None if st is None else st.last_seen

    def silent_planes(self, host, now=None, window=None):
        """Planes of `host` silent for more than `window` seconds."""
        if now is None:
            now = self._clock()
        if window is None:
            window = self._window_for(host)
        out = []
        with self._lock:
            for plane in self.planes:
                st = self._planes_state.get((host, plane))
                if st is None or st.last_seen is None or \
                        now - st.last_seen > window:
                    out.append(plane)
        return out

    def host_view(self, host):
        with self._lock:
            hs = self._hosts.get(host)
            if hs is None:
                return None
            planes = {}
            for plane in self.planes:
                st = self._planes_state.get((host, plane))
                if st is None:
                    planes[plane] = PlaneView(None, None, None, None, True)
                else:
                    planes[plane] = PlaneView(st.last_seen, st.epoch, st.seq,
                                              st.sent_time, st.silent)
            return HostView(host, planes, dict(hs.processes),
                            hs.processes_seen, hs.epoch)

    def heartbeat_state(self, host, now=None, window=None):
        if now is None:
            now = self._clock()
        silent = self.silent_planes(host, now, window)
        view = self.host_view(host)
        if view is None:
            return UNKNOWN
        if len(silent) == len(self.planes):
            return SILENT
        if silent:
            return PARTITION
        if self.service_process:
            state = view.processes.get(self.service_process)
            if state in _DOWN_STATES:
                return SERVICE_DOWN
        return ALIVE

    def snapshot(self, hosts, now=None, window_for=None):
        """{host: (heartbeat_state, [silent planes])} for every host of
        ``hosts``, all at the same ``now`` and under one acquisition of the
        lock: what heartbeat_state() and silent_planes() say for each,
        without a HostView per host (the evacuator asks this for every
        compute host several times a second). ``window_for`` defaults to
        the receiver's own."""
        if now is None:
            now = self._clock()
        window_for = window_for or self._window_for
        windows = [(h, window_for(h)) for h in hosts]   # outside the lock
        planes = self.planes
        nplanes = len(planes)
        proc = self.service_process
        out = {}
        with self._lock:
            pstate = self._planes_state
            hstate = self._hosts
            for host, window in windows:
                hs = hstate.get(host)
                silent = []
                for plane in planes:
                    st = pstate.get((host, plane))
                    if st is None or st.last_seen is None or \
                            now - st.last_seen > window:
                        silent.append(plane)
                if hs is None:
                    state = UNKNOWN
                elif len(silent) == nplanes:
                    state = SILENT
                elif silent:
                    state = PARTITION
                else:
                    state = ALIVE
                    for name, pst in hs.processes:
                        if name == proc:
                            if pst in _DOWN_STATES:
                                state = SERVICE_DOWN
                            break
                out[host] = (state, silent)
        return out

    def plane_status(self, now=None):
        """{plane: (last_packet, hosts_alive)}: monotonic time of the last
        accepted packet on the plane (None: never) and how many hosts are
        within their window on it. Every host silent on one plane at once
        more likely means *this* evacuator lost that plane."""
        if now is None:
            now = self._clock()
        with self._lock:
            items = [(h, p, st.last_seen)
                     for (h, p), st in self._planes_state.items()]
            last = dict(self._plane_last)
        windows = {}
        alive = dict.fromkeys(self.planes, 0)
        for host, plane, seen in items:
            if host not in windows:
                windows[host] = self._window_for(host)
            if seen is not None and now - seen <= windows[host]:
                alive[plane] = alive.get(plane, 0) + 1
        return {p: (last[p], alive[p]) for p in self.planes}

    def healthy(self):
        """True while the receiver thread runs (for self-checks)."""
        return self._thread is not None and self._thread.is_alive() and \
            not self._stop.is_set()

    def hosts(self):
        with self._lock:
            return sorted(self._hosts)

    def counters(self):
        with self._lock:
            return {'accepted': self._accepted,
                    'rejected': dict(self._rejected),
                    'errors': self._errors}

    def forget(self, host):
        """Drop everything known about `host` (deleted from Nova). Its
        next authentic, fresh heartbeat starts over."""
        with self._lock:
            self._hosts.pop(host, None)
            for plane in self.planes:
                self._planes_state.pop((host, plane), None)
        self.instances.forget(host)

    # -- change notification -----------------------------------------------

    @property
    def generation(self):
        with self._lock:
            return self._gen

    def wait_for_change(self, since, timeout=None):
        """Block until the change generation exceeds `since` (or timeout);
        return the current generation. Start with ``since=r.generation``."""
        with self._cond:
            self._cond.wait_for(lambda: self._gen > since, timeout)
            return self._gen

    def subscribe(self, callback):
        """callback(Event) is called in the receiver thread after each
        change; it must be quick and must not call stop()."""
        with self._lock:
            self._listeners.append(callback)

    def unsubscribe(self, callback):
        with self._lock:
            self._listeners.remove(callback)

    # -- receiver thread ---------------------------------------------------

    def _run(self):
        sel = selectors.DefaultSelector()
        for s, plane in self._socks:
            sel.register(s, selectors.EVENT_READ, plane)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        try:
            while not self._stop.is_set():
                self._step(sel)
        except Exception:  # pragma: no cover - must never die silently
            LOG.exception('heartbeat receiver thread failed')
            raise
        finally:
            sel.close()

    def _step(self, sel):
        """One turn of the receiver thread."""
        # Take what the kernel has queued before judging any deadline: after
        # a stall of this thread (GIL, GC, a loaded machine) the heartbeats
        # that arrived meanwhile are waiting in the socket buffers, and
        # expiring first would declare every host silent at once.
        self._drain_ready(sel.select(0))
        timeout = self._expire(self._clock())
        ready = sel.select(timeout)
        self._drain_ready(ready)
        if ready and self._batch_delay:
            # Let datagrams queue in the kernel (4 MB buffers) and take them
            # in batches: at 10,000 packets/s this halves the CPU; it delays
            # nothing by more than batch_delay.
            time.sleep(self._batch_delay)

    def _drain_ready(self, ready):
        for key, _ in ready:
            if key.data is not None:
                self._drain(key.fileobj, key.data)

    def catch_up(self, limit=100000):
        """Take every datagram queued in the kernel now, in the caller's
        thread; returns how many were taken. The evacuator calls this
        before judging silence and right before a power-off: after a stall
        of the receiver thread (or of the whole process) the heartbeats
        that arrived meanwhile wait in the socket buffers, and a host must
        not be judged on a view that is behind. Safe alongside the
        receiver thread (each datagram is read once; handle() locks)."""
        taken = 0
        for sock, plane in list(self._socks):
            while taken < limit:
                got = self._drain(sock, plane)
                taken += got
                if got < 512:
                    break
        return taken

    def _drain(self, sock, plane):
        """Up to 512 datagrams of ``sock``; returns how many were read."""
        with self._drain_lock:
            return self._drain_locked(sock, plane)

    def _drain_locked(self, sock, plane):
        recv = sock.recv
        handle = self.handle
        now = self._clock()
        wall = self._wall()
        for n in range(512):  # bounded so one busy plane cannot starve
            try:
                data = recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return n
            except OSError as exc:
                if exc.errno not in (errno.ECONNREFUSED,):
                    LOG.warning('heartbeat plane %s: receive error: %s',
                                plane, exc)
                return n
            try:
                handle(data, plane, now, wall)
            except Exception:
                # A bug must cost one packet, not the receiver thread.
                with self._lock:
                    self._errors += 1
                    errors = self._errors
                if errors <= 10 or errors % 10000 == 0:
                    LOG.exception('heartbeat plane %s: packet handling '
                                  'failed (%d so far)', plane, errors)
        return 512

    def handle(self, data, plane, now=None, wall=None):
        """Process one datagram that arrived on `plane`; returns the
        accepted Heartbeat or None. Public so tests and the simulator can
        feed packets without sockets. `now`/`wall`: time.monotonic() and
        time.time() at reception (default: read the clocks)."""
        if data[:2] == protocol.INSTANCE_MAGIC:
            # Issue 17: an instance-failure report (InstanceReports).
            return self.instances.handle(data, plane, now, wall)
        try:
            hb = protocol.decode(data, self._keyring)
            _v, host, hb_plane, epoch, seq, sent, procs = hb
            if hb_plane != plane:
                raise protocol.PacketRejected('wrong_plane')
            age = (self._wall() if wall is None else wall) - sent
            if age > self.max_clock_skew or age < -self.max_clock_skew:
                protocol.check_fresh(hb, self._wall() if wall is None
                                     else wall, self.max_clock_skew)
            if self._known is not None and not self._known(host):
                raise protocol.PacketRejected('unknown_host')
        except protocol.PacketRejected as exc:
            rejected = exc
        else:
            rejected = None
        if rejected is not None:
            self._reject(rejected.reason, rejected)
            return None
        if now is None:
            now = self._clock()
        events = []
        key = (host, plane)
        with self._lock:
            st = self._planes_state.get(key)
            if st is None:
                st = self._planes_state[key] = _PlaneState()
            elif (epoch, seq) <= (st.epoch, st.seq):
                if st.last_seen is not None and \
                        now - st.last_seen > self._reset_after:
                    LOG.warning('heartbeat host %s plane %s: epoch/seq went '
                                'backwards after %.1f s of silence; '
                                'accepting', host, plane,
                                now - st.last_seen)
                else:
                    reason = ('duplicate' if (epoch, seq) ==
                              (st.epoch, st.seq) else 'replay')
                    self._rejected[reason] += 1
                    self._log_reject(reason, '%s: host %s plane %s'
                                     % (reason, host, plane))
                    return None
            self._accepted += 1
            self._plane_last[plane] = now
            if st.epoch not in (-1, epoch):
                events.append(Event('restart', host, plane, now,
                                    {'old_epoch': st.epoch,
                                     'epoch': epoch}))
            st.last_seen = now
            st.epoch = epoch
            st.seq = seq
            st.sent_time = sent
            arm = False
            if st.silent:
                st.silent = False
                events.append(Event('alive', host, plane, now, None))
                if not st.armed:
                    st.armed = arm = True
            hs = self._hosts.get(host)
            if hs is None:
                hs = self._hosts[host] = _HostState()
            if (epoch, seq) > (hs.epoch, hs.seq):
                hs.epoch, hs.seq = epoch, seq
                hs.processes_seen = now
                if procs != hs.processes:
                    hs.processes = procs
                    events.append(Event('processes', host, None, now,
                                        dict(procs)))
            if events:
                self._gen += 1
                self._cond.notify_all()
                listeners = list(self._listeners)
        if arm:
            # window_for() is the caller's code: never call it with our
            # lock held (lock-order safety).
            deadline = now + self._window_for(host)
            with self._lock:
                heapq.heappush(self._deadlines, (deadline, host, plane))
        if events:
            self._notify(listeners, events)
        return hb

    def _expire(self, now):
        """Fire ``silent`` for every passed deadline; return select timeout.
        """
        with self._lock:
            dl = self._deadlines
            due = []
            while dl and dl[0][0] <= now:
                due.append(heapq.heappop(dl)[1:])
        events = []
        if due:
            windows = {}
            for host, _ in due:   # outside the lock: caller's code
                if host not in windows:
                    windows[host] = self._window_for(host)
            with self._lock:
                for host, plane in due:
                    st = self._planes_state.get((host, plane))
                    if st is None:
                        continue
                    deadline = st.last_seen + windows[host]
                    if deadline <= now:
                        st.armed = False
                        if not st.silent:
                            st.silent = True
                            events.append(Event('silent', host, plane, now,
                                                {'last_seen': st.last_seen}))
                    else:
                        heapq.heappush(dl, (deadline, host, plane))
                if events:
                    self._gen += 1
                    self._cond.notify_all()
                    listeners = list(self._listeners)
        with self._lock:
            timeout = 0.5 if not self._deadlines else max(
                0.0, min(0.5, self._deadlines[0][0] - now))
        if events:
            self._notify(listeners, events)
        return timeout

    def _publish(self, events):
        """Issue 17: count `events` (Event fields as tuples) in the change
        generation and tell the subscribers (InstanceReports)."""
        events = [Event(*e) for e in events]
        with self._lock:
            self._gen += 1
            self._cond.notify_all()
            listeners = list(self._listeners)
        self._notify(listeners, events)

    def _notify(self, listeners, events):
        for ev in events:
            if ev.kind in ('silent', 'restart'):
                LOG.info('heartbeat host %s plane %s: %s', ev.host,
                         ev.plane, ev.kind)
            for cb in listeners:
                try:
                    cb(ev)
                except Exception:
                    LOG.exception('heartbeat listener %r failed', cb)

    def _reject(self, reason, exc):
        with self._lock:
            self._rejected[reason] += 1
            self._log_reject(reason, str(exc))

    def _log_reject(self, reason, text):
        # Called with the lock held; rate-limited per reason. `text` comes
        # from PacketRejected or host/plane names: never packet bytes.
        now = self._clock()
        last = self._last_log.get(reason)
        if last is None or now - last >= _LOG_EVERY:
            self._last_log[reason] = now
            LOG.warning('heartbeat rejected (%s); %d so far with this '
                        'reason', text, self._rejected[reason])
