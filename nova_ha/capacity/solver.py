"""THE failover placement solver: used by ``nova-ha capacity check``, by
FailoverCapacityFilter and by the evacuator.

Question: a set of hosts fails; can the instances a policy protects on
them be re-placed on the surviving hosts, each on a host that

- is enabled, is not failed, is certified for the instance's SAL;
- has the flavor's vCPU, RAM and disk free (placement inventory minus
  usage, allocation ratios and reserved amounts applied);
- keeps the server group's hard anti-affinity rules (nova's
  ``anti-affinity`` policy at host level with its ``max_server_per_host``,
  nova-ha's ``ha_anti_affinity_level`` at its level with
  ``ha_max_per_domain``): members on surviving hosts count where they run,
  re-placed members where the plan puts them. Members on failed hosts
  count nowhere (they are being moved);

and, when not everything fits, which instances are stranded (the lowest
in the evacuator's order: SAL1 first, higher ``ha:recovery_priority``
first) and why.

Two algorithms:

- **greedy** (always first): instances in the evacuator's order, each on
  the surviving host with the most free room (worst fit, a heap of hosts:
  O(log H) per placement) among those it may use. Sound: a plan it
  reports is a real plan. Not complete: it may strand instances that a
  better arrangement places (bin packing is NP-hard). The benchmark
  (benchmarks/bench_capacity.py) measures how often on random clouds.
- **exact** (only when greedy strands something and the scenario has at
  most ``[capacity] exact_max_instances`` instances to place): depth-first
  backtracking with forward pruning (remaining demand vs remaining room per
  resource, per instance: at least one candidate left) and symmetry
  breaking (hosts with equal free room and equal domains are tried once).
  It keeps the evacuator's priorities: instances are admitted one by one in
  priority order, each kept only if everything admitted so far still fits
  together (so a stranded instance is never one of higher priority than a
  placed one that could have yielded). A search that exceeds
  ``exact_max_nodes`` leaves the greedy answer, marked not exact.
"""

import heapq

from nova_ha import topology
from nova_ha.capacity import model

NO_ROOM = 'no room'
RULE = 'rule'
SAL = 'sal'


class Stranded:
    __slots__ = ('instance', 'kind', 'reason')

    def __init__(self, instance, kind, reason):
        self.instance = instance
        self.kind = kind          # NO_ROOM, RULE or SAL
        self.reason = reason

    def as_dict(self):
        i = self.instance
        return {'uuid': i.uuid, 'name': i.name, 'host': i.host,
                'sal': i.sal, 'priority': i.priority, 'group': i.group,
                'kind': self.kind, 'reason': self.reason}


class Result:
    """The answer for one scenario."""

    def __init__(self, scenario, placed, stranded, exact, residual,
                 counts, nodes=0):
        self.scenario = scenario
        self.placed = placed          # {uuid: host}
        self.stranded = stranded      # [Stranded], in evacuator order
        self.exact = exact            # False: greedy answer only
        self.residual = residual      # {host: [vcpu, ram, disk]} after plan
        self.counts = counts          # {(group, level): {domain: n}}
        self.nodes = nodes

    @property
    def fits(self):
        return not self.stranded


class _Base:
    """What every scenario of one cloud starts from (made once per
    cloud): free room of the enabled hosts, the server groups' members
    per domain, the hosts sorted by room (a valid heap)."""

    def __init__(self, cloud):
        self.free = {h.name: tuple(h.free) for h in cloud.hosts.values()
                     if h.enabled}
        self.counts = {}
        for inst in cloud.instances.values():
            if not inst.group:
                continue
            for rule in inst.rules:
                d = cloud.domain(inst.host, rule.level)
                if d is None or d is topology.CONFLICT:
                    continue
                c = self.counts.setdefault((inst.group, rule.level), {})
                c[d] = c.get(d, 0) + 1
        self.heap = sorted((_room_key(f), h) for h, f in self.free.items())


def _base(cloud):
    base = cloud.__dict__.get('_solver_base')
    if base is None:
        base = cloud.__dict__['_solver_base'] = _Base(cloud)
    return base


