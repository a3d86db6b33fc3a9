"""Heartbeat sender: one :class:`Agent` per compute host.

Every ``interval`` seconds an agent sends one signed datagram per enabled
plane to every target of that plane (several targets per plane when the
evacuators run as a redundant pair). All planes of one beat carry the same
(epoch, seq); the epoch grows at every agent start (see :func:`new_epoch`),
the seq restarts at 1, so receivers accept a restarted agent at once and
still reject replays.

Seams for the simulated cloud (many agents in one process):

* ``plane_enabled(plane) -> bool``: called every beat for every plane; a
  fault returns False (mgmt_partition: False for 'management';
  power_loss/hang: False for every plane).
* ``process_states() -> {name: state}``: called every beat; the real
  daemon passes ``Watchdog.states``, the simulator reports e.g.
  ``{'nova-compute': 'dead'}`` for a service_crash.
* :class:`AgentGroup`: one thread and one socket send for N agents, each
  on its own schedule (phases spread over the interval), so 1,000 simulated
  hosts cost one thread::

      group = AgentGroup()
      for host in hosts:
          group.add(Agent(host, targets, keyring, interval=0.2,
                          plane_enabled=lambda p, h=host: sim.plane_up(h, p),
                          process_states=lambda h=host: sim.processes(h)))
      group.start()
      ...
      group.agent('compute3').restart()   # simulate an agent restart
      group.stop()

A single real agent runs with ``Agent.run(stop_event)`` (``nova-ha-agent``).
"""

import heapq
import itertools
import logging
import os
import socket
import threading
import time
import zlib

from nova_ha.heartbeat import protocol

LOG = logging.getLogger(__name__)

_LOG_EVERY = 60.0


def new_epoch(state_file=None, wall_clock=time.time):
    """A fresh epoch, greater than any earlier one of this host.

    The epoch is the wall clock in microseconds, or the last epoch stored in
    `state_file` plus one when that is greater (the clock was stepped
    back). The new epoch is written back (atomically, fsynced) before use,
    so it survives a crash or reboot.
    """
    epoch = int(wall_clock() * 1e6)
    if state_file:
        try:
            with open(state_file) as f:
                epoch = max(epoch, int(f.read().strip() or 0) + 1)
        except FileNotFoundError:
            pass
        except ValueError:
            LOG.warning('heartbeat state file %s is corrupt; starting a new '
                        'epoch from the clock', state_file)
        tmp = '%s.tmp' % state_file
        with open(tmp, 'w') as f:
            f.write('%d\n' % epoch)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_file)
    return epoch


def _always(plane):
    return True


