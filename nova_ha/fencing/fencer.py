"""``fence(host)``: power a compute host off and *see* it off.

The evacuator's entry point::

    inv = inventory.load(conf.fencing.inventory_file, expected_hosts=...)
    fencer = Fencer(inv, FenceParams.from_conf(conf), recorder=journal_cb)
    result = fencer.fence('compute-3')       # -> FenceResult
    if result.outcome is Outcome.FENCED: evacuate...

Algorithm (one ``fence()``; everything bounded by ``fence_timeout``):

1. send power-off (``command_timeout`` per request);
2. if the BMC accepted it, read the power state every ``poll_interval``
   until it reads off -> FENCED, or ``power_off_timeout`` passes;
   if the BMC *refused* it, read the power state once (some BMCs refuse
   "off" when already off) -> FENCED only if it reads off;
   if the BMC did not answer, do not read (it would not answer either);
3. otherwise wait (``retry_backoff``, doubling, at most
   ``retry_backoff_max``) and try again, at most ``retries`` more times.

The result is FENCED only when a power-state read returned off. Wrong
credentials or an untrusted TLS certificate end it at once (FAILED:
retrying cannot fix a password).
If every attempt went unanswered the outcome is UNREACHABLE; otherwise
FAILED with the last reason the BMC gave. The only other way to FENCED is
:func:`confirm`, an operator's explicit, recorded statement.
"""

import dataclasses
import datetime
import json
import logging
import os
import threading
import time

from nova_ha.fencing import base
from nova_ha.fencing.base import Outcome

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FenceParams:
    """Timing of fence(); defaults match the ``[fencing]`` options."""

    command_timeout: float = 2.0
    power_off_timeout: float = 30.0
    fence_timeout: float = 60.0
    poll_interval: float = 0.1
    retries: int = 2
    retry_backoff: float = 0.5
    retry_backoff_max: float = 5.0
    ipmitool_path: str = 'ipmitool'

    @classmethod
    def from_conf(cls, conf):
        g = conf.fencing
        return cls(command_timeout=g.command_timeout,
                   power_off_timeout=g.power_off_timeout,
                   fence_timeout=g.fence_timeout,
                   poll_interval=g.poll_interval,
                   retries=g.retries,
                   retry_backoff=g.retry_backoff,
                   retry_backoff_max=g.retry_backoff_max,
                   ipmitool_path=g.ipmitool_path)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass
class FenceResult:
    """What happened to one host. ``outcome`` is the only thing to branch
    on; ``reason`` is for humans (never contains a secret)."""

    host: str
    outcome: Outcome
    reason: str
    elapsed: float = 0.0
    attempts: int = 0
    driver: str = None
    power_state: str = None          # last state read from the BMC
    started_at: str = None           # UTC ISO 8601
    confirmed_by: str = None         # operator, for a manual confirmation
    kind: str = 'fence'              # 'fence' | 'confirm'
    inventory_host: str = None       # the inventory entry's name

    @property
    def fenced(self):
        return self.outcome is Outcome.FENCED

    def to_dict(self):
        d = dataclasses.asdict(self)
        d['outcome'] = self.outcome.value
        return d


@dataclasses.dataclass
class PowerStatus:
    """Result of ``status()``/``power_on()``. ``outcome`` FENCED here
    means "done" (power read / power on confirmed); FAILED/UNREACHABLE as
    for fence(). It is never a fencing outcome."""

    host: str
    power_state: str                 # 'on', 'off' or None (unknown)
    outcome: Outcome
    reason: str
    elapsed: float
    driver: str = None

    @property
    def ok(self):
        return self.outcome is Outcome.FENCED


