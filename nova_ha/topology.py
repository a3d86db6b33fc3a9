"""nova-ha's fault-domain topology: host -> domain, per level.

One model for the scheduler filters, the evacuator, maintenance and
``nova-ha-status``. The topology is read from nova host aggregates:

- ``ha:<level>=<domain>`` puts the aggregate's hosts in a domain of a level
  (``ha:rack=r12``, ``ha:power_domain=pdu-3``);
- level ``host`` is the compute host itself (every host is its own domain);
- level ``availability_zone`` is nova's aggregate availability zone (a host
  in no zone aggregate is in ``[DEFAULT] default_availability_zone``);
- level ``failure_domain`` is always known and also reads the VEXXHOST
  nova-scheduler-filters key ``failure_domain`` (no ``ha:`` prefix);
- ``ha:sal=N`` certifies the hosts for Service Availability Level N and the
  weaker levels N..3; ``ha:live_migration_downtime_ms=N`` declares the
  worst live-migration interruption of the hosts.

The ordered list of levels, smallest first, is ``[topology] levels``.

A host with two different domains at one level (two aggregates that
contradict each other) is a configuration error: its domain at that level is
:data:`CONFLICT`, never one of the two values, so a hard anti-affinity rule
at that level refuses the host; :attr:`HostInfo.conflicts` and
:attr:`Topology.conflicts` describe it.

Usage outside the scheduler (evacuator, maintenance, status check), from the
Nova API's aggregate list (``GET /os-aggregates``, dicts or novaclient
objects both work)::

    topo = topology.Topology.from_aggregates(aggregates, hosts=compute_hosts)
    topo.domain('host12', 'rack')          # 'r3', None or topology.CONFLICT
    topo.host('host12').domains            # {'host': 'host12', 'rack': ...}
    topo.domains('rack')                   # {'r3': {'host12', ...}, ...}
    topo.conflicts, topo.problems          # configuration errors/warnings

Inside nova-scheduler, :class:`HostStateTopology` keeps one
:class:`HostInfo` per host and rebuilds it only when the host's aggregate
objects change, so a filter pays a dictionary lookup per host.
"""

import collections
import logging
import re

LOG = logging.getLogger(__name__)

HOST = 'host'
AVAILABILITY_ZONE = 'availability_zone'
FAILURE_DOMAIN = 'failure_domain'
DEFAULT_LEVELS = (HOST, 'rack', 'power_domain', AVAILABILITY_ZONE)

PREFIX = 'ha:'
SAL_KEY = 'ha:sal'
DOWNTIME_KEY = 'ha:live_migration_downtime_ms'
#: VEXXHOST nova-scheduler-filters' aggregate key, read as ha:failure_domain.
VEXXHOST_KEY = 'failure_domain'
#: nova's own aggregate metadata key for the availability zone.
AZ_KEY = 'availability_zone'
SAL_LEVELS = (1, 2, 3)
DEFAULT_AZ = 'nova'

_LEVEL_RE = re.compile(r'^[a-z][a-z0-9_]{0,62}$')

# Aggregate keys other nova-ha components define (key -> description), so
# that the status check does not call them unknown. See
# register_aggregate_key().
_EXTRA_KEYS = {}


class TopologyError(ValueError):
    """The topology configuration itself is unusable (e.g. bad levels)."""


class _Conflict(str):
    """The domain of a host that two aggregates place in two domains."""

    def __repr__(self):
        return '<CONFLICT>'


#: Domain of a host whose aggregates disagree at that level. A str (so it
#: can be logged and compared) that no aggregate value can equal: it is
#: compared by identity (``domain is CONFLICT``).
CONFLICT = _Conflict('<conflict>')


def register_aggregate_key(key, description=''):
    """Declare another ``ha:`` aggregate key as known (for other components).

    The status check reports ``ha:`` keys nobody declared as unknown.
    """
    if not key.startswith(PREFIX):
        raise ValueError('aggregate key %r does not start with %r'
                         % (key, PREFIX))
    _EXTRA_KEYS[key] = description


