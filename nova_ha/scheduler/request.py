"""Per-request state shared by nova-ha's filters and weigher.

nova calls each filter's ``filter_all`` once per instance of a request (and
once more for alternates), with the same RequestSpec object. Everything that
costs more than a dictionary lookup -- parsing hints and extra specs,
reading where the server group's members run, finding the operation type
from the instance's migration record -- is done once, by the first filter
that needs it, and kept in a :class:`RequestInfo` tied to that RequestSpec
object (a weak reference: it goes when nova drops the RequestSpec).

Hints (``openstack server create --hint k=v``; nova's ``group`` hint makes
the server group):

- ``ha_anti_affinity_level=<level>``: a level of ``[topology] levels`` or
  ``failure_domain``;
- ``ha_anti_affinity=hard|soft`` (default hard);
- ``ha_max_per_domain=N`` (N >= 1, default 1);
- ``different_failure_domain=true`` (VEXXHOST nova-scheduler-filters):
  the same as ``ha_anti_affinity_level=failure_domain``, hard, 1;
- ``ha_live_migration=allowed|forbidden``;
- ``ha_max_interruption_ms=N`` (N >= 0);
- ``ha_max_concurrent_moves=N`` (N >= 0).

Flavor extra specs ``ha:sal``, ``ha:live_migration`` and
``ha:max_interruption_ms`` are read here too. The migration keys are parsed
by :mod:`nova_ha.migration_policy` (shared with the maintenance drain): a
flavor spec and a hint on the same subject combine to the stricter of the
two.
"""

import threading
import weakref

from oslo_config import cfg
from oslo_log import log as logging
from oslo_utils import strutils

from nova_ha import migration_policy
from nova_ha import topology
from nova_ha.conf import scheduler as scheduler_conf
from nova_ha.conf import topology as topology_conf
from nova_ha.scheduler import lookup as lookup_mod

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
topology_conf.register_opts(CONF)
scheduler_conf.register_opts(CONF)

HINT_LEVEL = 'ha_anti_affinity_level'
HINT_MODE = 'ha_anti_affinity'
HINT_MAX_PER_DOMAIN = 'ha_max_per_domain'
HINT_VEXXHOST = 'different_failure_domain'
HINT_MAX_MOVES = migration_policy.KEY_MAX_MOVES

SPEC_SAL = 'ha:sal'

HARD, SOFT = 'hard', 'soft'
BOOT = 'boot'          # no move in progress and the instance has no host
OTHER = 'other'        # instance on a host, no move in progress

#: The topology of every host nova-scheduler has shown the filters.
HOST_TOPOLOGY = topology.HostStateTopology()

_lookup = lookup_mod.NovaDBLookup()


def set_lookup(lookup):
    """Replace the database look-up (tests, benchmark); returns the old."""
    global _lookup
    old, _lookup = _lookup, lookup
    return old


def get_lookup():
    return _lookup


#: A hint or extra spec with an unusable value (the one error class of
#: every nova-ha key, see nova_ha.migration_policy).
BadInput = migration_policy.BadValue


class AntiAffinityRule:
    __slots__ = ('level', 'hard', 'max_per_domain', 'source')

    def __init__(self, level, hard=True, max_per_domain=1, source='hints'):
        self.level = level
        self.hard = hard
        self.max_per_domain = max_per_domain
        self.source = source

    def __repr__(self):
        return ('%s anti-affinity at level %s, at most %d per domain (%s)'
                % (HARD if self.hard else SOFT, self.level,
                   self.max_per_domain, self.source))


def _is_set(obj, name):
    """obj.obj_attr_is_set(name), without building the field list.

    oslo.versionedobjects keeps a set field's value in ``_obj_<name>``; an
    unset lazy-loadable field (InstanceGroup.hosts) must not be read, or it
    is loaded from the database.
    """
    return hasattr(obj, '_obj_' + name)


def _hints(spec_obj):
    if not _is_set(spec_obj, 'scheduler_hints'):
        return {}
    return spec_obj.scheduler_hints or {}


def _hint(hints, name):
    """A hint's single value (str) or None; BadInput if given twice."""
    return migration_policy.single(hints, name)


_int = migration_policy.integer
_choice = migration_policy.choice


def flavor_specs(spec_obj):
    """The flavor's extra specs ({} if none)."""
    if not _is_set(spec_obj, 'flavor') or spec_obj.flavor is None:
        return {}
    flavor = spec_obj.flavor
    if not _is_set(flavor, 'extra_specs'):
        return {}
    return flavor.extra_specs or {}


def parse_sal(spec_obj):
    """The flavor's ha:sal as an int, None, or BadInput."""
    return parse_sal_specs(flavor_specs(spec_obj))


