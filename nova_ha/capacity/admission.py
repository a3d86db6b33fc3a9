"""Admission control: may one more instance go on host H?

Built once per scheduling request (:class:`Admission`), from the cloud
snapshot, the policies and the instance being placed (``candidate``); then
:meth:`Admission.refusal` answers per host in O(1) on average (a few
dictionary look-ups), so FailoverCapacityFilter never re-plans per host.

Once per request:

1. the failover plan of every scenario of every policy (the solver, the
   same as ``nova-ha capacity check``), the candidate not in the cloud (for
   a move: taken off its current host);
2. per host, the most any scenario's plan puts on it (per resource): the
   room the plan reserves there;
3. per domain, the most members of the candidate's server group any plan
   puts there (for the candidate's hard rules);
4. for a candidate a policy protects: per scenario, whether the candidate
   itself would find a host if that scenario's hosts failed (after the
   plan; the hosts are scanned by free room, stopping at the first fit).

Per host H the candidate is refused if

- it would take room the plan reserves on H (some scenario keeping H alive
  re-places instances there and the candidate's flavor no longer fits
  beside them), or
- its group's hard rule would be broken in some scenario's plan (a plan
  puts max_per_domain members in H's domain), or
- it is protected and a scenario that fails H leaves it nowhere to go, or
- it is protected and the policy is already violated (some scenario
  strands instances: no protected instance is admitted until room is
  made; unprotected instances may still use the room the plan does not
  reserve).

The test is sufficient, not necessary: it keeps each scenario's plan and
adds the candidate to it; a complete re-plan might still find room where
this refuses. It never admits a placement after which a scenario's plan no
longer exists.
"""

from nova_ha import topology
from nova_ha.capacity import model
from nova_ha.capacity import solver