def validate_levels(levels):
    """Return levels as a tuple, or raise TopologyError naming the problem."""
    levels = tuple(levels)
    if not levels:
        raise TopologyError('[topology] levels is empty; the default is %s'
                            % ','.join(DEFAULT_LEVELS))
    seen = set()
    for level in levels:
        if not isinstance(level, str) or not _LEVEL_RE.match(level):
            raise TopologyError(
                '[topology] levels: %r is not a level name (lower-case '
                'letters, digits and _, starting with a letter)' % (level,))
        if level in seen:
            raise TopologyError('[topology] levels names %r twice' % level)
        seen.add(level)
    return levels


def configured_levels(conf=None):
    """The ordered levels of ``[topology] levels`` (validated)."""
    if conf is None:
        from oslo_config import cfg
        conf = cfg.CONF
    from nova_ha.conf import topology as topology_conf
    topology_conf.register_opts(conf)
    return validate_levels(conf.topology.levels)


def known_levels(levels):
    """Levels a hint may name: the configured ones plus failure_domain."""
    levels = tuple(levels)
    if FAILURE_DOMAIN not in levels:
        levels += (FAILURE_DOMAIN,)
    return levels


def level_keys(level):
    """Aggregate metadata keys that place a host in a domain of `level`."""
    if level == HOST:
        return ()
    if level == AVAILABILITY_ZONE:
        return (AZ_KEY,)
    if level == FAILURE_DOMAIN:
        return (PREFIX + FAILURE_DOMAIN, VEXXHOST_KEY)
    return (PREFIX + level,)


def known_aggregate_keys(levels):
    """Every ``ha:`` aggregate key nova-ha understands with these levels."""
    keys = {SAL_KEY, DOWNTIME_KEY}
    for level in known_levels(levels):
        keys.update(k for k in level_keys(level) if k.startswith(PREFIX))
    keys.update(_EXTRA_KEYS)
    return keys


def _field(agg, name, default=None):
    """Read a field of an aggregate: nova object, novaclient object or dict."""
    if isinstance(agg, dict):
        value = agg.get(name, default)
    else:
        value = getattr(agg, name, default)
    return default if value is None else value


def aggregate_name(agg):
    return _field(agg, 'name') or 'id=%s' % _field(agg, 'id', '?')


def aggregate_metadata(agg):
    md = dict(_field(agg, 'metadata', {}) or {})
    az = _field(agg, 'availability_zone')
    if az and AZ_KEY not in md:
        md[AZ_KEY] = az
    return md


def aggregate_hosts(agg):
    return list(_field(agg, 'hosts', []) or [])


def _parse_sal(value):
    try:
        sal = int(str(value).strip())
    except ValueError:
        return None
    return sal if sal in SAL_LEVELS else None


def _parse_ms(value):
    try:
        ms = int(str(value).strip())
    except ValueError:
        return None
    return ms if ms >= 0 else None


class Conflict(collections.namedtuple('Conflict', 'host level values')):
    """A host in several domains of one level.

    ``values`` maps each domain to the names of the aggregates saying so.
    """

    def __str__(self):
        parts = ', '.join('%s (aggregate %s)' % (d, ', '.join(sorted(a)))
                          for d, a in sorted(self.values.items()))
        return ('host %s is in %d %s domains: %s; nova-ha treats it as in '
                'none (a hard %s rule refuses it) until one is removed'
                % (self.host, len(self.values), self.level, parts,
                   self.level))


class HostInfo:
    """What the aggregates say about one host.

    :ivar host: host name
    :ivar domains: {level: domain}; the domain is a str, None (the host is
        in no domain of that level) or :data:`CONFLICT`. Has every known
        level (the configured ones and failure_domain).
    :ivar sal: strongest SAL the host is certified for (1..3) or None
    :ivar downtime_ms: worst declared live-migration downtime or None
    :ivar conflicts: tuple of :class:`Conflict`
    :ivar problems: tuple of str: bad values that were ignored
    """

    __slots__ = ('host', 'domains', 'sal', 'downtime_ms', 'conflicts',
                 'problems')

    def __init__(self, host, domains, sal=None, downtime_ms=None,
                 conflicts=(), problems=()):
        self.host = host
        self.domains = domains
        self.sal = sal
        self.downtime_ms = downtime_ms
        self.conflicts = tuple(conflicts)
        self.problems = tuple(problems)

    def domain(self, level):
        return self.domains.get(level)

    def certified_for(self, sal):
        """True if the host may run an instance requiring SAL `sal`."""
        return self.sal is not None and self.sal <= sal

    def __repr__(self):
        return '<HostInfo %s %r sal=%r>' % (self.host, self.domains, self.sal)


