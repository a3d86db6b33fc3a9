"""MigrationPolicyFilter: per-VNF live-migration and concurrency limits.

Flavor extra specs (operator) and hints (VNFM); the stricter one wins:

- ``ha:live_migration=allowed|forbidden`` / hint ``ha_live_migration``:
  a forbidden live migration is refused (every host rejected, so nova
  refuses the move); cold migration stays possible;
- ``ha:max_interruption_ms=N`` / hint ``ha_max_interruption_ms``: a live
  migration may only go to hosts whose aggregate declares
  ``ha:live_migration_downtime_ms`` <= N (a host that declares nothing
  fails);
- hint ``ha_max_concurrent_moves=N``: a live migration, cold migration or
  resize of a member of the server group is refused while N other members
  are in one. Evacuations are recovery: they neither count nor are limited.

nova does not put the operation in the RequestSpec; it creates the
migration record before it calls the scheduler, so the filter reads the
instance's in-progress migration once per request.
"""

from oslo_log import log as logging

from nova_ha import topology
from nova_ha.scheduler import filters as ha_filters
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request

LOG = logging.getLogger(__name__)


class MigrationPolicyFilter(ha_filters.RequestFilter):
    """Refuse moves a VNF forbids; limit concurrent moves per group."""

    # A move schedules one instance; nothing changes within a request.
    run_filter_once_per_request = True

    def filter_request(self, hosts, spec_obj):
        name = self.__class__.__name__
        uuid = spec_obj.instance_uuid
        info = request.for_spec(spec_obj)
        rules = info.migration_rules(spec_obj)
        if rules.empty:
            return hosts
        operation = info.operation()
        moving = (info.moving_members()
                  if rules.max_moves is not None and
                  operation in lookup.VOLUNTARY_MOVES else {})
        if operation == lookup.LIVE_MIGRATION and rules.live_forbidden_by:
            LOG.warning('%s: live migration of instance %s refused: %s '
                        '(cold migration is still possible)', name, uuid,
                        rules.live_forbidden_by)
            return []
        if (operation in lookup.VOLUNTARY_MOVES and
                rules.max_moves is not None and
                len(moving) >= rules.max_moves):
            LOG.warning('%s: %s of instance %s refused: hint %s=%d and %d '
                        'other members of server group %s are moving (%s)',
                        name, operation, uuid, request.HINT_MAX_MOVES,
                        rules.max_moves, len(moving), request.group_name(info),
                        ', '.join('%s: %s' % kv
                                  for kv in sorted(moving.items())))
            return []
        if operation != lookup.LIVE_MIGRATION or \
                rules.max_interruption_ms is None:
            return hosts
        topo = request.configure_topology()
        limit = rules.max_interruption_ms
        passed = []
        for hs in hosts:
            downtime = topo.info(hs).downtime_ms
            if downtime is not None and downtime <= limit:
                passed.append(hs)
        if len(passed) < len(hosts):
            LOG.debug('%s: live migration of instance %s: %s; %d of %d '
                      'hosts declare %s within it', name, uuid,
                      rules.max_interruption_by, len(passed), len(hosts),
                      topology.DOWNTIME_KEY)
        return passed
