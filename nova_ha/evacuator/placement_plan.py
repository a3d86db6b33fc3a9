"""Recovery placement: spread a burst of evacuations over the eligible hosts.

Why: the evacuator issues a failed host's evacuate calls within a second.
With no target host, every one of those concurrent scheduling requests
weighs the same host states (nova consumes a chosen host's resources in
its in-memory view only after the placement claim, and each scheduler
worker has its own view), so most of the burst lands on the one
least-loaded host. That host's resource tracker then takes the claims one
at a time, re-reading the placement allocations of every instance on it
for each claim: work that grows with the square of the pile. And the next
failure of that host takes all the recovered instances with it.

What: the evacuator knows the whole burst. For each instance it starts it
plans a target host from the shared topology model (nova_ha.topology),
Nova's compute services, the journal (hosts under recovery, what this
failure has already placed where) and the server groups' members; then it
calls evacuate *with* that host at microversion 2.94, where Nova puts the
host in the RequestSpec's ``requested_destination`` and runs the scheduler
on it (no force exists any more since 2.68): every filter -- server-group
policy, nova-ha anti-affinity levels, SAL, migration policy, capacity --
still decides. If the scheduler refuses the planned host (No valid host),
:meth:`Planner.refused` says so and the engine evacuates the instance again
with no host: the plan is advice, never a rule.

The plan:

- eligible hosts: nova-compute up, enabled, not forced down, journal host
  state OK (never a host being recovered), certified for the instance's
  SAL (``ha:sal``, the SALFilter's rule), and not marked
  COMPUTE_STATUS_DISABLED in placement (a host enabled again keeps that
  trait until its nova-compute syncs it, and nova's scheduler asks
  placement for providers without it: a plan there is always refused);
- at most ``[recovery_placement] max_per_host`` instances per host from
  one failure (every recovery open at once counts as one failure); 0
  derives it: ceil(instances to recover / eligible hosts);
- a server group's members: the hosts of the other members (where they
  run, or where this plan sent them) are avoided at every topology level,
  from the coarsest level given up first while nothing is left -- the
  plan cannot see the group's ``ha_anti_affinity_level`` hint (it lives in
  Nova's RequestSpec), so it avoids as much as the topology allows and
  lets the scheduler judge;
- among what is left, the host that has received least from this failure,
  then the one whose rack (or the coarsest level's domain) has received
  least, then a rotation keyed by the instance (no fixed favourite host).

An instance that no host can take under the limit is evacuated with no
host.
"""

import collections
import datetime
import hashlib
import logging
import math
import time

from nova_ha import topology as topology_mod

LOG = logging.getLogger(__name__)

PLANNED = 'planned'       # marker in the evacuate step's detail
# The last_error of an item re-issued because its evacuate call left no
# trace in Nova: that attempt is planned again like a first one.
NEVER_REACHED_NOVA = 'no trace in Nova of the evacuate call'
# Nova's compute_status_filter asks placement for providers without it.
DISABLED_TRAIT = 'COMPUTE_STATUS_DISABLED'
DISABLED_TRAIT_VERSION = '1.18'    # ?required=<trait>
# Evacuators may run on other control nodes: a journal time this close to
# a server list's read may come from a clock a little ahead or behind.
CLOCK_SLACK = datetime.timedelta(seconds=2)


def planner(engine):
    """The engine's Planner (made on first use)."""
    p = getattr(engine, '_placement_planner', None)
    if p is None:
        p = engine._placement_planner = Planner(engine)
    return p


def _opts(conf):
    try:
        return conf.recovery_placement
    except Exception:   # noqa: BLE001 -- a ConfigOpts without the group
        from nova_ha.conf import recovery_placement
        recovery_placement.register_opts(conf)
        return conf.recovery_placement


def step_detail(name, target):
    """The evacuate step's detail (the timeline shows the plan)."""
    if not target:
        return name
    return '%s -> %s (%s)' % (name, target, PLANNED)


