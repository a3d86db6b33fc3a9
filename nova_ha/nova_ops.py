"""nova-ha's one wrapper of the Nova API: the calls recovery (the evacuator)
and maintenance (the drain) make, each safe to repeat.

Everything goes through python-novaclient, so nova-ha needs nothing from
Nova but its API (nova_ha.nova_api: microversion 2.94; the drain needs at
least :data:`MIN_MICROVERSION`). The client is handed in (the evacuator's,
or the in-process Nova in tests) or made on first use by a factory (so
commands that only read the journal need no Nova credentials):
:func:`client_from_conf`.

Two views of the same calls:

* the evacuator's: novaclient resources (``server.status``,
  ``service.forced_down``);
* the drain's: plain dicts as the API returns them (``*_dict``/``*_dicts``
  and the move calls), since its planning is pure functions of dicts
  (nova_ha.maintenance.policy).
"""

import datetime
import logging
from urllib import parse as urlparse

from novaclient import exceptions as nova_exc
from novaclient.v2 import migrations as nova_migrations

LOG = logging.getLogger(__name__)

MIN_MICROVERSION = '2.53'   # service ids are UUIDs; 2.47 embeds flavors

# Migration statuses nova uses for an evacuation.
MIGRATION_DONE = ('done', 'completed')
MIGRATION_FAILED = ('error', 'failed')

# Pages of one migration list followed at most (each of Nova's
# [api] max_limit records, 1,000 by default): a guard against a marker
# that never advances, far above any outage.
MAX_MIGRATION_PAGES = 100

NotFound = nova_exc.NotFound
Conflict = nova_exc.Conflict
BadRequest = nova_exc.BadRequest
ClientException = nova_exc.ClientException


