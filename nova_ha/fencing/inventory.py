"""The fencing inventory: how to reach each compute host's power control.

A YAML file named by ``[fencing] inventory_file``; format and host-name
rules are in doc/fencing.md (and etc/fencing-inventory.yaml.sample)::

    defaults:                 # optional, merged under every host
      username: admin
      password_file: /etc/nova-ha/bmc.pass
    ironic:                   # keystoneauth settings (ironic driver only)
      auth_type: none
      endpoint: http://127.0.0.1:6385
    hosts:
      compute-0.example.org:
        driver: ipmi
        address: 10.0.0.10
        port: 623
      compute-1:
        driver: redfish
        address: https://10.0.0.11
        system_id: /redfish/v1/Systems/1
        verify_tls: false
      compute-2:
        driver: ironic
        node: compute-2-node     # optional; default: match by host name

Everything is checked when the file is loaded -- unknown driver or key,
missing or malformed address, bad port, missing credentials, unreadable
password file, duplicate hosts -- and the error names the host and the
field. Passwords are held in :class:`Secret`, whose repr is ``***``.

Host names are matched the way Nova names compute hosts (``[DEFAULT] host``
of nova-compute, the service's ``host`` field), case-insensitively, trailing
dot ignored:

1. an exact match wins;
2. otherwise the short name: a short name asked for (``compute-0``) matches
   an inventory FQDN whose first label it is (``compute-0.example.org``),
   and an FQDN asked for matches an inventory entry that is exactly its
   first label. Two different FQDNs never match each other
   (``compute-0.a.org`` is not ``compute-0.b.org``);
3. more than one candidate is an error naming all of them -- never a guess.
"""

import ipaddress
import logging
import os
import re
import shutil
import urllib.parse

import yaml

from nova_ha.fencing import base

LOG = logging.getLogger(__name__)
NAMESPACE = 'nova_ha.fencing_drivers'

COMMON_FIELDS = frozenset(
    ['driver', 'address', 'port', 'username', 'password', 'password_file'])
TOP_LEVEL_KEYS = frozenset(['hosts', 'defaults', 'ironic'])
# ``ironic:`` keys read by the ironic driver besides the keystoneauth
# plugin's own options.
IRONIC_CLIENT_KEYS = frozenset(['auth_type', 'endpoint', 'verify', 'cacert',
                                'region_name', 'interface', 'api_version'])

_LABEL = re.compile(r'^(?!-)[a-z0-9_-]{1,63}(?<!-)$')


class Secret:
    """A secret string that never shows itself in a repr, str or log."""

    __slots__ = ('_value',)

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    def __repr__(self):
        return "Secret('***')"

    def __str__(self):
        return '***'

    def __bool__(self):
        return bool(self._value)

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)

    def __reduce__(self):
        raise TypeError('Secret values are not serialisable')


class HostEntry:
    """One compute host's entry (all fields validated)."""

    def __init__(self, host, driver, address=None, port=None, username=None,
                 password=None, options=None, source=None):
        self.host = host
        self.driver = driver
        self.address = address
        self.port = port
        self.username = username
        self.password = password          # Secret or None
        self.options = dict(options or {})  # driver-specific fields
        self.source = source

    def get(self, key, default=None):
        return self.options.get(key, default)

    def secrets(self):
        """The secret strings of this entry (for redaction)."""
        out = []
        if self.password:
            out.append(self.password.reveal())
        return out

    def __repr__(self):
        return ('HostEntry(host=%r, driver=%r, address=%r, port=%r, '
                'username=%r, password=%s, options=%r)' % (
                    self.host, self.driver, self.address, self.port,
                    self.username, '***' if self.password else None,
                    self.options))


def normalize_host(name):
    """Host names compare case-insensitively, without a trailing dot."""
    return str(name).strip().rstrip('.').lower()


def short_name(name):
    return normalize_host(name).split('.', 1)[0]


def valid_hostname(name):
    name = normalize_host(name)
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split('.'))


def valid_address(address):
    """An IP address (v4/v6) or a DNS name."""
    address = str(address).strip()
    if address.startswith('[') and address.endswith(']'):
        address = address[1:-1]
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        pass
    if re.match(r'^[0-9.]+$', address):
        return False          # looks like a broken IPv4 address
    return valid_hostname(address)