class Admission:

    def __init__(self, cloud, policies, candidate, evaluation=None,
                 **solver_opts):
        self.cloud = cloud
        self.candidate = candidate
        self.policies = policies
        if evaluation is None:
            evaluation = solver.evaluate(cloud, policies, **solver_opts)
        self.evaluation = evaluation
        self.protected = any(p.covers(candidate) for p in policies)
        # 2. reserved room per host (the same for every candidate: kept
        # with the evaluation, reused while the plan is).
        load = evaluation.__dict__.get('_reserved')
        if load is None:
            load = evaluation.__dict__['_reserved'] = reserved(cloud,
                                                              evaluation)
        self.load = load
        # 3. the candidate's group per domain, per scenario.
        self.group_max = {}    # (level, domain) -> [(count, failed, label)]
        g = candidate.group
        if g and candidate.rules:
            for rule in candidate.rules:
                for r in evaluation.results:
                    for d, n in r.counts.get((g, rule.level), {}).items():
                        if n >= rule.max_per_domain:
                            self.group_max.setdefault(
                                (rule.level, d), []).append(
                                    (n, r.scenario.failed, r.scenario.label))
        # 4. the candidate's own failover, per scenario (lazily).
        self._own = {}
        self._by_room = None
        self.violated = [r for r in evaluation.results if not r.fits]
        self._host_scen = None

    # -- per host ---------------------------------------------------------
    def refusal(self, host):
        """None if the candidate may go on ``host``, else why not."""
        c = self.candidate
        h = self.cloud.hosts.get(host)
        if self.protected and self.violated:
            r = self.violated[0]
            return ('policy %s already violated: if %s fails, %s cannot be '
                    're-placed' % (r.scenario.policy.text, r.scenario.label,
                                   ', '.join(s.instance.name
                                             for s in r.stranded[:5])))
        free = h.free if h is not None else (0, 0, 0)
        reserved = self.load.get(host)
        if reserved is not None:
            acc, label = reserved
            if (free[0] - acc[0] < c.res[0] or free[1] - acc[1] < c.res[1]
                    or free[2] - acc[2] < c.res[2]):
                return ('would take room reserved on %s for the failover '
                        'of %s (%d vCPU, %d MB, %d GB reserved of %d, %d, '
                        '%d free)' % ((host, label) + tuple(acc)
                                      + tuple(free)))
        if self.group_max:
            for rule in c.rules:
                d = self.cloud.domain(host, rule.level)
                for n, failed, label in self.group_max.get(
                        (rule.level, d), ()):
                    if host not in failed:
                        return ('server group %s, %s: if %s fails, the '
                                'failover plan puts %d members in %s %s'
                                % (c.group, rule, label, n, rule.level, d))
        if self.protected:
            for scen in self.scenarios_of(host):
                if not self.own_failover(scen):
                    return ('if %s fails, %s itself (%d vCPU, %d MB, %d GB, '
                            'SAL %s) could not be re-placed'
                            % ((scen.scenario.label, c.name) + c.res
                               + (c.sal,)))
        return None

    def scenarios_of(self, host):
        """Results of the scenarios that fail ``host`` and whose policy
        protects the candidate."""
        if self._host_scen is None:
            idx = {}
            for r in self.evaluation.results:
                if not r.scenario.policy.covers(self.candidate):
                    continue
                for h in r.scenario.failed:
                    idx.setdefault(h, []).append(r)
            self._host_scen = idx
        return self._host_scen.get(host, ())

    def own_failover(self, result):
        key = id(result)
        ok = self._own.get(key)
        if ok is None:
            ok = self._own[key] = self._find_room(result)
        return ok

    def _find_room(self, result):
        c = self.candidate
        if self._by_room is None:
            self._by_room = sorted(
                (h for h in self.cloud.hosts.values() if h.enabled),
                key=lambda h: (-h.free[1], -h.free[0], h.name))
        failed = result.scenario.failed
        residual = result.residual
        counts = result.counts
        for h in self._by_room:
            if h.free[1] < c.res[1]:
                return False        # sorted by RAM: nothing further fits
            if h.name in failed or not h.certified_for(c.sal):
                continue
            f = residual.get(h.name)
            if f is None or f[0] < c.res[0] or f[1] < c.res[1] or \
                    f[2] < c.res[2]:
                continue
            ok = True
            for rule in c.rules:
                d = self.cloud.domain(h.name, rule.level)
                if d is None or d is topology.CONFLICT or counts.get(
                        (c.group, rule.level), {}).get(d, 0) \
                        >= rule.max_per_domain:
                    ok = False
                    break
            if ok:
                return True
        return False


def reserved(cloud, evaluation):
    """{host: ([vcpu, ram, disk], scenario label)}: the most any
    scenario's plan puts on each host, per resource."""
    load = {}
    for r in evaluation.results:
        per = {}
        for uuid, h in r.placed.items():
            res = cloud.instances[uuid].res
            acc = per.setdefault(h, [0, 0, 0])
            acc[0] += res[0]
            acc[1] += res[1]
            acc[2] += res[2]
        for h, acc in per.items():
            cur = load.get(h)
            if cur is None:
                load[h] = (acc, r.scenario.label)
            else:
                load[h] = ([max(a, b) for a, b in zip(cur[0], acc)],
                           cur[1] if cur[0][1] >= acc[1] else
                           r.scenario.label)
    return load


def without(cloud, uuid):
    """The cloud with instance ``uuid`` taken off its host (a move): its
    host gets its room back."""
    inst = cloud.instances.get(uuid)
    if inst is None:
        return cloud
    hosts = []
    for h in cloud.hosts.values():
        if h.name == inst.host:
            h = model.Host(h.name, tuple(a + b for a, b in zip(h.free,
                                                                inst.res)),
                           h.sal, h.domains, h.enabled)
        hosts.append(h)
    return model.Cloud(hosts, [i for i in cloud.instances.values()
                               if i.uuid != uuid], cloud.levels,
                       cloud.aggregates, cloud.problems)