def parse_sal_specs(specs):
    """ha:sal of a flavor's extra specs (a dict) as an int, None, or
    BadInput (also used outside the scheduler: nova_ha.capacity)."""
    value = (specs or {}).get(SPEC_SAL)
    if value is None:
        return None
    value = str(value).strip()
    _choice('flavor extra spec', SPEC_SAL, value, ('1', '2', '3'))
    return int(value)


def parse_anti_affinity(spec_obj, levels):
    """The request's AntiAffinityRule or None; BadInput on a bad value.

    :param levels: the levels a hint may name
    """
    return anti_affinity_of(_hints(spec_obj), levels)


def anti_affinity_of(hints, levels, conflicts='log'):
    """AntiAffinityRule or None from a hints dict; BadInput on a bad value.

    ``different_failure_domain=true`` with ``ha_anti_affinity_level``:
    the level hint wins; ``conflicts='log'`` (the scheduler) logs a
    WARNING naming both and the rule applied, ``conflicts='refuse'`` (the
    API filter) raises BadInput.
    """
    hints = hints or {}
    level = _hint(hints, HINT_LEVEL)
    mode = _hint(hints, HINT_MODE)
    max_per = _hint(hints, HINT_MAX_PER_DOMAIN)
    vexxhost = _hint(hints, HINT_VEXXHOST)
    if level is not None:
        _choice('hint', HINT_LEVEL, level, tuple(levels))
    if mode is not None:
        _choice('hint', HINT_MODE, mode, (HARD, SOFT))
    if max_per is not None:
        max_per = _int('hint', HINT_MAX_PER_DOMAIN, max_per, 1)
    if vexxhost is not None:
        raw = vexxhost
        try:
            vexxhost = strutils.bool_from_string(vexxhost, strict=True)
        except ValueError:
            raise BadInput('hint', HINT_VEXXHOST, vexxhost,
                           'must be true or false')
        if vexxhost and level is not None and \
                level != topology.FAILURE_DOMAIN:
            if conflicts == 'refuse':
                raise BadInput('hint', HINT_VEXXHOST, raw,
                               'conflicts with hint %s=%s (give one of '
                               'them)' % (HINT_LEVEL, level))
            LOG.warning('conflicting hints %s=%s and %s=%s: applying the '
                        'level hint (%s anti-affinity at level %s, at most '
                        '%d per domain)', HINT_VEXXHOST, raw, HINT_LEVEL,
                        level, SOFT if mode == SOFT else HARD, level,
                        max_per or 1)
    if level is None:
        for name, value in ((HINT_MODE, mode),
                            (HINT_MAX_PER_DOMAIN, max_per)):
            if value is not None:
                raise BadInput('hint', name, value,
                               'needs the hint %s' % HINT_LEVEL)
        if vexxhost:
            return AntiAffinityRule(topology.FAILURE_DOMAIN, True, 1,
                                    'hint %s=true' % HINT_VEXXHOST)
        return None
    return AntiAffinityRule(level, mode != SOFT, max_per or 1,
                            'hint %s=%s' % (HINT_LEVEL, level))


def check_hints(hints, levels):
    """Check every nova-ha hint of a request (a dict, as in the body of
    ``POST /servers``): BadInput naming the first bad or conflicting one.
    The API filter (nova_ha.scheduler.api_filter) refuses it with 400."""
    anti_affinity_of(hints, levels, conflicts='refuse')
    migration_of(hints, {})


def parse_migration(spec_obj):
    """The migration Policy of flavor extra specs and hints; BadInput if
    bad."""
    return migration_of(_hints(spec_obj), flavor_specs(spec_obj))


def migration_of(hints, specs):
    """The :class:`nova_ha.migration_policy.Policy` of a hints dict and
    extra specs; BadInput if bad."""
    return migration_policy.parse(specs, hints, migration_policy.HINT)


def configure_topology():
    """Point HOST_TOPOLOGY at the configured levels; returns it.

    Raises TopologyError if ``[topology] levels`` is unusable.
    """
    try:
        levels = CONF.topology.levels
        default_az = getattr(CONF, 'default_availability_zone', None) or \
            topology.DEFAULT_AZ
    except (cfg.Error, ValueError) as exc:
        raise topology.TopologyError('bad [topology] levels: %s' % exc)
    HOST_TOPOLOGY.configure(levels, default_az)
    return HOST_TOPOLOGY


def reject_all(filter_name, exc, spec_obj):
    """Log why a filter refuses every host for this request; returns [].

    Used when the request or the configuration is unusable (bad hint or
    extra spec, bad [topology] levels, a failed lookup): failing closed
    keeps a VNF's placement rules from being silently ignored.
    """
    LOG.error('%s: server group %s: %s; rejecting every host for instance '
              '%s', filter_name, group_name(for_spec(spec_obj)), exc,
              spec_obj.instance_uuid if _is_set(spec_obj, 'instance_uuid')
              else 'n/a')
    return []