class _Free:
    """Free room of the surviving hosts of one scenario: the cloud's,
    copied on write (a scenario touches few hosts)."""

    def __init__(self, base, failed):
        self.base = base
        self.failed = failed
        self.own = {}

    def __getitem__(self, h):
        f = self.own.get(h)
        if f is None:
            if h in self.failed:
                raise KeyError(h)
            f = self.base[h]
        return f

    def get(self, h, default=None):
        try:
            return self[h]
        except KeyError:
            return default

    def __contains__(self, h):
        return h in self.base and h not in self.failed

    def __iter__(self):
        failed = self.failed
        return (h for h in self.base if h not in failed)

    def items(self):
        return ((h, self[h]) for h in self)

    def writable(self, h):
        f = self.own.get(h)
        if f is None:
            f = self.own[h] = list(self[h])
        return f


class _Counts:
    """{(group, level): {domain: members}}, copied on write per key."""

    def __init__(self, base):
        self.base = base
        self.own = {}

    def get(self, key, default=None):
        c = self.own.get(key)
        if c is None:
            c = self.base.get(key, default)
        return c

    def writable(self, key):
        c = self.own.get(key)
        if c is None:
            c = self.own[key] = dict(self.base.get(key, {}))
        return c

    def keys(self):
        return set(self.base) | set(self.own)


class _State:
    """Free room and group counts while placing (one scenario)."""

    def __init__(self, cloud, failed):
        self.cloud = cloud
        self.failed = failed
        base = _base(cloud)
        self.base = base
        self.free = _Free(base.free, failed)
        self.counts = _Counts(base.counts)
        # Members on failed hosts count nowhere: they are being moved.
        on = cloud.on_host()
        for h in failed:
            for inst in on.get(h, ()):
                if inst.group:
                    for rule in inst.rules:
                        self._add_count(inst, rule, h, -1)

    def _add_count(self, inst, rule, host, n):
        d = self.cloud.domain(host, rule.level)
        if d is None or d is topology.CONFLICT:
            return
        c = self.counts.writable((inst.group, rule.level))
        c[d] = c.get(d, 0) + n

    def rule_ok(self, inst, host):
        for rule in inst.rules:
            d = self.cloud.domain(host, rule.level)
            if d is None or d is topology.CONFLICT:
                return False
            if inst.group and self.counts.get((inst.group, rule.level),
                                              {}).get(d, 0) \
                    >= rule.max_per_domain:
                return False
        return True

    def room_ok(self, inst, host):
        f = self.free[host]
        r = inst.res
        return f[0] >= r[0] and f[1] >= r[1] and f[2] >= r[2]

    def place(self, inst, host, sign=1):
        f = self.free.writable(host)
        r = inst.res
        f[0] -= sign * r[0]
        f[1] -= sign * r[1]
        f[2] -= sign * r[2]
        if inst.group:
            for rule in inst.rules:
                self._add_count(inst, rule, host, sign)


def _room_key(free):
    # Worst fit by RAM first (the scarce resource of NFV clouds), then
    # vCPU, then disk: the most room first.
    return (-free[1], -free[0], -free[2])


def to_place(cloud, scenario):
    """Instances the scenario's policy protects on its failed hosts, in
    the evacuator's order."""
    on = cloud.on_host()
    out = []
    for h in scenario.failed:
        for inst in on.get(h, ()):
            if scenario.policy.covers(inst):
                out.append(inst)
    out.sort(key=model.Instance.order_key)
    return out


