"""[guard]: the evacuator's mass-failure guard and self-check.

See doc/evacuator-ha.md.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'guard', title='Mass-failure guard',
    help='Stop fencing (CRITICAL MASS_FAILURE_GUARD alarm instead) when so '
         'many hosts look failed at once that this evacuator is more likely '
         'cut off than the hosts dead. "nova-ha host lift-guard HOST '
         '--operator NAME" lets named hosts through.')

OPTS = [
    cfg.FloatOpt('max_failed_fraction', default=0.5, min=0.0, max=1.0,
                 help='Hold fencing back when more than this share of all '
                      'compute hosts look failed at once.'),
    cfg.FloatOpt('max_failed_fraction_per_domain', default=0.5, min=0.0,
                 max=1.0,
                 help='Same, for the hosts of one rack or availability '
                      'zone (topology levels rack and availability_zone) '
                      'with at least domain_min_hosts hosts.'),
    cfg.IntOpt('domain_min_hosts', default=3, min=1,
               help='Racks/AZs with fewer hosts are not guarded on their '
                    'own (one failure of two hosts is not a pattern).'),
    cfg.IntOpt('max_failures_in_window', default=10, min=1,
               help='Hold fencing back when more than this many distinct '
                    'hosts failed within failure_window seconds.'),
    cfg.FloatOpt('failure_window', default=60.0, min=1.0,
                 help='Seconds over which max_failures_in_window counts.'),
    cfg.BoolOpt('self_check', default=True,
                help='Before fencing, check that the Nova API answers, the '
                     'coordinator is reachable and at least one heartbeat '
                     'plane receives from some host; else raise a CRITICAL '
                     'SELF_CHECK alarm and do not fence.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
