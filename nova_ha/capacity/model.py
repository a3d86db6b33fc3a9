"""The cloud as the failover-capacity solver sees it, and the policies.

:class:`Cloud` is built from Nova/placement (``collect.py``): hosts with
their free resources, SAL certification and topology domains (from
:mod:`nova_ha.topology`, the one topology model), and instances with their
flavor's resources, SAL, ``ha:recovery``, ``ha:recovery_priority`` and
their server group's hard anti-affinity rules (parsed by
:mod:`nova_ha.scheduler.request`, the scheduler's own parser).

A :class:`Policy` is one ``[capacity] tolerate`` entry: which instances it
protects (a SAL, or all) and which failures it must survive (any N domains
of one topology level, ``host`` included), optionally among the hosts of
one aggregate.
"""

import collections
import itertools
import re

from nova_ha import topology

VCPU, RAM, DISK = 0, 1, 2
RESOURCE_NAMES = ('vCPU', 'MB RAM', 'GB disk')

OPTION = '[capacity] tolerate'


class PolicyError(ValueError):
    """A [capacity] tolerate entry (or --tolerate/--sal) is unusable."""


class Host:
    __slots__ = ('name', 'free', 'sal', 'domains', 'enabled')

    def __init__(self, name, free, sal=None, domains=None, enabled=True):
        self.name = name
        self.free = tuple(free)       # (vcpu, ram_mb, disk_gb)
        self.sal = sal
        self.domains = dict(domains or {})
        self.domains.setdefault(topology.HOST, name)
        self.enabled = enabled

    def certified_for(self, sal):
        return sal is None or (self.sal is not None and self.sal <= sal)

    def __repr__(self):
        return '<Host %s free=%s sal=%s>' % (self.name, self.free, self.sal)


class Rule(collections.namedtuple('Rule', 'level max_per_domain source')):
    """A hard anti-affinity rule of an instance's server group."""

    def __str__(self):
        return ('hard anti-affinity at level %s, at most %d per domain (%s)'
                % (self.level, self.max_per_domain, self.source))


class Instance:
    __slots__ = ('uuid', 'name', 'host', 'res', 'sal', 'auto', 'priority',
                 'group', 'rules')

    def __init__(self, uuid, host, res, sal=None, auto=True, priority=0,
                 group=None, rules=(), name=None):
        self.uuid = uuid
        self.name = name or uuid
        self.host = host
        self.res = tuple(res)
        self.sal = sal
        self.auto = auto
        self.priority = priority
        self.group = group
        self.rules = tuple(rules)

    def order_key(self):
        """The evacuator's order: SAL1 first, then higher
        ha:recovery_priority, then bigger, then by name (stable)."""
        return (self.sal if self.sal is not None else 9, -self.priority,
                -self.res[RAM], -self.res[VCPU], self.name, self.uuid)

    def __repr__(self):
        return '<Instance %s on %s %s sal=%s>' % (self.name, self.host,
                                                  self.res, self.sal)


class Cloud:
    """Hosts and instances (a snapshot); ``levels`` the known levels."""

    def __init__(self, hosts, instances, levels=topology.DEFAULT_LEVELS,
                 aggregates=None, problems=()):
        self.hosts = {h.name: h for h in hosts}
        self.instances = {i.uuid: i for i in instances}
        self.levels = topology.known_levels(levels)
        self.aggregates = dict(aggregates or {})   # name -> set(hosts)
        self.problems = list(problems)
        self._on = None

    def on_host(self):
        if self._on is None:
            on = {}
            for inst in self.instances.values():
                on.setdefault(inst.host, []).append(inst)
            self._on = on
        return self._on

    def domain(self, host, level):
        h = self.hosts.get(host)
        if h is None:
            return host if level == topology.HOST else None
        return h.domains.get(level)


_TOLERANCE = re.compile(r'^\s*(\d+)\s+([a-z][a-z0-9_]*?)s?\s*$')
_SCOPE = re.compile(r'^\s*(sal[123]|all)\s*(?:@\s*(\S.*?))?\s*$')


class Policy:
    """``scope:tolerance`` -- e.g. ``sal1:1 rack``, ``sal2@edge:2 hosts``."""

    def __init__(self, sal, count, level, aggregate=None, text=None):
        self.sal = sal                  # 1..3, or None for 'all'
        self.count = count
        self.level = level
        self.aggregate = aggregate
        self.text = text or self.describe()

    @property
    def scope(self):
        return ('sal%d' % self.sal if self.sal else 'all') + (
            '@%s' % self.aggregate if self.aggregate else '')

    def describe(self):
        return '%s: tolerate %d %s%s' % (
            self.scope, self.count, self.level,
            's' if self.count != 1 else '')

    def covers(self, inst):
        """True if the policy protects this instance."""
        return inst.auto and (self.sal is None or inst.sal == self.sal)

    def __repr__(self):
        return '<Policy %s>' % self.describe()


