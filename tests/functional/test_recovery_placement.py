"""Recovery placement against the real in-process Nova: a planned target
goes through nova-scheduler (microversion 2.94, no force), which still
enforces every rule -- shown with a plan that breaks rack anti-affinity --
and the evacuator's fallback (no host) then recovers the instance where
the rules allow.
"""

import types
from unittest import mock

from oslo_config import cfg

import nova_ha.conf
from nova_ha import nova_ops
from nova_ha.evacuator import placement_plan
from nova_ha import journal as journal_mod
from nova_ha import topology
from tests.functional.scheduler import base

SIX_HOSTS = tuple('host%d' % i for i in range(1, 7))


class TestRecoveryPlacement(base.SchedulerTestCase):
    COMPUTE_HOSTS = SIX_HOSTS
    HOST_WEIGHTS = {h: 100 - i for i, h in enumerate(SIX_HOSTS)}

    def setUp(self):
        super().setUp()
        self.rack_layout(racks=3)      # r1: host1,2  r2: host3,4  r3: 5,6
        self.nova = self.nova_client()
        self.ops = nova_ops.NovaOps(self.nova)
        url = 'sqlite:///%s/j.sqlite' % self.useFixture(
            base.novastack.nova_fixtures.fixtures.TempDir()).path
        journal_mod.upgrade(url)
        self.journal = journal_mod.Journal(url)
        self.addCleanup(self.journal.close)

    def fail_host(self, host):
        self.computes[host].stop()
        service = self.admin_api.get_services(
            host=host, binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        rec, _ = self.journal.open_recovery(host, reason='HOST_DOWN')
        self.journal.set_host_state(host, 'FENCED', recovery_id=rec.id)
        self.journal.add_recovery_items(rec.id, self.ops.instances_on(host))
        return rec

    def planner(self):
        conf = cfg.ConfigOpts()
        nova_ha.conf.register_opts(conf)
        conf([], project='nova-ha-test')
        services = self.ops.compute_services()
        engine = types.SimpleNamespace(
            conf=conf, journal=self.journal, ops=self.ops, services=services,
            topology=topology.Topology.from_aggregates(
                self.ops.aggregates(), hosts=sorted(services),
                levels=('host', 'rack', 'power_domain',
                        'availability_zone')))
        return placement_plan.Planner(engine)

    def start(self, rec, uuid):
        """The engine's first step: the item goes 'evacuating'; the plan
        is made for it as it was before that transition."""
        (item,) = [i for i in self.journal.list_recovery_items(rec.id)
                   if i.instance_uuid == uuid]
        self.assertTrue(self.journal.transition_item(
            rec.id, uuid, ('pending',), 'evacuating'))
        return item

    def evacuate(self, uuid, host=None):
        """As the engine: the API call; under the stack's CAST_AS_CALL the
        conductor's NoValidHost comes back through the API (a real cloud
        answers 202 and fails the migration)."""
        try:
            self.ops.evacuate(uuid, host)
        except Exception as exc:   # noqa: BLE001
            if 'NoValidHost' not in str(exc) and \
                    'No valid host' not in str(exc):
                raise

    def rack_of_server(self, server_id):
        return self.rack(self.host_of({'id': server_id}))

    def test_scheduler_refuses_a_plan_that_breaks_rack_anti_affinity(self):
        group = self.group()
        servers = self.boot({'ha_anti_affinity_level': 'rack'}, group,
                            count=2)
        by_host = {self.host_of(s): s for s in servers}
        self.assertEqual({'host1', 'host3'}, set(by_host))
        victim, sibling = by_host['host1'], by_host['host3']
        rec = self.fail_host('host1')

        # A plan that breaks the rule: the free host in the sibling's rack.
        def wrong_rack(topo, levels, hosts, siblings):
            return [h for h in hosts if h != 'host3'
                    and topo.domain(h, 'rack') == 'r2']
        planner = self.planner()
        item = self.start(rec, victim['id'])
        with mock.patch.object(placement_plan, '_away_from', wrong_rack):
            plan = planner.targets(rec, [item])
        self.assertEqual({victim['id']: 'host4'}, plan)
        self.evacuate(victim['id'], plan[victim['id']])

        # nova-scheduler ran its filters on host4 and refused it.
        self.wait_migration(victim, 'evacuation', 'error')
        server = self._wait_for_state_change(victim, 'ERROR',
                                             max_retries=self.RETRIES)
        self.assertIn('No valid host', server['fault']['message'])
        self.assertEqual('host1', self.host_of(victim))

        # The engine's fallback: it was a planned attempt, so again with no
        # host; the scheduler keeps the rack rule.
        item = self.journal.get_recovery_item(rec.id, victim['id'])
        self.assertTrue(planner.refused(rec, item))
        self.evacuate(victim['id'])
        self.wait_migration(victim, 'evacuation', 'done')
        host = self.host_of(victim)
        self.assertNotIn(host, ('host1', 'host3', 'host4'))
        self.assertNotEqual(self.rack_of_server(sibling['id']),
                            self.rack_of_server(victim['id']))

    def test_plan_is_honoured_and_spread(self):
        """Four instances of a failed host: four different targets, each
        exactly the planned one (the scheduler passed it)."""
        servers = self.boot(count=4, name='plain')
        by_host = {}
        for s in servers:
            by_host.setdefault(self.host_of(s), []).append(s)
        # The heaviest host took all four (HOST_WEIGHTS): the pile-up.
        self.assertEqual(['host1'], list(by_host))
        rec = self.fail_host('host1')
        planner = self.planner()
        items = [self.start(rec, s['id']) for s in servers]
        plan = planner.targets(rec, items)
        self.assertEqual(4, len(set(plan.values())))
        self.assertNotIn('host1', plan.values())
        for s in servers:
            self.evacuate(s['id'], plan[s['id']])
        for s in servers:
            self.wait_migration(s, 'evacuation', 'done')
            self.assertEqual(plan[s['id']], self.host_of(s))
