"""SAL placement, rack anti-affinity (multi-create, the 5th member, the soft
rule) and the moves (cold/live migration, evacuation) on a real Nova."""

from nova.tests import fixtures as nova_fixtures

from nova_ha.sim import layout

from tests.functional.scheduler import base


class TestPlacement(base.SchedulerTestCase):
    # nova's own api-paste.ini: a bad hint reaches the scheduler, which
    # must fail closed (test_hint_api.py: the API filter refuses it first)
    API_HINT_FILTER = False

    def test_sal_placement_and_api_refuses_bad_ha_specs(self):
        # host8 and host5 are the lightest hosts: only ha:sal gets them.
        self.rack_layout(racks=4, sal={'host8': 1, 'host5': 2})
        sal1 = self.flavor({'ha:sal': '1'}, name='sal1')
        sal2 = self.flavor({'ha:sal': '2'}, name='sal2')
        plain = self.flavor(name='plain')
        for server in self.boot(flavor_id=sal1, count=2, name='s1'):
            self.assertEqual('host8', self.host_of(server))
        # SAL 2 may use hosts certified for 2 or for the stricter 1.
        hosts = {self.host_of(s)
                 for s in self.boot(flavor_id=sal2, count=3, name='s2')}
        self.assertEqual({'host5'}, hosts)   # heavier than host8
        self.assertEqual('host1', self.host_of(self.boot(flavor_id=plain)[0]))

        # nova's API refuses bad ha: extra specs, naming key and values.
        for key, value, expected in (
                ('ha:sal', '7', "extra spec ha:sal='7' is invalid; allowed "
                 "values: 1, 2, 3."),
                ('ha:live_migration', 'sometimes',
                 'allowed values: allowed, forbidden'),
                ('ha:max_interruption_ms', '-1',
                 'allowed values: an integer >= 0'),
                ('ha:recovery', 'maybe', 'allowed values: auto, none'),
                ('ha:bogus', '1', "extra spec ha:bogus='1' is not a nova-ha "
                 "extra spec; known: ha:sal"),
                ('HA:SAL', '9', "extra spec HA:SAL='9': nova-ha keys are "
                 "lower case (ha:sal)")):
            msg = self.assert_api_error(
                400, self.admin_api.post_extra_spec, plain,
                {'extra_specs': {key: value}})
            self.assertIn(expected, msg)
            self.assertIn(key, msg)

    def test_multi_create_spreads_racks_and_fifth_member_refused(self):
        self.rack_layout(racks=4)
        group = self.group()
        hints = {'ha_anti_affinity_level': 'rack'}
        servers = self.boot(hints, group, count=4)
        hosts = sorted(self.host_of(s) for s in servers)
        # One per rack (r1..r4), the heaviest host of each.
        self.assertEqual(['host1', 'host3', 'host5', 'host7'], hosts)
        fifth = self.boot(hints, group, expected_state='ERROR', name='5th')[0]
        self.assertIn('No valid host', fifth['fault']['message'])
        self.assertIn('FaultDomainAntiAffinityFilter returned 0 hosts',
                      self.log())

        # A malformed hint never breaks the scheduler: the request fails
        # and the log names hint and value.
        bad = self.boot({'ha_anti_affinity_level': 'galaxy'}, self.group(),
                        expected_state='ERROR', name='bad')[0]
        self.assertIn('No valid host', bad['fault']['message'])
        self.assertIn("hint ha_anti_affinity_level='galaxy' is invalid",
                      self.log())

    def test_moves_keep_rack_anti_affinity(self):
        self.rack_layout(racks=4)
        group = self.group()
        servers = self.boot({'ha_anti_affinity_level': 'rack'}, group,
                            count=3)
        by_host = {self.host_of(s): s for s in servers}
        self.assertEqual({'host1', 'host3', 'host5'}, set(by_host))

        def racks_of_others(server):
            return {self.rack(self.host_of(s)) for s in servers
                    if s['id'] != server['id']}

        # Cold migration of the member on host3 (rack r2): host2 is the
        # heaviest free host, but r1 holds a member: it stays in r2.
        moving = by_host['host3']
        self.assertEqual('host4', self.cold_migrate(moving))
        self.assertNotIn('r2', racks_of_others(moving))

        # Live migration of that member (now on host4) back within r2.
        self._live_migrate(moving)
        self.assertEqual('host3', self.host_of(moving))

        # Evacuation of the member on host5 (rack r3) after a host failure.
        victim = by_host['host5']
        self.computes['host5'].stop()
        service = self.admin_api.get_services(
            host='host5', binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        self._evacuate_server(victim, expected_state='SHUTOFF')
        self.assertEqual('host6', self.host_of(victim))
        for server in servers:
            self.assertNotIn(self.rack(self.host_of(server)),
                             racks_of_others(server))

    def test_live_migration_policy(self):
        self.rack_layout(racks=4)
        # Downtime declared per aggregate: host7 is fast, host2 (the
        # heaviest) slow; the others declare nothing, which does not qualify.
        layout.create_aggregate(self.admin_api, 'fast', ['host7'],
                                {'ha:live_migration_downtime_ms': '50'})
        layout.create_aggregate(self.admin_api, 'slow', ['host2'],
                                {'ha:live_migration_downtime_ms': '800'})
        no_live = self.flavor({'ha:live_migration': 'forbidden'})
        server = self.boot(flavor_id=no_live, name='flavor-forbids')[0]
        self.assertEqual('host1', self.host_of(server))
        self.refused_live_migration(server)
        self.assertIn(
            'live migration of instance %s refused: flavor extra spec '
            'ha:live_migration=forbidden' % server['id'], self.log())
        # Cold migration stays possible.
        self.assertEqual('host2', self.cold_migrate(server))

        # The VNFM's hint forbids it the same way.
        hinted = self.boot({'ha_live_migration': 'forbidden'},
                           name='hint-forbids')[0]
        self.refused_live_migration(hinted)
        self.assertIn('refused: hint ha_live_migration=forbidden', self.log())

        # Interruption budget: only a host declaring <= 100 ms qualifies.
        tight = self.boot({'ha_max_interruption_ms': '100'}, name='tight')[0]
        self._live_migrate(tight)
        self.assertEqual('host7', self.host_of(tight))


class TestSoftSpread(base.SchedulerTestCase):
    """The soft rule: FaultDomainSpreadWeigher spreads, nothing is refused."""

    HOST_WEIGHTS = None

    def _setup_scheduler_service(self):
        self.useFixture(nova_fixtures.HostNameWeigherFixture(
            dict(base.DESCENDING)))
        self.flags(weight_classes=[
            'nova_ha.scheduler.weighers.FaultDomainSpreadWeigher',
            'nova.tests.fixtures.nova.HostNameWeigher'],
            group='filter_scheduler')
        return super()._setup_scheduler_service()

    def test_soft_rule_spreads_and_never_refuses(self):
        self.rack_layout(racks=4)
        group = self.group()
        hints = {'ha_anti_affinity_level': 'rack',
                 'ha_anti_affinity': 'soft'}
        racks = []
        for i in range(5):
            server = self.boot(hints, group, name='m%d' % i)[0]
            racks.append(self.rack(self.host_of(server)))
        # One per rack first (host1, host3, host5, host7: the heaviest of
        # each rack, where the host-name weigher alone would have packed
        # host1, host2, ...); the fifth is not refused: it shares a rack.
        self.assertEqual(['r1', 'r2', 'r3', 'r4'], racks[:4])
        self.assertIn(racks[4], racks[:4])