class Fencer:
    """Fences hosts of one inventory. Thread-safe; one operation at a time
    per host. Keeps driver connections between calls, drops a host's when
    its BMC stops answering (or on an unexpected error) so the next call
    reconnects.

    ``recorder``: optional callable, called with each :class:`FenceResult`
    (the evacuator journals fencing attempts through it). A recorder that
    raises is logged and ignored -- the outcome stands.
    """

    def __init__(self, inventory, params=None, recorder=None,
                 clock=time.monotonic, sleep=time.sleep):
        self.inventory = inventory
        self.params = params or FenceParams()
        self.recorder = recorder
        self._clock = clock
        self._sleep = sleep
        self._drivers = {}
        self._locks = {}
        self._guard = threading.Lock()
        by_driver = {}
        for entry in inventory:
            by_driver.setdefault(entry.driver, []).append(entry)
        for name, entries in sorted(by_driver.items()):
            inventory.driver_class(entries[0]).check_environment(
                self.params, entries)

    # -- drivers -------------------------------------------------------

    def _lock_for(self, host):
        with self._guard:
            return self._locks.setdefault(host, threading.Lock())

    def _driver(self, entry):
        with self._guard:
            drv = self._drivers.get(entry.host)
            if drv is None:
                cls = self.inventory.driver_class(entry)
                drv = cls(entry, self.params, self.inventory)
                self._drivers[entry.host] = drv
            return drv

    def _drop(self, entry):
        with self._guard:
            drv = self._drivers.pop(entry.host, None)
        if drv is not None:
            try:
                drv.close()
            except Exception:   # noqa: BLE001 -- best effort
                pass

    def close(self):
        for host in list(self._drivers):
            with self._guard:
                drv = self._drivers.pop(host, None)
            if drv is not None:
                try:
                    drv.close()
                except Exception:  # noqa: BLE001
                    pass

    def _call(self, entry, method, timeout):
        """Run a driver method; non-FencingError exceptions (driver bugs,
        library surprises) become BMCError with secrets removed."""
        drv = self._driver(entry)
        try:
            return getattr(drv, method)(timeout=timeout)
        except base.FencingError as exc:
            if isinstance(exc, base.BMCUnreachable):
                self._drop(entry)       # reconnect next time
            raise type(exc)(base.redact(exc.reason, *drv.secrets()))
        except Exception as exc:  # noqa: BLE001
            self._drop(entry)
            raise base.BMCError(base.redact(
                '%s: unexpected %s: %s' % (method, type(exc).__name__, exc),
                *drv.secrets()))

    def _record(self, result):
        LOG.log(logging.INFO if result.fenced else logging.WARNING,
                'fence %s: %s in %.3f s (%d attempt(s), driver %s): %s',
                result.host, result.outcome.value, result.elapsed,
                result.attempts, result.driver, result.reason)
        if self.recorder is not None:
            try:
                self.recorder(result)
            except Exception:   # noqa: BLE001
                LOG.exception('fence %s: recorder failed; outcome stands',
                              result.host)
        return result

    # -- public API ----------------------------------------------------

    def fence(self, host):
        """Power ``host`` off and confirm it; always returns a FenceResult.
        """
        started_at = _utcnow().isoformat()
        start = self._clock()
        try:
            entry = self.inventory.lookup(host)
        except base.InventoryError as exc:
            return self._record(FenceResult(
                host, Outcome.FAILED, str(exc), 0.0, 0, None, None,
                started_at))
        with self._lock_for(entry.host):
            outcome, reason, attempts, state = self._fence(entry, start)
        return self._record(FenceResult(
            host, outcome, reason, self._clock() - start, attempts,
            entry.driver, state, started_at, inventory_host=entry.host))

    def _fence(self, entry, start):
        p = self.params
        deadline = start + p.fence_timeout
        attempts = 0
        last = None
        state = None
        answered = False            # did the BMC ever answer?

        def left():
            return deadline - self._clock()

        while True:
            if left() <= 0:
                break
            attempts += 1
            accepted = False
            unanswered = False
            try:
                self._call(entry, 'power_off',
                           max(min(p.command_timeout, left()), 0.01))
                accepted = answered = True
                LOG.debug('fence %s: attempt %d: power off accepted',
                          entry.host, attempts)
            except base.FencingError as exc:
                if not exc.retryable:
                    return Outcome.FAILED, exc.reason, attempts, state
                last = exc
                if isinstance(exc, base.BMCUnreachable):
                    unanswered = True
                else:
                    answered = True
                LOG.debug('fence %s: attempt %d: power off: %s',
                          entry.host, attempts, exc.reason)

            if not unanswered:
                poll_err = None     # last error while polling this attempt
                accepted_at = self._clock()
                window_end = min(deadline, accepted_at + (
                    p.power_off_timeout if accepted else 0.0))
                while True:
                    if left() <= 0:
                        break
                    try:
                        state = self._call(
                            entry, 'get_power_state',
                            max(min(p.command_timeout, left()), 0.01))
                        answered = True
                    except base.FencingError as exc:
                        if not exc.retryable:
                            return Outcome.FAILED, exc.reason, attempts, state
                        last = poll_err = exc
                        if isinstance(exc, base.PowerActionFailed):
                            break       # it gave up: retry (after back-off)
                    else:
                        if state == base.POWER_OFF:
                            return (Outcome.FENCED,
                                    'power read off %.3f s after the off '
                                    'command' % (self._clock() - start),
                                    attempts, state)
                        if accepted:
                            last = base.BMCError(
                                'the BMC accepted power off but the power '
                                'still reads %s after %.1f s%s' % (
                                    state, self._clock() - accepted_at,
                                    ' (last BMC error: %s)' % poll_err.reason
                                    if poll_err is not None else ''))
                    if self._clock() + p.poll_interval >= window_end:
                        break
                    self._sleep(p.poll_interval)

            if attempts > p.retries:
                break
            backoff = min(p.retry_backoff * (2 ** (attempts - 1)),
                          p.retry_backoff_max)
            if left() <= backoff:
                break
            if backoff > 0:
                self._sleep(backoff)

        if last is None:
            last = base.BMCUnreachable('no time left to reach the BMC '
                                       '(fence_timeout %.1f s)'
                                       % p.fence_timeout)
        if isinstance(last, base.BMCUnreachable) and answered:
            # It answered earlier (e.g. accepted off) then went silent:
            # power is not confirmed, and this is not a plain dead BMC.
            outcome = Outcome.FAILED
        else:
            outcome = last.outcome
        return (outcome, '%s (after %d attempt(s))' % (last.reason, attempts),
                attempts, state)

    def status(self, host):
        """Read the power state once (no retries)."""
        start = self._clock()
        entry = self.inventory.lookup(host)
        try:
            with self._lock_for(entry.host):
                state = self._call(entry, 'get_power_state',
                                   self.params.command_timeout)
        except base.FencingError as exc:
            return PowerStatus(host, None, exc.outcome, exc.reason,
                               self._clock() - start, entry.driver)
        return PowerStatus(host, state, Outcome.FENCED,
                           'power is %s' % state, self._clock() - start,
                           entry.driver)

    def power_on(self, host, wait=True):
        """Power on (unfence) and, with ``wait``, poll until it reads on.
        Returns a PowerStatus (``outcome`` FENCED means "done")."""
        p = self.params
        start = self._clock()
        entry = self.inventory.lookup(host)
        deadline = start + p.fence_timeout
        with self._lock_for(entry.host):
            try:
                self._call(entry, 'power_on', p.command_timeout)
            except base.FencingError as exc:
                return PowerStatus(host, None, exc.outcome, exc.reason,
                                   self._clock() - start, entry.driver)
            state = None
            while wait:
                try:
                    state = self._call(entry, 'get_power_state',
                                       p.command_timeout)
                    reason = 'power still reads %s after power on' % state
                    outcome = Outcome.FAILED
                except base.FencingError as exc:
                    state, reason, outcome = None, exc.reason, exc.outcome
                    if not exc.retryable:
                        return PowerStatus(host, None, outcome, reason,
                                           self._clock() - start,
                                           entry.driver)
                if state == base.POWER_ON:
                    break
                if self._clock() + p.poll_interval >= min(
                        deadline, start + p.power_off_timeout):
                    return PowerStatus(host, state, outcome, reason,
                                       self._clock() - start, entry.driver)
                self._sleep(p.poll_interval)
        return PowerStatus(host, state, Outcome.FENCED,
                           'power on accepted' if not wait else 'power is on',
                           self._clock() - start, entry.driver)