class Planner:
    def __init__(self, engine, clock=time.monotonic):
        self.engine = engine
        self.clock = clock
        self.opts = _opts(engine.conf)
        # instance uuid -> (attempt, planned host) of evacuations this
        # planner asked for (the journal's evacuate step keeps it too).
        self.planned = {}
        self._members = None      # (read at, {uuid: host}, {group: [uuid]})
        self._disabled = None     # (read at, {host}) COMPUTE_STATUS_DISABLED
        # () -> {host}: the hosts placement marks disabled (tests replace it).
        self.disabled_source = self._read_disabled
        self._disabled_unreadable = False

    # -- the plan ------------------------------------------------------------
    def targets(self, rec, items):
        """{instance uuid: host or None} for ``items`` about to be evacuated
        from ``rec.host`` (their attempt is ``item.attempts + 1``). Never
        raises: a plan that cannot be made is no plan (None: the scheduler
        chooses)."""
        if not items or not self.opts.plan_targets:
            return {}
        try:
            return self._targets(rec, items)
        except Exception:   # noqa: BLE001 -- advice only
            LOG.exception('recovery placement: no plan for %s', rec.host)
            return {}

    def _targets(self, rec, items):
        eng = self.engine
        journal = eng.journal
        topo = eng.topology
        first = [i for i in items if _unplanned_yet(i)]
        if not first or topo is None:
            return {}
        states = journal.host_state_map()
        disabled = self._disabled_hosts()
        eligible = sorted(
            h for h, svc in eng.services.items()
            if getattr(svc, 'state', 'up') == 'up'
            and getattr(svc, 'status', 'enabled') == 'enabled'
            and not getattr(svc, 'forced_down', False)
            and getattr(states.get(h), 'state', 'OK') == 'OK'
            and h not in disabled
            and h in topo)
        if not eligible:
            return {}
        received, burst = self._received(journal)
        cap = self.opts.max_per_host or max(
            1, math.ceil(burst / float(len(eligible))))
        levels = [lv for lv in topo.levels]
        members, groups = self._group_members(first)
        spread_level = levels[-1] if len(levels) > 1 else None
        for lv in levels:
            if lv != topology_mod.HOST:
                spread_level = lv      # the finest level above host
                break
        by_domain = collections.Counter()
        if spread_level:
            for host, n in received.items():
                by_domain[_dom(topo, host, spread_level)] += n
        out = {}
        # The most constrained first (server-group members: fewest hosts
        # left to them), then by recovery priority.
        for item in sorted(first, key=lambda i: (not i.server_group,
                                                 -i.priority,
                                                 i.instance_uuid)):
            hosts = [h for h in eligible if received[h] < cap]
            if item.sal is not None:
                hosts = [h for h in hosts
                         if topo.host(h).certified_for(item.sal)]
            if item.server_group:
                siblings = [members[m] for m in groups.get(
                    item.server_group, ()) if m != item.instance_uuid
                    and m in members]
                siblings = [self._now_at(m, h)[1] for m, h in siblings
                            if h or m in self.planned]
                hosts = _away_from(topo, levels, hosts,
                                   [h for h in siblings if h])
            if not hosts:
                out[item.instance_uuid] = None
                continue
            key = item.instance_uuid.encode()
            target = min(hosts, key=lambda h: (
                received[h],
                by_domain[_dom(topo, h, spread_level)] if spread_level
                else 0,
                hashlib.sha1(key + h.encode()).digest()))
            received[target] += 1
            if spread_level:
                by_domain[_dom(topo, target, spread_level)] += 1
            out[item.instance_uuid] = target
            self.planned[item.instance_uuid] = (item.attempts + 1, target)
            if item.server_group:
                members[item.instance_uuid] = (item.instance_uuid, target)
        LOG.info('recovery placement for %s: %s (at most %d per host, %d '
                 'eligible hosts, %d instance(s) in this failure)',
                 rec.host, ', '.join('%s=%s' % (u[:8], h)
                                     for u, h in sorted(out.items())),
                 cap, len(eligible), burst)
        return out

    def _now_at(self, uuid, host):
        planned = self.planned.get(uuid)
        return (uuid, planned[1]) if planned else (uuid, host)

    def _received(self, journal):
        """(Counter {host: instances this failure sent or is sending
        there}, number of instances this failure recovers): over every
        recovery open now."""
        received = collections.Counter()
        burst = 0
        live = set()
        for r in journal.list_recoveries(states=['open']):
            for item in journal.list_recovery_items(r.id):
                if item.state == 'skipped':
                    continue
                burst += 1
                live.add(item.instance_uuid)
                if item.state == 'done' and item.dest_host:
                    received[item.dest_host] += 1
                elif item.state == 'evacuating':
                    planned = self.planned.get(item.instance_uuid)
                    if planned and planned[0] == item.attempts:
                        received[planned[1]] += 1
        # Forget the plans of instances no open recovery holds any more.
        for uuid in [u for u in self.planned if u not in live]:
            del self.planned[uuid]
        return received, burst

    def _group_members(self, items):
        """({member uuid: (uuid, host)}, {group id: [member uuids]}) for the
        server groups of ``items``: one server-group list and one server
        list, reused for member_cache_seconds."""
        wanted = sorted({i.server_group for i in items if i.server_group})
        if not wanted:
            return {}, {}
        now = self.clock()
        cached = self._members
        if cached is None or now - cached[0] > \
                self.opts.member_cache_seconds:
            read_at = _utcnow()
            nova = self.engine.ops.nova
            groups = {g.id: list(g.members) for g in
                      nova.server_groups.list(all_projects=True)}
            hosts = {s.id: getattr(s, 'OS-EXT-SRV-ATTR:host', None)
                     for s in nova.servers.list(
                         search_opts={'all_tenants': True})}
            cached = self._members = (now, hosts, groups, read_at)
        _, hosts, groups, read_at = cached
        hosts = dict(hosts)
        # A member this (or another) evacuator moved since that server list
        # was read: its recovery may have closed already, so no plan of
        # ours remembers it, and the list still shows its failed host.
        # The journal's ``done`` (Nova showed it ACTIVE there) is newer.
        for group in wanted:
            for done in self.engine.journal.list_recovery_items(
                    states=['done'], server_group=group):
                finished = _aware(getattr(done, 'finished_at', None))
                if done.dest_host and finished is not None and \
                        finished >= read_at - CLOCK_SLACK:
                    hosts[done.instance_uuid] = done.dest_host
        members = {m: (m, hosts.get(m)) for g in groups.values() for m in g}
        return members, groups

    def _disabled_hosts(self):
        """{host} whose placement provider has COMPUTE_STATUS_DISABLED,
        reused for member_cache_seconds; empty if placement cannot be read
        (the scheduler still judges every plan)."""
        now = self.clock()
        cached = self._disabled
        if cached is not None and now - cached[0] <= \
                self.opts.member_cache_seconds:
            return cached[1]
        try:
            hosts = frozenset(self.disabled_source())
        except Exception as exc:   # noqa: BLE001 -- advice only
            # Said once at WARNING (a cloud without a reachable placement
            # endpoint would say it with every plan otherwise).
            (LOG.debug if self._disabled_unreadable else LOG.warning)(
                'recovery placement: cannot read the disabled compute '
                'providers from placement (%s); planning without them '
                '([capacity] placement_endpoint, or the service catalog of '
                'the [nova] credentials)', exc)
            self._disabled_unreadable = True
            hosts = frozenset()
        self._disabled = (now, hosts)
        return hosts

    def _read_disabled(self):
        """One placement call (providers with the trait); the hypervisor
        list that maps them to hosts only when there are any."""
        from nova_ha.capacity import collect
        nova = self.engine.ops.nova
        conf = self.engine.conf
        sess = nova.client.session
        placement_get = collect.placement_getter(sess, conf, {
            'service_type': 'placement',
            'interface': conf.nova.endpoint_type,
            'region_name': conf.nova.region_name},
            version=DISABLED_TRAIT_VERSION)
        rps = placement_get('/resource_providers?required=%s'
                            % DISABLED_TRAIT).get('resource_providers', [])
        if not rps:
            return set()
        uuids = {rp['uuid'] for rp in rps}
        compute_get = collect.compute_getter(
            sess, endpoint=nova.client.get_endpoint())
        # At 2.53 a hypervisor's id is its compute node's uuid, which is
        # its resource provider's uuid.
        return {(hv.get('service') or {}).get('host')
                or hv.get('hypervisor_hostname')
                for hv in collect.paged(compute_get,
                                        '/os-hypervisors/detail',
                                        'hypervisors',
                                        collect.HYPERVISOR_VERSION)
                if hv.get('id') in uuids}

    # -- the fallback --------------------------------------------------------
    def refused(self, rec, item):
        """True if the evacuation that just failed went to a planned host
        (this planner's, or, after a leader change, the journal's evacuate
        step says so): the engine then evacuates it again with no host."""
        planned = self.planned.get(item.instance_uuid)
        if planned is not None:
            return planned[0] == item.attempts
        step = 'evacuate:%s%s' % (item.instance_uuid, '#%d' % item.attempts
                                  if item.attempts > 1 else '')
        try:
            for entry in self.engine.journal.timeline(rec.id):
                if entry.step == step:
                    return '(%s)' % PLANNED in (entry.detail or '')
        except Exception:   # noqa: BLE001 -- then it was not planned
            LOG.exception('reading the timeline of recovery %s', rec.id)
            return False
        # No step: the leader that made the call died before recording
        # Nova's answer, so whether it named a host is unknown. A first
        # attempt is planned whenever planning is on: evacuate it again
        # with no host (the scheduler's own choice) rather than give up
        # on a refusal that may have been of our plan only.
        return bool(self.opts.plan_targets) and item.attempts == 1


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _aware(at):
    if at is not None and at.tzinfo is None:
        return at.replace(tzinfo=datetime.timezone.utc)
    return at


