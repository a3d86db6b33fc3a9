"""nova-ha scheduler filters.

nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_ha.scheduler.filters.all_filters
"""

from nova import filters as nova_filters
from nova.scheduler import filters
from nova.scheduler import utils as scheduler_utils

from nova_ha import topology
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request


class RequestFilter(filters.BaseHostFilter):
    """What every nova-ha filter does the same way (subclasses implement
    :meth:`filter_request`, the rule itself):

    - nova gives ``filter_all`` every candidate host at once: the rule's
      expensive work (look-ups, a plan) is done once per request, never
      per host;
    - a rebuild on the instance's own host passes: the rule was applied
      when the instance was placed;
    - **fail closed**: a request the filter cannot decide (bad hint or
      extra spec, a topology conflict, a failed look-up: UNDECIDABLE)
      passes no host, with one ERROR line naming the filter, the server
      group and why (request.reject_all) -- a VNF's rule is never silently
      ignored.

    Defined here, in the package's ``__init__``, which nova's filter
    loader does not scan: it is no filter of its own. Filter modules
    import this package (``from nova_ha.scheduler import filters as
    ha_filters``), never the class name, for the same reason.
    """

    RUN_ON_REBUILD = False
    run_filter_once_per_request = True
    UNDECIDABLE = (topology.TopologyError, request.BadInput,
                   lookup.LookupFailed)

    def filter_all(self, filter_obj_list, spec_obj):
        hosts = list(filter_obj_list)
        if scheduler_utils.request_is_rebuild(spec_obj):
            return hosts
        try:
            return self.filter_request(hosts, spec_obj)
        except self.UNDECIDABLE as exc:
            return request.reject_all(self.__class__.__name__, exc, spec_obj)

    def filter_request(self, hosts, spec_obj):
        """The hosts of ``hosts`` that pass (a list)."""
        raise NotImplementedError

    def host_passes(self, host_state, spec_obj):
        """One host (nova calls filter_all; this is for direct callers)."""
        return bool(self.filter_all([host_state], spec_obj))


class HAFilterHandler(nova_filters.BaseFilterHandler):
    """Finds the host filters defined in this package's modules."""

    def __init__(self):
        super().__init__(filters.BaseHostFilter)


def all_filters():
    """Return every host filter class nova-ha defines."""
    return HAFilterHandler().get_all_classes()
