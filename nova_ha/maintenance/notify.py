"""``maintenance.host.start|progress|end`` notifications (oslo.messaging).

Payloads (documented in doc/maintenance.md)::

    {"drain_id": 7, "host": "compute-3", "state": "draining",
     "reason": "BIOS upgrade", "power_off": false,
     "started_at": "2026-11-21T05:00:00+00:00", "finished_at": null,
     "counts": {"waiting": 4, "moving": 2, "moved": 3, "blocked": 1},
     "instances": [{"instance_id": "...", "name": "vnf-a-1",
                    "server_group": "...", "method": "live",
                    "state": "moved", "reason": null,
                    "migration_id": 12, "dest_host": "compute-5"}]}

``start`` and ``end`` list every instance; ``progress`` lists the
instances whose state changed since the previous notification.
Delivery is at least once: a drain resumed after a crash may repeat the
last notification.
"""

import logging

import oslo_messaging

LOG = logging.getLogger(__name__)

START = 'maintenance.host.start'
PROGRESS = 'maintenance.host.progress'
END = 'maintenance.host.end'


def _notification_conf_url(conf):
    try:
        return (conf.oslo_messaging_notifications.transport_url
                or conf.transport_url)
    except Exception:   # noqa: BLE001 -- options not registered
        return None


def make_notifier(conf, publisher_id='nova-ha.maintenance'):
    """An oslo.messaging Notifier from ``[oslo_messaging_notifications]``.

    With no transport configured (no ``transport_url``) or no driver, the
    'log' driver is used: notifications go to the log only.
    """
    try:
        transport = oslo_messaging.get_notification_transport(conf)
        url = _notification_conf_url(conf)
        drivers = list(conf.oslo_messaging_notifications.driver or [])
        topics = list(conf.oslo_messaging_notifications.topics or
                      ['notifications'])
        if url and drivers:
            return oslo_messaging.Notifier(transport,
                                           publisher_id=publisher_id,
                                           topics=topics)
    except Exception as exc:   # noqa: BLE001
        LOG.warning('maintenance notifications: no usable transport (%s); '
                    'using the log driver', exc)
        topics = ['notifications']
    transport = oslo_messaging.get_notification_transport(conf, url='fake:/')
    return oslo_messaging.Notifier(transport, publisher_id=publisher_id,
                                   driver='log', topics=topics)


def item_payload(item):
    return {'instance_id': item.instance_uuid, 'name': item.name,
            'server_group': item.server_group, 'method': item.method,
            'state': item.state, 'reason': item.reason,
            'migration_id': item.migration_id, 'dest_host': item.dest_host}


def payload(drain, counts, items, location=None):
    return {
        'drain_id': drain.id, 'host': drain.host, 'state': drain.state,
        'location': location,
        'reason': drain.reason, 'power_off': bool(drain.power_off),
        'powered_off_by_nova_ha': bool(drain.powered_off_by_nova_ha),
        'started_at': drain.started_at.isoformat() if drain.started_at
        else None,
        'finished_at': drain.finished_at.isoformat() if drain.finished_at
        else None,
        'detail': drain.detail,
        'counts': dict(counts),
        'instances': [item_payload(i) for i in items],
    }


class Notifications:
    """Sends the three events; never lets a notification failure stop a
    drain (it is logged)."""

    def __init__(self, notifier=None):
        self.notifier = notifier

    def send(self, event_type, body):
        if self.notifier is None:
            return
        try:
            self.notifier.info({}, event_type, body)
        except Exception:   # noqa: BLE001
            LOG.exception('could not send %s', event_type)
