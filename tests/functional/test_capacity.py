"""Failover capacity on a real in-process Nova: 3 racks, the third rack's
spare room filled step by step.

Each host (MediumFakeDriver: 8192 MB, 512 MB reserved) holds three 2 GB
SAL1 instances. Racks r1 and r2 hold five each (one slot free per rack);
policy ``sal1:1 rack``. With k instances on r3, a failure of r1 needs
room for 5 in r2 (1) + r3 (6 - k): it fits up to k = 2 and not at k = 3.

- without FailoverCapacityFilter: ``capacity check`` says fit after the
  1st and 2nd r3 boot and no fit after the 3rd, naming the stranded
  instance; then r1 loses power and every instance is evacuated in the
  evacuator's order: the instances that end in NO_VALID_HOST are exactly
  the ones the check named;
- with it: the 3rd r3 boot is refused (reason in the scheduler log), the
  check stays fit, and a whole-rack power loss recovers every instance.
"""

import io
import json
import types

from nova.tests.functional.api import client as api_client
from oslo_config import cfg

from nova_ha.capacity import cli as capacity_cli
from nova_ha.capacity import collect
from nova_ha.conf import capacity as capacity_conf
from nova_ha.sim import novastack
from tests.functional import base

CONF = cfg.CONF
HOSTS = tuple('host%d' % i for i in range(1, 7))
RACK = {'r1': ('host1', 'host2'), 'r2': ('host3', 'host4'),
        'r3': ('host5', 'host6')}
# r1/r2 members: (name, host, ha:recovery_priority). The lowest priority of
# r1 is the one a failure of r1 strands at k = 3.
LOAD = (('a-900', 'host1', 900), ('a-700', 'host1', 700),
        ('a-500', 'host2', 500), ('a-300', 'host2', 300),
        ('a-100', 'host2', 100),
        ('b-800', 'host3', 800), ('b-600', 'host3', 600),
        ('b-400', 'host4', 400), ('b-200', 'host4', 200),
        ('b-150', 'host4', 150))
FILL = (('c-1', 'host5'), ('c-2', 'host6'), ('c-3', 'host5'))


class CapacityTestBase(base.NovaHATestCase):
    COMPUTE_HOSTS = HOSTS
    RETRIES = 60

    def setUp(self):
        capacity_conf.register_opts(CONF)
        super().setUp()
        self.flags(tolerate={'sal1': '1 rack'}, group='capacity')
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')
        self.layout(racks=3, sal={h: 1 for h in HOSTS})
        self.flavors = {}
        self.servers = {}         # name -> server dict
        self.prio = {}

    def flavor(self, prio):
        if prio not in self.flavors:
            self.flavors[prio] = self._create_flavor(
                name='sal1-p%d' % prio, memory_mb=2048, vcpu=1, disk=1,
                extra_spec={'ha:sal': '1',
                            'ha:recovery_priority': str(prio)})
        return self.flavors[prio]

    def boot(self, name, host, prio=0, expected_state='ACTIVE'):
        body = self._build_server(name=name, flavor_id=self.flavor(prio),
                                  networks='none')
        body['host'] = host       # requested destination: filters apply
        server = self.admin_api.post_server({'server': body})
        server = self._wait_for_state_change(server, expected_state,
                                             max_retries=self.RETRIES)
        self.servers[name] = server
        self.prio[name] = prio
        return server

    def load(self):
        for name, host, prio in LOAD:
            self.assertEqual(host, self.host_of(self.boot(name, host, prio)))

    def check(self):
        """``nova-ha capacity check -f json`` on the cloud as it is."""
        cloud = collect.from_api(
            lambda p: self.admin_api.api_get(p).body,
            lambda p: self.placement.get(
                p, version=collect.PLACEMENT_VERSION).body)
        out = io.StringIO()
        rc = capacity_cli.main(types.SimpleNamespace(
            sal=None, tolerate=None, format='json'), cloud=cloud, out=out,
            conf=CONF)
        table = io.StringIO()
        capacity_cli.main(types.SimpleNamespace(
            sal='1', tolerate='1 rack', format='table'), cloud=cloud,
            out=table, conf=CONF)
        return rc, json.loads(out.getvalue()), table.getvalue()

    def stranded(self, data, failure):
        for s in data['scenarios']:
            if s['failure'] == failure:
                return sorted(st['name'] for st in s['stranded'])
        self.fail('no scenario %s in %s' % (failure, data))

    def power_loss(self, rack):
        """Cut a rack: stop its computes, force them down, evacuate every
        instance one by one in the evacuator's order (SAL1, higher
        ha:recovery_priority first). Returns (recovered, no_valid_host)
        instance names."""
        services = {s['host']: s for s in self.admin_api.get_services(
            binary='nova-compute')}
        for host in RACK[rack]:
            self.computes[host].stop()
            self.admin_api.put_service_force_down(services[host]['id'], True)
        victims = sorted((n for n, s in self.servers.items()
                          if s.get('status') == 'ACTIVE'
                          and self.host_of(s) in RACK[rack]),
                         key=lambda n: -self.prio[n])
        recovered, nvh = [], []
        for name in victims:
            server = self.servers[name]
            try:
                self.admin_api.post_server_action(server['id'],
                                                  {'evacuate': {}})
            except api_client.OpenStackApiException as exc:
                if 'NoValidHost' not in str(exc):
                    raise
            mig = self._wait_for_migration_status(server, ['done', 'error'])
            server = self.admin_api.get_server(server['id'])
            if mig['status'] == 'done':
                self.assertNotIn(server['OS-EXT-SRV-ATTR:host'], RACK[rack])
                recovered.append(name)
            else:
                self.assertIn('No valid host',
                              server.get('fault', {}).get('message', ''))
                nvh.append(name)
        return recovered, nvh


