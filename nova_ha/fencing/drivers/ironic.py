"""Fencing through OpenStack Ironic (compute hosts that are Ironic nodes).

python-ironicclient over a keystoneauth session built from the inventory's
top-level ``ironic:`` section (any keystoneauth plugin: ``auth_type:
password`` with auth_url/username/..., ``none`` + ``endpoint`` for a
standalone Ironic, ``http_basic``...). Ironic, not nova-ha, holds the BMC
credentials.

The node of a compute host is the inventory's ``node`` (name or UUID) if
given; otherwise the node whose name, or ``instance_info`` display_name /
hostname / metalsmith_hostname, matches the host name -- exactly first,
then by short name (the inventory's rules), ambiguous -> FAILED naming the
nodes.

``set_power_state(node, 'off')`` returns as soon as Ironic accepted it
(HTTP 202); the conductor then talks to the BMC. ``fence()`` polls
``power_state`` until ``power off``. If the conductor's power action ends
with the power still on (``target_power_state`` cleared), its
``last_error`` is the BMC's reason and the read raises with it -- so a BMC
failure behind Ironic is FAILED with Ironic's reason, not a timeout.
"""

import time

from nova_ha.fencing import base
from nova_ha.fencing import inventory

INSTANCE_INFO_KEYS = ('display_name', 'hostname', 'metalsmith_hostname')


