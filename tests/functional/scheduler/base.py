"""Shared set-up for the scheduler functional tests (real in-process Nova)."""

from nova.tests.functional.api import client as api_client

from nova_ha.sim import layout
from nova_ha.sim import novastack
from tests.functional import base

HA_FILTERS = novastack.NOVA_DEFAULT_FILTERS + (
    'SALFilter', 'FaultDomainAntiAffinityFilter', 'MigrationPolicyFilter')
EIGHT_HOSTS = tuple('host%d' % i for i in range(1, 9))
# The heavier host wins: without nova-ha's filters the scheduler would pack
# host1, host2 (rack r1), then host3, host4 (rack r2), ...
DESCENDING = {h: 100 - i for i, h in enumerate(EIGHT_HOSTS)}


class SchedulerTestCase(base.NovaHATestCase):
    COMPUTE_HOSTS = EIGHT_HOSTS
    ENABLED_FILTERS = HA_FILTERS
    HOST_WEIGHTS = DESCENDING
    # Polls of 0.5 s / 0.25 s while waiting for a state: generous, so that
    # a loaded CI machine slows the tests down instead of failing them.
    RETRIES = 60

    def rack_layout(self, racks=4, sal=None):
        """Racks only (``ha:rack``) and SAL aggregates: half the API calls
        of the full layout (no power-domain aggregates), which these tests
        do not need."""
        hosts = list(self.COMPUTE_HOSTS)
        size = len(hosts) // racks
        self.topo = {}
        for r in range(racks):
            block = hosts[r * size:(r + 1) * size] if r < racks - 1 \
                else hosts[r * size:]
            rack = 'r%d' % (r + 1)
            layout.create_aggregate(self.admin_api, 'rack-' + rack, block,
                                    {'ha:rack': rack})
            self.topo.update({h: {'rack': rack} for h in block})
        by_level = {}
        for host, level in (sal or {}).items():
            by_level.setdefault(level, []).append(host)
        for level, members in sorted(by_level.items()):
            layout.create_aggregate(self.admin_api, 'sal%d' % level, members,
                                    {'ha:sal': str(level)})
        return self.topo

    def rack(self, host):
        return self.topo[host]['rack']

    def group(self, policy='anti-affinity'):
        return self.api.post_server_groups({'name': 'vnf', 'policy': policy})

    def boot(self, hints=None, group=None, flavor_id=None, count=1,
             expected_state='ACTIVE', name='vnf'):
        """Boot `count` servers in one request; returns them (by name)."""
        before = {s['id'] for s in self.api.get_servers(detail=False)}
        # nova's helper defaults to the first flavor by id, which is a
        # flavor a test created whenever its random id sorts first: name
        # the default (m1.tiny, id 1) instead.
        body = self._build_server(name=name, flavor_id=flavor_id or '1',
                                  networks='none')
        if count > 1:
            body['min_count'] = body['max_count'] = count
        hints = dict(hints or {})
        if group is not None:
            hints['group'] = group['id']
        request = {'server': body}
        if hints:
            request['os:scheduler_hints'] = hints
        self.api.post_server(request)
        new = [s for s in self.api.get_servers(detail=False)
               if s['id'] not in before]
        self.assertEqual(count, len(new))
        return [self._wait_for_state_change(s, expected_state,
                                            max_retries=self.RETRIES)
                for s in new]

    def flavor(self, extra_spec=None, name=None):
        return self._create_flavor(memory_mb=512, vcpu=1, disk=1,
                                   ephemeral=0, extra_spec=extra_spec,
                                   name=name)

    def assert_api_error(self, code, fn, *args, **kwargs):
        exc = self.assertRaises(api_client.OpenStackApiException, fn, *args,
                                **kwargs)
        self.assertEqual(code, exc.response.status_code, str(exc))
        return str(exc)

    def refused_live_migration(self, server):
        """Ask for a live migration that the scheduler must refuse.

        In a real cloud the API answers 202 and the migration ends in
        'error'; under CAST_AS_CALL the conductor's NoValidHost comes back
        through the API as a 500. Either way the migration record says
        'error' and the server stays where it is.
        """
        host = self.host_of(server)
        try:
            self.api.post_server_action(
                server['id'],
                {'os-migrateLive': {'host': None, 'block_migration': 'auto'}})
        except api_client.OpenStackApiException as exc:
            if not self.CAST_AS_CALL or 'NoValidHost' not in str(exc):
                raise
        self.wait_migration(server, 'live-migration', 'error')
        server = self._wait_for_state_change(server, 'ACTIVE',
                                             max_retries=self.RETRIES)
        self.assertEqual(host, self.host_of(server))
        return server

    def wait_migration(self, server, migration_type, status, tries=120):
        """The server's newest migration of that type, once in `status`."""
        import time
        found = None
        for _ in range(tries):
            migs = [m for m in self.admin_api.get_migrations()
                    if m['instance_uuid'] == server['id'] and
                    m['migration_type'] == migration_type]
            if migs:
                found = max(migs, key=lambda m: m['id'])
                if found['status'] == status:
                    return found
            time.sleep(0.25)
        self.fail('%s of %s: expected status %s, got %s'
                  % (migration_type, server['id'], status,
                     found and found['status']))

    def log(self):
        return self.stdlog.logger.output

    def cold_migrate(self, server):
        """Cold-migrate and confirm; returns the new host."""
        self.api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_state_change(server, 'VERIFY_RESIZE',
                                    max_retries=self.RETRIES)
        self.api.post_server_action(server['id'], {'confirmResize': None})
        self._wait_for_state_change(server, 'ACTIVE',
                                    max_retries=self.RETRIES)
        return self.host_of(server)
