"""[evacuator]: detection windows, recovery pacing and policy."""

import socket

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'evacuator', title='Evacuator',
    help='Detect failed compute hosts, fence them, evacuate their '
         'instances.')

OPTS = [
    cfg.StrOpt('name', default=socket.gethostname(), sample_default='<host>',
               help='This evacuator\'s name (journal, leader election).'),
    cfg.FloatOpt('sal1_confirmation_window', default=0.45, min=0.05,
                 help='Seconds every heartbeat plane of a SAL1-certified '
                      'host must be silent before it is HOST_DOWN. SAL1 '
                      'requires detection in under 1 s; with the SAL1 agent '
                      'interval of 100 ms ([heartbeat] sal_interval_ms = '
                      '1:100) this is 4 missed beats.'),
    cfg.FloatOpt('sal2_confirmation_window', default=4.0, min=0.05,
                 help='Confirmation window for SAL2 hosts (< 5 s).'),
    cfg.FloatOpt('sal3_confirmation_window', default=8.0, min=0.05,
                 help='Confirmation window for SAL3 hosts and hosts with no '
                      'SAL certification (< 10 s).'),
    cfg.FloatOpt('startup_grace', default=3.0, min=0.0,
                 help='Seconds after start during which a host never heard '
                      'from is not declared down (agents may not have '
                      'reached this evacuator yet).'),
    cfg.BoolOpt('partition_recovery', default=False,
                help='Recover a host whose management AND storage planes '
                     'are both silent even if another plane still answers. '
                     'Off: any answering plane means PARTITION (alarm '
                     'only).'),
    cfg.FloatOpt('tick', default=0.1, min=0.01,
                 help='Longest wait between two reconcile passes when '
                      'nothing changes.'),
    cfg.FloatOpt('nova_poll_interval', default=0.5, min=0.05,
                 help='Seconds between two looks at the Nova migration '
                      'records of in-flight evacuations.'),
    cfg.FloatOpt('host_refresh_interval', default=10.0, min=1.0,
                 help='Seconds between two reads of the compute service '
                      'list and host aggregates (topology, SAL).'),
    cfg.IntOpt('max_concurrent_evacuations', default=20, min=1,
               help='Evacuations in flight at once, across all hosts. '
                    'Members of one server group are never evacuated at '
                    'the same time regardless (nova\'s late group check '
                    'fails racing evacuations).'),
    cfg.IntOpt('max_evacuation_attempts', default=3, min=1,
               help='Evacuations tried per instance before it is left in '
                    'ERROR with an alarm.'),
    cfg.FloatOpt('no_valid_host_retry_interval', default=300.0, min=0.0,
                 help='Seconds after a recovery ended incomplete with an '
                      'instance the scheduler found no valid host for '
                      '(NO_VALID_HOST) before the evacuator evacuates it '
                      'again, with no target host (the scheduler applies '
                      'its rules again), and then as often while its host '
                      'stays fenced, RECOVERED and silent (a host heard '
                      'again may run them: left to the operator): a host '
                      'repaired and '
                      'enabled, or capacity added, brings it back. Checked '
                      'once a minute. 0: never (`nova-ha recovery retry` '
                      'by hand). Instances that failed their evacuations '
                      '(EVACUATION_FAILED) are retried by hand only.'),
    cfg.FloatOpt('evacuation_timeout', default=300.0, min=1.0,
                 help='Seconds an evacuation may stay in flight before it '
                      'counts as failed.'),
    cfg.FloatOpt('evacuation_stall_alarm', default=60.0, min=1.0,
                 help='Seconds an evacuation may show no progress in Nova '
                      '(its migration status and the server\'s task state '
                      'unchanged) before a MAJOR EVACUATION_STUCK alarm '
                      'names the server, its migration and Nova\'s task '
                      'state. The evacuation goes on; evacuation_timeout '
                      'still decides when it counts as failed.'),
    cfg.FloatOpt('evacuate_reissue_after', default=30.0, min=1.0,
                 help='An evacuate call whose outcome is unknown (the '
                      'leader that sent it died during the call) is sent '
                      'again only if Nova shows no trace of it -- no task '
                      'state, no evacuate instance action, no migration '
                      'record -- this many seconds after it began. Nova '
                      'writes all three inside the API call, so a call '
                      'still in Nova leaves them within this time; sending '
                      'earlier risks two evacuations of one instance.'),
    cfg.FloatOpt('fence_retry_interval', default=5.0, min=0.1,
                 help='Seconds between fencing attempts while a host\'s '
                      'power-off cannot be confirmed.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