class IronicDriver(base.FenceDriver):
    """``driver: ironic`` -- optional ``node`` (name or UUID)."""

    name = 'ironic'
    capabilities = frozenset([base.CAP_POWER_STATE, base.CAP_POWER_OFF,
                              base.CAP_POWER_ON, base.CAP_HARD_OFF,
                              base.CAP_ASYNC_OFF, base.CAP_INDIRECT])
    fields = frozenset(['node'])
    uses_bmc_credentials = False

    @classmethod
    def validate(cls, entry):
        for field in ('address', 'port', 'username'):
            if getattr(entry, field) is not None:
                raise inventory.error(
                    entry.host, field, 'not used by driver ironic (Ironic '
                    'holds the BMC details; keystoneauth settings go in the '
                    'top-level "ironic" section)')
        if entry.password:
            raise inventory.error(
                entry.host, 'password', 'not used by driver ironic (put '
                'keystoneauth credentials in the top-level "ironic" section)')
        node = entry.get('node')
        if node is not None and (not isinstance(node, str)
                                 or not node.strip()):
            raise inventory.error(entry.host, 'node', 'must be an Ironic node '
                                  'name or UUID, not %r' % (node,))

    @classmethod
    def check_environment(cls, params, entries):
        try:
            import ironicclient.client  # noqa: F401
        except ImportError as exc:
            raise base.InventoryError(
                'fencing inventory: host %s: driver: ironic needs '
                'python-ironicclient (%s)' % (entries[0].host, exc),
                entries[0].host, 'driver')

    def __init__(self, entry, params, inventory=None):
        super().__init__(entry, params, inventory)
        self.settings = getattr(inventory, 'ironic', None) or {}
        self._client = None
        self._session = None
        self._node = None          # uuid
        self._off_requested = False

    # -- connection -------------------------------------------------------

    def secrets(self):
        out = list(self.entry.secrets())
        for value in (self._settings() or {}).values():
            if isinstance(value, inventory.Secret):
                out.append(value.reveal())
        return out

    def _settings(self):
        return self.settings

    def _connect(self, timeout):
        from ironicclient import client as ironic_client
        from keystoneauth1 import loading
        from keystoneauth1 import session as ks_session
        opts = {k: (v.reveal() if isinstance(v, inventory.Secret) else v)
                for k, v in self._settings().items()}
        auth_type = opts.pop('auth_type', 'none')
        endpoint = opts.pop('endpoint', None)
        verify = opts.pop('verify', True)
        cacert = opts.pop('cacert', None)
        region = opts.pop('region_name', None)
        interface = opts.pop('interface', None)
        api_version = opts.pop('api_version', 'latest')
        loader = loading.get_plugin_loader(auth_type)
        names = {o.dest for o in loader.get_options()}
        auth_opts = {k: v for k, v in opts.items() if k in names}
        if 'endpoint' in names and endpoint:
            auth_opts['endpoint'] = endpoint
        auth = loader.load_from_options(**auth_opts)
        self._session = ks_session.Session(
            auth=auth, verify=cacert or verify, timeout=timeout)
        kwargs = {}
        if endpoint:
            kwargs['endpoint'] = endpoint
        self._client = ironic_client.get_client(
            1, session=self._session, os_ironic_api_version=api_version,
            max_retries=2, retry_interval=0.1, region_name=region,
            interface=interface, **kwargs)

    def _translate(self, exc, what):
        from keystoneauth1 import exceptions as ks_exc
        where = 'Ironic (%s)' % (self._settings().get('endpoint')
                                 or self._settings().get('auth_url')
                                 or 'catalog')
        status = getattr(exc, 'http_status', None) or \
            getattr(exc, 'status_code', None)
        text = ' '.join(str(exc).split())[:300]
        if isinstance(exc, (ks_exc.ConnectFailure, ks_exc.ConnectTimeout,
                            ks_exc.ConnectionError, ks_exc.RequestTimeout)):
            return base.BMCUnreachable('%s did not answer %s for host %s: %s'
                                       % (where, what, self.entry.host, text))
        if status in (401, 403):
            return base.BMCAuthError('%s refused the credentials (HTTP %s) '
                                     'on %s for host %s' % (where, status,
                                                            what,
                                                            self.entry.host))
        if status == 404:
            return base.BMCConfigError('%s: %s for host %s: not found: %s'
                                       % (where, what, self.entry.host, text))
        if status is not None:
            return base.BMCError('%s: %s for host %s failed: HTTP %s %s'
                                 % (where, what, self.entry.host, status,
                                    text))
        if isinstance(exc, ks_exc.ClientException):
            return base.BMCError('%s: %s for host %s failed: %s'
                                 % (where, what, self.entry.host, text))
        return None

    def _with(self, what, timeout, fn):
        # Up to three requests on a first call (version negotiation, node
        # lookup, the call itself): each gets what is left of ``timeout``,
        # so the whole call stays within it.
        deadline = time.monotonic() + timeout

        def left():
            return max(deadline - time.monotonic(), 0.05)
        try:
            if self._client is None:
                self._connect(timeout)
            if self._node is None:
                self._session.timeout = left()
                self._node = self._find_node()
            self._session.timeout = left()
            return fn()
        except base.FencingError:
            raise
        except Exception as exc:  # noqa: BLE001
            err = self._translate(exc, what)
            if err is None:
                raise
            raise type(err)(base.redact(err.reason, *self.secrets()))

    def _find_node(self):
        wanted = self.entry.get('node')
        if wanted:
            return self._client.node.get(wanted, fields=['uuid']).uuid
        nodes = self._client.node.list(
            detail=False, fields=['uuid', 'name', 'instance_info'],
            limit=0)
        exact, short = [], []
        host = inventory.normalize_host(self.entry.host)
        for node in nodes:
            names = [node.name] + [
                (getattr(node, 'instance_info', None) or {}).get(k)
                for k in INSTANCE_INFO_KEYS]
            names = {inventory.normalize_host(n) for n in names if n}
            if host in names:
                exact.append(node)
            elif any(_short_match(host, n) for n in names):
                short.append(node)
        found = exact or short
        if len(found) == 1:
            return found[0].uuid
        if not found:
            raise base.BMCConfigError(
                'Ironic has no node for host %s (looked for a node name or '
                'instance_info %s matching it; set "node" in the inventory)'
                % (self.entry.host, '/'.join(INSTANCE_INFO_KEYS)))
        raise base.BMCConfigError(
            'host %s matches several Ironic nodes: %s; set "node" in the '
            'inventory' % (self.entry.host, ' and '.join(
                sorted('%s (%s)' % (n.name, n.uuid) for n in found))))

    # -- interface -------------------------------------------------------

    def get_power_state(self, timeout):
        node = self._with('power state', timeout,
                          lambda: self._client.node.get(
                              self._node, fields=['power_state',
                                                  'target_power_state',
                                                  'last_error']))
        state = node.power_state
        if state == 'power off':
            return base.POWER_OFF
        if self._off_requested and not node.target_power_state \
                and node.last_error:
            raise base.PowerActionFailed(
                'Ironic node %s: power off failed: %s' % (
                    self._node, base.redact(node.last_error,
                                            *self.secrets())))
        if state is None and node.target_power_state:
            return base.POWER_ON      # changing: not (yet) off
        if state is None:
            raise base.BMCError('Ironic node %s: power state unknown%s' % (
                self._node, ': %s' % node.last_error if node.last_error
                else ''))
        return base.POWER_ON

    def power_off(self, timeout):
        self._with('power off', timeout, lambda: self._client.node.
                   set_power_state(self._node, 'off'))
        self._off_requested = True

    def power_on(self, timeout):
        self._off_requested = False
        self._with('power on', timeout, lambda: self._client.node.
                   set_power_state(self._node, 'on'))

    def close(self):
        self._client = None
        self._session = None


def _short_match(host, name):
    """Short-name match, both directions, never FQDN vs other FQDN."""
    if '.' in host and '.' in name:
        return False
    return inventory.short_name(host) == inventory.short_name(name)
