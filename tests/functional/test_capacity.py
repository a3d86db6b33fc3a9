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

    def source(self):
        """The cloud from the Nova API (python-novaclient's keystoneauth
        session, as the evacuator reads it) and placement."""
        nova = self.nova_client()
        return collect.from_api(
            collect.compute_getter(nova.client.session,
                                   endpoint=nova.client.get_endpoint()),
            lambda p: self.placement.get(
                p, version=collect.PLACEMENT_VERSION).body)

    def check(self):
        """``nova-ha capacity check -f json`` on the cloud as it is."""
        cloud = self.source()
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


class TestCapacityBeforeFencing(CapacityTestBase):
    """The evacuator (its real reconcile loop, in process, on the real
    Nova; heartbeats crafted, BMCs a recording stand-in): rack r1 loses
    power while the policy is already violated (r3 filled to k = 3)."""

    ENABLED_FILTERS = novastack.NOVA_DEFAULT_FILTERS + ('SALFilter',)
    # As in a real cloud: an evacuation the scheduler refuses ends in
    # ERROR (NO_VALID_HOST), not in an API error.
    CAST_AS_CALL = False

    def test_critical_alarm_before_fencing_and_recovers_what_fits(self):
        import time

        from nova_ha.capacity import recovery as capacity_recovery
        from nova_ha.evacuator import engine
        from nova_ha.heartbeat import receiver as hb_receiver
        from nova_ha import journal as journal_mod
        import nova_ha.conf
        from tests.unit.evacuator import test_flapping as tf

        self.load()
        for name, host in FILL:
            self.boot(name, host)
        for host in RACK['r1']:
            self.computes[host].stop()

        conf = cfg.ConfigOpts()
        nova_ha.conf.register_opts(conf)
        conf([], project='nova-ha-test')
        conf.set_override('tolerate', {'sal1': '1 rack'}, group='capacity')
        conf.set_override('sal1_confirmation_window', 1.0,
                          group='evacuator')
        conf.set_override('startup_grace', 0.0, group='evacuator')
        # One evacuation at a time: nova schedules concurrent ones in
        # parallel, and which of two racing instances gets the last slot
        # is then the scheduler's choice, not the recovery order.
        conf.set_override('max_concurrent_evacuations', 1,
                          group='evacuator')
        conf.set_override('self_check', False, group='guard')
        # A whole rack (2 of 6 hosts) fails on purpose: lift the guard's
        # small-cloud and per-domain rules, which would hold host2 back.
        conf.set_override('small_cloud_hosts', 0, group='guard')
        conf.set_override('domain_min_hosts', 1000, group='guard')
        # NO_VALID_HOST is final; no retries of the stranded instance.
        conf.set_override('max_evacuation_attempts', 1, group='evacuator')
        url = 'sqlite:///%s/j.sqlite' % self.useFixture(
            novastack.nova_fixtures.fixtures.TempDir()).path
        journal_mod.upgrade(url)
        journal = journal_mod.Journal(url)
        self.addCleanup(journal.close)
        t = [1000.0]
        recv = hb_receiver.HeartbeatReceiver(
            {p: [('127.0.0.1', 0)] for p in tf.PLANES}, tf.RING,
            clock=lambda: t[0], default_window=1.0)
        fencer = tf.Fencer()
        alarms_at_fence = {}

        def fence(host, _fence=fencer.fence):
            alarms_at_fence[host] = [a.message for a in journal.list_alarms(
                types=[capacity_recovery.ALARM])]
            return _fence(host)
        fencer.fence = fence
        ev = engine.Evacuator(conf, self.nova_client(), fencer, journal,
                              recv, clock=lambda: t[0])
        self.addCleanup(ev.stop)
        ev.__dict__['_capacity'] = capacity_recovery.RecoveryCapacity(
            ev, source=self.source)
        ev.start()
        seq = {}

        def tick(beating):
            t[0] += 0.3
            for host in beating:
                seq[host] = seq.get(host, 0) + 1
                for plane in tf.PLANES:
                    self.assertTrue(recv.handle(tf.protocol.encode(
                        tf.RING, host, plane, 7, seq[host], time.time(),
                        {'nova-compute': 'running'}), plane, now=t[0]))
            ev.reconcile()

        # The evacuator reads the cloud in the background from its first
        # pass on (long before a failure, in production).
        for _ in range(200):
            tick(HOSTS)
            if ev._capacity.cloud is not None:
                break
            time.sleep(0.1)
        self.assertIsNotNone(ev._capacity.cloud)
        alive = [h for h in HOSTS if h not in RACK['r1']]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            tick(alive)
            recs = journal.list_recoveries()
            if len(recs) == 2 and all(r.state != 'open' for r in recs):
                break
            time.sleep(0.05)
        recs = {r.host: r for r in journal.list_recoveries()}
        self.assertEqual(set(RACK['r1']), set(recs))
        # Before host2 (a-500, a-300, a-100) was fenced, the alarm named
        # the instance that cannot be placed.
        self.assertEqual(set(RACK['r1']), set(alarms_at_fence))
        named = [m for ms in alarms_at_fence.values() for m in ms]
        self.assertTrue(named, alarms_at_fence)
        self.assertTrue(all('a-100' in m for m in named), named)
        for other in ('a-900', 'a-700', 'a-500', 'a-300'):
            self.assertFalse(any('%s (' % other in m for m in named))
        alarm = journal.list_alarms(types=[capacity_recovery.ALARM])[0]
        self.assertEqual('CRITICAL', alarm.severity)
        # Recovered what fits, highest priority first: a-100 alone ends
        # in NO_VALID_HOST.
        items = {i.name: i for r in recs.values()
                 for i in journal.list_recovery_items(r.id)}
        states = {n: i.state for n, i in items.items()}
        # nova saves the migration as 'error' before it puts the instance
        # in ERROR with its "No valid host" fault: the engine may read the
        # server in between and retry (item 'error' after its attempts)
        # instead of 'no_valid_host'. Nova's fault tells.
        self.assertIn(states.pop('a-100'), ('no_valid_host', 'error'))
        self.assertEqual({'a-900': 'done', 'a-700': 'done',
                          'a-500': 'done', 'a-300': 'done'}, states)
        server = self.admin_api.get_server(self.servers['a-100']['id'])
        self.assertEqual('ERROR', server['status'])
        self.assertIn('No valid host', server['fault']['message'])

        # Capacity is added (c-3 leaves host5) and the operator retries
        # the incomplete recovery: a-100 is evacuated after all, through
        # the scheduler, and its failure alarm clears.
        nvh = recs['host2']
        self.assertEqual('incomplete', nvh.state)
        uuid = self.servers['a-100']['id']
        failure_alarms = ['NO_VALID_HOST', 'EVACUATION_FAILED']
        self.assertEqual([uuid], [a.instance_uuid for a in journal.list_alarms(
            types=failure_alarms)])
        self.api.delete_server(self.servers['c-3']['id'])
        self._wait_until_deleted(self.servers['c-3'])
        (item,) = journal.retry_recovery(nvh.id, 'test-operator')
        self.assertEqual(('a-100', 'pending'), (item.name, item.state))
        self.assertEqual('EVACUATING', journal.get_host_state('host2').state)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tick(alive)
            if journal.get_recovery(nvh.id).state != 'open':
                break
            time.sleep(0.05)
        self.assertEqual('done', journal.get_recovery(nvh.id).state)
        (item,) = [i for i in journal.list_recovery_items(nvh.id)
                   if i.name == 'a-100']
        self.assertEqual('done', item.state)
        server = self.admin_api.get_server(uuid)
        self.assertEqual('ACTIVE', server['status'])
        self.assertNotIn(server['OS-EXT-SRV-ATTR:host'], RACK['r1'])
        self.assertEqual(server['OS-EXT-SRV-ATTR:host'], item.dest_host)
        self.assertEqual([], journal.list_alarms(types=failure_alarms))
        self.assertEqual('RECOVERED', journal.get_host_state('host2').state)
