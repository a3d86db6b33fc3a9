"""The evacuator's alarms, recovery steps and notifications.

Rules (doc/notifications.md):

- an alarm is raised (or refreshed) in the journal under the leader's
  epoch, carrying the host's location; only a *new* alarm is logged,
  counted and published (``nova_ha.alarm.<type>``);
- a recovery step is published (``nova_ha.recovery.<step>``) only when the
  journal recorded it (not a repeat); its notification names the
  recovery's host, looked up once per recovery;
- a notifier that fails is logged and never stops the evacuator.
"""

import datetime
import logging

LOG = logging.getLogger(__name__)

# An unchanged condition (PARTITION, SERVICE_DOWN, a FLAPPING host) is
# written to the journal (host state, alarm refreshed) on entry and then
# at most this often: a level-triggered loop must not write every host
# every pass. A new term writes at once (its memory of what it wrote
# starts empty).
ALARM_REFRESH = 30.0


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class Notifications:
    """Alarms, steps and notifications of an Evacuator.

    ``ev`` is the nova_ha.evacuator.engine.Evacuator: its journal, epoch,
    notifier, metrics and the hosts' locations (read when used: a new term
    changes the epoch).
    """

    def __init__(self, ev):
        self.ev = ev
        self._rec_host = {}      # recovery id -> host (notifications)

    def alarm(self, type_, severity, message, host=None, extra=None, **kw):
        """Raise (or refresh) an alarm; ``extra``: more payload keys of
        its notification."""
        ev = self.ev
        loc = ev.location(host) if host else {}
        alarm, created = ev.journal.raise_alarm(
            type_, severity, message, host=host, epoch=ev.epoch,
            **loc, **kw)
        if created and ev.metrics is not None:
            ev.metrics.observe_alarm(type_, severity)
        if created:
            LOG.log(logging.CRITICAL if severity == 'CRITICAL'
                    else logging.WARNING, 'alarm %s %s: %s', severity,
                    type_, message)
            self.notify('nova_ha.alarm.%s' % type_.lower(), severity, {
                'alarm_id': alarm.id, 'type': type_, 'severity': severity,
                'host': host, 'location': loc, 'message': message,
                'time': alarm.created_at.isoformat(),
                **{k: v for k, v in kw.items() if v is not None},
                **(extra or {})})
        return alarm

    def notify(self, event_type, severity, payload):
        notifier = self.ev.notifier
        if notifier is not None:
            try:
                notifier.emit(event_type, severity, payload)
            except Exception:
                LOG.exception('could not emit %s', event_type)

    def step(self, recovery_id, step, detail=None, duration=None):
        """Record a recovery step; published only if it is new."""
        if self.ev.journal.record_step(recovery_id, step, detail=detail,
                                       duration=duration,
                                       epoch=self.ev.epoch):
            self.notify_step(recovery_id, step, detail, duration)

    def notify_step(self, recovery_id, step, detail=None, duration=None,
                    host=None):
        """``nova_ha.recovery.<step>`` (doc/notifications.md)."""
        ev = self.ev
        kind = step.split(':')[0]
        if ev.metrics is not None:
            ev.metrics.observe_step(kind, duration, detail)
        if ev.notifier is None:
            return
        if host is None:
            host = self._rec_host.get(recovery_id)
        if host is None:
            rec = ev.journal.get_recovery(recovery_id)
            host = rec.host if rec else None
            self._rec_host[recovery_id] = host
        instance = step.split(':', 1)[1].split('#')[0] if ':' in step \
            else None
        self.notify('nova_ha.recovery.%s' % kind, 'INFO', {
            'recovery_id': recovery_id, 'step': step, 'type': kind,
            'severity': 'INFO', 'host': host,
            'location': ev.location(host) if host else {},
            'instance_uuid': instance, 'detail': detail,
            'duration': duration, 'time': utcnow().isoformat()})