def greedy(cloud, failed, instances):
    """(placed {uuid: host}, unplaced [inst], state) -- worst fit."""
    state = _State(cloud, failed)
    heap = list(state.base.heap)        # sorted: already a heap
    placed, unplaced = {}, []
    for inst in instances:
        aside = []
        chosen = None
        while heap:
            key, h = heapq.heappop(heap)
            if h in failed:
                continue
            f = state.free[h]
            if key != _room_key(f):
                continue          # stale: a fresh entry was pushed
            if f[1] < inst.res[1]:
                # The heap gives the most RAM first: no host left has
                # enough RAM.
                aside.append((key, h))
                break
            host = cloud.hosts[h]
            if (host.certified_for(inst.sal) and state.room_ok(inst, h)
                    and state.rule_ok(inst, h)):
                chosen = h
                break
            aside.append((key, h))
        for entry in aside:
            heapq.heappush(heap, entry)
        if chosen is None:
            unplaced.append(inst)
            continue
        state.place(inst, chosen)
        placed[inst.uuid] = chosen
        heapq.heappush(heap, (_room_key(state.free[chosen]), chosen))
    return placed, unplaced, state


class _Budget(Exception):
    pass


def _candidates(cloud, state, inst):
    return [h for h in state.free
            if cloud.hosts[h].certified_for(inst.sal)]


def _search(cloud, state, insts, cands, budget):
    """Backtracking: place every inst of insts; {uuid: host} or None."""
    order = sorted(range(len(insts)),
                   key=lambda i: (len(cands[i]), -insts[i].res[1],
                                  -insts[i].res[0]))
    insts = [insts[i] for i in order]
    cands = [cands[i] for i in order]
    need = [[0, 0, 0] for _ in range(len(insts) + 1)]
    for i in range(len(insts) - 1, -1, -1):
        for r in range(3):
            need[i][r] = need[i + 1][r] + insts[i].res[r]
    assign = {}
    # Hosts with equal free room, SAL and domains at every level a rule
    # of these instances names are interchangeable: try one of them.
    levels_used = sorted({r.level for i in insts for r in i.rules})

    def room_total(i):
        # Remaining room of the hosts any remaining instance may use.
        hosts = set()
        for c in cands[i:]:
            hosts.update(c)
        tot = [0, 0, 0]
        for h in hosts:
            f = state.free[h]
            for r in range(3):
                if f[r] > 0:
                    tot[r] += f[r]
        return tot

    def rec(i):
        budget[0] -= 1
        if budget[0] < 0:
            raise _Budget()
        if i == len(insts):
            return True
        tot = room_total(i)
        for r in range(3):
            if tot[r] < need[i][r]:
                return False
        inst = insts[i]
        tried = set()
        for h in sorted(cands[i], key=lambda h: _room_key(state.free[h])):
            if not state.room_ok(inst, h) or not state.rule_ok(inst, h):
                continue
            host = cloud.hosts[h]
            sig = (tuple(state.free[h]), host.sal,
                   tuple(str(host.domains.get(lv)) for lv in levels_used))
            if sig in tried:
                continue
            tried.add(sig)
            state.place(inst, h)
            assign[inst.uuid] = h
            if rec(i + 1):
                return True
            del assign[inst.uuid]
            state.place(inst, h, -1)
        return False

    if rec(0):
        return dict(assign)
    return None


def exact(cloud, failed, instances, max_nodes):
    """(placed, unplaced, state) keeping priorities; raises _Budget."""
    budget = [max_nodes]
    kept = []
    placed = {}
    unplaced = []
    for inst in instances:
        trial = kept + [inst]
        state = _State(cloud, failed)
        cands = [_candidates(cloud, state, i) for i in trial]
        found = _search(cloud, state, trial, cands, budget)
        if found is None:
            unplaced.append(inst)
        else:
            kept = trial
            placed = found
    state = _State(cloud, failed)
    for inst in kept:
        state.place(inst, placed[inst.uuid])
    return placed, unplaced, state


