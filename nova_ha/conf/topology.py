"""[topology]: the fault-domain levels nova-ha knows.

The topology itself lives in host aggregate metadata ``ha:<level>=<domain>``
(see nova_ha/topology.py and doc/scheduling.md); this group only names the
levels and their order, smallest first. ``host`` is the compute host itself
and ``availability_zone`` is nova's own aggregate availability zone; every
other level is read from the aggregate key ``ha:<level>``. The level
``failure_domain`` (aggregate key ``failure_domain``, the VEXXHOST
nova-scheduler-filters convention) is always known, listed here or not.
"""

from oslo_config import cfg
from oslo_config import types

GROUP = cfg.OptGroup(
    'topology',
    title='Fault-domain topology',
    help='Levels of the fault-domain topology read from host aggregates.')

LEVEL_NAME = types.String(regex=r'^[a-z][a-z0-9_]{0,62}$')

OPTS = [
    cfg.ListOpt('levels',
                item_type=LEVEL_NAME,
                default=['host', 'rack', 'power_domain', 'availability_zone'],
                help='Fault-domain levels, smallest first. A level L other '
                     'than host and availability_zone is read from the host '
                     'aggregate metadata key ha:L (ha:rack=r12). Level names '
                     'are lower-case letters, digits and _. The hint '
                     'ha_anti_affinity_level accepts these levels and '
                     'failure_domain.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
