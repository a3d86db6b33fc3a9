"""The fencing step of a recovery: power the failed host off, or don't.

Powering off a healthy host is the one thing an HA tool must never do.
Rules (doc/evacuator.md, "Fencing safety"; doc/fencing.md):

- **Fenced means read off** (or confirmed by an operator, journalled). Not
  confirmed -> host FENCE_FAILED, CRITICAL ``FENCE_FAILED`` alarm, never
  evacuated; retried every ``fence_retry_interval``.
- **At most one power-off per host in flight**, and none while the host
  is held back (this evacuator stalled, its self-check fails, the
  mass-failure guard waits or holds: ``Evacuator._held_back``).
- **A fence of a previous term is never repeated**: one that was
  confirmed is carried on; one left unfinished is resumed through the
  journal's single attempt per host (power-off is idempotent).
- **Last look, right before the power-off** (before and again after the
  journal records the attempt): every heartbeat queued for this machine
  is taken first; a host heard on any plane since its recovery opened is
  not fenced and its recovery stops (nova_ha.evacuator.flapping); a
  receiver that is not running, a burst that started meanwhile or a stall
  of this evacuator make the fence wait.
- **The leader checks it still leads** (under the epoch the attempt was
  recorded with) before it calls the BMC.
"""

import dataclasses
import datetime
import logging

from nova_ha.evacuator import flapping as flapping_mod
from nova_ha.evacuator import guard as guard_mod
from nova_ha.fencing import fencer as fencer_mod
from nova_ha.heartbeat import receiver as hb

LOG = logging.getLogger(__name__)

def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class NotFenced:
    """The last look before a power-off stopped it. ``heard``: the host
    was heard since its recovery opened (the recovery stops); otherwise
    the fence waits (this evacuator stalled, its receiver is down)."""
    host: str
    reason: str
    heard: bool = False
    fenced = False
    outcome = 'NOT_FENCED'


