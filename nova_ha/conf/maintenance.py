"""[maintenance]: draining a compute host. See doc/maintenance.md.

The Nova API credentials are the shared ``[nova]`` keystoneauth1 section
(nova_ha/conf/nova.py).
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'maintenance',
    title='Maintenance (host drain)',
    help='Draining a compute host before maintenance: every instance is '
         'moved off with no target host, within each VNF\'s limits.')

OPTS = [
    cfg.IntOpt('max_concurrent_moves', default=4, min=1,
               help='Most instances moving at once, over every active '
                    'drain (a cloud-wide limit that protects the network '
                    'and the storage).'),
    cfg.IntOpt('default_max_concurrent_moves_per_group', default=1, min=1,
               help='Most members of one server group moving at once when '
                    'no member says otherwise (instance metadata '
                    'ha_max_concurrent_moves).'),
    cfg.IntOpt('live_migration_downtime_ms', default=500, min=0,
               help='Interruption (ms) a live migration is expected to '
                    'cause (nova\'s libvirt live_migration_downtime). An '
                    'instance whose ha_max_interruption_ms is below it is '
                    'not live-migrated.'),
    cfg.IntOpt('cold_migration_interruption_ms', default=60000, min=0,
               help='Interruption (ms) a cold migration of a running '
                    'instance is expected to cause (stop, copy, start). An '
                    'instance whose ha_max_interruption_ms is below it is '
                    'not cold-migrated (it is reported blocked instead).'),
    cfg.FloatOpt('poll_interval', default=2.0, min=0.01,
                 help='Seconds between two reconcile passes of a drain.'),
    cfg.FloatOpt('refresh_interval', default=30.0, min=0.0,
                 help='Seconds between two full reads of the drained '
                      'host\'s service and instances (disabled state, '
                      'metadata, flavors); in between a pass lists server '
                      'ids only. A VNF manager\'s change of '
                      'ha_max_concurrent_moves is seen within this time.'),
    cfg.FloatOpt('move_start_timeout', default=30.0, min=0.0,
                 help='Seconds after which a move the journal records as '
                      'started, but of which Nova shows no trace (no '
                      'migration record, no task state), is taken as never '
                      'sent (the drain crashed in between) and sent again.'),
    cfg.FloatOpt('wait_timeout', default=3600.0, min=1.0,
                 help='Longest time "nova-ha maintenance start --wait" and '
                      '"abort" follow a drain before they return.'),
    cfg.BoolOpt('drain_on_disable', default=False,
                help='Start a drain when an operator disables a '
                     'nova-compute service with a reason beginning with '
                     '"maintenance" (seen by "nova-ha maintenance run '
                     '--daemon").'),
    cfg.StrOpt('publisher_id', default='nova-ha.maintenance',
               help='Publisher of the maintenance.host.* notifications.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
