"""FaultDomainSpreadWeigher: prefer the fault domain with fewest members.

nova.conf: add ``nova_ha.scheduler.weighers.FaultDomainSpreadWeigher`` to
``[filter_scheduler] weight_classes`` after
``nova.scheduler.weights.all_weighers`` (comma-separated, on one line; see
doc/scheduling.md).

Active when the request has a server group and a fault-domain rule
(``ha_anti_affinity_level``, or VEXXHOST's ``different_failure_domain``),
hard or soft; with the soft rule (``ha_anti_affinity=soft``) it is what
spreads the members. A host's raw weight is minus the number of group
members in its domain; a host in no domain (or two) weighs less than every
host in a domain. ``[ha_scheduler] spread_weight_multiplier`` scales it.
"""

from oslo_log import log as logging

from nova.scheduler import weights

from nova_ha import topology
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request

LOG = logging.getLogger(__name__)


class FaultDomainSpreadWeigher(weights.BaseHostWeigher):
    """Higher weight for hosts in less-loaded fault domains."""

    def weight_multiplier(self, host_state):
        return request.option('spread_weight_multiplier', 10.0)

    def weigh_objects(self, weighed_obj_list, spec_obj):
        zeros = [0.0] * len(weighed_obj_list)
        info = rule = None
        try:
            topo = request.configure_topology()
            info = request.for_spec(spec_obj)
            rule = info.anti_affinity(spec_obj, topo.known_levels)
            if rule is None or info.group is None:
                return zeros
            counts = info.domain_counts(rule.level, topo,
                                        rule.max_per_domain)
        except (topology.TopologyError, request.BadInput):
            return zeros   # the filter logs and rejects
        except lookup.LookupFailed as exc:
            if rule is not None and not rule.hard:
                # The filter does not count members for a soft rule, so
                # this is the only place that can say why nothing spreads.
                info.once(('weigher-failed', rule.level), lambda: LOG.error(
                    'FaultDomainSpreadWeigher: server group %s: %s; the '
                    'soft rule (%r) cannot spread instance %s (every host '
                    'weighs the same)', request.group_name(info), exc, rule,
                    info.instance_uuid))
            return zeros
        level = rule.level
        worst = -float(max(counts.values(), default=0) + 1)
        out = []
        for wo in weighed_obj_list:
            d = topo.info(wo.obj).domains[level]
            if d is None or d is topology.CONFLICT:
                out.append(worst)
            else:
                out.append(-float(counts.get(d, 0)))
        return out

    def _weigh_object(self, host_state, spec_obj):
        class _W:
            obj = host_state
        return self.weigh_objects([_W], spec_obj)[0]
