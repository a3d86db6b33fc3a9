"""Detection: what a host's heartbeats say, and whether this evacuator
itself can be trusted to judge them.

- ``classify()``: a host's condition from its heartbeat state (pure);
- ``StallMonitor``: the evacuator's own stalls -- a ticker thread that
  notices monotonic-clock gaps (the process was stopped, starved of CPU, a
  VM steal spike, a long GC), the reconcile loop falling behind, and
  "everyone silent at once". After a stall, no host is judged (nor fenced)
  until a full fresh confirmation window has been observed on it; fencing
  as a whole waits until that holds for every host;
- ``heard_since()``: was a host heard on any plane since a moment (the
  last look right before a power-off).
"""

import dataclasses
import logging
import threading
import time

from nova_ha.heartbeat import receiver as hb

LOG = logging.getLogger(__name__)

OK = 'OK'
HOST_DOWN = 'HOST_DOWN'
SERVICE_DOWN = 'SERVICE_DOWN'
PARTITION = 'PARTITION'
SUSPECT = 'SUSPECT'

# Planes whose silence makes a host recoverable under partition_recovery.
RECOVERY_PLANES = frozenset(('management', 'storage'))


def classify(state, silent, partition_recovery=False, judging=True):
    """The condition of a host whose receiver state is ``state`` with the
    ``silent`` planes (past its window). ``judging`` False (start-up grace,
    or inside the fresh window after this evacuator's own stall): a host
    that looks silent is only SUSPECT."""
    if state in (hb.UNKNOWN, hb.SILENT, hb.PARTITION) and not judging:
        return SUSPECT
    if state in (hb.UNKNOWN, hb.SILENT):
        return HOST_DOWN
    if state == hb.PARTITION:
        if partition_recovery and RECOVERY_PLANES <= set(silent or ()):
            return HOST_DOWN
        return PARTITION
    if state == hb.SERVICE_DOWN:
        return SERVICE_DOWN
    return OK


@dataclasses.dataclass(frozen=True)
class Stall:
    """One stall of this evacuator: ``at`` (monotonic) when it was noticed,
    ``length`` seconds, ``cause`` in words."""
    at: float
    length: float
    cause: str


def heard_since(receiver, host, since, planes=None):
    """The planes (of ``planes``, default all) on which ``host`` was heard
    after monotonic time ``since``."""
    out = []
    for plane in planes or receiver.planes:
        seen = receiver.last_seen(host, plane)
        if seen is not None and seen > since:
            out.append(plane)
    return out


class StallMonitor:
    """This evacuator's own stalls, and the fresh window after the last.

    A daemon thread wakes every ``interval`` seconds and records any gap
    between two wake-ups longer than ``threshold`` (monotonic clock: the
    process was stopped or starved). The reconcile loop reports its passes
    (``pass_started``), so a loop that fell behind counts as well, and
    reports "every host silent at once" (``everyone_silent``), which is far
    more likely this evacuator (or its network) than the whole cloud.
    """

    def __init__(self, threshold=0.5, interval=0.05, clock=time.monotonic,
                 boottime=None):
        self.threshold = float(threshold)
        self.interval = float(interval)
        self.clock = clock
        self._boottime = boottime if boottime is not None else _boottime
        self._lock = threading.Lock()
        self._last = None             # Stall
        self._stalls = 0
        self._tick_at = None
        self._pass_at = None
        self._boot_offset = None
        self._thread = None
        self._stop = threading.Event()

    # -- the ticker ----------------------------------------------------------
    def start(self):
        if self._thread is None:
            self._tick_at = self.clock()
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name='stall-monitor')
            self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def _run(self):
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self, now=None):
        """One wake-up of the ticker (public for tests)."""
        now = self.clock() if now is None else now
        last, self._tick_at = self._tick_at, now
        if last is not None and now - last - self.interval > self.threshold:
            self.record(now, now - last, 'the evacuator process did not run '
                        'for %.2f s (stopped, starved of CPU or paused)'
                        % (now - last))
        boot = self._boottime()
        if boot is not None:
            offset = boot - now
            prev, self._boot_offset = self._boot_offset, offset
            if prev is not None and offset - prev > self.threshold:
                self.record(now, offset - prev, 'the machine was suspended '
                            'for %.2f s' % (offset - prev))

    # -- reports from the loop -------------------------------------------------
    def pass_started(self, now, expected):
        """The reconcile loop starts a pass; ``expected`` is the longest
        it should have waited since the last one ended."""
        last, self._pass_at = self._pass_at, now
        if last is not None and now - last - expected > self.threshold:
            self.record(now, now - last, 'the reconcile loop fell behind by '
                        '%.2f s' % (now - last - expected))

    def pass_ended(self, now):
        self._pass_at = now

    def everyone_silent(self, now, hosts):
        self.record(now, 0.0, 'every one of %d compute hosts is silent at '
                    'once: this evacuator (or its network) is more likely '
                    'at fault' % hosts)

    def record(self, now, length, cause):
        with self._lock:
            first = self._last is None or now - self._last.at > 1.0
            self._last = Stall(now, length, cause)
            self._stalls += 1
        if first:
            LOG.warning('self-check: %s; no host is judged or fenced until '
                        'a full fresh confirmation window has passed', cause)

    # -- questions -------------------------------------------------------------
    @property
    def last(self):
        with self._lock:
            return self._last

    @property
    def count(self):
        with self._lock:
            return self._stalls

    def fresh(self, now, window):
        """True if a full ``window`` has passed since the last stall (or
        there was none): silence measured now is this window's own."""
        last = self.last
        return last is None or now - last.at >= window

    def suspended(self, now, longest_window):
        """Why fencing waits (the last stall, not yet a full fresh window
        behind on every host), or None."""
        last = self.last
        if last is None or now - last.at >= longest_window:
            return None
        return '%s; fencing suspended for %.1f s more (a full fresh ' \
            'confirmation window on every host)' % (
                last.cause, longest_window - (now - last.at))


def _boottime():
    clock = getattr(time, 'CLOCK_BOOTTIME', None)
    if clock is None:
        return None
    try:
        return time.clock_gettime(clock)
    except OSError:
        return None