class ImageUnreadable(Exception):
    """The Image service gave an answer other than the image or 404."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def client_from_conf(conf):
    """python-novaclient from the shared ``[nova]`` section."""
    from nova_ha.conf import nova as nova_conf
    from nova_ha import nova_api
    nova_conf.register_opts(conf)
    return nova_api.client(conf=conf)


class NovaOps:
    """The Nova API calls of nova-ha."""

    def __init__(self, nova=None, factory=None):
        """``nova``: a novaclient Client; or ``factory()`` making one on
        first use."""
        self._nova = nova
        self._factory = factory

    @property
    def nova(self):
        """The novaclient Client (made by the factory on first use)."""
        if self._nova is None:
            self._nova = self._factory()
        return self._nova

    client = nova

    # -- services ------------------------------------------------------------

    def _compute_services(self):
        return self.nova.services.list(binary='nova-compute')

    def compute_services(self):
        """{host: service} for every nova-compute service."""
        return {s.host: s for s in self._compute_services()}

    def compute_service_dicts(self):
        """Every nova-compute service, as dicts."""
        return [s.to_dict() for s in self._compute_services()]

    def compute_service(self, host):
        """The nova-compute service dict on ``host``, or None."""
        for s in self.nova.services.list(host=host, binary='nova-compute'):
            if s.host == host:
                return s.to_dict()
        return None

    def aggregates(self):
        return self.nova.aggregates.list()

    def aggregate_dicts(self):
        return [a.to_dict() for a in self.aggregates()]

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

    def enable_service_id(self, service_id):
        """Enable the service ``service_id`` (forced_down untouched)."""
        self.nova.services.enable(service_id)

    def disable_service(self, service_id, reason):
        self.nova.services.disable_log_reason(service_id, reason[:255])

    # -- server groups -------------------------------------------------------

    def server_group_dicts(self):
        """{server id: group dict} over every project's server groups."""
        out = {}
        for g in self.nova.server_groups.list(all_projects=True):
            d = g.to_dict()
            for member in d.get('members') or ():
                out[member] = d
        return out

    def server_groups(self):
        """{instance uuid: group id} for every server group."""
        member_of = {}
        for group in self.nova.server_groups.list(all_projects=True):
            for member in group.members:
                member_of[member] = group.id
        return member_of

    # -- servers -------------------------------------------------------------

    def server(self, instance_uuid):
        """The server, or None if Nova does not know it."""
        try:
            return self.nova.servers.get(instance_uuid)
        except nova_exc.NotFound:
            return None

    def server_dict(self, server_id):
        server = self.server(server_id)
        return server.to_dict() if server is not None else None

    def servers_on(self, host):
        """Every server (dict) whose compute host is ``host`` (all
        projects)."""
        servers = self.nova.servers.list(
            detailed=True, search_opts={'all_tenants': True, 'host': host})
        return [s.to_dict() for s in servers
                if s.to_dict().get('OS-EXT-SRV-ATTR:host') == host]

    def server_ids_on(self, host):
        """Ids of the servers on ``host`` (a cheap, non-detailed list)."""
        servers = self.nova.servers.list(
            detailed=False, search_opts={'all_tenants': True, 'host': host})
        return [s.id for s in servers]

    def servers_changed_since(self, since):
        """{instance uuid: server} of every server (all projects) Nova
        changed since ``since``: ONE call for the instances of every
        recovery (an evacuation changes its server)."""
        servers = self.nova.servers.list(search_opts={
            'all_tenants': True,
            'changes-since': since.strftime('%Y-%m-%dT%H:%M:%SZ')})
        return {s.id: s for s in servers}

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

    # -- moves ---------------------------------------------------------------

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

    def hard_reboot(self, server_id):
        """Instance HA's restart. Returns the request ids of the call (so
        the instance's action log tells our reboot from an operator's)."""
        ret = self.nova.servers.reboot(server_id, reboot_type='HARD')
        return tuple(getattr(ret, 'request_ids', None) or ())

    def live_migrate(self, server_id):
        self.nova.servers.live_migrate(server_id, host=None,
                                       block_migration='auto')

    def cold_migrate(self, server_id):
        """Returns the request ids of the call, as :meth:`hard_reboot`."""
        ret = self.nova.servers.migrate(server_id)
        return tuple(getattr(ret, 'request_ids', None) or ())

    def confirm_resize(self, server_id):
        self.nova.servers.confirm_resize(server_id)

    # -- migrations and actions ----------------------------------------------

    def _migration_list(self, **filters):
        """Every migration record matching ``filters`` (novaclient's
        names), as novaclient resources. Nova caps a list at its
        ``[api] max_limit`` and adds a ``migrations_links`` next link when
        the page is full; novaclient drops the link, so this follows it
        (by marker) -- a recovery larger than one page is seen whole."""
        opts = {('changes-since' if k == 'changes_since' else k): v
                for k, v in filters.items() if v is not None}
        manager = self.nova.migrations
        found = []
        for _ in range(MAX_MIGRATION_PAGES):
            _, body = self.nova.client.get(
                '/os-migrations?' + urlparse.urlencode(sorted(opts.items())))
            found += [nova_migrations.Migration(manager, m, loaded=True)
                      for m in (body or {}).get('migrations', []) if m]
            marker = _next_marker((body or {}).get('migrations_links'))
            if marker is None or marker == opts.get('marker'):
                return found
            opts['marker'] = marker
        LOG.warning('migration list %s: stopped after %d pages (%d records)',
                    filters, MAX_MIGRATION_PAGES, len(found))
        return found

    def evacuations_since(self, since, hosts):
        """{source host: {instance uuid: newest evacuation migration}}
        for the evacuations away from any of ``hosts`` created since
        ``since``: ONE API call for every host being recovered."""
        hosts = set(hosts)
        migs = self._migration_list(
            migration_type='evacuation',
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
        migs = self._migration_list(
            source_compute=host, migration_type='evacuation',
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

    def migrations(self, server_id):
        """The server's migration records (dicts), newest (highest id)
        first."""
        migs = [m.to_dict() for m in
                self._migration_list(instance_uuid=server_id)]
        return sorted(migs, key=lambda m: m['id'], reverse=True)

    def migrations_from(self, host, since=None):
        """Migration records (dicts) from ``host`` changed since ``since``
        (one call for every instance of a drain), newest first."""
        kwargs = {'source_compute': host}
        if since is not None:
            kwargs['changes_since'] = since.strftime('%Y-%m-%dT%H:%M:%SZ')
        migs = [m.to_dict() for m in self._migration_list(**kwargs)]
        return sorted(migs, key=lambda m: m['id'], reverse=True)

    def instance_actions(self, server_id):
        """The server's instance action log (novaclient resources)."""
        return self.nova.instance_action.list(server_id)

    def evacuate_actions(self, instance_uuid, since):
        """The instance's ``evacuate`` actions that started at or after
        ``since`` (to the second): Nova records one inside the evacuate
        API call, right after it set the task state."""
        actions = self.nova.instance_action.list(instance_uuid)
        cutoff = since.replace(tzinfo=None, microsecond=0)
        return [a for a in actions if a.action == 'evacuate'
                and _parse_time(a.start_time) >= cutoff]

    def action_error(self, server_id, migration):
        """Best effort: the error Nova recorded for the move, or None."""
        try:
            actions = self.nova.instance_action.list(server_id)
        except ClientException:
            return None
        wanted = ('live-migration', 'migrate')
        for action in actions:
            a = action.to_dict()
            if a.get('action') not in wanted:
                continue
            try:
                full = self.nova.instance_action.get(
                    server_id, a['request_id']).to_dict()
            except ClientException:
                return a.get('message')
            for ev in full.get('events') or ():
                if ev.get('result') == 'Error':
                    return (ev.get('details') or a.get('message')
                            or '%s failed' % ev.get('event'))
            return a.get('message')
        return None

    # -- images --------------------------------------------------------------

    def image_property(self, image_id, name):
        """An image property, read from the Image service found in the
        same catalog as Nova (nova-ha's Nova credentials suffice: Glance
        shows a tenant's image to admin); None when the image does not
        have it or is gone (404). Any other answer raises
        :class:`ImageUnreadable` naming the status."""
        resp = self.nova.client.session.get(
            '/v2/images/%s' % image_id,
            endpoint_filter={'service_type': 'image'}, raise_exc=False)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise ImageUnreadable('HTTP %s' % resp.status_code)
        return resp.json().get(name)


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


parse_time = _parse_time


def server_fault(server):
    fault = getattr(server, 'fault', None) or {}
    return fault.get('message', '')


def _next_marker(links):
    """The marker of Nova's ``rel: next`` link, or None (last page)."""
    for link in links or ():
        if link.get('rel') == 'next':
            query = urlparse.parse_qs(urlparse.urlsplit(
                link.get('href', '')).query)
            return (query.get('marker') or [None])[0]
    return None
