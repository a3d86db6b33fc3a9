"""ha_max_concurrent_moves on a real Nova whose live migrations take time."""

import time

import fixtures

from tests.functional.scheduler import base


def _live_migration_until_released(self, context, instance, dest,
                                   post_method, recover_method,
                                   block_migration=False, migrate_data=None):
    """nova's FakeLiveMigrateDriver.live_migration, but it waits up to 60 s
    (not 5 s) for force-complete, so a loaded machine cannot end the first
    migration before the test has tried the second."""
    self._abort_migration = False
    self._migrating = True
    deadline = time.monotonic() + 60
    while self._migrating and time.monotonic() < deadline:
        time.sleep(0.05)
    if self._abort_migration:
        recover_method(context, instance, dest, migrate_data,
                       migration_status='cancelled')
    else:
        post_method(context, instance, dest, block_migration, migrate_data)


class TestConcurrentMoves(base.SchedulerTestCase):

    COMPUTE_HOSTS = ('host1', 'host2', 'host3', 'host4')
    HOST_WEIGHTS = {'host1': 100, 'host2': 90, 'host3': 80, 'host4': 70}
    # Live migrations stay 'running' until force-completed (or 5 s).
    compute_driver = 'fake.FakeLiveMigrateDriver'
    # The API must return while the first migration is still running.
    CAST_AS_CALL = False

    def setUp(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.fake.FakeLiveMigrateDriver.live_migration',
            _live_migration_until_released))
        super().setUp()

    def test_second_concurrent_move_refused_until_first_ends(self):
        group = self.group()
        hints = {'ha_max_concurrent_moves': '1'}
        first, second = self.boot(hints, group, count=2)
        self.assertEqual({'host1', 'host2'},
                         {self.host_of(first), self.host_of(second)})
        second_host = self.host_of(second)

        self.api.post_server_action(
            first['id'],
            {'os-migrateLive': {'host': None, 'block_migration': 'auto'}})
        running = self.wait_migration(first, 'live-migration', 'running')

        # A second live migration of the group is refused...
        self.refused_live_migration(second)
        self.assertIn('live-migration of instance %s refused: hint '
                      'ha_max_concurrent_moves=1 and 1 other members of '
                      'server group %s are moving (%s: live-migration)'
                      % (second['id'], group['id'], first['id']), self.log())
        # ...and so is a cold migration.
        self.api.post_server_action(second['id'], {'migrate': None})
        self.wait_migration(second, 'migration', 'error')
        self._wait_for_state_change(second, 'ACTIVE',
                                    max_retries=self.RETRIES)
        self.assertEqual(second_host, self.host_of(second))

        # Once the first move is over, the second may go.
        self.api.force_complete_migration(first['id'], running['id'])
        self.wait_migration(first, 'live-migration', 'completed')
        self.assertNotEqual(second_host, self.cold_migrate(second))
