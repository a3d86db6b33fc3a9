"""Instance failures: libvirt lifecycle events on the agent, reports on
the evacuator (issue 17, doc/instance-ha.md).

Agent side -- :class:`InstanceMonitor` (``nova-ha-agent`` with
``[instance_ha] monitor = true``) watches the host's libvirtd::

    mon = InstanceMonitor('qemu:///system', on_reports=agent.send_instances)
    mon.start()
    agent.instance_failures = mon.failures   # repeated with every beat
    ...
    mon.stop()

* one process-wide thread runs libvirt's default event loop
  (``virEventRegisterDefaultImpl`` / ``virEventRunDefaultImpl``);
* the lifecycle callback (called in that thread) only appends
  ``(uuid, event, detail, time)`` to a bounded queue and wakes the
  monitor's own thread: it never blocks, whatever the number of domains
  failing at once. A full queue sets an overflow flag instead of blocking;
  the monitor then rescans every domain's state, so no failure is lost
  (libvirt keeps a crashed persistent domain shut off with reason
  *crashed*);
* the monitor thread turns events into a table of failed domains
  ``{uuid: InstanceReport}`` and hands what changed to ``on_reports`` at
  once (the agent sends it in an immediate signed datagram,
  :func:`nova_ha.heartbeat.protocol.encode_instances`); the table itself
  goes out again with every heartbeat while it is not empty, so a lost
  datagram costs one heartbeat interval, not the failure;
* the connection is watched (close callback, keepalive, ``isAlive()``);
  when libvirtd restarts or the connection breaks, the monitor reconnects
  with back-off, registers again and rescans, so a failure that happened
  while it was disconnected is still reported.

* **process watch** (``watch_processes``, on by default): for every
  running domain the monitor also holds a pidfd of its qemu process (found
  by ``-uuid`` in /proc) and learns of its exit from the kernel at once.
  libvirtd handles the end of a qemu process in one worker thread per
  driver, so when fifty domains die together the last STOPPED event can
  come tens of seconds after the kill; the pidfd does not wait for it. An
  exit is reported ``exit_grace`` (50 ms) later unless a SHUTDOWN event
  (guest power-off, or libvirt stopping it on request) came first: then it
  is ``stopped (shutdown)``, else ``crashed (process_exit)``. libvirt's
  own STOPPED event follows and is folded in (same kind: no new report);

libvirt-python is imported lazily: :func:`require_libvirt` raises
:class:`LibvirtUnavailable` with a clear message when it is missing.

Evacuator side -- :class:`InstanceReports`, owned by the heartbeat receiver
(``receiver.instances``): verifies instance datagrams like heartbeats (MAC,
time window, plane, per (host, plane) strictly newer (epoch, seq)) and
keeps the failures each host reports. ``failures()`` is what
:mod:`nova_ha.evacuator.instance_ha` acts on.
"""

import collections
import logging
import os
import select
import threading
import time

from nova_ha.heartbeat import protocol

LOG = logging.getLogger(__name__)

_K = protocol
# (libvirt event, detail) -> (kind, reason); constants written out so this
# table needs no libvirt import. Events not listed are not reported
# (migrations, saves, snapshots, user pauses: Nova's own operations).
_EV_DEFINED, _EV_UNDEFINED, _EV_STARTED, _EV_SUSPENDED, _EV_RESUMED, \
    _EV_STOPPED, _EV_SHUTDOWN, _EV_PMSUSPENDED, _EV_CRASHED = range(9)