_KEY_LEVELS = {}


def _key_levels(levels):
    """(known levels, {aggregate key: level}) for configured levels."""
    cached = _KEY_LEVELS.get(levels)
    if cached is None:
        known = known_levels(levels)
        keys = {}
        for level in known:
            for key in level_keys(level):
                keys[key] = level
        cached = _KEY_LEVELS[levels] = (known, keys)
    return cached


def _metadata_fast(agg):
    """Aggregate metadata, availability zone included (no copy if possible).

    nova keeps the zone in the metadata; an API dict or novaclient object
    has it there too, but a hand-made one may carry it on the side only.
    """
    if isinstance(agg, dict):
        md = agg.get('metadata') or {}
        az = agg.get('availability_zone')
    else:
        md = getattr(agg, 'metadata', None) or {}
        if AZ_KEY in md or hasattr(type(agg), 'obj_name'):
            return md         # a nova object keeps the zone in its metadata
        az = getattr(agg, 'availability_zone', None)
    if az and AZ_KEY not in md:
        md = dict(md)
        md[AZ_KEY] = az
    return md


def describe_host(host, aggregates, levels=DEFAULT_LEVELS,
                  default_az=DEFAULT_AZ):
    """Build the :class:`HostInfo` of `host` from the aggregates holding it.

    :param aggregates: the host's aggregates (nova objects, novaclient
        objects or API dicts); only their name and metadata are read
    :param levels: configured levels (failure_domain is added)
    :param default_az: zone of a host in no zone aggregate
    """
    known, key_level = _key_levels(tuple(levels))
    seen = {}                     # level -> {domain: [aggregates]}
    sal = None
    downtimes = []
    problems = []
    for agg in aggregates:
        for key, value in _metadata_fast(agg).items():
            level = key_level.get(key)
            if level is not None:
                value = str(value).strip()
                if not value:
                    problems.append('aggregate %s: %s is empty; ignored'
                                    % (aggregate_name(agg), key))
                    continue
                seen.setdefault(level, {}).setdefault(value, []).append(agg)
            elif key == SAL_KEY:
                parsed = _parse_sal(value)
                if parsed is None:
                    problems.append(
                        'aggregate %s: %s=%r is not one of 1, 2, 3; the '
                        'aggregate certifies nothing'
                        % (aggregate_name(agg), key, value))
                elif sal is None or parsed < sal:
                    sal = parsed
            elif key == DOWNTIME_KEY:
                parsed = _parse_ms(value)
                if parsed is None:
                    problems.append(
                        'aggregate %s: %s=%r is not an integer >= 0; the '
                        'downtime of its hosts is unknown'
                        % (aggregate_name(agg), key, value))
                downtimes.append(parsed)
    domains = {}
    conflicts = []
    for level in known:
        values = seen.get(level)
        if level == HOST:
            domains[level] = host
        elif not values:
            domains[level] = default_az if level == AVAILABILITY_ZONE \
                else None
        elif len(values) == 1:
            domains[level] = next(iter(values))
        else:
            domains[level] = CONFLICT
            conflicts.append(Conflict(host, level, {
                d: {aggregate_name(a) for a in aggs}
                for d, aggs in values.items()}))
    if not downtimes or None in downtimes:
        downtime = None
    else:
        downtime = max(downtimes)
    return HostInfo(host, domains, sal, downtime, conflicts, problems)


