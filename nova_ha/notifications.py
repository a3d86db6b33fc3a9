"""nova-ha's notifications: alarms and recovery steps for NFVO/VNFM/OSS.

oslo.messaging Notifier, configured by the standard
``[oslo_messaging_notifications]`` group (driver, topics, transport_url).
With no driver configured, nova-ha uses the ``log`` driver so nothing is
lost and no broker is needed. Event types and payloads: doc/notifications.md.
"""

import oslo_messaging
from oslo_config import cfg

_LEVEL = {'CRITICAL': 'critical', 'MAJOR': 'error', 'MINOR': 'warn',
          'WARNING': 'warn', 'INFO': 'info'}


class Notifier:
    def __init__(self, conf=None, publisher='evacuator'):
        conf = conf or cfg.CONF
        transport = oslo_messaging.get_notification_transport(conf)
        if not conf.oslo_messaging_notifications.driver:
            conf.set_default('driver', ['log'],
                             group='oslo_messaging_notifications')
        self._notifier = oslo_messaging.Notifier(
            transport, publisher_id='nova-ha.%s' % publisher,
            topics=conf.oslo_messaging_notifications.topics)

    def emit(self, event_type, severity, payload):
        level = _LEVEL.get(severity, 'info')
        getattr(self._notifier, level)({}, event_type, payload)
