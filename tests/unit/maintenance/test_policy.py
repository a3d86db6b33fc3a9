"""Pure drain planning: policies, method choice, concurrency picking."""

import unittest

from oslo_config import cfg

from nova_ha.conf import maintenance as maint_conf
from nova_ha.maintenance import policy as p

LIMITS = p.Limits(max_concurrent_moves=4,
                  default_max_concurrent_moves_per_group=1,
                  live_migration_downtime_ms=500,
                  cold_migration_interruption_ms=60000)


def server(status='ACTIVE', specs=None, md=None, sid='s1'):
    return {'id': sid, 'name': sid, 'status': status,
            'flavor': {'extra_specs': dict(specs or {})},
            'metadata': dict(md or {})}


class TestPolicyOf(unittest.TestCase):

    def test_defaults(self):
        self.assertEqual(p.Policy(), p.policy_of(server()))

    def test_flavor_and_metadata_combine_to_the_stricter(self):
        pol = p.policy_of(server(
            specs={'ha:live_migration': 'allowed',
                   'ha:max_interruption_ms': '800'},
            md={'ha_live_migration': 'forbidden',
                'ha_max_interruption_ms': '300'}))
        self.assertEqual('metadata ha_live_migration=forbidden',
                         pol.live_forbidden_by)
        self.assertEqual(300, pol.max_interruption_ms)
        self.assertEqual('metadata ha_max_interruption_ms=300',
                         pol.max_interruption_by)
        pol = p.policy_of(server(specs={'ha:max_interruption_ms': '100'},
                                 md={'ha_max_interruption_ms': '300'}))
        self.assertEqual('flavor extra spec ha:max_interruption_ms=100',
                         pol.max_interruption_by)

    def test_metadata_cannot_loosen_the_flavor(self):
        pol = p.policy_of(server(specs={'ha:live_migration': 'forbidden'},
                                 md={'ha_live_migration': 'allowed'}))
        self.assertEqual('flavor extra spec ha:live_migration=forbidden',
                         pol.live_forbidden_by)

    def test_bad_values_name_key_and_value(self):
        for specs, md, needle in [
                ({'ha:live_migration': 'maybe'}, {},
                 "flavor extra spec ha:live_migration='maybe'"),
                ({}, {'ha_max_interruption_ms': 'soon'},
                 "metadata ha_max_interruption_ms='soon'"),
                ({}, {'ha_max_concurrent_moves': '-1'},
                 "metadata ha_max_concurrent_moves='-1'"),
                ({}, {'ha_pinned': 'perhaps'}, "metadata ha_pinned="),
                ({}, {'ha_cold_migration': 'no'},
                 "metadata ha_cold_migration='no'")]:
            with self.assertRaises(p.BadValue) as ctx:
                p.policy_of(server(specs=specs, md=md))
            self.assertIn(needle, str(ctx.exception))

    def test_bad_value_blocks_the_instance(self):
        method, why = p.choose_method(
            server(md={'ha_max_interruption_ms': 'x'}), LIMITS)
        self.assertIsNone(method)
        self.assertIn("ha_max_interruption_ms='x'", why)


class TestChooseMethod(unittest.TestCase):

    def test_live_by_default(self):
        self.assertEqual((p.LIVE, None), p.choose_method(server(), LIMITS))

    def test_live_forbidden_goes_cold(self):
        method, why = p.choose_method(
            server(specs={'ha:live_migration': 'forbidden'}), LIMITS)
        self.assertEqual(p.COLD, method)
        self.assertIn('live migration forbidden', why)

    def test_interruption_below_live_downtime_goes_cold_if_tolerated(self):
        # 200 ms < 500 ms live downtime, and < 60 s cold: blocked
        method, why = p.choose_method(
            server(md={'ha_max_interruption_ms': '200'}), LIMITS)
        self.assertIsNone(method)
        self.assertIn('live migration interrupts', why)
        self.assertIn('cold migration interrupts', why)
        # 500 ms fits a live migration
        self.assertEqual(p.LIVE, p.choose_method(
            server(md={'ha_max_interruption_ms': '500'}), LIMITS)[0])

    def test_pinned(self):
        method, why = p.choose_method(server(md={'ha_pinned': 'true'}),
                                      LIMITS)
        self.assertIsNone(method)
        self.assertIn('ha_pinned=true', why)
        self.assertEqual(p.LIVE, p.choose_method(
            server(md={'ha_pinned': 'false'}), LIMITS)[0])

    def test_live_and_cold_forbidden_may_not_move(self):
        method, why = p.choose_method(server(
            specs={'ha:live_migration': 'forbidden'},
            md={'ha_cold_migration': 'forbidden'}), LIMITS)
        self.assertIsNone(method)
        self.assertIn('cold migration forbidden', why)

    def test_shutoff_is_cold_migrated_whatever_the_interruption(self):
        self.assertEqual(p.COLD, p.choose_method(server(
            'SHUTOFF', md={'ha_max_interruption_ms': '0'}), LIMITS)[0])
        self.assertIsNone(p.choose_method(server(
            'SHUTOFF', md={'ha_cold_migration': 'forbidden'}), LIMITS)[0])

    def test_paused_live_only(self):
        self.assertEqual(p.LIVE, p.choose_method(server('PAUSED'),
                                                 LIMITS)[0])
        method, why = p.choose_method(server(
            'PAUSED', specs={'ha:live_migration': 'forbidden'}), LIMITS)
        self.assertIsNone(method)

    def test_other_statuses_blocked(self):
        for status in ('ERROR', 'VERIFY_RESIZE', 'SUSPENDED', 'RESCUE'):
            method, why = p.choose_method(server(status), LIMITS)
            self.assertIsNone(method, status)
            self.assertIn(status, why)

    def test_fallback_after_live_failure(self):
        self.assertEqual((p.COLD, None), p.fallback_after_live_failure(
            server(), LIMITS))
        method, why = p.fallback_after_live_failure(
            server(md={'ha_max_interruption_ms': '1000'}), LIMITS)
        self.assertIsNone(method)
        self.assertIn('60000 ms', why)
        method, why = p.fallback_after_live_failure(
            server(md={'ha_cold_migration': 'forbidden'}), LIMITS)
        self.assertIsNone(method)


