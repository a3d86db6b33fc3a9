"""[guard]: the evacuator's mass-failure guard and self-check.

See doc/evacuator.md ("Mass-failure guard") and doc/evacuator-ha.md.
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
                 help='Hold fencing back when this share of all compute '
                      'hosts or more are failing at once (silent, inside or '
                      'past their window; with an open recovery; or fenced '
                      'within failure_window and not returned to service). '
                      'Exactly this share is guarded: with the default, 3 '
                      'of 6 hosts are not fenced. Also applied per '
                      'heartbeat plane (hosts silent on one plane).'),
    cfg.FloatOpt('max_failed_fraction_per_domain', default=0.5, min=0.0,
                 max=1.0,
                 help='Same, for the hosts of one rack, power domain or '
                      'availability zone with at least domain_min_hosts '
                      'hosts.'),
    cfg.IntOpt('domain_min_hosts', default=3, min=1,
               help='Racks, power domains and AZs with fewer hosts are not '
                    'guarded on their own (one failure of two hosts is not '
                    'a pattern).'),
    cfg.IntOpt('max_failures_in_window', default=10, min=1,
               help='Hold fencing back when more than this many distinct '
                    'hosts are failing within failure_window seconds.'),
    cfg.FloatOpt('failure_window', default=60.0, min=1.0,
                 help='Seconds over which max_failures_in_window and '
                      'small_cloud_max_fenced count the hosts fenced.'),
    cfg.IntOpt('small_cloud_hosts', default=10, min=0,
               help='A cloud of at most this many compute hosts is small: '
                    'it loses at most small_cloud_max_fenced hosts to '
                    'automatic fencing per failure_window (0: no cloud is '
                    'small).'),
    cfg.IntOpt('small_cloud_max_fenced', default=1, min=0,
               help='Hosts a small cloud may lose to automatic fencing '
                    'per failure_window (counting hosts failing now, with '
                    'an open recovery, or fenced and not returned to '
                    'service); one more raises MASS_FAILURE_GUARD.'),
    cfg.FloatOpt('stall_threshold', default=0.5, min=0.05,
                 help='Seconds. The evacuator process not running for '
                      'longer than this (stopped, starved of CPU, a VM '
                      'pause; measured on the monotonic clock by a ticker '
                      'thread and by the reconcile loop), or every host '
                      'silent at once, is a stall of this evacuator: no '
                      'host is judged or fenced until a full fresh '
                      'confirmation window has passed on every host.'),
    cfg.BoolOpt('fence_heard_hosts', default=False,
                help='Fence a host even if it was heard on some heartbeat '
                     'plane since its recovery opened. Off (default): such '
                     'a host is never fenced, the recovery stops and the '
                     'host is watched again (with partition_recovery on, '
                     'only management and storage heartbeats count).'),
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