EVENT_MAP = {
    (_EV_STOPPED, 0): (_K.INSTANCE_STOPPED, 'shutdown'),
    (_EV_STOPPED, 1): (_K.INSTANCE_STOPPED, 'destroyed'),
    (_EV_STOPPED, 2): (_K.INSTANCE_CRASHED, 'crashed'),
    (_EV_STOPPED, 5): (_K.INSTANCE_CRASHED, 'failed'),
    (_EV_CRASHED, 0): (_K.INSTANCE_CRASHED, 'panicked'),
    (_EV_SUSPENDED, 2): (_K.INSTANCE_PAUSED_ERROR, 'ioerror'),
    (_EV_SUSPENDED, 3): (_K.INSTANCE_PAUSED_ERROR, 'watchdog'),
    (_EV_SUSPENDED, 6): (_K.INSTANCE_PAUSED_ERROR, 'api_error'),
    (_EV_SUSPENDED, 8): (_K.INSTANCE_PAUSED_ERROR, 'postcopy_failed'),
}
_RUNNING_EVENTS = {_EV_STARTED: 'started', _EV_RESUMED: 'resumed'}

# virDomainState / reasons seen by a scan.
_ST_RUNNING, _ST_PAUSED, _ST_SHUTOFF, _ST_CRASHED = 1, 3, 5, 6
SCAN_MAP = {
    (_ST_SHUTOFF, 3): (_K.INSTANCE_CRASHED, 'crashed'),
    (_ST_SHUTOFF, 6): (_K.INSTANCE_CRASHED, 'failed'),
    (_ST_PAUSED, 5): (_K.INSTANCE_PAUSED_ERROR, 'ioerror'),
    (_ST_PAUSED, 6): (_K.INSTANCE_PAUSED_ERROR, 'watchdog'),
    (_ST_PAUSED, 12): (_K.INSTANCE_PAUSED_ERROR, 'api_error'),
    (_ST_PAUSED, 13): (_K.INSTANCE_PAUSED_ERROR, 'postcopy_failed'),
}


def classify_event(event, detail):
    """(kind, reason) of a lifecycle event, or None (not reported)."""
    if event in _RUNNING_EVENTS:
        return protocol.INSTANCE_RUNNING, _RUNNING_EVENTS[event]
    if event == _EV_UNDEFINED:
        return protocol.INSTANCE_GONE, 'undefined'
    if event == _EV_CRASHED:
        return protocol.INSTANCE_CRASHED, 'panicked'
    return EVENT_MAP.get((event, detail))


def classify_state(state, reason):
    """(kind, reason) of a domain found in `state` by a scan: a failure
    kind, or running, or None (shut off on purpose, paused by a user)."""
    if state == _ST_CRASHED:
        return protocol.INSTANCE_CRASHED, 'crashed'
    if state == _ST_RUNNING:
        return protocol.INSTANCE_RUNNING, 'found_at_scan'
    return SCAN_MAP.get((state, reason))