class TestGroupLimits(unittest.TestCase):

    def test_default_and_smallest_metadata(self):
        servers = [server(sid='a1'),
                   server(sid='a2', md={'ha_max_concurrent_moves': '3'}),
                   server(sid='a3', md={'ha_max_concurrent_moves': '2'}),
                   server(sid='b1'), server(sid='c1')]
        group_of = {'a1': 'A', 'a2': 'A', 'a3': 'A', 'b1': 'B'}
        limits = p.group_limits(servers, group_of, LIMITS)
        self.assertEqual(2, limits['A'][0])
        self.assertEqual('metadata ha_max_concurrent_moves=2', limits['A'][1])
        self.assertEqual(1, limits['B'][0])
        self.assertIn('default_max_concurrent_moves_per_group', limits['B'][1])
        self.assertNotIn('C', limits)


class TestPick(unittest.TestCase):
    C = p.Candidate

    def test_group_limit_never_exceeded(self):
        waiting = [self.C('a1', 'A'), self.C('a2', 'A'), self.C('b1', 'B'),
                   self.C('b2', 'B'), self.C('x', None)]
        got = p.pick(waiting, {}, 0, {'A': 1, 'B': 1}, 10)
        self.assertEqual(['a1', 'b1', 'x'], [c.instance_uuid for c in got])

    def test_counts_moves_in_flight(self):
        waiting = [self.C('a2', 'A'), self.C('b1', 'B')]
        got = p.pick(waiting, {'A': 1}, 1, {'A': 1, 'B': 2}, 10)
        self.assertEqual(['b1'], [c.instance_uuid for c in got])

    def test_global_limit(self):
        waiting = [self.C('g%d' % i, 'G%d' % i) for i in range(8)]
        got = p.pick(waiting, {}, 1, {}, 4)
        self.assertEqual(3, len(got))
        self.assertEqual([], p.pick(waiting, {}, 4, {}, 4))

    def test_group_limit_two(self):
        waiting = [self.C('a%d' % i, 'A') for i in range(5)]
        self.assertEqual(2, len(p.pick(waiting, {}, 0, {'A': 2}, 10)))

    def test_order_waiting_longest_group_first(self):
        waiting = [self.C('x', None), self.C('b1', 'B'), self.C('a1', 'A'),
                   self.C('a2', 'A')]
        got = p.order_waiting(waiting, {'A': 3, 'B': 1})
        self.assertEqual(['a1', 'a2', 'x', 'b1'],
                         [c.instance_uuid for c in got])


class TestConf(unittest.TestCase):

    def test_options_and_limits(self):
        conf = cfg.ConfigOpts()
        maint_conf.register_opts(conf)
        conf([], project='nova-ha', default_config_files=[])
        self.assertEqual(1, conf.maintenance.
                         default_max_concurrent_moves_per_group)
        limits = p.Limits.from_conf(conf)
        self.assertEqual(4, limits.max_concurrent_moves)
        self.assertEqual([('maintenance', 10)], [
            (g.name, len(o)) for g, o in maint_conf.list_opts()])

    def test_bad_option_value_is_a_clear_error(self):
        import tempfile
        with tempfile.NamedTemporaryFile('w', suffix='.conf') as f:
            f.write('[maintenance]\nmax_concurrent_moves = 0\n')
            f.flush()
            conf = cfg.ConfigOpts()
            maint_conf.register_opts(conf)
            conf(['--config-file', f.name], project='nova-ha',
                 default_config_files=[])
            with self.assertRaises(cfg.ConfigFileValueError) as ctx:
                conf.maintenance.max_concurrent_moves
        self.assertIn('max_concurrent_moves', str(ctx.exception))
        self.assertIn('greater than or equal to 1', str(ctx.exception))