class TestCapacityWithoutFilter(CapacityTestBase):
    ENABLED_FILTERS = novastack.NOVA_DEFAULT_FILTERS + ('SALFilter',)

    def test_check_flips_and_names_exactly_the_stranded(self):
        self.load()
        rc, data, _ = self.check()
        self.assertEqual(0, rc, data)
        self.assertEqual(3, len(data['scenarios']))
        for k, (name, host) in enumerate(FILL, 1):
            self.boot(name, host)
            rc, data, table = self.check()
            if k < 3:
                self.assertEqual(0, rc, 'boot %d: %s' % (k, data))
                self.assertTrue(data['fits'])
        # The 3rd boot flips it: r1's failure strands its lowest priority.
        self.assertEqual(1, rc)
        self.assertFalse(data['fits'])
        named = self.stranded(data, 'rack r1')
        self.assertEqual(['a-100'], named)
        scen = [s for s in data['scenarios'] if s['failure'] == 'rack r1'][0]
        self.assertTrue(scen['exact'])
        self.assertEqual('no room', scen['stranded'][0]['kind'])
        self.assertIn('a-100', table)
        self.assertIn('NO FIT', table)

        recovered, nvh = self.power_loss('r1')
        self.assertEqual(named, sorted(nvh))
        self.assertEqual(4, len(recovered))


class TestCapacityWithFilter(CapacityTestBase):
    ENABLED_FILTERS = novastack.NOVA_DEFAULT_FILTERS + (
        'SALFilter', 'FailoverCapacityFilter')

    def test_filter_refuses_the_boot_and_rack_loss_recovers_all(self):
        self.load()
        for name, host in FILL[:2]:
            self.assertEqual(host, self.host_of(self.boot(name, host)))
            self.assertEqual(0, self.check()[0])
        name, host = FILL[2]
        refused = self.boot(name, host, expected_state='ERROR')
        self.assertIn('No valid host', refused['fault']['message'])
        log = self.stdlog.logger.output
        self.assertIn('FailoverCapacityFilter', log)
        self.assertIn('reserved on %s for the failover of rack r1' % host,
                      log)
        self.api.delete_server(refused['id'])
        self._wait_until_deleted(refused)
        del self.servers[name]
        rc, data, _ = self.check()
        self.assertEqual(0, rc, data)

        recovered, nvh = self.power_loss('r1')
        self.assertEqual([], nvh)
        self.assertEqual(5, len(recovered))