# -- operator confirmation ---------------------------------------------

class FileRecorder:
    """Appends records as JSON lines to a file (the stand-in for the
    evacuator's journal). Each line: the :class:`FenceResult` as a dict."""

    def __init__(self, path):
        self.path = path

    def __call__(self, result):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)),
                    exist_ok=True)
        line = json.dumps(result.to_dict(), sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        with os.fdopen(fd, 'a') as f:
            f.write(line + '\n')
            f.flush()
            os.fsync(f.fileno())

    def records(self, host=None, kind=None):
        try:
            with open(self.path) as f:
                lines = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        return [r for r in lines
                if (host is None or r['host'] == host)
                and (kind is None or r.get('kind') == kind)]


#: The reason recorded for an operator's confirmation (then ``: <the
#: operator's reason>`` if one was given). The time is ISO 8601, with no
#: ``': '`` in it.
_CONFIRMED = 'power off confirmed by hand by operator %s at %s'


def confirmed_detail(operator, recorded_reason):
    """The evacuator's ``fenced`` step detail for an operator's
    confirmation: who confirmed and, if given, why in their own words.

    ``recorded_reason``: the journal's reason of the confirmation -- the
    text :func:`confirm` records, or any other text (then kept whole).
    """
    detail = 'confirmed by operator %s' % operator
    why = recorded_reason or ''
    prefix = _CONFIRMED % (operator, '')
    if why.startswith(prefix):
        why = why[len(prefix):].partition(': ')[2]
    return '%s: %s' % (detail, why) if why else detail


def confirm(host, operator, recorder, inventory=None, reason=None):
    """An operator states that ``host`` is powered off (checked by hand,
    e.g. because its BMC is dead). Returns a FENCED :class:`FenceResult`
    with ``kind='confirm'``, ``confirmed_by`` and ``started_at`` (when),
    after handing it to ``recorder`` -- which must succeed: an
    unrecorded confirmation raises and does not count.

    ``host`` is recorded as given: use the name Nova reports (the
    evacuator looks confirmations up by it). ``recorder``: the evacuator's
    journal (:class:`JournalRecorder`, or any callable taking the result),
    or :class:`FileRecorder`. ``inventory``: if given, ``host`` must have
    an entry (its name goes to ``inventory_host``).
    """
    operator = (operator or '').strip()
    if not operator:
        raise ValueError('confirm: operator: who confirms must be named')
    if recorder is None:
        raise ValueError('confirm: recorder: a confirmation must be '
                         'recorded (journal or file)')
    entry_name = None
    if inventory is not None:
        entry_name = inventory.lookup(host).host
    now = _utcnow().isoformat()
    text = _CONFIRMED % (operator, now)
    if reason:
        text += ': %s' % reason
    result = FenceResult(host, Outcome.FENCED, text, 0.0, 0, 'manual',
                         base.POWER_OFF, now, confirmed_by=operator,
                         kind='confirm', inventory_host=entry_name)
    recorder(result)
    LOG.warning('fence %s: %s', host, text)
    return result


class JournalRecorder:
    """Records into the evacuator's SQL journal (:mod:`nova_ha.journal`).

    * a confirmation -> ``journal.confirm_fenced_by_operator`` (outcome
      CONFIRMED_BY_OPERATOR, operator, reason, time);
    * a fence result -> ``start_fencing`` + ``finish_fencing`` with the
      result's start time, outcome and reason (for callers that do not
      journal the attempt themselves before it starts).
    """

    def __init__(self, journal, recovery_id=None, epoch=None):
        self.journal = journal
        self.recovery_id = recovery_id
        self.epoch = epoch

    def __call__(self, result):
        at = datetime.datetime.fromisoformat(result.started_at) \
            if result.started_at else _utcnow()
        if result.kind == 'confirm':
            return self.journal.confirm_fenced_by_operator(
                result.host, result.confirmed_by, reason=result.reason,
                recovery_id=self.recovery_id, at=at, epoch=self.epoch)
        attempt = self.journal.start_fencing(
            result.host, result.driver or 'none',
            recovery_id=self.recovery_id, at=at, epoch=self.epoch)
        started = getattr(attempt, 'started_at', None)
        if started is not None and abs(
                (started - at).total_seconds()) > 0.001:
            # The journal keeps one attempt in flight per host, and this is
            # someone else's (the evacuator's): do not finish it for them.
            LOG.warning('fence %s: attempt %s already in flight in the '
                        'journal; this %s result is not recorded over it',
                        result.host, attempt.id, result.outcome.value)
            return None
        self.journal.finish_fencing(
            attempt.id, result.outcome.value, reason=result.reason,
            at=at + datetime.timedelta(seconds=result.elapsed),
            epoch=self.epoch)
        return attempt