def check_port(host, value, field='port'):
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise error(host, field, 'must be an integer 1-65535, not %r'
                    % (value,))
    try:
        port = int(value)
    except ValueError:
        raise error(host, field, 'must be an integer 1-65535, not %r'
                    % (value,))
    if not 1 <= port <= 65535:
        raise error(host, field, 'must be 1-65535, not %d' % port)
    return port


def check_url(host, value, field='address'):
    parsed = urllib.parse.urlsplit(str(value))
    try:
        parsed.port
    except ValueError:
        raise error(host, field, 'bad port in %r' % (value,))
    if parsed.scheme not in ('http', 'https') or not parsed.hostname \
            or not valid_address(parsed.hostname):
        raise error(host, field, 'must be an http(s) URL or an IP '
                    'address/DNS name, not %r' % (value,))
    return parsed


def error(host, field, message):
    return base.InventoryError(
        'fencing inventory: host %s: %s: %s' % (host, field, message),
        host, field)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (YAML keeps the last
    silently, which would fence the wrong BMC)."""


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise base.InventoryError(
                'fencing inventory: duplicate key %r (line %d)'
                % (key, key_node.start_mark.line + 1), field=str(key))
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def driver_classes():
    """Map entry-point name -> driver class, from ``nova_ha.fencing_drivers``.

    A plugin that cannot be imported maps to the exception instead: it is
    an error only for hosts that use it (named when the inventory loads).
    """
    from stevedore import extension
    failed = {}

    def on_failure(manager, entrypoint, exc):
        failed[entrypoint.name] = exc

    mgr = extension.ExtensionManager(NAMESPACE, invoke_on_load=False,
                                     on_load_failure_callback=on_failure)
    classes = {ext.name: ext.plugin for ext in mgr}
    classes.update(failed)
    return classes


class Inventory:
    """Validated inventory entries, looked up by Nova host name."""

    def __init__(self, entries, ironic=None, source=None, drivers=None):
        self.source = source
        self.ironic = ironic or {}
        self.drivers = drivers or {}
        self._entries = {}
        for entry in entries:
            key = normalize_host(entry.host)
            if key in self._entries:
                raise error(entry.host, 'host', 'listed twice (as %s and %s)'
                            % (self._entries[key].host, entry.host))
            self._entries[key] = entry

    def __len__(self):
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries.values())

    def __contains__(self, host):
        try:
            self.lookup(host)
        except base.InventoryError:
            return False
        return True

    def hosts(self):
        return [e.host for e in self._entries.values()]

    def candidates(self, host):
        key = normalize_host(host)
        if key in self._entries:
            return [self._entries[key]]
        short = short_name(key)
        if '.' in key:
            # FQDN asked for: only an inventory *short* name can match.
            return [e for k, e in self._entries.items() if k == short]
        return [e for k, e in self._entries.items()
                if '.' in k and short_name(k) == short]

    def lookup(self, host):
        """The entry for a Nova host name (see the module doc for rules)."""
        found = self.candidates(host)
        if len(found) == 1:
            return found[0]
        if not found:
            raise base.HostNotFound(
                'fencing inventory%s has no entry for host %s (matched '
                'exactly, then by short name)' % (
                    ' %s' % self.source if self.source else '', host),
                host, 'host')
        raise base.AmbiguousHost(
            'fencing inventory: host name %s is ambiguous: it matches %s by '
            'short name; use the exact name Nova reports'
            % (host, ' and '.join(sorted(e.host for e in found))),
            host, 'host')

    def missing(self, hosts):
        """Those of ``hosts`` (Nova's names) with no unambiguous entry."""
        out = []
        for host in hosts:
            try:
                self.lookup(host)
            except base.InventoryError:
                out.append(host)
        return out

    def require(self, hosts):
        """Raise InventoryError naming every host of ``hosts`` (e.g. all
        nova-compute services) that has no unambiguous entry."""
        missing = self.missing(hosts)
        if missing:
            raise base.InventoryError(
                'fencing inventory%s has no (unambiguous) entry for compute '
                'host(s): %s' % (' %s' % self.source if self.source else '',
                                 ', '.join(missing)),
                missing[0], 'host')

    def driver_class(self, entry):
        return self.drivers[entry.driver]


def _read_password_file(host, path, base_dir):
    path = os.path.expanduser(str(path))
    if base_dir and not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    try:
        with open(path) as f:
            value = f.read().rstrip('\r\n')
    except OSError as exc:
        raise error(host, 'password_file', 'cannot read %s: %s'
                    % (path, exc.strerror))
    if not value:
        raise error(host, 'password_file', '%s is empty' % path)
    return Secret(value)


def _build_entry(host, raw, drivers, base_dir, source):
    if not isinstance(raw, dict):
        raise error(host, 'host', 'entry must be a mapping, not %s'
                    % type(raw).__name__)
    driver = raw.get('driver')
    if not driver:
        raise error(host, 'driver', 'missing (one of %s)'
                    % ', '.join(sorted(drivers)))
    if driver not in drivers:
        raise error(host, 'driver', 'unknown driver %r (known: %s)'
                    % (driver, ', '.join(sorted(drivers))))
    cls = drivers[driver]
    if isinstance(cls, Exception):
        raise error(host, 'driver', 'driver %r cannot be loaded: %s: %s'
                    % (driver, type(cls).__name__, cls))
    allowed = COMMON_FIELDS | cls.fields
    for key in raw:
        if key not in allowed:
            raise error(host, key, 'unknown field for driver %s (known: %s)'
                        % (driver, ', '.join(sorted(allowed))))
    if 'password' in raw and 'password_file' in raw:
        raise error(host, 'password', 'give password or password_file, '
                    'not both')
    password = None
    if raw.get('password') is not None:
        if not isinstance(raw['password'], (str, int)) \
                or not str(raw['password']):
            raise error(host, 'password', 'must be a non-empty string')
        password = Secret(str(raw['password']))
    elif raw.get('password_file') is not None:
        password = _read_password_file(host, raw['password_file'], base_dir)
    username = raw.get('username')
    if username is not None and (not isinstance(username, (str, int))
                                 or not str(username)):
        raise error(host, 'username', 'must be a non-empty string')
    port = raw.get('port')
    if port is not None:
        port = check_port(host, port)
    address = raw.get('address')
    if address is not None:
        if not isinstance(address, str) or not address.strip():
            raise error(host, 'address', 'must be a non-empty string, not %r'
                        % (address,))
        address = address.strip()
    options = {k: v for k, v in raw.items() if k in cls.fields}
    entry = HostEntry(host, driver, address=address, port=port,
                      username=None if username is None else str(username),
                      password=password, options=options, source=source)
    cls.validate(entry)
    return entry


def _check_ironic_section(section, source):
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise base.InventoryError(
            'fencing inventory%s: ironic: must be a mapping of keystoneauth '
            'settings' % (' ' + source if source else ''), field='ironic')
    out = {}
    for key, value in section.items():
        if key in ('password', 'secret', 'application_credential_secret',
                   'token'):
            out[key] = Secret(str(value))
        else:
            out[key] = value
    auth_type = out.setdefault('auth_type', 'none')
    from keystoneauth1 import loading
    try:
        loader = loading.get_plugin_loader(auth_type)
    except Exception:
        raise base.InventoryError(
            'fencing inventory: ironic.auth_type: unknown keystoneauth '
            'plugin %r' % auth_type, field='ironic.auth_type')
    known = {o.dest for o in loader.get_options()} | IRONIC_CLIENT_KEYS
    for key in out:
        if key not in known:
            raise base.InventoryError(
                'fencing inventory: ironic.%s: unknown setting for '
                'auth_type %s (known: %s)' % (key, auth_type,
                                              ', '.join(sorted(known))),
                field='ironic.%s' % key)
    if auth_type in ('none', 'noauth', 'http_basic') \
            and not out.get('endpoint'):
        raise base.InventoryError(
            'fencing inventory: ironic.endpoint: required with auth_type '
            '%s' % auth_type, field='ironic.endpoint')
    if out.get('endpoint'):
        check_url('(ironic)', out['endpoint'], 'ironic.endpoint')
    return out


def parse(data, source=None, base_dir=None, drivers=None,
          expected_hosts=None):
    """Validate inventory data (already parsed YAML) into an Inventory."""
    where = ' %s' % source if source else ''
    if drivers is None:
        drivers = driver_classes()
    if not isinstance(data, dict):
        raise base.InventoryError(
            'fencing inventory%s: must be a mapping with a "hosts" key'
            % where, field='hosts')
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise base.InventoryError(
                'fencing inventory%s: unknown top-level key %r (known: %s)'
                % (where, key, ', '.join(sorted(TOP_LEVEL_KEYS))), field=key)
    hosts = data.get('hosts')
    if not isinstance(hosts, dict) or not hosts:
        raise base.InventoryError(
            'fencing inventory%s: "hosts" must be a non-empty mapping of '
            'compute host name -> entry' % where, field='hosts')
    defaults = data.get('defaults') or {}
    if not isinstance(defaults, dict):
        raise base.InventoryError('fencing inventory%s: "defaults" must be '
                                  'a mapping' % where, field='defaults')
    ironic = _check_ironic_section(data.get('ironic'), source)
    entries = []
    for host, raw in hosts.items():
        if not isinstance(host, str) or not valid_hostname(host):
            raise error(host, 'host', 'not a valid host name: %r' % (host,))
        merged = dict(defaults)
        cls = drivers.get((raw or {}).get('driver') if isinstance(raw, dict)
                          else None) or drivers.get(defaults.get('driver'))
        if isinstance(cls, type) and not cls.uses_bmc_credentials:
            # e.g. ironic: BMC address/credentials defaults do not apply.
            for key in COMMON_FIELDS - {'driver'}:
                merged.pop(key, None)
        if isinstance(raw, dict):
            if 'password' in raw:
                merged.pop('password_file', None)
            if 'password_file' in raw:
                merged.pop('password', None)
            merged.update(raw)
        else:
            merged = raw
        entries.append(_build_entry(host, merged, drivers, base_dir, source))
    if any(e.driver == 'ironic' for e in entries) and not ironic:
        host = next(e.host for e in entries if e.driver == 'ironic')
        raise error(host, 'driver', 'driver ironic needs the top-level '
                    '"ironic" section (keystoneauth settings)')
    inv = Inventory(entries, ironic=ironic, source=source, drivers=drivers)
    if expected_hosts is not None:
        inv.require(expected_hosts)
    return inv


def load(path, expected_hosts=None, drivers=None):
    """Load and validate the inventory file at ``path``.

    ``expected_hosts``: Nova compute host names that must all have an
    entry (the evacuator passes its compute services), checked now rather
    than at the moment one of them fails.
    """
    if not path:
        raise base.InventoryError(
            'no fencing inventory: set [fencing] inventory_file',
            field='inventory_file')
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506
    except OSError as exc:
        raise base.InventoryError('fencing inventory %s: cannot read: %s'
                                  % (path, exc.strerror),
                                  field='inventory_file')
    except yaml.YAMLError as exc:
        # Only the problem and its position: a snippet of the file could
        # show a password.
        mark = getattr(exc, 'problem_mark', None)
        where = (' at line %d column %d' % (mark.line + 1, mark.column + 1)
                 if mark is not None else '')
        raise base.InventoryError('fencing inventory %s: not valid YAML: %s%s'
                                  % (path, getattr(exc, 'problem', None)
                                     or type(exc).__name__, where),
                                  field='inventory_file')
    inv = parse(data, source=path, base_dir=os.path.dirname(
        os.path.abspath(path)), drivers=drivers,
        expected_hosts=expected_hosts)
    _warn_if_exposed(path, data)
    return inv


def _warn_if_exposed(path, data):
    """Warn when a file holding passwords is readable by others."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not mode & 0o077:
        return
    sections = list((data.get('hosts') or {}).values()) + [
        data.get('defaults') or {}, data.get('ironic') or {}]
    if any(isinstance(s, dict) and s.get('password') for s in sections):
        LOG.warning('fencing inventory %s holds passwords and is readable '
                    'by group/others (mode %o): chmod 600 it, or use '
                    'password_file', path, mode & 0o777)


def which(program):
    return shutil.which(program)