def find_qemu_pids(uuids):
    """{uuid: pid} of the qemu processes running the domains `uuids`
    (their command line has ``-uuid UUID``), from /proc."""
    want = set(uuids)
    out = {}
    try:
        pids = [d for d in os.listdir('/proc') if d.isdigit()]
    except OSError:
        return out
    for d in pids:
        try:
            with open('/proc/%s/cmdline' % d, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if len(argv) < 3 or b'qemu' not in argv[0]:
            continue
        try:
            uuid = argv[argv.index(b'-uuid') + 1].decode()
        except (ValueError, IndexError, UnicodeDecodeError):
            continue
        if uuid in want:
            out[uuid] = int(d)
    return out


class LibvirtUnavailable(RuntimeError):
    """libvirt-python is missing (or libvirtd unreachable at start)."""


def require_libvirt():
    """The libvirt module, or LibvirtUnavailable with what to install."""
    try:
        import libvirt
    except ImportError:
        raise LibvirtUnavailable(
            'instance monitoring needs libvirt-python (the binding Nova\'s '
            'libvirt driver uses; on a compute host it comes with '
            'nova-compute, else `pip install libvirt-python`, which builds '
            'against libvirt-dev), or set [instance_ha] monitor = false') \
            from None
    return libvirt


_loop_lock = threading.Lock()
_loop_thread = None


def ensure_event_loop():
    """Register libvirt's default event implementation (once per process,
    before any connection is opened) and run it in a daemon thread."""
    global _loop_thread
    libvirt = require_libvirt()
    with _loop_lock:
        if _loop_thread is not None and _loop_thread.is_alive():
            return _loop_thread
        libvirt.virEventRegisterDefaultImpl()
        # A periodic no-op timer makes every turn of the loop return at
        # least every 0.5 s.
        libvirt.virEventAddTimeout(500, lambda timer, opaque: None, None)

        def run():
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except Exception:   # noqa: BLE001 -- the loop must live
                    LOG.exception('libvirt event loop turn failed')
                    time.sleep(0.1)

        _loop_thread = threading.Thread(target=run, name='libvirt-events',
                                        daemon=True)
        _loop_thread.start()
        return _loop_thread


class InstanceMonitor:
    """Watch one libvirtd's domains. See the module docstring."""

    def __init__(self, uri, on_reports=None, queue_max=4096,
                 table_max=4096, reconnect_initial=0.2, reconnect_max=5.0,
                 check_interval=1.0, keepalive=(2, 3), read_only=True,
                 watch_processes=True, exit_grace=0.05,
                 wall_clock=time.time):
        """
        :param uri: libvirt URI (``qemu:///system`` on a compute host)
        :param on_reports: callable([InstanceReport]) for what changed,
            called from the monitor thread; must not block for long
        :param queue_max: events buffered between the libvirt callback
            and the monitor thread; beyond it a rescan replaces them
        :param table_max: failed domains tracked (oldest dropped beyond)
        """
        self.uri = uri
        self.on_reports = on_reports
        self.queue_max = int(queue_max)
        self.table_max = int(table_max)
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.check_interval = check_interval
        self.keepalive = keepalive
        self.read_only = read_only
        self._wall = wall_clock
        self._queue = collections.deque()
        self._overflow = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._table = collections.OrderedDict()   # uuid -> InstanceReport
        self._table_lock = threading.Lock()
        self._conn = None
        self._cb_id = None
        self._closed = threading.Event()
        self._thread = None
        self.connected = threading.Event()
        self.counters = collections.Counter()
        # Process watch: uuid -> pidfd; pidfd -> uuid; exits waiting for
        # exit_grace; domains whose SHUTDOWN event was seen.
        self.watch_processes = watch_processes and hasattr(os,
                                                           'pidfd_open')
        self.exit_grace = exit_grace
        self._pidfds = {}
        self._fd_uuid = {}
        self._pid_lock = threading.Lock()
        self._epoll = None
        self._exits = {}
        self._exit_wall = {}
        self._shutdown_seen = {}
        self._pid_thread = None

    def __repr__(self):
        return '<InstanceMonitor %s>' % self.uri

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        require_libvirt()
        ensure_event_loop()
        self._stop.clear()
        if self.watch_processes:
            self._epoll = select.epoll()
            self._pid_thread = threading.Thread(
                target=self._watch_pids, name='instance-pids', daemon=True)
            self._pid_thread.start()
        self._thread = threading.Thread(target=self._run,
                                        name='instance-monitor', daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pid_thread is not None:
            self._pid_thread.join(timeout)
            self._pid_thread = None
        self._disconnect()
        with self._pid_lock:
            for fd in list(self._fd_uuid):
                os.close(fd)
            self._fd_uuid.clear()
            self._pidfds.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None

    def wait_connected(self, timeout=None):
        return self.connected.wait(timeout)

    # -- what the agent reads ----------------------------------------------
    def failures(self):
        """[InstanceReport] of every domain currently failed."""
        with self._table_lock:
            return list(self._table.values())

    # -- libvirt callbacks (event loop thread: never block) -----------------
    def _on_lifecycle(self, conn, dom, event, detail, opaque):
        at = self._wall()
        if len(self._queue) >= self.queue_max:
            self._overflow = True
            self.counters['overflow'] += 1
        else:
            try:
                self._queue.append((dom.UUIDString(), event, detail, at))
            except Exception:   # noqa: BLE001 -- never raise into libvirt
                self._overflow = True
        self._wake.set()

    def _on_close(self, conn, reason, opaque):
        self._closed.set()
        self._wake.set()

    # -- monitor thread ------------------------------------------------------
    def _run(self):
        delay = self.reconnect_initial
        while not self._stop.is_set():
            if self._conn is None:
                try:
                    self._connect()
                    delay = self.reconnect_initial
                except Exception as exc:   # noqa: BLE001
                    self.counters['connect_errors'] += 1
                    if self.counters['connect_errors'] in (1, 10) or \
                            self.counters['connect_errors'] % 100 == 0:
                        LOG.warning('instance monitor: cannot connect to '
                                    '%s: %s (retrying)', self.uri, exc)
                    self._disconnect()
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.reconnect_max)
                    continue
            wait = self.check_interval
            if self._exits:
                wait = max(0.0, min(wait, min(self._exits.values()) +
                                    self.exit_grace - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            try:
                self._process()
                if self._closed.is_set() or not self._conn.isAlive():
                    raise ConnectionError('connection to libvirtd lost')
            except Exception as exc:   # noqa: BLE001
                LOG.warning('instance monitor: %s; reconnecting', exc)
                self.counters['disconnects'] += 1
                self._disconnect()

    def _connect(self):
        libvirt = require_libvirt()
        libvirt.registerErrorHandler(lambda ctx, err: None, None)
        self._closed.clear()
        opener = libvirt.openReadOnly if self.read_only else libvirt.open
        conn = opener(self.uri)
        self._conn = conn
        try:
            if self.keepalive:
                conn.setKeepAlive(*self.keepalive)
            conn.registerCloseCallback(self._on_close, None)
        except libvirt.libvirtError:
            pass   # test:///default has neither
        self._cb_id = conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle,
            None)
        self.counters['connects'] += 1
        # Events from before this registration are lost: the scan finds
        # what they did.
        self._scan()
        self.connected.set()
        LOG.info('instance monitor: watching %s (%d failed domain(s))',
                 self.uri, len(self._table))

    def _disconnect(self):
        self.connected.clear()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._cb_id is not None:
                conn.domainEventDeregisterAny(self._cb_id)
        except Exception:   # noqa: BLE001
            pass
        try:
            conn.unregisterCloseCallback()
        except Exception:   # noqa: BLE001
            pass
        try:
            conn.close()
        except Exception:   # noqa: BLE001
            pass
        self._cb_id = None

    def _scan(self):
        """Level-trigger: rebuild the failure table from every domain's
        state; report what changed."""
        self.counters['scans'] += 1
        self._queue.clear()
        self._overflow = False
        now = self._wall()
        seen = {}
        for dom in self._conn.listAllDomains(0):
            try:
                state, reason = dom.state()
                uuid = dom.UUIDString()
            except Exception:   # noqa: BLE001 -- vanished meanwhile
                continue
            seen[uuid] = classify_state(state, reason)
        if self.watch_processes:
            running = [u for u, c in seen.items()
                       if c and c[0] == protocol.INSTANCE_RUNNING]
            self._watch(running)
        changed = []
        with self._table_lock:
            for uuid in list(self._table):
                cls = seen.get(uuid)
                if cls is None:
                    changed.append(protocol.InstanceReport(
                        uuid, protocol.INSTANCE_GONE, 'undefined', now))
                    del self._table[uuid]
                elif cls[0] == protocol.INSTANCE_RUNNING:
                    changed.append(protocol.InstanceReport(
                        uuid, protocol.INSTANCE_RUNNING, 'found_at_scan',
                        now))
                    del self._table[uuid]
            for uuid, cls in seen.items():
                if cls is None or cls[0] == protocol.INSTANCE_RUNNING:
                    continue
                old = self._table.get(uuid)
                if old is not None and old.kind == cls[0]:
                    continue
                rep = protocol.InstanceReport(uuid, cls[0], cls[1], now)
                self._put(rep)
                changed.append(rep)
        self._emit(changed)

    def _put(self, rep):
        self._table[rep.uuid] = rep
        self._table.move_to_end(rep.uuid)
        while len(self._table) > self.table_max:
            self._table.popitem(last=False)
            self.counters['table_dropped'] += 1

    def _process(self):
        if self._overflow:
            LOG.warning('instance monitor: event queue full (%d); '
                        'rescanning every domain', self.queue_max)
            self._scan()
            return
        changed = []
        q = self._queue
        started = []
        while q:
            uuid, event, detail, at = q.popleft()
            self.counters['events'] += 1
            if event == _EV_SHUTDOWN:
                self._shutdown_seen[uuid] = time.monotonic()
                continue
            if event == _EV_STARTED:
                started.append(uuid)
                self._shutdown_seen.pop(uuid, None)
            cls = classify_event(event, detail)
            if cls is None:
                continue
            kind, reason = cls
            with self._table_lock:
                old = self._table.get(uuid)
                if kind in protocol.INSTANCE_FAILURES:
                    if old is not None and old.kind == kind:
                        continue
                    rep = protocol.InstanceReport(uuid, kind, reason, at)
                    self._put(rep)
                elif old is not None:
                    del self._table[uuid]
                    rep = protocol.InstanceReport(uuid, kind, reason, at)
                else:
                    continue
            changed.append(rep)
        changed += self._due_exits()
        if started and self.watch_processes:
            self._watch(started)
        self._emit(changed)

    # -- process watch (pidfd) -----------------------------------------------
    def _watch(self, uuids):
        """Hold a pidfd on the qemu process of each domain in `uuids`."""
        want = {u for u in uuids if u not in self._pidfds}
        if not want or self._epoll is None:
            return
        for uuid, pid in find_qemu_pids(want).items():
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            with self._pid_lock:
                old = self._pidfds.pop(uuid, None)
                if old is not None:
                    self._fd_uuid.pop(old, None)
                    os.close(old)
                self._pidfds[uuid] = fd
                self._fd_uuid[fd] = uuid
                self._epoll.register(fd, select.EPOLLIN)
            self.counters['pids_watched'] += 1

    def _watch_pids(self):
        while not self._stop.is_set():
            try:
                events = self._epoll.poll(0.5)
            except (OSError, ValueError):
                return   # closed by stop()
            if not events:
                continue
            now = time.monotonic()
            wall = self._wall()
            with self._pid_lock:
                for fd, _ in events:
                    uuid = self._fd_uuid.pop(fd, None)
                    if uuid is None:
                        continue
                    self._pidfds.pop(uuid, None)
                    try:
                        self._epoll.unregister(fd)
                    except (OSError, ValueError):
                        pass
                    os.close(fd)
                    self._exits[uuid] = now
                    self._exit_wall[uuid] = wall
            self.counters['process_exits'] += len(events)
            self._wake.set()

    def _due_exits(self):
        """Reports for qemu exits past their grace (see the module doc)."""
        if not self._exits:
            return []
        now = time.monotonic()
        out = []
        for uuid, at in list(self._exits.items()):
            if now - at < self.exit_grace:
                continue
            del self._exits[uuid]
            wall = self._exit_wall.pop(uuid, self._wall())
            shut = self._shutdown_seen.pop(uuid, None)
            if shut is not None and at - shut < 60.0:
                kind, reason = protocol.INSTANCE_STOPPED, 'shutdown'
            else:
                kind, reason = protocol.INSTANCE_CRASHED, 'process_exit'
            with self._table_lock:
                old = self._table.get(uuid)
                if old is not None and old.kind in protocol.INSTANCE_FAILURES:
                    continue   # libvirt's event was first
                rep = protocol.InstanceReport(uuid, kind, reason, wall)
                self._put(rep)
            out.append(rep)
        return out

    def _emit(self, reports):
        if not reports:
            return
        for rep in reports:
            LOG.log(logging.INFO if rep.kind == protocol.INSTANCE_RUNNING
                    else logging.WARNING, 'instance %s: %s (%s)', rep.uuid,
                    rep.kind, rep.reason)
        self.counters['reports'] += len(reports)
        if self.on_reports is not None:
            try:
                self.on_reports(reports)
            except Exception:   # noqa: BLE001
                LOG.exception('instance monitor: sending reports failed')


# -- evacuator side -----------------------------------------------------------

Failure = collections.namedtuple(
    'Failure', 'host uuid kind reason since heard_at heard_wall refreshed')
Failure.__doc__ = ('A failed instance as reported by its host. since: '
                   'agent wall clock of the libvirt event; heard_at / '
                   'refreshed: receiver monotonic time of the first / last '
                   'report; heard_wall: receiver wall clock of the first.')


class InstanceReports:
    """Failures reported by every host (one per instance uuid).

    Owned by a HeartbeatReceiver, which routes instance datagrams here.
    A failure not repeated for ``stale_after`` seconds (agents repeat it
    with every heartbeat) is dropped, as is one the host reports running
    or gone again.
    """

    def __init__(self, receiver, stale_after=10.0):
        self._r = receiver
        self.stale_after = stale_after
        self._lock = threading.Lock()
        self._order = {}      # (host, plane) -> (epoch, seq)
        self._failures = {}   # uuid -> Failure
        self.accepted = 0

    def handle(self, data, plane, now=None, wall=None):
        r = self._r
        if now is None:
            now = r._clock()
        if wall is None:
            wall = r._wall()
        try:
            pkt = protocol.decode_instances(data, r._keyring)
            if pkt.plane != plane:
                raise protocol.PacketRejected('wrong_plane')
            protocol.check_fresh(pkt, wall, r.max_clock_skew)
            if r._known is not None and not r._known(pkt.host):
                raise protocol.PacketRejected('unknown_host')
        except protocol.PacketRejected as exc:
            r._reject(exc.reason, exc)
            return None
        events = []
        with self._lock:
            key = (pkt.host, plane)
            last = self._order.get(key)
            if last is not None and (pkt.epoch, pkt.seq) <= last:
                return None   # replayed or reordered
            self._order[key] = (pkt.epoch, pkt.seq)
            self.accepted += 1
            for rep in pkt.reports:
                old = self._failures.get(rep.uuid)
                if rep.kind in protocol.INSTANCE_FAILURES:
                    if old is not None and old.host == pkt.host and \
                            old.kind == rep.kind and \
                            abs(old.since - rep.since) < 1e-6:
                        self._failures[rep.uuid] = old._replace(
                            refreshed=now)
                        continue
                    self._failures[rep.uuid] = Failure(
                        pkt.host, rep.uuid, rep.kind, rep.reason, rep.since,
                        now, wall, now)
                elif old is not None and old.host == pkt.host and \
                        rep.since >= old.since:
                    del self._failures[rep.uuid]
                else:
                    continue
                events.append(('instance', pkt.host, plane, now,
                               {'uuid': rep.uuid, 'kind': rep.kind,
                                'reason': rep.reason, 'since': rep.since}))
        if events:
            r._publish(events)
        return pkt

    # A FULL repeat that lists fewer failures than we hold does not clear
    # the others (it may be one of several datagrams): a clear is always
    # an explicit report, or staleness.

    def failures(self, host=None, now=None):
        """{uuid: Failure} currently reported (by `host`, or any)."""
        if now is None:
            now = self._r._clock()
        with self._lock:
            for uuid, f in list(self._failures.items()):
                if now - f.refreshed > self.stale_after:
                    del self._failures[uuid]
            return {u: f for u, f in self._failures.items()
                    if host is None or f.host == host}

    def forget(self, host):
        with self._lock:
            for uuid, f in list(self._failures.items()):
                if f.host == host:
                    del self._failures[uuid]
            for key in [k for k in self._order if k[0] == host]:
                del self._order[key]