def solve(cloud, scenario, exact_max_instances=40, exact_max_nodes=200000,
          instances=None, force=None):
    """The :class:`Result` of one scenario.

    ``force``: 'greedy' or 'exact' (benchmark, tests); default greedy, then
    exact when greedy strands something and the scenario is small.
    """
    insts = to_place(cloud, scenario) if instances is None else instances
    failed = scenario.failed
    nodes = 0
    is_exact = True
    if force == 'exact':
        budget_ok = True
        try:
            placed, unplaced, state = exact(cloud, failed, insts,
                                            exact_max_nodes)
        except _Budget:
            budget_ok = False
        if not budget_ok:
            placed, unplaced, state = greedy(cloud, failed, insts)
            is_exact = False
    else:
        placed, unplaced, state = greedy(cloud, failed, insts)
        if unplaced:
            is_exact = False
            if force != 'greedy' and len(insts) <= exact_max_instances:
                try:
                    placed, unplaced, state = exact(cloud, failed, insts,
                                                    exact_max_nodes)
                    is_exact = True
                except _Budget:
                    pass
    stranded = [explain(cloud, failed, inst, state) for inst in unplaced]
    return Result(scenario, placed, stranded, is_exact, state.free,
                  state.counts, nodes)


def explain(cloud, failed, inst, state):
    """Why ``inst`` cannot be placed: SAL, no room, or a rule."""
    alive = [h for h in cloud.hosts.values()
             if h.enabled and h.name not in failed]
    certified = [h for h in alive if h.certified_for(inst.sal)]
    if not certified:
        return Stranded(inst, SAL, 'no surviving enabled host is certified '
                        'for SAL %s' % inst.sal)
    want = '%d vCPU, %d MB RAM, %d GB disk' % inst.res
    before = _State(cloud, failed)
    room = [h for h in certified if before.room_ok(inst, h.name)]
    if not room:
        return Stranded(inst, NO_ROOM, 'no room: none of the %d surviving '
                        'host(s) certified for SAL %s has %s free'
                        % (len(certified), inst.sal or '-', want))
    allowed = [h for h in room if before.rule_ok(inst, h.name)]
    if not allowed:
        rule = _blocking_rule(cloud, before, inst, room)
        return Stranded(inst, RULE, 'rule: server group %s, %s: the %d '
                        'surviving host(s) with %s free are all in full '
                        'domains' % (inst.group, rule, len(room), want))
    now_rule = [h for h in room if state.rule_ok(inst, h.name)]
    if not now_rule:
        rule = _blocking_rule(cloud, state, inst, room)
        return Stranded(inst, RULE, 'rule: server group %s, %s: the '
                        'domains with room are full once the instances '
                        'placed before it are re-placed' % (inst.group, rule))
    return Stranded(inst, NO_ROOM, 'no room: %d surviving host(s) had %s '
                    'free, taken by the re-placement of instances before '
                    'it in recovery order' % (len(allowed), want))


def _blocking_rule(cloud, state, inst, hosts):
    for rule in inst.rules:
        if all(not _rule_ok_one(cloud, state, inst, rule, h.name)
               for h in hosts):
            return rule
    return inst.rules[0] if inst.rules else 'anti-affinity'


def _rule_ok_one(cloud, state, inst, rule, host):
    d = cloud.domain(host, rule.level)
    if d is None or d is topology.CONFLICT:
        return False
    return state.counts.get((inst.group, rule.level), {}).get(d, 0) \
        < rule.max_per_domain


class Evaluation:
    """Every scenario of every policy, solved."""

    def __init__(self, results, approximate):
        self.results = results            # [Result]
        self.approximate = approximate    # {policy text: bool}

    @property
    def fits(self):
        return all(r.fits for r in self.results)

    def failing(self):
        return [r for r in self.results if not r.fits]


def evaluate(cloud, policies, exact_max_instances=40, exact_max_nodes=200000,
             max_scenarios=5000):
    results, approx = [], {}
    for policy in policies:
        scens, approx[policy.text] = model.scenarios(cloud, policy,
                                                     max_scenarios)
        for scen in scens:
            results.append(solve(cloud, scen, exact_max_instances,
                                 exact_max_nodes))
    return Evaluation(results, approx)


def options(conf):
    """Solver keyword arguments from [capacity]."""
    c = conf.capacity
    return {'exact_max_instances': c.exact_max_instances,
            'exact_max_nodes': c.exact_max_nodes,
            'max_scenarios': c.max_scenarios}
