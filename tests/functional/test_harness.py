"""The harness itself: real Nova boots, forces down and evacuates."""

from tests.functional import base


class TestHarness(base.NovaHATestCase):

    COMPUTE_HOSTS = ('host1', 'host2', 'host3')
    HOST_WEIGHTS = {'host1': 100, 'host2': 50, 'host3': 10}

    def test_layout_creates_ha_aggregates(self):
        topo = self.layout(racks=3, power_domains=2, azs=1,
                           sal={'host1': 1, 'host2': 2})
        self.assertEqual('r1', topo['host1']['rack'])
        self.assertEqual('pdu2', topo['host3']['power_domain'])
        aggs = {a['name']: a for a in self.admin_api.api_get(
            '/os-aggregates').body['aggregates']}
        self.assertEqual({'ha:rack': 'r2'}, aggs['rack-r2']['metadata'])
        self.assertEqual(['host1', 'host2'],
                         sorted(aggs['power-pdu1']['hosts']))
        self.assertEqual('1', aggs['sal1']['metadata']['ha:sal'])
        self.assertEqual('az1', aggs['zone-az1']['availability_zone'])

    def test_boot_force_down_evacuate_without_target(self):
        server = self._create_server(networks='none')
        self.assertEqual('host1', self.host_of(server))

        # Fence-equivalent for a test: stop the compute, force it down.
        self.computes['host1'].stop()
        service = self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)

        self._evacuate_server(server, expected_host='host2',
                              expected_state='SHUTOFF')
        self.assertEqual('host2', self.host_of(server))

    def test_novaclient_reaches_the_stack(self):
        nova = self.nova_client()
        self.assertEqual(sorted(self.COMPUTE_HOSTS), sorted(
            h.hypervisor_hostname for h in nova.hypervisors.list()))
        server = self._create_server(networks='none')
        self.assertEqual('ACTIVE', nova.servers.get(server['id']).status)
