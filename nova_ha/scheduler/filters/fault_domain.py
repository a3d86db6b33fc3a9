"""FaultDomainAntiAffinityFilter: server-group anti-affinity per fault domain.

Hints (nova's ``group`` hint names the server group)::

    ha_anti_affinity_level=<level>   host, rack, power_domain,
                                     availability_zone (see [topology]
                                     levels) or failure_domain
    ha_anti_affinity=hard|soft       default hard
    ha_max_per_domain=N              default 1
    different_failure_domain=true    VEXXHOST's hint: failure_domain, hard, 1

Hard: a host passes only if its domain at that level holds fewer than N
members of the group. Members count where they run and, while they move,
at both ends of the move; the instance being scheduled does not count (a
moved member leaves its own domain). A host in no domain of the level, or
in two (a configuration error), fails. Soft: every host passes and
FaultDomainSpreadWeigher prefers the least-loaded domain.

Fail closed: when the filter cannot decide -- the member look-up fails, a
member's host is in no domain of the level (or in two), the aggregate
look-up leaves a member's host out -- it rejects every host with one ERROR
line naming the server group and the reason. A host that nova's RequestSpec
lists as running members (``instance_group.hosts``) but where the look-up
found none makes its domain count as full (one WARNING line).

Cost: the group's member hosts are read once per request; each host then
costs one cached HostInfo lookup and a set membership test.
"""

import logging

from oslo_log import log as oslo_logging

from nova_ha import topology
from nova_ha.scheduler import filters as ha_filters
from nova_ha.scheduler import request

LOG = oslo_logging.getLogger(__name__)


class FaultDomainAntiAffinityFilter(ha_filters.RequestFilter):
    """Keep a server group's members apart at a topology level."""

    # Re-run for every instance of a multi-create request: each pick fills
    # a domain.
    run_filter_once_per_request = False

    def filter_request(self, hosts, spec_obj):
        name = self.__class__.__name__
        info = request.for_spec(spec_obj)
        topo = request.configure_topology()
        rule = info.anti_affinity(spec_obj, topo.known_levels)
        if rule is None or not rule.hard:
            return hosts
        if info.group is None:
            LOG.warning('%s: %r ignored for instance %s: the request has no '
                        'server group (hint group=<server group uuid>)',
                        name, rule, spec_obj.instance_uuid)
            return hosts
        counts = info.domain_counts(rule.level, topo, rule.max_per_domain)
        limit = rule.max_per_domain
        full = {d for d, n in counts.items() if n >= limit}
        level = rule.level
        entries = topo.entries
        conflict = topology.CONFLICT
        passed, lost = [], []
        get = entries.get
        keep = passed.append
        for hs in hosts:
            entry = get(hs.host)
            if entry is not None and entry[0] == hs.aggregates:
                d = entry[1].domains[level]
            else:
                d = topo.rebuild(hs).domains[level]
            if d is None or d is conflict:
                lost.append(hs.host)
            elif d not in full:
                keep(hs)
        if LOG.isEnabledFor(logging.DEBUG):
            if lost:
                LOG.debug('%s: hosts %s are in no single %s domain (no '
                          'aggregate with %s, or two different ones): the '
                          'hard rule of group %s rejects them', name,
                          ', '.join(sorted(lost)), level,
                          ' or '.join(topology.level_keys(level)) or '-',
                          request.group_name(info))
            LOG.debug('%s: group %s, %r: members per %s %s, full %s; %d of '
                      '%d hosts pass', name, request.group_name(info), rule,
                      level, counts, sorted(full), len(passed), len(hosts))
        return passed
