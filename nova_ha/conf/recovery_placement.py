"""[recovery_placement]: where the evacuator asks Nova to rebuild a burst."""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'recovery_placement', title='Recovery placement',
    help='Spread the evacuations of one failure over the eligible hosts. '
         'The evacuator plans a target host per instance and asks Nova to '
         'evacuate there *without force*: nova-scheduler still runs every '
         'filter (server group, nova-ha anti-affinity levels, SAL, '
         'migration policy, capacity) on the planned host; if it refuses, '
         'the instance is evacuated again with no host (the scheduler '
         'chooses). See doc/evacuator.md.')

OPTS = [
    cfg.BoolOpt('plan_targets', default=True,
                help='Plan a target host per evacuated instance. Off: every '
                     'evacuation asks for no host, and concurrent '
                     'scheduling requests tend to choose the same '
                     'least-loaded host.'),
    cfg.IntOpt('max_per_host', default=0, min=0,
               help='The most instances one host may receive from one '
                    'failure (all recoveries open at once count as one '
                    'failure). 0: derived, ceil(instances to recover / '
                    'eligible hosts). An instance no host under the limit '
                    'can take is evacuated with no host.'),
    cfg.FloatOpt('member_cache_seconds', default=60.0, min=0.0,
                 help='Seconds the hosts of server-group members (one '
                      'server list of every server) are reused between '
                      'plans. The plans of a burst see their own moves and '
                      'those the journal records since the list; a move by '
                      'anyone else meanwhile only costs a refused plan '
                      '(the scheduler judges every planned host). At 5 s '
                      'one 100-instance rack recovery read that list nine '
                      'times (2.3 MB of server detail).'),
]


def register_opts(conf):
    # A new OptGroup for each ConfigOpts (as nova_ha.conf.nova): oslo.config
    # keeps a group's option state in the OptGroup object, so overrides on
    # one ConfigOpts would leak into every other made in the process.
    conf.register_group(cfg.OptGroup(GROUP.name, title=GROUP.title,
                                     help=GROUP.help))
    conf.register_opts(OPTS, group=GROUP.name)


def list_opts():
    return [(GROUP, OPTS)]