class Topology:
    """The topology of a set of hosts, built from their aggregates."""

    def __init__(self, hosts, levels=DEFAULT_LEVELS, aggregates=()):
        """Prefer :meth:`from_aggregates`/:meth:`from_host_states`.

        :param hosts: {host: HostInfo}
        """
        self.levels = validate_levels(levels)
        self._hosts = dict(hosts)
        self._aggregates = list(aggregates)

    @classmethod
    def from_aggregates(cls, aggregates, hosts=(), levels=None,
                        default_az=DEFAULT_AZ):
        """Build from a list of aggregates (Nova API dicts or objects).

        :param aggregates: every aggregate, each with name, hosts, metadata
            (and availability_zone)
        :param hosts: host names to include even if in no aggregate (e.g.
            every nova-compute service host)
        :param levels: ordered levels (default: ``[topology] levels``)
        """
        levels = configured_levels() if levels is None else \
            validate_levels(levels)
        aggregates = list(aggregates)
        by_host = {h: [] for h in hosts}
        for agg in aggregates:
            for h in aggregate_hosts(agg):
                by_host.setdefault(h, []).append(agg)
        infos = {h: describe_host(h, aggs, levels, default_az)
                 for h, aggs in by_host.items()}
        return cls(infos, levels, aggregates)

    @classmethod
    def from_host_states(cls, host_states, levels=None,
                         default_az=DEFAULT_AZ):
        """Build from nova scheduler HostState objects (``.aggregates``)."""
        levels = configured_levels() if levels is None else \
            validate_levels(levels)
        infos = {}
        aggs_seen = {}
        for hs in host_states:
            infos[hs.host] = describe_host(hs.host, hs.aggregates, levels,
                                           default_az)
            for agg in hs.aggregates:
                aggs_seen[id(agg)] = agg
        return cls(infos, levels, aggs_seen.values())

    # -- queries -----------------------------------------------------------

    @property
    def known_levels(self):
        return known_levels(self.levels)

    def hosts(self):
        return sorted(self._hosts)

    def host(self, host):
        """The :class:`HostInfo` of `host` (KeyError if unknown)."""
        return self._hosts[host]

    def get(self, host, default=None):
        """The :class:`HostInfo` of `host`, or `default` if unknown."""
        return self._hosts.get(host, default)

    def __contains__(self, host):
        return host in self._hosts

    def location(self, host):
        """Where ``host`` stands, for alarms and notifications.

        {level: domain} for every configured level above the host (rack,
        power_domain and availability_zone always present), plus ``sal``.
        A domain is a str, or None when the host is in none of that level
        or in two (a configuration conflict the filters log).
        """
        info = self._hosts.get(host)
        domains = getattr(info, 'domains', None) or {}
        out = {}
        for level in ('rack', 'power_domain', AVAILABILITY_ZONE) + tuple(
                lv for lv in self.levels if lv != HOST):
            d = domains.get(level)
            out[level] = None if d is None or d is CONFLICT else str(d)
        out['sal'] = getattr(info, 'sal', None)
        return out

    def domain(self, host, level):
        """Domain of `host` at `level`: str, None or :data:`CONFLICT`.

        A host the topology does not know is in no domain (None), except at
        level host.
        """
        self._check_level(level)
        info = self._hosts.get(host)
        if info is None:
            return host if level == HOST else None
        return info.domains[level]

    def domains(self, level):
        """{domain: set(hosts)} at `level` (conflicting hosts left out)."""
        self._check_level(level)
        out = {}
        for host, info in self._hosts.items():
            d = info.domains[level]
            if d is not None and d is not CONFLICT:
                out.setdefault(d, set()).add(host)
        return out

    def hosts_without_domain(self, level):
        self._check_level(level)
        return sorted(h for h, i in self._hosts.items()
                      if i.domains[level] is None)

    def same_domain(self, host_a, host_b, level):
        """True if both hosts are in one (known, unconflicted) domain."""
        a = self.domain(host_a, level)
        return (a is not None and a is not CONFLICT
                and a == self.domain(host_b, level))

    def certified_hosts(self, sal):
        """Hosts certified for SAL `sal` (ha:sal=N with N <= sal)."""
        return sorted(h for h, i in self._hosts.items()
                      if i.certified_for(sal))

    def _check_level(self, level):
        if level not in self.known_levels:
            raise TopologyError('unknown topology level %r; known: %s'
                                % (level, ', '.join(self.known_levels)))

    # -- configuration problems --------------------------------------------

    @property
    def conflicts(self):
        """Every :class:`Conflict` (host in two domains of one level)."""
        return [c for h in sorted(self._hosts)
                for c in self._hosts[h].conflicts]

    @property
    def problems(self):
        """Bad metadata values (str), each naming aggregate, key, value."""
        out = []
        for h in sorted(self._hosts):
            for p in self._hosts[h].problems:
                if p not in out:
                    out.append(p)
        return out

    def unknown_keys(self):
        """[(aggregate name, key)] for ``ha:`` keys nova-ha does not know."""
        known = known_aggregate_keys(self.levels)
        out = []
        for agg in self._aggregates:
            for key in sorted(aggregate_metadata(agg)):
                if key.startswith(PREFIX) and key not in known:
                    out.append((aggregate_name(agg), key))
        return out

    def nesting_violations(self):
        """Domains spanning several domains of the next configured level.

        Levels are ordered smallest first, so every rack should sit in one
        power domain, every power domain in one zone. Returns messages.
        """
        out = []
        levels = [lv for lv in self.levels if lv != HOST]
        for lower, upper in zip(levels, levels[1:]):
            parents = {}
            for host, info in self._hosts.items():
                lo, up = info.domains.get(lower), info.domains.get(upper)
                if lo is None or lo is CONFLICT or up is CONFLICT:
                    continue
                parents.setdefault(lo, {}).setdefault(up, set()).add(host)
            for lo, ups in sorted(parents.items()):
                if len(ups) > 1:
                    detail = '; '.join(
                        '%s: %s' % (up if up is not None else '(none)',
                                    ', '.join(sorted(hs)))
                        for up, hs in sorted(ups.items(),
                                             key=lambda kv: str(kv[0])))
                    out.append('%s %s spans %d %s domains (%s)'
                               % (lower, lo, len(ups), upper, detail))
        return out


