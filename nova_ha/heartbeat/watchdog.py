"""Process watchdog for ``nova-ha-agent``: detect, restart, report.

Each watched process (nova-compute, libvirtd, ovs-vswitchd, ...) is a
:class:`ProcessSpec`: a name (as reported in heartbeats), how to find it --
a pidfile, or a process name matched with psutil (``comm`` or the basename
of argv[0]/argv[1], so ``python3 /usr/bin/nova-compute`` matches
``nova-compute``) -- and the command that restarts it.

:meth:`Watchdog.check` is one level-triggered pass: look at every process,
restart the dead ones whose back-off has elapsed, return the states. The
states (``running``, ``dead``, ``restarting``, ``failed``, ``unknown``) go
into every heartbeat, which is how the evacuator tells SERVICE_DOWN from
HOST_DOWN.

Restarts are bounded: the delay before the n-th consecutive attempt is
``backoff_initial * 2**(n-1)`` capped at ``backoff_max``; after
``max_restarts`` attempts within ``restart_window`` seconds the process is
``failed`` and left alone (an ERROR is logged once) until attempts age out
of the window or the process comes back by other means. A process that
stays up for ``stable_after`` seconds resets the back-off.
"""

import dataclasses
import logging
import os
import shlex
import subprocess
import threading
import time

import psutil

from nova_ha.heartbeat import protocol

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class ProcessSpec:
    """One watched process.

    :param name: the name reported in heartbeats (e.g. ``nova-compute``)
    :param restart_command: argv list or a shell-like string (split with
        shlex; no shell); None: watch and report only
    :param pidfile: find the process by its pidfile
    :param process_name: find it by name (default: `name`) when no pidfile
    """
    name: str
    restart_command: object = None
    pidfile: str = None
    process_name: str = None
    restart_timeout: float = 60.0   # a restart not detected by then failed

    def __post_init__(self):
        if isinstance(self.restart_command, str):
            self.restart_command = shlex.split(self.restart_command)
        if self.restart_command is not None and not self.restart_command:
            raise ValueError('watched process %r: empty restart command'
                             % self.name)
        if self.process_name is None:
            self.process_name = self.name


class _Tracked:
    __slots__ = ('spec', 'state', 'proc', 'attempts', 'consecutive',
                 'next_try', 'restart_started', 'child', 'up_since',
                 'gave_up')

    def __init__(self, spec):
        self.spec = spec
        self.state = protocol.UNKNOWN
        self.proc = None            # cached psutil.Process
        self.attempts = []          # monotonic times of restart attempts
        self.consecutive = 0
        self.next_try = 0.0
        self.restart_started = None
        self.child = None           # Popen of the restart command
        self.up_since = None
        self.gave_up = False


def _basename(arg):
    return os.path.basename(arg) if arg else ''


