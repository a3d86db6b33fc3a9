"""A host that answers again during (or after) its recovery: flapping.

Rules (doc/evacuator.md, "How a failure is handled"; doc/evacuator-ha.md,
"Guards"):

- **Heard before it was powered off** (on any plane since its recovery
  opened, unless ``[guard] fence_heard_hosts``): the recovery stops with
  nothing fenced, forced down or evacuated; WARNING ``FLAPPING`` alarm,
  the host's episode alarms clear and it is watched again.
- **Answers on every plane and was never fenced in this recovery** (its
  fence failed, or was left unfinished by a leader that died): the
  recovery stops, no further fence; MAJOR ``FLAPPING`` alarm.
- **Answers after a confirmed fence** (someone powered it on, or its BMC
  misread the power state): never fenced a second time; the recovery goes
  on, or a ``RECOVERED`` host stays forced down and disabled until
  ``nova-ha host enable``; MAJOR ``FLAPPING`` alarm.

One MAJOR alarm per recovery, worded for the phase it was first seen in.
"""

import dataclasses
import datetime
import logging

from nova_ha.evacuator import detection
from nova_ha.evacuator.detection import OK, SERVICE_DOWN
from nova_ha.evacuator.notifications import ALARM_REFRESH

LOG = logging.getLogger(__name__)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class Returned:
    """This term last raised (or looked up) the FLAPPING alarm of
    ``recovery_id`` at monotonic time ``at``."""
    recovery_id: int | None
    at: float


def phase_of(rec):
    """The phase of an open recovery, as a FLAPPING alarm names it."""
    if rec.fenced_at is None:
        return 'fencing'
    if rec.forced_down_at is None:
        return 'fenced'
    return 'evacuating'