class HostStateTopology:
    """HostInfo per scheduler HostState, rebuilt only when aggregates change.

    nova's HostManager hands each HostState a fresh list of the same
    aggregate objects on every request and replaces an aggregate object when
    it changes, so comparing the host's aggregate list with the one the
    cached HostInfo was built from (an identity comparison per element, in
    C) tells whether the cache is still right. Configuration problems are
    logged once, when a host's HostInfo is (re)built.
    """

    def __init__(self):
        self._entries = {}
        self._config = None
        self.levels = DEFAULT_LEVELS
        self.default_az = DEFAULT_AZ

    def configure(self, levels, default_az):
        """Set levels and default zone; drops the cache if they changed."""
        config = (tuple(levels), default_az)
        if config != self._config:
            self.levels = validate_levels(levels)
            self.default_az = default_az
            self._entries = {}
            self._config = config

    @property
    def known_levels(self):
        return known_levels(self.levels)

    def info(self, host_state):
        """The HostInfo of a HostState (cached)."""
        aggs = host_state.aggregates
        entry = self._entries.get(host_state.host)
        if entry is not None and entry[0] == aggs:
            return entry[1]
        return self.rebuild(host_state)

    def rebuild(self, host_state):
        aggs = list(host_state.aggregates or ())
        info = describe_host(host_state.host, aggs, self.levels,
                             self.default_az)
        for conflict in info.conflicts:
            LOG.error('nova-ha topology configuration error: %s', conflict)
        for problem in info.problems:
            LOG.warning('nova-ha topology: host %s: %s', host_state.host,
                        problem)
        self._entries[host_state.host] = (aggs, info)
        return info

    def cached(self, host):
        """The last HostInfo built for a host name, or None."""
        entry = self._entries.get(host)
        return entry[1] if entry is not None else None

    @property
    def entries(self):
        """The raw cache {host: (aggregate list, HostInfo)} (hot paths)."""
        return self._entries