class Watchdog:
    """Watch processes, restart dead ones with back-off, report states."""

    def __init__(self, specs, max_restarts=5, restart_window=600.0,
                 backoff_initial=1.0, backoff_max=60.0, stable_after=60.0,
                 clock=time.monotonic):
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ValueError('watched process names must be unique: %s'
                             % ', '.join(names))
        self._tracked = {s.name: _Tracked(s) for s in specs}
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self._clock = clock
        self._lock = threading.Lock()

    def states(self):
        """{name: state} as of the last check (thread-safe, cheap: the
        agent calls it every beat)."""
        with self._lock:
            return {n: t.state for n, t in self._tracked.items()}

    def restarts(self, name):
        """Restart attempts of `name` within the window."""
        with self._lock:
            return len(self._tracked[name].attempts)

    # -- detection ---------------------------------------------------------

    def _find(self, t):
        spec = t.spec
        if t.proc is not None:
            try:
                if t.proc.is_running() and \
                        t.proc.status() != psutil.STATUS_ZOMBIE:
                    return t.proc
            except psutil.Error:
                pass
            t.proc = None
        if spec.pidfile:
            try:
                with open(spec.pidfile) as f:
                    pid = int(f.read().split()[0])
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    t.proc = p
            except FileNotFoundError:
                pass
            except (ValueError, IndexError):
                LOG.warning('watched process %s: pidfile %s does not hold a '
                            'pid', spec.name, spec.pidfile)
            except psutil.NoSuchProcess:
                pass
            return t.proc
        want = spec.process_name
        for p in psutil.process_iter(['name', 'cmdline', 'status']):
            info = p.info
            if info['status'] == psutil.STATUS_ZOMBIE:
                continue
            cmd = info['cmdline'] or ()
            if info['name'] == want or _basename(cmd[0] if cmd else '') \
                    == want or (len(cmd) > 1 and _basename(cmd[1]) == want):
                t.proc = p
                return p
        return None

    # -- one pass ------------------------------------------------------------

    def check(self):
        """Detect every process, restart dead ones when due; return states.
        """
        now = self._clock()
        for t in self._tracked.values():
            try:
                self._check_one(t, now)
            except psutil.AccessDenied:
                with self._lock:
                    t.state = protocol.UNKNOWN
            except Exception:
                LOG.exception('watched process %s: check failed',
                              t.spec.name)
                with self._lock:
                    t.state = protocol.UNKNOWN
        return self.states()

    def _reap(self, t):
        if t.child is not None:
            rc = t.child.poll()
            if rc is not None:
                if rc != 0:
                    LOG.warning('watched process %s: restart command exited '
                                'with status %d', t.spec.name, rc)
                t.child = None
                return rc
        return None

    def _check_one(self, t, now):
        spec = t.spec
        rc = self._reap(t)
        found = self._find(t)
        if found is not None:
            if t.state != protocol.RUNNING:
                if t.state in (protocol.RESTARTING, protocol.DEAD,
                               protocol.FAILED):
                    LOG.info('watched process %s is running again (pid %d)',
                             spec.name, found.pid)
                t.up_since = now
            elif t.consecutive and now - t.up_since >= self.stable_after:
                t.consecutive = 0
            t.gave_up = False
            t.restart_started = None
            with self._lock:
                t.state = protocol.RUNNING
            return

        # Not running.
        if t.state == protocol.RUNNING:
            LOG.error('watched process %s is not running', spec.name)
        if t.state == protocol.RESTARTING:
            timed_out = now - t.restart_started >= spec.restart_timeout
            if (rc is None or rc == 0) and not timed_out:
                return   # give the restart time to show up
            LOG.warning('watched process %s: restart did not bring it back',
                        spec.name)
            t.restart_started = None
        t.attempts = [a for a in t.attempts
                      if now - a < self.restart_window]
        state = protocol.DEAD
        if spec.restart_command is None:
            pass
        elif len(t.attempts) >= self.max_restarts:
            state = protocol.FAILED
            if not t.gave_up:
                t.gave_up = True
                LOG.error('watched process %s: %d restarts within %.0f s; '
                          'giving up until an attempt ages out', spec.name,
                          len(t.attempts), self.restart_window)
        elif now >= t.next_try and t.child is None:
            state = self._restart(t, now)
        with self._lock:
            t.state = state

    def _restart(self, t, now):
        spec = t.spec
        t.attempts.append(now)
        t.consecutive += 1
        delay = min(self.backoff_initial * 2 ** (t.consecutive - 1),
                    self.backoff_max)
        t.next_try = now + delay
        LOG.warning('watched process %s: restarting with %s (attempt %d, '
                    'next no sooner than %.1f s)', spec.name,
                    os.path.basename(spec.restart_command[0]),
                    t.consecutive, delay)
        try:
            t.child = subprocess.Popen(
                spec.restart_command, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True)
        except OSError as exc:
            LOG.error('watched process %s: cannot run restart command: %s',
                      spec.name, exc.strerror)
            return protocol.DEAD
        t.restart_started = now
        return protocol.RESTARTING

    # -- thread ---------------------------------------------------------

    def run(self, stop_event, interval=1.0):
        while not stop_event.is_set():
            self.check()
            stop_event.wait(interval)

    def start(self, stop_event, interval=1.0):
        th = threading.Thread(target=self.run, args=(stop_event, interval),
                              name='process-watchdog', daemon=True)
        th.start()
        return th

    def close(self):
        """Reap finished restart commands (long-running ones -- a daemon
        started in the foreground -- are left running)."""
        for t in self._tracked.values():
            self._reap(t)
