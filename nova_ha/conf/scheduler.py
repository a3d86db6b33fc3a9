"""[ha_scheduler]: nova-ha's scheduler filters and weigher.

These options are read inside nova-scheduler (they go into nova.conf), so the
group is not called ``scheduler``: that name belongs to nova.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'ha_scheduler',
    title='nova-ha scheduler filters',
    help='SALFilter, FaultDomainAntiAffinityFilter, MigrationPolicyFilter '
         'and FaultDomainSpreadWeigher (nova.conf of nova-scheduler).')

OPTS = [
    cfg.BoolOpt('sal_hosts_exclusive',
                default=False,
                help='If true, SALFilter keeps hosts certified by an '
                     'aggregate ha:sal=N for flavors that request a SAL '
                     '(extra spec ha:sal): a flavor without ha:sal is placed '
                     'only on uncertified hosts. If false, a flavor without '
                     'ha:sal may use any host.'),
    cfg.FloatOpt('spread_weight_multiplier',
                 default=10.0,
                 help='Multiplier of FaultDomainSpreadWeigher, which prefers '
                      'hosts in the fault domain holding the fewest members '
                      'of the server group (hint ha_anti_affinity_level). '
                      'Nova normalises every weigher to 0..1 before the '
                      'multiplier, so 10 makes the spread outweigh the '
                      'default RAM/CPU/disk weighers (1.0 each). Negative '
                      'values pack instead of spreading.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
