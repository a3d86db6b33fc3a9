"""[capacity]: failover-capacity admission control.

One failure-tolerance policy per SAL (and optionally per host aggregate):
if any N hosts, or any one domain of a topology level, fail, every
``ha:recovery=auto`` instance of that SAL on them must be re-placeable on
the remaining hosts (flavor resources, SAL certification, its server
group's hard anti-affinity at its level). Read by ``nova-ha capacity
check``, by FailoverCapacityFilter (nova.conf of nova-scheduler) and by the
evacuator (before fencing). See doc/capacity.md.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'capacity',
    title='Failover capacity',
    help='Failure-tolerance policies (admission control) per SAL: '
         'nova-ha capacity check, FailoverCapacityFilter, evacuator.')

OPTS = [
    cfg.DictOpt('tolerate',
                default={},
                help='Failure-tolerance policy per SAL, as SCOPE:TOLERANCE '
                     'pairs. SCOPE is sal1, sal2, sal3 (instances whose '
                     'flavor has ha:sal=N) or all (every ha:recovery=auto '
                     'instance), optionally followed by @AGGREGATE to limit '
                     'the failures considered to the hosts of that host '
                     'aggregate (by name). TOLERANCE is "N hosts", '
                     '"N <level>" for any level of [topology] levels (e.g. '
                     '"1 rack", "1 power_domain") or "none". Example: '
                     'tolerate = sal1:1 rack,sal2:2 hosts,sal1@edge:1 host'),
    cfg.IntOpt('exact_max_instances',
               default=40, min=0,
               help='A failure scenario that strands instances with the '
                    'greedy placement is re-solved exactly (backtracking) '
                    'when it has at most this many instances to re-place; '
                    'above it the greedy answer stands (it never claims a '
                    'fit that does not exist, but may strand instances an '
                    'exact search would place).'),
    cfg.IntOpt('exact_max_nodes',
               default=200000, min=1,
               help='Search-node budget of one exact solve; when exceeded '
                    'the greedy answer stands and the scenario is reported '
                    'as not exact.'),
    cfg.IntOpt('max_scenarios',
               default=5000, min=1,
               help='"N hosts" with N > 1 enumerates every combination of '
                    'N hosts; above this many, only the N hosts carrying the '
                    'most HA load per resource (and per server group) are '
                    'checked, and the report says the check is '
                    'approximate.'),
    cfg.FloatOpt('snapshot_max_age',
                 default=0.0, min=0.0,
                 help='FailoverCapacityFilter: seconds a snapshot of the '
                      'cloud (hosts, instances, the failover plan) read '
                      'from nova\'s databases is reused by later requests. '
                      '0 reads it for every request (exact; the plan is '
                      'still computed once per request, never per host).'),
    cfg.StrOpt('placement_endpoint',
               help='Placement API URL, when the service catalog of the '
                    '[nova] credentials has none: read by nova-ha capacity '
                    'check, the evacuator\'s capacity check before fencing '
                    'and its recovery placement (hosts marked '
                    'COMPUTE_STATUS_DISABLED).'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
