"""Pure drain planning: what each instance tolerates, how it moves, and
which waiting moves may start now. No I/O here (unit-tested alone).

Where an instance's limits come from (the Nova API does not return a
server's scheduler hints after create):

* flavor extra specs, embedded in the server (microversion >= 2.47):
  ``ha:live_migration=allowed|forbidden``, ``ha:max_interruption_ms=N``;
* instance metadata, which a VNF manager may set at any time -- the way to
  tell the drain a VNF's limits:
  ``ha_live_migration=allowed|forbidden``, ``ha_cold_migration=allowed|
  forbidden``, ``ha_max_interruption_ms=N``, ``ha_max_concurrent_moves=N``
  (per server group: the smallest value set on the group's members being
  drained), ``ha_pinned=true`` (may not move at all);
* nova-ha's ``[maintenance]`` defaults.

The keys are parsed by :mod:`nova_ha.migration_policy` (the scheduler's
parser too): a flavor spec and a metadata key on the same subject combine
to the stricter of the two (a VNF manager can only tighten what the
operator's flavor says). A malformed value blocks the instance with a
message naming the key and the value -- nothing is guessed, nothing is
forced.

Method, in this order:

1. pinned (``ha_pinned=true``) -> blocked;
2. ``SHUTOFF`` -> cold migration (nothing runs, so nothing is interrupted),
   unless cold migration is forbidden -> blocked;
3. ``ACTIVE``/``PAUSED``: live when live migration is allowed and the
   expected live-migration downtime fits ``max_interruption_ms``;
4. otherwise (``ACTIVE`` only) cold when cold migration is allowed and its
   expected interruption fits ``max_interruption_ms`` (unset = any);
5. otherwise blocked, with the reasons.

When the scheduler refuses a live migration (no valid host) the drain
falls back to a cold migration only under rule 4 (the policy tolerates a
cold migration's interruption); else the instance is blocked.
"""

import collections
import dataclasses

from nova_ha import migration_policy

LIVE, COLD = 'live', 'cold'
LIVE_STATUSES = ('ACTIVE', 'PAUSED')
COLD_STATUSES = ('ACTIVE', 'SHUTOFF')

#: A flavor spec or metadata value the drain cannot use.
BadValue = migration_policy.BadValue
#: One instance's move policy (``*_by`` say where a limit comes from).
Policy = migration_policy.Policy


@dataclasses.dataclass(frozen=True)
class Limits:
    """The ``[maintenance]`` numbers planning needs."""

    max_concurrent_moves: int = 4
    default_max_concurrent_moves_per_group: int = 1
    live_migration_downtime_ms: int = 500
    cold_migration_interruption_ms: int = 60000

    @classmethod
    def from_conf(cls, conf):
        g = conf.maintenance
        return cls(
            max_concurrent_moves=g.max_concurrent_moves,
            default_max_concurrent_moves_per_group=(
                g.default_max_concurrent_moves_per_group),
            live_migration_downtime_ms=g.live_migration_downtime_ms,
            cold_migration_interruption_ms=g.cold_migration_interruption_ms)


def policy_of(server):
    """Policy of a server (a dict as the Nova API returns it): its
    flavor's extra specs and its metadata, parsed by
    :func:`nova_ha.migration_policy.parse`.

    Raises BadValue for a malformed spec or metadata value.
    """
    flavor = server.get('flavor') or {}
    return migration_policy.parse(flavor.get('extra_specs'),
                                  server.get('metadata'),
                                  migration_policy.METADATA)


def _fits(policy, cost_ms):
    mi = policy.max_interruption_ms
    return mi is None or cost_ms <= mi


def cold_allowed(policy, status, limits):
    """(True, None) or (False, why not) for a cold migration."""
    if policy.pinned_by:
        return False, 'pinned (%s)' % policy.pinned_by
    if policy.cold_forbidden_by:
        return False, 'cold migration forbidden (%s)' % (
            policy.cold_forbidden_by)
    if status not in COLD_STATUSES:
        return False, 'nova cannot cold-migrate an instance in status %s' % (
            status)
    if status == 'SHUTOFF':
        return True, None
    if not _fits(policy, limits.cold_migration_interruption_ms):
        return False, ('a cold migration interrupts it for about %d ms, '
                       'more than %s' % (limits.cold_migration_interruption_ms,
                                         policy.max_interruption_by))
    return True, None


