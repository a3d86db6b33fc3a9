"""The simulated cloud keeps every Nova service's log in its state
directory (issue 12, finding 8: a stuck evacuation's cause must be
findable). In-process Nova: one file per service; ``--nova processes``:
each service process's own log under STATE_DIR/nova/
(tests/functional/test_sim_processes.py starts that mode)."""

import os

from nova_ha.sim import cloud as sim_cloud
from tests.functional import procs


def test_in_process_nova_logs_per_service(tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=2, racks=1)
    try:
        (server,) = procs.boot(sim, 'logged', count=1)
        host = getattr(server, 'OS-EXT-SRV-ATTR:host')
        sim.nova.servers.delete(server.id)
        procs.wait_for(lambda: not sim.nova.servers.list(), 60,
                       what='server deleted')
    finally:
        sim.stop()
    names = [n for n, _ in sim_cloud.NovaServiceLogs.SERVICES]
    for name in names:
        assert os.path.exists(os.path.join(sim.dir, name)), name
    compute = open(os.path.join(sim.dir, 'nova-compute.log')).read()
    assert ' nova.compute.' in compute, compute[-2000:]
    # The instance a record is about is named (oslo.log's extra).
    assert '[instance: %s]' % server.id in compute, compute[-2000:]
    # Each record is in exactly one service's file.
    texts = {n: open(os.path.join(sim.dir, n)).read() for n in names}
    assert 'nova.compute.' not in texts['nova-api.log'].replace(
        'nova.compute.api', '')
    assert 'nova.scheduler.' not in texts['nova-compute.log']
    assert host


def test_service_of_logger_names():
    of = sim_cloud.NovaServiceLogs.service_of
    assert of('nova.compute.manager') == 'nova-compute.log'
    assert of('nova.compute.api') == 'nova-api.log'
    assert of('nova.api.openstack.wsgi') == 'nova-api.log'
    assert of('nova.scheduler.manager') == 'nova-scheduler.log'
    assert of('nova.conductor.manager') == 'nova-conductor.log'
    assert of('nova.virt.fake') == 'nova-compute.log'
    assert of('nova.objects.instance') == 'nova.log'
    assert of('nova') == 'nova.log'
    assert of('novaclient.v2') is None
