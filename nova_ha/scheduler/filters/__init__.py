"""nova-ha scheduler filters.

nova.conf::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = nova_ha.scheduler.filters.all_filters
"""

from nova import filters as nova_filters
from nova.scheduler import filters


class HAFilterHandler(nova_filters.BaseFilterHandler):
    """Finds the host filters defined in this package's modules."""

    def __init__(self):
        super().__init__(filters.BaseHostFilter)


def all_filters():
    """Return every host filter class nova-ha defines."""
    return HAFilterHandler().get_all_classes()