def parse_scope(scope, option=OPTION):
    m = _SCOPE.match(str(scope))
    if not m:
        raise PolicyError('%s: %r is not a scope: expected sal1, sal2, sal3 '
                          'or all, optionally @AGGREGATE' % (option, scope))
    sal = None if m.group(1) == 'all' else int(m.group(1)[3:])
    return sal, m.group(2)


def parse_tolerance(value, levels, option=OPTION, key=None):
    """(count, level) of "N hosts" / "1 rack" / "none"; PolicyError."""
    name = '%s %s=%r' % (option, key, value) if key else \
        '%s=%r' % (option, value)
    text = str(value).strip()
    if text.lower() in ('none', '0'):
        return 0, topology.HOST
    m = _TOLERANCE.match(text)
    if not m:
        raise PolicyError('%s: expected "N hosts", "N <level>" (e.g. "1 '
                          'rack") or "none"' % name)
    count, level = int(m.group(1)), m.group(2)
    known = topology.known_levels(levels)
    if level not in known:
        # "2 racks" -> rack; "1 power_domains" too; also accept exact
        # names ending in s.
        if level + 's' in known:
            level += 's'
        else:
            raise PolicyError('%s: unknown topology level %r; known: %s'
                              % (name, text.split()[-1], ', '.join(known)))
    if count < 0 or count > 1000:
        raise PolicyError('%s: count %d out of range 0..1000' % (name, count))
    return count, level


def parse_policies(entries, levels, option=OPTION):
    """[Policy] from {scope: tolerance} (the DictOpt), validated."""
    out = []
    for key in sorted(entries or {}):
        sal, agg = parse_scope(key, option)
        count, level = parse_tolerance(entries[key], levels, option, key)
        if count:
            out.append(Policy(sal, count, level, agg,
                              '%s:%s' % (key, str(entries[key]).strip())))
    return out


def load_policies(conf, levels=None):
    """Policies of ``[capacity] tolerate`` (PolicyError names the entry)."""
    from nova_ha.conf import capacity as capacity_conf
    capacity_conf.register_opts(conf)
    if levels is None:
        levels = topology.configured_levels(conf)
    try:
        entries = conf.capacity.tolerate
    except ValueError as exc:
        raise PolicyError('%s: %s' % (OPTION, exc))
    return parse_policies(entries, levels)


class Scenario(collections.namedtuple('Scenario', 'policy failed label')):
    """One failure: ``failed`` a frozenset of hosts, ``label`` e.g.
    'rack r3' or 'hosts host1, host4'."""


def scenarios(cloud, policy, max_scenarios=5000):
    """(list of Scenario, approximate: bool) for a policy on a cloud."""
    scope = set(cloud.hosts)
    if policy.aggregate:
        members = cloud.aggregates.get(policy.aggregate)
        if members is None:
            raise PolicyError('%s %s: no host aggregate named %r'
                              % (OPTION, policy.scope, policy.aggregate))
        scope &= set(members)
    domains = {}
    for h in sorted(scope):
        d = cloud.domain(h, policy.level)
        if d is None or d is topology.CONFLICT:
            # In no domain of the level: it fails alone (counts as its own).
            d = ('host', h)
        domains.setdefault(d, set()).add(h)
    keys = sorted(domains, key=str)
    n = min(policy.count, len(keys))
    label_of = (lambda d: 'host %s' % d[1] if isinstance(d, tuple)
                else '%s %s' % (policy.level, d))
    total = _ncr(len(keys), n)
    if total <= max_scenarios:
        combos = itertools.combinations(keys, n)
        approximate = False
    else:
        combos = _heaviest(cloud, policy, domains, keys, n)
        approximate = True
    out = []
    for combo in combos:
        failed = frozenset().union(*(domains[d] for d in combo))
        out.append(Scenario(policy, failed,
                            ', '.join(label_of(d) for d in combo)))
    return out, approximate


def _heaviest(cloud, policy, domains, keys, n):
    """The few combinations of n domains carrying the most protected
    load: per resource, and per server group."""
    on = cloud.on_host()
    load = {}
    groups = {}
    for d in keys:
        tot = [0, 0, 0]
        for h in domains[d]:
            for inst in on.get(h, ()):
                if policy.covers(inst):
                    for r in range(3):
                        tot[r] += inst.res[r]
                    if inst.group:
                        groups.setdefault(inst.group, collections.Counter())[
                            d] += 1
        load[d] = tot
    combos = set()
    for r in range(3):
        combos.add(tuple(sorted(sorted(keys, key=lambda d: -load[d][r])[:n],
                                key=str)))
    for counter in groups.values():
        top = [d for d, _ in counter.most_common(n)]
        rest = [d for d in sorted(keys, key=lambda d: -load[d][RAM])
                if d not in top]
        combos.add(tuple(sorted((top + rest)[:n], key=str)))
    return sorted(combos)


def _ncr(n, r):
    import math
    return math.comb(n, r) if 0 <= r <= n else 0