def _unplanned_yet(item):
    """Planned: a first attempt, or one after attempts that never reached
    Nova (their leader died between the journal and the call:
    evacuation.Evacuations re-issues them with NEVER_REACHED_NOVA). A
    retry after Nova ran one (refused, failed) lets the scheduler
    choose."""
    return not item.attempts or (item.last_error or '').startswith(
        NEVER_REACHED_NOVA)


def _dom(topo, host, level):
    d = topo.domain(host, level)
    return None if d is topology_mod.CONFLICT else d


def _away_from(topo, levels, hosts, siblings):
    """``hosts`` outside the siblings' domains at as many levels as leave
    a host (the coarsest level given up first); [] if even the siblings'
    hosts themselves leave nothing."""
    if not siblings:
        return hosts
    for k in range(len(levels), 0, -1):
        avoid = {(lv, _dom(topo, s, lv)) for s in siblings
                 for lv in levels[:k]}
        avoid = {(lv, d) for lv, d in avoid if d is not None}
        left = [h for h in hosts if not any(
            (lv, _dom(topo, h, lv)) in avoid for lv in levels[:k])]
        if left:
            return left
    return []


def spread(items):
    """{dest host: instances recovered there} of a recovery's items."""
    return collections.Counter(i.dest_host for i in items
                               if i.state == 'done' and i.dest_host)


def spread_text(items):
    """The spread line of ``nova-ha recovery show`` ('' if nothing was
    recovered yet)."""
    counts = spread(items)
    if not counts:
        return ''
    return '%s  (most on one host: %d, over %d host(s))' % (
        ', '.join('%s %d' % hc for hc in sorted(counts.items())),
        max(counts.values()), len(counts))
