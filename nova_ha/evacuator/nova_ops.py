"""The Nova API calls recovery makes, each safe to repeat.

Everything goes through python-novaclient (microversion 2.94, see
nova_ha.nova_api), so the evacuator needs nothing from Nova but its API.
"""

import datetime
import logging

from novaclient import exceptions as nova_exc

LOG = logging.getLogger(__name__)

# Migration statuses nova uses for an evacuation.
MIGRATION_DONE = ('done', 'completed')
MIGRATION_FAILED = ('error', 'failed')


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class NovaOps:
    def __init__(self, nova):
        self.nova = nova

    # -- hosts -----------------------------------------------------------
    def compute_services(self):
        """{host: service} for every nova-compute service."""
        return {s.host: s for s in self.nova.services.list(
            binary='nova-compute')}

    def aggregates(self):
        return self.nova.aggregates.list()

    def fence_service(self, host, reason, service=None):
        """Force the host's nova-compute down and disable it (idempotent).

        ``service``: the host's service record from a recent list (saves
        listing every service of the cloud for one host); its flags may be
        stale, so both calls are made (Nova accepts them again). If Nova
        no longer knows that id (service re-created since), the service
        list is read again."""
        if service is not None:
            try:
                self.nova.services.force_down(service.id, True)
                self.nova.services.disable_log_reason(service.id, reason)
                return service
            except nova_exc.NotFound:
                LOG.info('nova-compute service %s of %s is gone; reading '
                         'the service list again', service.id, host)
        svc = self.compute_services().get(host)
        if svc is None:
            raise LookupError('no nova-compute service on host %r' % host)
        if not svc.forced_down:
            self.nova.services.force_down(svc.id, True)
        if svc.status != 'disabled':
            self.nova.services.disable_log_reason(svc.id, reason)
        return svc

    def enable_service(self, host):
        """Lift forced_down and re-enable (operator's `host enable`)."""
        svc = self.compute_services().get(host)
        if svc is None:
            raise LookupError('no nova-compute service on host %r' % host)
        if svc.forced_down:
            self.nova.services.force_down(svc.id, False)
        if svc.status != 'enabled':
            self.nova.services.enable(svc.id)
        return svc

    # -- instances -------------------------------------------------------
    def server_groups(self):
        """{instance uuid: group id} for every server group."""
        member_of = {}
        for group in self.nova.server_groups.list(all_projects=True):
            for member in group.members:
                member_of[member] = group.id
        return member_of

    def instances_on(self, host):
        """Recovery items for the instances of a failed host."""
        servers = self.nova.servers.list(
            search_opts={'host': host, 'all_tenants': True})
        groups = self.server_groups()
        items = []
        for s in servers:
            specs = (getattr(s, 'flavor', None) or {}).get('extra_specs', {})
            sal = _int_or_none(specs.get('ha:sal'))
            priority = _int_or_none(specs.get('ha:recovery_priority')) or 0
            skip = specs.get('ha:recovery') == 'none'
            items.append({
                'instance_uuid': s.id,
                'name': s.name,
                'server_group': groups.get(s.id),
                'sal': sal,
                'priority': priority,
                'source_host': host,
                'state': 'skipped' if skip else 'pending',
                'last_error': ('flavor extra spec ha:recovery=none'
                               if skip else None),
            })
        return items

    def evacuate(self, instance_uuid, host=None):
        """Evacuate with no target host, or to ``host`` *validated by the
        scheduler* (microversion >= 2.68 has no force: Nova sets the
        RequestSpec's requested_destination and runs every filter on that
        host). Either way the scheduler re-applies the instance's original
        hints and server-group policy."""
        if host:
            self.nova.servers.evacuate(instance_uuid, host=host)
        else:
            self.nova.servers.evacuate(instance_uuid)

    def server(self, instance_uuid):
        try:
            return self.nova.servers.get(instance_uuid)
        except nova_exc.NotFound:
            return None

    def servers_changed_since(self, since):
        """{instance uuid: server} of every server (all projects) Nova
        changed since ``since``: ONE call for the instances of every
        recovery (an evacuation changes its server)."""
        servers = self.nova.servers.list(search_opts={
            'all_tenants': True,
            'changes-since': since.strftime('%Y-%m-%dT%H:%M:%SZ')})
        return {s.id: s for s in servers}

    def evacuate_actions(self, instance_uuid, since):
        """The instance's ``evacuate`` actions that started at or after
        ``since`` (to the second): Nova records one inside the evacuate
        API call, right after it set the task state."""
        actions = self.nova.instance_action.list(instance_uuid)
        cutoff = since.replace(tzinfo=None, microsecond=0)
        return [a for a in actions if a.action == 'evacuate'
                and _parse_time(a.start_time) >= cutoff]

    def evacuations_since(self, since, hosts):
        """{source host: {instance uuid: newest evacuation migration}}
        for the evacuations away from any of ``hosts`` created since
        ``since``: ONE API call for every host being recovered."""
        hosts = set(hosts)
        migs = self.nova.migrations.list(
            host=None, migration_type='evacuation',
            changes_since=since.strftime('%Y-%m-%dT%H:%M:%S'))
        out = {}
        for m in migs:
            src = getattr(m, 'source_compute', None)
            if src not in hosts or created_before(m, since):
                continue
            newest = out.setdefault(src, {})
            cur = newest.get(m.instance_uuid)
            if cur is None or (_parse_time(m.created_at), m.id) > (
                    _parse_time(cur.created_at), cur.id):
                newest[m.instance_uuid] = m
        return out

    def evacuations_from(self, host, since):
        """{instance uuid: newest evacuation migration} for migrations
        away from `host` created since `since` (one API call)."""
        migs = self.nova.migrations.list(
            host=None, source_compute=host, migration_type='evacuation',
            changes_since=since.strftime('%Y-%m-%dT%H:%M:%S'))
        cutoff = since.replace(tzinfo=None, microsecond=0)
        newest = {}
        for m in migs:
            if _parse_time(m.created_at) < cutoff:
                continue
            cur = newest.get(m.instance_uuid)
            if cur is None or (_parse_time(m.created_at), m.id) > (
                    _parse_time(cur.created_at), cur.id):
                newest[m.instance_uuid] = m
        return newest


def _int_or_none(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def created_before(migration, since):
    """True if the migration record was created before ``since`` (to the
    second, as Nova's filter)."""
    return _parse_time(migration.created_at) < since.replace(
        tzinfo=None, microsecond=0)


def _parse_time(value):
    value = value.split('.')[0].rstrip('Z')
    return datetime.datetime.strptime(value, '%Y-%m-%dT%H:%M:%S')


def server_fault(server):
    fault = getattr(server, 'fault', None) or {}
    return fault.get('message', '')
