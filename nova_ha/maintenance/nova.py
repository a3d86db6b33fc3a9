"""The few Nova API calls a drain makes, over python-novaclient.

The client comes from the shared ``[nova]`` keystoneauth1 section
(:func:`client_from_conf`, i.e. :func:`nova_ha.nova_api.client`) or is
handed in (tests use the in-process Nova).
Everything is returned as plain dicts as the API returns them.
"""

from novaclient import exceptions as nova_exc

MIN_MICROVERSION = '2.53'   # service ids are UUIDs; 2.47 embeds flavors

NotFound = nova_exc.NotFound
Conflict = nova_exc.Conflict
BadRequest = nova_exc.BadRequest
ClientException = nova_exc.ClientException


def client_from_conf(conf):
    """python-novaclient from the shared ``[nova]`` section."""
    from nova_ha.conf import nova as nova_conf
    from nova_ha import nova_api
    nova_conf.register_opts(conf)
    return nova_api.client(conf=conf)


class NovaAPI:
    """Thin wrapper: the drain's view of Nova."""

    def __init__(self, client=None, factory=None):
        """``client``: a novaclient Client; or ``factory()`` making one on
        first use (so commands that only read the journal need no Nova
        credentials)."""
        self._client = client
        self._factory = factory

    @property
    def client(self):
        if self._client is None:
            self._client = self._factory()
        return self._client

    # -- services ------------------------------------------------------------

    def compute_service(self, host):
        """The nova-compute service dict on ``host``, or None."""
        for s in self.client.services.list(host=host, binary='nova-compute'):
            if s.host == host:
                return s.to_dict()
        return None

    def compute_services(self):
        return [s.to_dict() for s in
                self.client.services.list(binary='nova-compute')]

    def aggregates(self):
        return [a.to_dict() for a in self.client.aggregates.list()]

    def disable_service(self, service_id, reason):
        self.client.services.disable_log_reason(service_id, reason[:255])

    def enable_service(self, service_id):
        self.client.services.enable(service_id)

    # -- servers -------------------------------------------------------------

    def servers_on(self, host):
        """Every server whose compute host is ``host`` (all projects)."""
        servers = self.client.servers.list(
            detailed=True, search_opts={'all_tenants': True, 'host': host})
        return [s.to_dict() for s in servers
                if s.to_dict().get('OS-EXT-SRV-ATTR:host') == host]

    def server_ids_on(self, host):
        """Ids of the servers on ``host`` (a cheap, non-detailed list)."""
        servers = self.client.servers.list(
            detailed=False, search_opts={'all_tenants': True, 'host': host})
        return [s.id for s in servers]

    def server(self, server_id):
        try:
            return self.client.servers.get(server_id).to_dict()
        except NotFound:
            return None

    def server_groups(self):
        """{server id: group dict} over every project's server groups."""
        out = {}
        for g in self.client.server_groups.list(all_projects=True):
            d = g.to_dict()
            for member in d.get('members') or ():
                out[member] = d
        return out

    def live_migrate(self, server_id):
        self.client.servers.live_migrate(server_id, host=None,
                                         block_migration='auto')

    def cold_migrate(self, server_id):
        self.client.servers.migrate(server_id)

    def confirm_resize(self, server_id):
        self.client.servers.confirm_resize(server_id)

    def migrations(self, server_id):
        """The server's migration records, newest (highest id) first."""
        migs = [m.to_dict() for m in
                self.client.migrations.list(instance_uuid=server_id)]
        return sorted(migs, key=lambda m: m['id'], reverse=True)

    def migrations_from(self, host, since=None):
        """Migration records from ``host`` changed since ``since`` (one
        call for every instance of a drain), newest first."""
        kwargs = {'source_compute': host}
        if since is not None:
            kwargs['changes_since'] = since.strftime('%Y-%m-%dT%H:%M:%SZ')
        migs = [m.to_dict() for m in self.client.migrations.list(**kwargs)]
        return sorted(migs, key=lambda m: m['id'], reverse=True)

    def action_error(self, server_id, migration):
        """Best effort: the error Nova recorded for the move, or None."""
        try:
            actions = self.client.instance_action.list(server_id)
        except ClientException:
            return None
        wanted = ('live-migration', 'migrate')
        for action in actions:
            a = action.to_dict()
            if a.get('action') not in wanted:
                continue
            try:
                full = self.client.instance_action.get(
                    server_id, a['request_id']).to_dict()
            except ClientException:
                return a.get('message')
            for ev in full.get('events') or ():
                if ev.get('result') == 'Error':
                    return (ev.get('details') or a.get('message')
                            or '%s failed' % ev.get('event'))
            return a.get('message')
        return None
