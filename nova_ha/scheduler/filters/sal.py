"""SALFilter: place SAL-classified flavors on certified hosts only.

Host aggregate metadata ``ha:sal=N`` certifies the aggregate's hosts for
Service Availability Level N and every weaker level (N..3; 1 is the
strictest). A flavor with extra spec ``ha:sal=M`` passes a host only if the
host is certified for M (some aggregate of it has ha:sal <= M). A flavor
without ``ha:sal`` may use any host, unless ``[ha_scheduler]
sal_hosts_exclusive`` keeps the certified hosts for SAL flavors.
"""

from oslo_log import log as logging

from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils

from nova_ha import topology
from nova_ha.scheduler import request

LOG = logging.getLogger(__name__)


class SALFilter(filters.BaseHostFilter):
    """Hosts certified for the flavor's Service Availability Level."""

    RUN_ON_REBUILD = False
    # The flavor and the hosts' certification do not change within a
    # request.
    run_filter_once_per_request = True

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if scheduler_utils.request_is_rebuild(spec_obj):
            return hosts
        name = self.__class__.__name__
        try:
            topo = request.configure_topology()
            sal = request.for_spec(spec_obj).sal(spec_obj)
        except (topology.TopologyError, request.BadInput) as exc:
            return request.reject_all(name, exc, spec_obj)
        if sal is None:
            if not request.option('sal_hosts_exclusive', False):
                return hosts
            passed = [hs for hs in hosts if topo.info(hs).sal is None]
            LOG.debug('%s: flavor without ha:sal, sal_hosts_exclusive: %d '
                      'of %d hosts are not SAL-certified', name, len(passed),
                      len(hosts))
            return passed
        passed = []
        for hs in hosts:
            host_sal = topo.info(hs).sal
            if host_sal is not None and host_sal <= sal:
                passed.append(hs)
        LOG.debug('%s: flavor ha:sal=%d: %d of %d hosts certified', name, sal,
                  len(passed), len(hosts))
        return passed

    def host_passes(self, host_state, spec_obj):
        return bool(self.filter_all([host_state], spec_obj))