def option(name, default):
    """``[ha_scheduler] <name>``; a bad value logs an ERROR, gives default."""
    try:
        return getattr(CONF.ha_scheduler, name)
    except (cfg.Error, ValueError) as exc:
        LOG.error('nova-ha: bad [ha_scheduler] %s: %s; using %r', name, exc,
                  default)
        return default


class RequestInfo:
    """What nova-ha's filters know about one scheduling request."""

    def __init__(self, spec_obj):
        self.instance_uuid = spec_obj.instance_uuid \
            if _is_set(spec_obj, 'instance_uuid') else None
        self.context = spec_obj.obj_context
        group = None
        if _is_set(spec_obj, 'instance_group'):
            group = spec_obj.instance_group
        self.group = group
        self.group_uuid = (group.uuid if group is not None and
                           _is_set(group, 'uuid') else None)
        self.members = frozenset(
            group.members if group is not None and
            _is_set(group, 'members') and group.members else ())
        hosts = self._group_hosts()
        # nova appends the host chosen for each instance of a multi-create
        # request to group.hosts; the entries after this baseline are them.
        self.baseline = len(hosts) if hosts is not None else 0
        self._lock = threading.RLock()
        self._memo = {}

    def _group_hosts(self):
        group = self.group
        if group is None or not _is_set(group, 'hosts'):
            return None
        return group.hosts

    def _once(self, key, fn):
        """fn() once per request; its exception is remembered too."""
        try:
            ok, value = self._memo[key]
        except KeyError:
            with self._lock:
                if key not in self._memo:
                    try:
                        self._memo[key] = (True, fn())
                    except Exception as exc:
                        self._memo[key] = (False, exc)
                ok, value = self._memo[key]
        if ok:
            return value
        raise value

    def once(self, key, fn):
        """fn() once per request (e.g. a log line); returns its value."""
        return self._once(('once',) + tuple(key), fn)

    # -- parsed input --------------------------------------------------------

    def anti_affinity(self, spec_obj, levels):
        return self._once(('anti', tuple(levels)),
                          lambda: parse_anti_affinity(spec_obj, levels))

    def migration_rules(self, spec_obj):
        return self._once('migration', lambda: parse_migration(spec_obj))

    def sal(self, spec_obj):
        return self._once('sal', lambda: parse_sal(spec_obj))

    # -- database look-ups ----------------------------------------------------

    def _instances(self):
        def load():
            uuids = set(self.members)
            if self.instance_uuid:
                uuids.add(self.instance_uuid)
            return _lookup.instances(self.context, uuids)
        return self._once('instances', load)

    def operation(self):
        """'boot', 'other' or the type of the instance's in-progress move."""
        def find():
            if not self.instance_uuid:
                return BOOT
            found = self._instances()
            migs = found.migrations.get(self.instance_uuid)
            if migs:
                return migs[0].migration_type
            if self.instance_uuid in found.missing:
                raise lookup_mod.LookupFailed(
                    'instance %s is mapped to a cell that has no record of '
                    'it: cannot tell whether this request is a boot or a '
                    'move' % self.instance_uuid)
            if found.hosts.get(self.instance_uuid):
                return OTHER
            return BOOT
        return self._once('operation', find)

    def moving_members(self):
        """Other members in an in-progress voluntary move: {uuid: type}."""
        def find():
            found = self._instances()
            out = {}
            for uuid, migs in found.migrations.items():
                if uuid == self.instance_uuid or uuid not in self.members:
                    continue
                for mig in migs:
                    if mig.migration_type in lookup_mod.VOLUNTARY_MOVES:
                        out[uuid] = mig.migration_type
                        break
            return out
        return self._once('moving', find)

    def _member_base(self, level, levels, default_az):
        """({domain: members}, {domain: hosts}) of the other members.

        A member counts in the domain of its host and, while it moves, in
        the domains of the move's source and destination too (it holds
        resources in both until the move ends). The instance being
        scheduled does not count (a move leaves its own domain).

        The second dict holds the domains of hosts that nova's own
        RequestSpec lists as running members (``instance_group.hosts``,
        which nova's conductor fills from the cell databases for every
        request) but where the look-up found none: the look-up's answer is
        short, so those domains are treated as full (see
        :meth:`domain_counts`).

        Raises LookupFailed when it cannot decide: the aggregate look-up
        did not answer for a member's host, or a member's host is in no
        domain of the level or in two.
        """
        def count():
            found = self._instances()
            host_of, migrations = found.hosts, found.migrations
            me = self.instance_uuid
            single = []              # hosts of members not moving
            moving = []              # host sets of members in a move
            explained = set()        # hosts where the look-up found us
            for uuid in self.members:
                host = host_of.get(uuid)
                migs = migrations.get(uuid)
                hosts = {host} if host else set()
                for mig in migs or ():
                    hosts.update(h for h in (mig.source_compute,
                                             mig.dest_compute) if h)
                explained.update(hosts)
                if uuid == me:
                    continue
                if not migs:
                    if host:
                        single.append(host)
                    continue
                moving.append(hosts)
            if me and me not in self.members:
                explained.add(host_of.get(me))
            nova_hosts = self._group_hosts() or []
            unexplained = {h for h in nova_hosts[:self.baseline]
                           if h and h not in explained}
            all_hosts = set(single) | unexplained
            for hosts in moving:
                all_hosts.update(hosts)
            domain_of = self._domains_of(all_hosts, level, levels,
                                         default_az)
            counts = {}
            for host in single:
                d = domain_of[host]
                counts[d] = counts.get(d, 0) + 1
            for hosts in moving:
                # A moving member counts once in each domain it touches.
                for d in {domain_of[h] for h in hosts}:
                    counts[d] = counts.get(d, 0) + 1
            forced = {}
            for host in sorted(unexplained):
                forced.setdefault(domain_of[host], []).append(host)
            if forced:
                LOG.warning(
                    'nova-ha: server group %s: nova lists %s as running '
                    'members but the member look-up found none there (%d '
                    'members, %d placed); treating %s %s as full',
                    group_name(self), ', '.join(sorted(unexplained)),
                    len(self.members), len(host_of), level,
                    ', '.join(sorted(forced)))
            return counts, forced
        return self._once(('base', level, tuple(levels), default_az), count)

    def _domains_of(self, hosts, level, levels, default_az):
        """{host: domain} at `level`, every host in exactly one domain.

        Raises LookupFailed if the look-up's answer leaves a host out or
        puts one in no domain or in two: the filter cannot tell which
        domain that member holds.
        """
        if level == topology.HOST:
            return {h: h for h in hosts}
        if not hosts:
            return {}
        domain_of = _lookup.domains(self.context, set(hosts), level, levels,
                                    default_az)
        unanswered = sorted(h for h in hosts if h not in domain_of)
        if unanswered:
            raise lookup_mod.LookupFailed(
                'the aggregate look-up answered for %d of %d member hosts '
                '(no answer for %s): cannot tell which %s domains hold '
                'members' % (len(hosts) - len(unanswered), len(hosts),
                             ', '.join(unanswered), level))
        bad = sorted(h for h in hosts if domain_of[h] is None or
                     domain_of[h] is topology.CONFLICT)
        if bad:
            raise lookup_mod.LookupFailed(
                'member host(s) %s in no single %s domain (no aggregate with '
                '%s, or two different ones): cannot tell which %s domain '
                'holds the member' % (', '.join(bad), level,
                                      ' or '.join(topology.level_keys(level)),
                                      level))
        return domain_of

    def domain_counts(self, level, host_topology, limit=1):
        """{domain: members} now: the databases plus this request's picks.

        A domain holding a host that nova lists as running members while
        the look-up found none there counts as at least `limit` (full).
        """
        base, forced = self._member_base(level, host_topology.levels,
                                         host_topology.default_az)
        hosts = self._group_hosts()
        picks = hosts[self.baseline:] if hosts is not None and \
            len(hosts) > self.baseline else ()
        if not picks and not forced:
            return base
        counts = dict(base)
        for d in forced:
            counts[d] = max(counts.get(d, 0), limit)
        unknown = []
        for host in picks:
            if level == topology.HOST:
                d = host
            else:
                info = host_topology.cached(host)
                d = info.domains.get(level) if info is not None else None
            if d is None or d is topology.CONFLICT:
                unknown.append(host)
            else:
                counts[d] = counts.get(d, 0) + 1
        if unknown:
            # Picked earlier in this request but not in the cache (it was
            # reset meanwhile): ask the databases; fail if they cannot say.
            domain_of = self._domains_of(set(unknown), level,
                                         host_topology.levels,
                                         host_topology.default_az)
            for host in unknown:
                d = domain_of[host]
                counts[d] = counts.get(d, 0) + 1
        return counts


_requests = {}


def for_spec(spec_obj):
    """The RequestInfo of this RequestSpec object (created on first use)."""
    key = id(spec_obj)
    entry = _requests.get(key)
    if entry is not None and entry[0]() is spec_obj:
        return entry[1]
    info = RequestInfo(spec_obj)

    def forget(ref, key=key):
        current = _requests.get(key)
        if current is not None and current[0] is ref:
            _requests.pop(key, None)

    try:
        ref = weakref.ref(spec_obj, forget)
    except TypeError:   # not weak-referenceable: no caching
        return info
    _requests[key] = (ref, info)
    return info


def group_name(info):
    return info.group_uuid or 'n/a'