class Flapping:
    """The flapping rules of an Evacuator's recoveries.

    ``ev`` is the nova_ha.evacuator.engine.Evacuator: its journal,
    receiver, clock, options, epoch, alarms and this pass's conditions.
    """

    def __init__(self, ev):
        self.ev = ev
        self._returned = {}      # host -> Returned (this term)

    def forget(self):
        """A new term (or none): its alarms are looked up again."""
        self._returned = {}

    # -- is the host back? -------------------------------------------------
    def answers(self, host, since=None):
        """True if every heartbeat plane of ``host`` is heard again (the
        host runs; its nova-compute may be down) -- and, with ``since`` (a
        wall-clock time), each plane delivered a heartbeat after it."""
        ev = self.ev
        cond = ev._conditions.get(host)
        if cond is None:
            cond = ev.classify(host)
        if cond not in (OK, SERVICE_DOWN):
            return False
        if since is None:
            return True
        after = ev.clock() - (utcnow() - since).total_seconds()
        for plane in ev.receiver.planes:
            seen = ev.receiver.last_seen(host, plane)
            if seen is None or seen <= after:
                return False
        return True

    def heard_since(self, host, detected_at):
        """Planes on which ``host`` was heard after ``detected_at`` (its
        recovery opened: monotonic when this evacuator opened it, else the
        journal's wall-clock time); only management and storage count with
        partition_recovery; none when the operator's policy
        ([guard] fence_heard_hosts) fences heard hosts."""
        ev = self.ev
        if ev.conf.guard.fence_heard_hosts:
            return []
        if isinstance(detected_at, datetime.datetime):
            since = ev.clock() - (utcnow() - detected_at).total_seconds()
        else:
            since = detected_at
        planes = None
        if ev.opts.partition_recovery:
            planes = [p for p in ev.receiver.planes
                      if p in detection.RECOVERY_PLANES]
        return detection.heard_since(ev.receiver, host, since, planes)

    def heard(self, rec):
        """Planes on which the recovery's host was heard since it opened."""
        return self.heard_since(rec.host,
                                self.ev._opened.get(rec.id, rec.detected_at))

    # -- what follows ------------------------------------------------------
    def returned(self, host, recovery_id, phase):
        """MAJOR ``FLAPPING`` alarm: ``host`` answers again on every plane
        during (or after) its recovery ``recovery_id``. One alarm per
        recovery, worded for the phase it was first seen in (a later phase,
        or a new leader, does not rewrite it); nothing is fenced again."""
        ev = self.ev
        now = ev.clock()
        last = self._returned.get(host)
        if last is not None and last.recovery_id == recovery_id \
                and now - last.at < ALARM_REFRESH:
            return
        self._returned[host] = Returned(recovery_id, now)
        key = 'FLAPPING|%s|recovery-%s' % (host, recovery_id)
        if any(a.key == key for a in ev.journal.list_alarms(
                host=host, types=['FLAPPING'])):
            return
        if phase == 'fencing':
            what = ('while it was being fenced; the power-off in flight '
                    'decides: confirmed -> the recovery goes on, not '
                    'confirmed -> the recovery stops. No second fence')
        elif phase == 'recovered':
            what = ('after it was fenced and its instances recovered: it '
                    'was powered on (by someone, or its BMC misread the '
                    'power state). Not fencing it again; its nova-compute '
                    'stays forced down and disabled until an operator runs '
                    'nova-ha host enable %s' % host)
        else:
            what = ('after it was powered off (confirmed), during the '
                    '%s phase: powered on by someone, or its BMC misread '
                    'the power state. Not fencing it again; the recovery '
                    'goes on (nova-compute forced down and disabled)'
                    % phase)
        ev.alarm('FLAPPING', 'MAJOR',
                 'compute host %s answers again on every heartbeat plane '
                 '%s' % (host, what), host=host, recovery_id=recovery_id,
                 key=key, extra={'phase': phase})

    def close_returned(self, rec, why):
        """The host answers again and was never fenced in this recovery:
        stop it (nothing was forced down or evacuated), no further fence."""
        ev = self.ev
        host = rec.host
        if not ev.journal.close_recovery(
                rec.id, 'failed', epoch=ev.epoch,
                detail='host answered again during fencing (%s); not '
                       'fencing it again, nothing evacuated' % why,
                host_state='OK', host_detail='answered again during fencing'):
            return
        ev.journal.clear_alarms(host=host, type='FENCE_FAILED',
                                by=ev.opts.name, epoch=ev.epoch)
        ev._episode_over(host)
        self.returned(host, rec.id, 'fencing')
        LOG.warning('recovery %s of %s stopped: the host answers again and '
                    'its %s', rec.id, host, why)

    def close_not_fenced(self, rec, why):
        """The host was heard again before it was powered off: stop the
        recovery (nothing fenced, forced down or evacuated), the host is
        watched again from the next pass, its episode's alarms clear."""
        ev = self.ev
        host = rec.host
        if not ev.journal.close_recovery(
                rec.id, 'failed', epoch=ev.epoch,
                detail='not fenced: %s; nothing done' % why,
                host_state='OK', host_detail='not fenced: %s' % why):
            return
        ev._episode_over(host)
        ev.alarm('FLAPPING', 'WARNING',
                 'compute host %s looked down, then was %s; not fenced, '
                 'not recovering' % (host, why), host=host,
                 recovery_id=rec.id, extra={'phase': 'detected'})
        LOG.warning('recovery %s of %s stopped: %s', rec.id, host, why)

    def watch_recovered(self, states, now):
        """A RECOVERED host (fenced, instances evacuated, awaiting `host
        enable`) heard again on every plane since it was fenced: alarm,
        no fence; it stays forced down and disabled."""
        ev = self.ev
        for host, st in states.items():
            if st.state != 'RECOVERED' or \
                    ev._conditions.get(host) not in (OK, SERVICE_DOWN):
                continue
            last = self._returned.get(host)
            if last is not None and last.recovery_id == st.recovery_id \
                    and now - last.at < ALARM_REFRESH:
                continue
            rec = ev.journal.get_recovery(st.recovery_id) \
                if st.recovery_id is not None else None
            since = (rec.fenced_at or rec.finished_at) if rec else None
            if self.answers(host, since=since):
                self.returned(host, st.recovery_id, 'recovered')