def live_allowed(policy, status, limits):
    if policy.pinned_by:
        return False, 'pinned (%s)' % policy.pinned_by
    if policy.live_forbidden_by:
        return False, 'live migration forbidden (%s)' % (
            policy.live_forbidden_by)
    if status not in LIVE_STATUSES:
        return False, 'status %s (live migration needs ACTIVE or PAUSED)' % (
            status)
    if not _fits(policy, limits.live_migration_downtime_ms):
        return False, ('a live migration interrupts it for about %d ms, '
                       'more than %s' % (limits.live_migration_downtime_ms,
                                         policy.max_interruption_by))
    return True, None


def choose_method(server, limits):
    """-> (method or None, reason). None means blocked; reason says why.

    For a movable instance the reason explains the choice (e.g. why not
    live) or is None for a plain live migration.
    """
    status = server.get('status')
    try:
        policy = policy_of(server)
    except BadValue as exc:
        return None, str(exc)
    if policy.pinned_by:
        return None, 'pinned: may not move (%s)' % policy.pinned_by
    if status == 'SHUTOFF':
        ok, why = cold_allowed(policy, status, limits)
        return (COLD, 'SHUTOFF: cold migration') if ok else (None, why)
    live_ok, live_why = live_allowed(policy, status, limits)
    if live_ok:
        return LIVE, None
    cold_ok, cold_why = cold_allowed(policy, status, limits)
    if cold_ok:
        return COLD, 'not live: %s' % live_why
    if status not in LIVE_STATUSES + COLD_STATUSES:
        return None, ('status %s: nova-ha moves ACTIVE, PAUSED and SHUTOFF '
                      'instances only' % status)
    return None, 'may not move: %s; %s' % (live_why, cold_why)


def fallback_after_live_failure(server, limits):
    """After the scheduler refused a live migration: (COLD, why) when the
    instance's policy tolerates a cold migration, else (None, why not)."""
    try:
        policy = policy_of(server)
    except BadValue as exc:
        return None, str(exc)
    ok, why = cold_allowed(policy, server.get('status'), limits)
    if ok:
        return COLD, None
    return None, why


def group_limits(servers, group_of, limits):
    """{group: (max concurrent moves, where from)} from members' metadata.

    :param servers: server dicts being drained
    :param group_of: {server id: group id}
    """
    out = {}
    for s in servers:
        g = group_of.get(s['id'])
        if g is None:
            continue
        try:
            p = policy_of(s)
        except BadValue:
            p = Policy()
        cur = out.get(g)
        if p.max_moves is not None and (cur is None or cur[1] is None
                                        or p.max_moves < cur[0]):
            out[g] = (p.max_moves, p.max_moves_by)
        elif cur is None:
            out[g] = (limits.default_max_concurrent_moves_per_group, None)
    return {g: (n, by or '[maintenance] default_max_concurrent_moves_per_'
                'group=%d' % n) for g, (n, by) in out.items()}


Candidate = collections.namedtuple('Candidate', 'instance_uuid group')


def pick(waiting, moving_by_group, moving_total, group_limit, global_limit):
    """Which waiting moves may start now, in order.

    :param waiting: [Candidate] in priority order
    :param moving_by_group: {group: moves in flight} (every active drain)
    :param moving_total: moves in flight, every active drain
    :param group_limit: {group: limit}; a group not named has no limit
        (instances outside any server group)
    :param global_limit: most moves in flight overall
    :returns: [Candidate] to start; never takes a group, or the total,
        beyond its limit
    """
    started = []
    by_group = collections.Counter(moving_by_group)
    total = moving_total
    for c in waiting:
        if total >= global_limit:
            break
        if c.group is not None:
            limit = group_limit.get(c.group)
            if limit is not None and by_group[c.group] >= limit:
                continue
            by_group[c.group] += 1
        started.append(c)
        total += 1
    return started


def order_waiting(waiting, remaining_by_group):
    """Start with the groups that have the most members left to move (the
    critical path when each group moves one at a time); stable otherwise.

    :param waiting: [Candidate] in journal order
    :param remaining_by_group: {group: waiting + moving members}
    """
    index = {id(c): i for i, c in enumerate(waiting)}
    return sorted(waiting, key=lambda c: (
        -remaining_by_group.get(c.group, 1) if c.group else -1,
        index[id(c)]))
