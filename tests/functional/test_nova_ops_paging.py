"""nova_ops reads every migration record, past one page of Nova's API.

Nova caps each list at ``[api] max_limit`` (1,000 by default) and says so
with a ``migrations_links`` next link; python-novaclient drops the link. An
outage of more instances than one page (an AZ, a power domain) would have
its oldest evacuations cut off the evacuator's poll. Here the real
in-process Nova pages at 2 records and five evacuations must all be seen.
"""

import datetime

from nova_ha import nova_ops
from tests.functional.scheduler import base

THREE_HOSTS = ('host1', 'host2', 'host3')


class TestMigrationPaging(base.SchedulerTestCase):
    COMPUTE_HOSTS = THREE_HOSTS
    HOST_WEIGHTS = {'host1': 100, 'host2': 99, 'host3': 98}
    PAGE = 2

    def setUp(self):
        super().setUp()
        self.ops = nova_ops.NovaOps(self.nova_client())

    def test_every_evacuation_is_read_past_the_first_page(self):
        since = datetime.datetime.now(datetime.timezone.utc) - \
            datetime.timedelta(seconds=2)
        servers = self.boot(count=5)
        self.assertEqual({'host1'}, {self.host_of(s) for s in servers})
        # From here every list is cut at PAGE records (after the boot,
        # whose helper lists servers).
        self.flags(max_limit=self.PAGE, group='api')
        self.computes['host1'].stop()
        service = self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]
        self.admin_api.put_service_force_down(service['id'], True)
        for s in servers:
            self.ops.evacuate(s['id'])
        for s in servers:
            self._wait_for_state_change(s, 'ACTIVE',
                                        max_retries=self.RETRIES)
        uuids = {s['id'] for s in servers}
        # The API really pages: one plain call sees only PAGE records.
        self.assertEqual(self.PAGE, len(self.admin_api.get_migrations()))

        by_host = self.ops.evacuations_since(since, ['host1'])
        self.assertEqual({'host1'}, set(by_host))
        self.assertEqual(uuids, set(by_host['host1']))
        self.assertEqual(uuids, set(self.ops.evacuations_from('host1',
                                                              since)))
        migs = self.ops.migrations_from('host1', since=since)
        self.assertEqual(uuids, {m['instance_uuid'] for m in migs})
        self.assertEqual(sorted((m['id'] for m in migs), reverse=True),
                         [m['id'] for m in migs])
        self.assertEqual(5, len(migs))
        one = servers[0]['id']
        self.assertEqual([one], [m['instance_uuid']
                                 for m in self.ops.migrations(one)])
        # Nothing since now: an empty first page, no further call.
        later = datetime.datetime.now(datetime.timezone.utc) + \
            datetime.timedelta(seconds=5)
        self.assertEqual({}, self.ops.evacuations_since(later, ['host1']))
