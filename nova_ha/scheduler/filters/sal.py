"""SALFilter: place SAL-classified flavors on certified hosts only.

Host aggregate metadata ``ha:sal=N`` certifies the aggregate's hosts for
Service Availability Level N and every weaker level (N..3; 1 is the
strictest). A flavor with extra spec ``ha:sal=M`` passes a host only if the
host is certified for M (some aggregate of it has ha:sal <= M). A flavor
without ``ha:sal`` may use any host, unless ``[ha_scheduler]
sal_hosts_exclusive`` keeps the certified hosts for SAL flavors.
"""

from oslo_log import log as logging

from nova_ha.scheduler import filters as ha_filters
from nova_ha.scheduler import request

LOG = logging.getLogger(__name__)


class SALFilter(ha_filters.RequestFilter):
    """Hosts certified for the flavor's Service Availability Level."""

    # The flavor and the hosts' certification do not change within a
    # request.
    run_filter_once_per_request = True

    def filter_request(self, hosts, spec_obj):
        name = self.__class__.__name__
        topo = request.configure_topology()
        sal = request.for_spec(spec_obj).sal(spec_obj)
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