class Agent:
    """Heartbeat sender for one host. See the module docstring."""

    def __init__(self, host, targets, keyring, interval=0.2, epoch=None,
                 state_file=None, plane_enabled=None, process_states=None,
                 sock=None, wall_clock=time.time):
        """
        :param host: Nova's compute host name for this host
        :param targets: {plane: [(addr, port), ...]}
        :param keyring: protocol.Keyring (or a key / list of keys)
        :param interval: seconds between beats
        :param epoch: explicit epoch (tests); default :func:`new_epoch`
        :param state_file: where the epoch is persisted across restarts
        """
        self.host = host
        protocol._utf8(host, 'host', protocol.MAX_HOST_LEN)
        self.targets = {p: [tuple(a) for a in addrs]
                        for p, addrs in targets.items()}
        for p in self.targets:
            protocol._utf8(p, 'plane', protocol.MAX_PLANE_LEN)
        if not isinstance(keyring, protocol.Keyring):
            keyring = protocol.Keyring(keyring)
        self._keyring = keyring
        if interval <= 0:
            raise ValueError('heartbeat interval must be > 0, got %r'
                             % interval)
        self.interval = float(interval)
        self._state_file = state_file
        self._wall = wall_clock
        self.epoch = epoch if epoch is not None else new_epoch(
            state_file, wall_clock)
        self.seq = 0
        self.plane_enabled = plane_enabled or _always
        self.process_states = process_states
        self._sock = sock
        self._own_socks = {}
        self._procs_cache = (None, (0, b''))
        self.sent = 0
        self.send_errors = 0
        self._last_err_log = None
        # Issue 17: instance failures (nova_ha.heartbeat.instances). A
        # callable returning the current [InstanceReport]s, repeated with
        # every beat while not empty; send_instances() sends at once.
        self.instance_failures = None
        self._iseq = itertools.count(1)

    def __repr__(self):
        return '<Agent host=%s planes=%s>' % (self.host,
                                              ','.join(self.targets))

    def restart(self):
        """Start a new epoch, as a restarted agent would."""
        self.epoch = max(self.epoch + 1,
                         new_epoch(self._state_file, self._wall))
        self.seq = 0
        self._iseq = itertools.count(1)

    def _socket_for(self, addr):
        if self._sock is not None and self._sock.family == (
                socket.AF_INET6 if ':' in addr[0] else socket.AF_INET):
            return self._sock
        fam = socket.AF_INET6 if ':' in addr[0] else socket.AF_INET
        s = self._own_socks.get(fam)
        if s is None:
            s = self._own_socks[fam] = socket.socket(fam, socket.SOCK_DGRAM)
        return s

    def _encoded_processes(self):
        if self.process_states is None:
            return (0, b'')
        states = self.process_states()
        cached, enc = self._procs_cache
        if states != cached:
            enc = protocol.encode_processes(states)
            self._procs_cache = (dict(states), enc)
        return enc

    def beat(self, sent_time=None):
        """Send one heartbeat on every enabled plane; returns packets sent.
        """
        self.seq += 1
        try:
            procs = self._encoded_processes()
        except Exception:
            LOG.exception('heartbeat host %s: process states unavailable',
                          self.host)
            procs = (0, b'')
        now = self._wall() if sent_time is None else sent_time
        sent = 0
        for plane, addrs in self.targets.items():
            if not self.plane_enabled(plane):
                continue
            pkt = protocol.encode(self._keyring, self.host, plane,
                                  self.epoch, self.seq, now, procs)
            for addr in addrs:
                try:
                    self._socket_for(addr).sendto(pkt, addr)
                    sent += 1
                except OSError as exc:
                    self.send_errors += 1
                    self._log_error(plane, addr, exc)
        self.sent += sent
        if self.instance_failures is not None:
            try:
                failures = self.instance_failures()
            except Exception:
                LOG.exception('heartbeat host %s: instance failures '
                              'unavailable', self.host)
                failures = None
            if failures:
                self.send_instances(failures, full=True, sent_time=now)
        return sent

    def send_instances(self, reports, full=False, sent_time=None):
        """Send instance reports (nova_ha.heartbeat.instances) at once on
        every enabled plane, MAX_REPORTS per datagram; thread-safe with
        beat(). Returns datagrams sent."""
        reports = list(reports)
        now = self._wall() if sent_time is None else sent_time
        epoch = self.epoch
        sent = 0
        step = protocol.MAX_REPORTS
        for i in range(0, len(reports), step):
            seq = next(self._iseq)
            for plane, addrs in self.targets.items():
                if not self.plane_enabled(plane):
                    continue
                pkt = protocol.encode_instances(
                    self._keyring, self.host, plane, epoch, seq, now,
                    reports[i:i + step], full=full)
                for addr in addrs:
                    try:
                        self._socket_for(addr).sendto(pkt, addr)
                        sent += 1
                    except OSError as exc:
                        self.send_errors += 1
                        self._log_error(plane, addr, exc)
        return sent

    def _log_error(self, plane, addr, exc):
        now = time.monotonic()
        if self._last_err_log is None or now - self._last_err_log > \
                _LOG_EVERY:
            self._last_err_log = now
            LOG.warning('heartbeat host %s plane %s: cannot send to %s:%d: '
                        '%s (%d send errors so far)', self.host, plane,
                        addr[0], addr[1], exc, self.send_errors)

    def run(self, stop_event):
        """Beat every interval until stop_event is set (drift-free)."""
        next_due = time.monotonic()
        while not stop_event.is_set():
            self.beat()
            next_due += self.interval
            now = time.monotonic()
            if next_due < now:  # fell behind (suspended?): don't burst
                next_due = now
            stop_event.wait(next_due - now)

    def close(self):
        for s in self._own_socks.values():
            s.close()
        self._own_socks = {}


class AgentGroup:
    """Many agents sending from one thread and one socket (simulator,
    benchmark). Agents keep their own interval; phases are spread so the
    group sends a steady stream rather than bursts."""

    def __init__(self, agents=()):
        self._lock = threading.Lock()
        self._agents = {}
        self._heap = []           # (due, host, token)
        self._tokens = {}
        self._token = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                              4 * 1024 * 1024)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        for a in agents:
            self.add(a)

    def add(self, agent, phase=None):
        """Add an agent; first beat after `phase` seconds (default: spread
        by a hash of the host name)."""
        if phase is None:
            phase = (zlib.crc32(agent.host.encode('utf-8')) % 1000) \
                / 1000.0 * agent.interval
        with self._lock:
            if agent.host in self._agents:
                raise ValueError('agent for host %r already in the group'
                                 % agent.host)
            if agent._sock is None:
                agent._sock = self._sock
            self._agents[agent.host] = agent
            self._token += 1
            self._tokens[agent.host] = self._token
            heapq.heappush(self._heap, (time.monotonic() + phase,
                                        agent.host, self._token))
        self._wake.set()

    def remove(self, host):
        with self._lock:
            self._tokens.pop(host, None)
            return self._agents.pop(host, None)

    def agent(self, host):
        with self._lock:
            return self._agents[host]

    def agents(self):
        with self._lock:
            return list(self._agents.values())

    def start(self):
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run,
                                            name='heartbeat-agents',
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self):
        self.stop()
        self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _run(self):
        while not self._stop.is_set():
            now = time.monotonic()
            due = []
            with self._lock:
                heap = self._heap
                while heap and heap[0][0] <= now:
                    t, host, token = heapq.heappop(heap)
                    if self._tokens.get(host) != token:
                        continue  # removed (and maybe re-added)
                    agent = self._agents[host]
                    nxt = t + agent.interval
                    if nxt < now:
                        nxt = now + agent.interval
                    heapq.heappush(heap, (nxt, host, token))
                    due.append(agent)
                wait = (heap[0][0] - now) if heap else 0.5
            for agent in due:
                try:
                    agent.beat()
                except Exception:
                    LOG.exception('heartbeat agent %s failed', agent.host)
            if wait > 0:
                self._wake.wait(min(wait, 0.5))
                self._wake.clear()
