"""Alarms and recovery steps as oslo.messaging notifications over the
RabbitMQ on 127.0.0.1:5672, received by an oslo.messaging notification
listener (doc/notifications.md)."""

import os
import queue
import socket
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from tests.functional import procs

RABBIT = 'rabbit://guest:guest@127.0.0.1:5672/'


def _rabbit_up():
    try:
        socket.create_connection(('127.0.0.1', 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _rabbit_up(), reason='RabbitMQ is not running on 127.0.0.1:5672')


class Endpoint:
    def __init__(self):
        self.events = queue.Queue()

    def _got(self, priority, ctxt, publisher_id, event_type, payload,
             metadata):
        self.events.put((priority, publisher_id, event_type, payload))

    def critical(self, *a):
        self._got('critical', *a)

    def error(self, *a):
        self._got('error', *a)

    def warn(self, *a):
        self._got('warn', *a)

    def info(self, *a):
        self._got('info', *a)


def test_alarms_and_steps_reach_rabbitmq(tmp_path):
    topic = 'nova_ha_test_%s' % uuid.uuid4().hex[:8]
    conf = cfg.ConfigOpts()
    conf([], project='nova-ha-test')
    transport = oslo_messaging.get_notification_transport(conf, url=RABBIT)
    endpoint = Endpoint()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=topic)], [endpoint],
        executor='threading')
    listener.start()
    sim = procs.Sim(tmp_path / 'sim', hosts=4, racks=2, sal=1)
    src = sim.state['evacuator_configs'][0]
    path = tmp_path / 'ev.conf'
    path.write_text(open(src).read() + '\n'.join([
        '', '[oslo_messaging_notifications]', 'driver = messagingv2',
        'transport_url = %s' % RABBIT, 'topics = %s' % topic, '']))
    os.chmod(path, 0o600)
    ev = procs.Evacuator(str(path))
    got = {}
    try:
        ev.wait_running()
        procs.boot(sim, 'vm', count=1, host='compute02')
        sim.inject('compute02', 'power_loss')
        want = {'nova_ha.alarm.host_down', 'nova_ha.recovery.detected',
                'nova_ha.recovery.fenced', 'nova_ha.recovery.forced_down',
                'nova_ha.recovery.listed', 'nova_ha.recovery.evacuate',
                'nova_ha.recovery.active', 'nova_ha.recovery.finished'}
        while not want <= set(got):
            try:
                prio, publisher, event_type, payload = \
                    endpoint.events.get(timeout=60)
            except queue.Empty:
                raise AssertionError('missing notifications: %s (got %s)'
                                     % (want - set(got), sorted(got)))
            got.setdefault(event_type, (prio, publisher, payload))
    finally:
        out, err = ev.stop()
        sim.stop()
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert 'Traceback' not in err, err
    prio, publisher, alarm = got['nova_ha.alarm.host_down']
    assert prio == 'critical' and publisher == 'nova-ha.evacuator'
    assert alarm['type'] == 'HOST_DOWN' and alarm['severity'] == 'CRITICAL'
    assert alarm['host'] == 'compute02'
    assert alarm['location']['rack'] == 'r1'
    assert alarm['time']
    prio, publisher, fenced = got['nova_ha.recovery.fenced']
    assert prio == 'info'
    assert fenced['host'] == 'compute02' and fenced['type'] == 'fenced'
    assert fenced['location']['rack'] == 'r1' and fenced['time']
    assert got['nova_ha.recovery.active'][2]['instance_uuid']
    assert got['nova_ha.recovery.finished'][2]['detail'] == 'done'
