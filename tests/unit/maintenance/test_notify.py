"""maintenance.host.* notifications: transport choice and payload."""

import datetime
import logging
import unittest

from oslo_config import cfg

from nova_ha.journal import api as journal_api
from nova_ha.maintenance import notify


def _drain(**kw):
    now = datetime.datetime(2026, 11, 21, 5, 0, tzinfo=datetime.timezone.utc)
    d = dict((c, None) for c in journal_api.Drain.__dataclass_fields__)
    d.update(id=3, host='host1', state='draining', reason='BIOS',
             power_off=False, powered_off_by_nova_ha=False, started_at=now,
             updated_at=now)
    d.update(kw)
    return journal_api.Drain(**d)


def _item(**kw):
    d = dict((c, None) for c in journal_api.DrainItem.__dataclass_fields__)
    d.update(instance_uuid='u1', name='vm-1', state='moved', method='live',
             dest_host='host2', migration_id=9, attempts=1)
    d.update(kw)
    return journal_api.DrainItem(**d)


class TestNotify(unittest.TestCase):

    def test_payload(self):
        body = notify.payload(_drain(), {'moved': 1, 'waiting': 0,
                                         'moving': 0, 'blocked': 0},
                              [_item()])
        self.assertEqual(3, body['drain_id'])
        self.assertEqual('2026-11-21T05:00:00+00:00', body['started_at'])
        self.assertEqual({'instance_id': 'u1', 'name': 'vm-1',
                          'server_group': None, 'method': 'live',
                          'state': 'moved', 'reason': None,
                          'migration_id': 9, 'dest_host': 'host2'},
                         body['instances'][0])

    def test_no_transport_means_log_driver(self):
        conf = cfg.ConfigOpts()
        conf([], project='nova-ha', default_config_files=[])
        notifier = notify.make_notifier(conf)
        with self.assertLogs('oslo.messaging.notification.'
                             'maintenance.host.end', logging.INFO) as logs:
            notify.Notifications(notifier).send(notify.END, {'host': 'h'})
        self.assertIn('"host": "h"', logs.output[0])

    def test_a_failing_notifier_never_stops_a_drain(self):
        class Broken:
            def info(self, *a):
                raise RuntimeError('broker down')
        with self.assertLogs('nova_ha.maintenance.notify', logging.ERROR):
            notify.Notifications(Broken()).send(notify.START, {})