class FencingStep:
    """The fencing step of an Evacuator's open recoveries.

    ``ev`` is the nova_ha.evacuator.engine.Evacuator: its journal,
    fencer, receiver, clock, options, epoch, guard (``_held_back``), alarms
    and flapping rules. Power-offs run in ``ev``'s fence pool.
    """

    def __init__(self, ev):
        self.ev = ev
        self.in_flight = {}      # host -> Future of a power-off

    def forget(self):
        """A new term (or none): the old term's power-offs finish on their
        own; their outcomes are read back from the journal."""
        self.in_flight = {}

    @property
    def flapping(self):
        return self.ev.flapping

    # -- one pass ------------------------------------------------------------
    def fenced(self, rec):
        """The recovery, re-read once its host is fenced; else None."""
        if rec.fenced_at is None:
            if not self.run(rec):
                return None
            rec = self.ev.journal.get_recovery(rec.id) or rec
        if self.flapping.answers(rec.host, since=rec.fenced_at):
            # Powered off (confirmed) and running again: powered on by
            # someone, or the BMC misread. Never a second fence; the
            # recovery goes on (nova-compute forced down keeps it out).
            self.flapping.returned(rec.host, rec.id,
                                   flapping_mod.phase_of(rec))
        return rec

    def run(self, rec):
        """True once the host is fenced (or confirmed by an operator)."""
        ev = self.ev
        journal = ev.journal
        host = rec.host
        confirmed = [a for a in journal.list_fencing_attempts(host=host)
                     if a.outcome == 'CONFIRMED_BY_OPERATOR'
                     and a.started_at >= rec.detected_at]
        if confirmed:
            ev.step(rec.id, 'fenced', detail=fencer_mod.confirmed_detail(
                confirmed[0].operator, confirmed[0].reason))
            journal.set_host_state(host, 'FENCED', recovery_id=rec.id,
                                   epoch=ev.epoch)
            return True
        last = journal.last_fencing_attempt(host)
        future = self.in_flight.get(host)
        if (future is None and last is not None
                and last.outcome == 'FENCED'
                and last.started_at >= rec.detected_at):
            # Fenced by a previous leader (or term) that died before it
            # recorded the step: carry on, no second power-off.
            ev.step(rec.id, 'fenced', duration=last.duration,
                    detail='%s: %s' % (last.driver, last.reason))
            journal.set_host_state(host, 'FENCED', recovery_id=rec.id,
                                   epoch=ev.epoch)
            return True
        answers = self.flapping.answers(host)
        if future is not None:
            if not future.done():
                if answers:
                    # The power-off call cannot be taken back: let it
                    # finish; its outcome decides.
                    self.flapping.returned(host, rec.id, 'fencing')
                return False
            del self.in_flight[host]
            result = future.result()
            if isinstance(result, NotFenced):
                if result.heard:
                    self.flapping.close_not_fenced(rec, result.reason)
                else:
                    journal.set_host_state(
                        host, 'HOST_DOWN', detail=result.reason,
                        recovery_id=rec.id, epoch=ev.epoch)
                return False
            if not result.fenced and answers:
                self.flapping.close_returned(
                    rec, 'fence not confirmed (%s: %s)'
                    % (result.outcome, result.reason))
                return False
            if result.fenced and answers:
                self.flapping.returned(host, rec.id, 'fencing')
            if result.fenced:
                ev.step(rec.id, 'fenced', duration=result.elapsed,
                        detail='%s: %s' % (result.driver, result.reason))
                journal.set_host_state(host, 'FENCED',
                                       recovery_id=rec.id,
                                       epoch=ev.epoch)
                journal.clear_alarms(host=host, type='FENCE_FAILED',
                                     by=ev.opts.name, epoch=ev.epoch)
                return True
            journal.set_host_state(host, 'FENCE_FAILED',
                                   detail=result.reason,
                                   recovery_id=rec.id, epoch=ev.epoch)
            ev.alarm('FENCE_FAILED', 'CRITICAL',
                     'cannot confirm %s is powered off (%s: %s); NOT '
                     'evacuating. Retrying; an operator who has checked '
                     'the host by hand can run: nova-ha fence confirm %s '
                     '--operator NAME' % (host, result.outcome,
                                          result.reason, host),
                     host=host, recovery_id=rec.id)
            return False
        # Heard again (on any plane) before anything was fenced: never
        # fence a host that is being heard.
        heard = self.flapping.heard(rec)
        if last is None or last.started_at < rec.detected_at:
            if answers or heard:
                self.flapping.close_not_fenced(
                    rec, 'heard again on plane(s) %s before fencing'
                    % ', '.join(heard or ev.receiver.planes))
                return False
        elif (answers or heard) and last.outcome != 'FENCED':
            # A fence of this recovery failed (FENCE_FAILED, retrying) or
            # was left unfinished by a leader that died, and the host is
            # running: do not fence it again.
            if last.outcome is None:
                journal.finish_fencing(
                    last.id, 'INTERRUPTED', epoch=ev.epoch,
                    reason='host answered again on every plane')
            self.flapping.close_returned(rec, 'fence %s' % (
                'not finished' if last.outcome is None else
                'not confirmed (%s: %s)' % (last.outcome, last.reason)))
            return False
        if (last is not None and last.finished_at is not None
                and last.started_at >= rec.detected_at
                and (utcnow() - last.finished_at).total_seconds()
                < ev.opts.fence_retry_interval):
            return False
        if (last is None or last.finished_at is not None) \
                and ev._held_back(rec):
            return False
        journal.set_host_state(host, 'FENCING', recovery_id=rec.id,
                               epoch=ev.epoch)
        self.in_flight[host] = ev._pool.submit(self.fence, host, rec.id,
                                               ev.epoch, rec.detected_at)
        return False

    # -- the power-off (in the fence pool) -----------------------------------
    def last_look(self, host, detected_at):
        """Right before a power-off: take every heartbeat queued for this
        machine, then re-read ``host``'s. A NotFenced if the host was
        heard since its recovery opened, the receiver is not running or
        this evacuator stalled; else None."""
        ev = self.ev
        catch_up = getattr(ev.receiver, 'catch_up', None)
        if catch_up is not None:
            catch_up()
        heard = self.flapping.heard_since(host, detected_at)
        if heard:
            return NotFenced(host, 'heard on plane(s) %s since its recovery '
                             'opened (last look before the power-off)'
                             % ', '.join(heard), heard=True)
        if ev.conf.guard.self_check and not ev.receiver.healthy():
            return NotFenced(host, 'heartbeat receiver not running')
        burst = self.burst_now(host)
        if burst:
            return NotFenced(host, 'host(s) %s fell silent meanwhile (inside '
                             'their window): judging the burst together'
                             % ', '.join(burst))
        reason = ev.stall.suspended(ev.clock(), ev._longest_window())
        if reason:
            return NotFenced(host, reason)
        return None

    def burst_now(self, host):
        """Other hosts silent on every plane for more than half their
        window but not yet past it, right now: a burst has started since
        the decision to fence ``host``."""
        ev = self.ev
        hosts = [h for h in sorted(ev.services) if h != host]
        if not hosts:
            return []
        now = ev.clock()
        full = ev.receiver.snapshot(hosts, now=now,
                                    window_for=ev.window_for)
        half = ev.receiver.snapshot(
            hosts, now=now, window_for=lambda h: ev.window_for(h)
            * guard_mod.SUSPECT_FRACTION)
        return [h for h in hosts
                if half[h][0] == hb.SILENT
                and full[h][0] not in (hb.SILENT, hb.UNKNOWN)]

    def fence(self, host, recovery_id, epoch=None, detected_at=None):
        """Power ``host`` off for recovery ``recovery_id`` under ``epoch``
        (run in the fence pool): the FenceResult, or a NotFenced when the
        last look stopped it. ``detected_at`` None: no last look."""
        ev = self.ev
        entry = ev.fencer.inventory.lookup(host)
        if detected_at is not None:
            detected_at = ev._opened.get(recovery_id, detected_at)
            stop = self.last_look(host, detected_at)
            if stop is not None:
                LOG.warning('not fencing %s: %s', host, stop.reason)
                return stop
        # At most one attempt in flight per host: one left by a leader that
        # died mid-fence is returned here and carried on (power-off is
        # idempotent); finish_fencing's first outcome wins.
        attempt = ev.journal.start_fencing(host, entry.driver,
                                           recovery_id=recovery_id,
                                           epoch=epoch)
        ev._assert_leader(epoch)
        if detected_at is not None:
            stop = self.last_look(host, detected_at)
            if stop is not None:
                LOG.warning('not fencing %s: %s', host, stop.reason)
                ev.journal.finish_fencing(
                    attempt.id, 'INTERRUPTED', epoch=epoch,
                    reason='not powered off: %s' % stop.reason)
                return stop
        try:
            result = ev.fencer.fence(host)
        except Exception as exc:       # a driver bug must not kill the loop
            LOG.exception('fencing %s raised', host)
            ev.journal.finish_fencing(attempt.id, 'FAILED',
                                      reason=str(exc), epoch=epoch)
            raise
        ev.journal.finish_fencing(attempt.id, str(result.outcome),
                                  reason=result.reason, epoch=epoch)
        return result
