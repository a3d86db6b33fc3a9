"""FailoverCapacityFilter: admission control for the failure-tolerance
policies of ``[capacity] tolerate`` (doc/capacity.md).

Refuses a host for a boot, live or cold migration or resize when placing
the instance there would make a policy unsatisfiable: it would take room
the failover plan reserves for the instances of a failed host or domain,
break its server group's hard rule in a failover plan, or (for an
instance a policy protects) leave the instance itself nowhere to go if
that host's domain failed. Evacuations (recovery) and rebuilds are never
refused. The reason is logged (WARNING, one line per request naming each
refused host's reason, at most 10).

Cost: the cloud snapshot (nova's databases, see
nova_ha.capacity.collect.from_nova_db) and the failover plan are made once
per request (or reused for ``[capacity] snapshot_max_age`` seconds); per
host the filter does a few dictionary look-ups
(nova_ha.capacity.admission). ``benchmarks/bench_capacity.py`` measures
it against nova's own filters.
"""

import threading
import time

from oslo_config import cfg
from oslo_log import log as logging

from nova_ha import topology
from nova_ha.capacity import admission
from nova_ha.capacity import collect
from nova_ha.capacity import model
from nova_ha.capacity import solver
from nova_ha.conf import capacity as capacity_conf
from nova_ha.scheduler import filters as ha_filters
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request

LOG = logging.getLogger(__name__)
CONF = cfg.CONF
capacity_conf.register_opts(CONF)

#: Where the filter reads the cloud: a callable(context, levels,
#: default_az) -> model.Cloud. Tests and the benchmark replace it.
_source = collect.from_nova_db
_cache = {'at': None, 'cloud': None, 'evaluation': None, 'key': None}
_cache_lock = threading.Lock()


def set_source(source):
    """Replace the cloud source (tests, benchmark); returns the old one."""
    global _source
    old, _source = _source, source
    with _cache_lock:
        _cache['at'] = None
    return old


def _snapshot(context, levels, default_az, policies, opts):
    """(cloud, baseline evaluation), reused for snapshot_max_age."""
    max_age = CONF.capacity.snapshot_max_age
    key = (tuple(levels), default_az, tuple(p.text for p in policies),
           tuple(sorted(opts.items())))
    now = time.monotonic()
    with _cache_lock:
        if (max_age > 0 and _cache['at'] is not None
                and now - _cache['at'] < max_age and _cache['key'] == key):
            return _cache['cloud'], _cache['evaluation']
    cloud = _source(context, levels, default_az)
    evaluation = solver.evaluate(cloud, policies, **opts)
    with _cache_lock:
        _cache.update(at=now, cloud=cloud, evaluation=evaluation, key=key)
    return cloud, evaluation


def candidate_of(spec_obj, info, levels):
    """The instance being scheduled as a model.Instance."""
    flavor = spec_obj.flavor
    specs = request.flavor_specs(spec_obj)
    bfv = bool(getattr(spec_obj, 'is_bfv', False)) if request._is_set(
        spec_obj, 'is_bfv') else False
    res = collect.flavor_resources({
        'vcpus': flavor.vcpus, 'ram': flavor.memory_mb,
        'disk': flavor.root_gb, 'ephemeral': flavor.ephemeral_gb,
        'swap': flavor.swap}, boot_from_volume=bfv)
    rules = []
    group = info.group
    if group is not None:
        policy = getattr(group, 'policy', None) if request._is_set(
            group, 'policy') else None
        grules = getattr(group, 'rules', None) if request._is_set(
            group, 'rules') else None
        rules += collect.group_rules({'policy': policy,
                                      'rules': grules or {}})
        rule = info.anti_affinity(spec_obj, topology.known_levels(levels))
        if rule is not None and rule.hard:
            rules.append(model.Rule(rule.level, rule.max_per_domain,
                                    rule.source))
    return model.Instance(
        info.instance_uuid or 'new-instance', None, res,
        sal=info.sal(spec_obj),
        auto=str(specs.get('ha:recovery', 'auto')).strip() != 'none',
        priority=collect._int(specs.get('ha:recovery_priority'), 0),
        group=info.group_uuid, rules=rules if info.group_uuid else [],
        name=info.instance_uuid or 'new instance')


class FailoverCapacityFilter(ha_filters.RequestFilter):
    """Hosts where the instance keeps every failover policy satisfiable."""

    # Everything is decided once per request.
    run_filter_once_per_request = True
    UNDECIDABLE = ha_filters.RequestFilter.UNDECIDABLE + (model.PolicyError,
                                                         cfg.Error)

    def filter_request(self, hosts, spec_obj):
        name = self.__class__.__name__
        topo = request.configure_topology()
        policies = model.load_policies(CONF, topo.levels)
        if not policies:
            return hosts
        info = request.for_spec(spec_obj)
        operation = info.operation()
        if operation == lookup.EVACUATION:
            return hosts          # recovery: never refused
        try:
            adm = info._once('capacity', lambda: self._admission(
                spec_obj, info, topo, policies, operation))
        except self.UNDECIDABLE:
            raise
        except Exception as exc:   # never raise inside the scheduler
            LOG.exception('%s: cannot build the failover plan', name)
            return request.reject_all(name, exc, spec_obj)
        passed, refused = [], []
        for hs in hosts:
            why = adm.refusal(hs.host)
            if why is None:
                passed.append(hs)
            else:
                refused.append((hs.host, why))
        if refused:
            LOG.warning('%s: %s of instance %s (SAL %s, %d vCPU, %d MB, '
                        '%d GB): %d of %d hosts refused: %s', name,
                        operation, info.instance_uuid, adm.candidate.sal,
                        adm.candidate.res[0], adm.candidate.res[1],
                        adm.candidate.res[2], len(refused), len(hosts),
                        '; '.join('%s: %s' % r for r in refused[:10]) + (
                            '; ...' if len(refused) > 10 else ''))
        return passed

    def _admission(self, spec_obj, info, topo, policies, operation):
        opts = solver.options(CONF)
        candidate = candidate_of(spec_obj, info, topo.levels)
        cloud, evaluation = _snapshot(info.context, topo.levels,
                                      topo.default_az, policies, opts)
        if candidate.uuid in cloud.instances:
            # A move (or a re-schedule): the plan without the instance.
            cloud = admission.without(cloud, candidate.uuid)
            evaluation = None
        return admission.Admission(cloud, policies, candidate,
                                   evaluation=evaluation, **opts)
