"""[instance_ha]: instance failures (issue 17). See doc/instance-ha.md.

The agent (``nova-ha-agent``) reads ``monitor`` and ``libvirt_uri``; the
evacuator reads the rest.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'instance_ha', title='Instance HA',
    help='Crashed, unexpectedly stopped or paused-on-error instances: '
         'detected from libvirt lifecycle events on the compute host, '
         'restarted (or rebuilt elsewhere) by the evacuator, correlated '
         'per host.')

POLICIES = ('restart', 'rebuild-elsewhere', 'none')
SUSPECT_ACTIONS = ('alarm', 'drain')

OPTS = [
    cfg.BoolOpt('monitor', default=False,
                help='Agent: watch this host\'s libvirt domains and report '
                     'failed ones to the evacuators. Needs libvirt-python '
                     '(present where nova-compute\'s libvirt driver runs).'),
    cfg.StrOpt('libvirt_uri', default='qemu:///system',
               help='Agent: the libvirt URI of this host\'s hypervisor '
                    '(nova\'s [libvirt] connection_uri).'),
    cfg.BoolOpt('process_watch', default=True,
                help='Agent: also watch each domain\'s qemu process (a '
                     'pidfd, found by -uuid in /proc) and report its exit '
                     'at once, without waiting for libvirtd, which handles '
                     'the end of qemu processes one at a time (many '
                     'domains dying together are otherwise reported over '
                     'tens of seconds).'),
    cfg.IntOpt('event_queue_max', default=4096, min=16,
               help='Agent: lifecycle events buffered between libvirt\'s '
                    'event loop and the monitor; beyond it the monitor '
                    'rescans every domain instead (nothing is lost, '
                    'nothing blocks).'),
    cfg.BoolOpt('enabled', default=True,
                help='Evacuator: act on instance failures reported by the '
                     'agents.'),
    cfg.StrOpt('default_recovery', default='restart',
               choices=[(p, None) for p in POLICIES],
               help='Evacuator: what to do with a failed instance whose '
                    'flavor (extra spec) and image (property) set no '
                    'ha:instance_recovery.'),
    cfg.IntOpt('restart_max', default=3, min=0,
               help='Evacuator: hard reboots of one instance within '
                    'restart_window; the next failure is escalated to '
                    'rebuild-elsewhere and alarmed.'),
    cfg.FloatOpt('restart_window', default=600.0, min=1.0,
                 help='Evacuator: seconds over which restart_max counts.'),
    cfg.BoolOpt('restart_guest_shutdown', default=False,
                help='Evacuator: also recover an instance whose guest shut '
                     'itself down (libvirt "stopped, shutdown") while Nova '
                     'still has it active. Off: reported and journalled, '
                     'left off.'),
    cfg.FloatOpt('action_grace', default=2.0, min=0.0,
                 help='Evacuator: a Nova instance action (stop, reboot, '
                      'migrate, ... by a user or Nova) started this many '
                      'seconds before the failure, or later, means the '
                      'instance was stopped on purpose: no action.'),
    cfg.IntOpt('suspect_failures', default=3, min=2,
               help='Evacuator: instance failures on one host within '
                    'suspect_window that raise HOST_SUSPECT.'),
    cfg.FloatOpt('suspect_window', default=300.0, min=1.0,
                 help='Evacuator: seconds over which instance failures of '
                      'one host are correlated (also with a degraded plane '
                      'or watchdog restarts of the host).'),
    cfg.StrOpt('suspect_action', default='alarm',
               choices=[('alarm', 'raise HOST_SUSPECT only'),
                        ('drain', 'raise HOST_SUSPECT and drain the host '
                         '(maintenance engine) before it fails hard')],
               help='Evacuator: what HOST_SUSPECT does.'),
    cfg.FloatOpt('recovery_timeout', default=300.0, min=1.0,
                 help='Evacuator: seconds a recovery (reboot or move) may '
                      'take before it is alarmed as failed.'),
    cfg.IntOpt('workers', default=8, min=1,
               help='Evacuator: Nova API calls for instance recovery in '
                    'parallel (many instances failing at once never delay '
                    'host failure detection).'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
