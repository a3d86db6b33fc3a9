"""[fencing]: how nova-ha powers failed compute hosts off and confirms it.

See doc/fencing.md. BMC credentials are not options: they live in the
inventory file (``inventory_file``), which should be readable by the
nova-ha user only.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'fencing',
    title='Fencing',
    help='Power a failed compute host off and confirm it is off before any '
         'of its instances is evacuated.')

OPTS = [
    cfg.StrOpt('inventory_file',
               default='/etc/nova-ha/fencing-inventory.yaml',
               help='YAML file naming, per compute host, the fencing driver '
                    '(ipmi, redfish, ironic), BMC address, port and '
                    'credentials. Format: doc/fencing.md.'),
    cfg.FloatOpt('command_timeout', default=2.0, min=0.1,
                 help='Seconds one request to a BMC (or Ironic) may take '
                      'before the BMC counts as not answering.'),
    cfg.FloatOpt('power_off_timeout', default=30.0, min=0.1,
                 help='Seconds to wait, after an accepted power-off, for the '
                      'power state to read off (slow BMCs), per attempt.'),
    cfg.FloatOpt('fence_timeout', default=60.0, min=0.1,
                 help='Upper bound on one fence() call, all attempts and '
                      'back-off included. UNREACHABLE or FAILED is returned '
                      'by then at the latest.'),
    cfg.FloatOpt('poll_interval', default=0.1, min=0.01,
                 help='Seconds between power-state reads while waiting for '
                      'the power to read off.'),
    cfg.IntOpt('retries', default=2, min=0,
               help='Extra power-off attempts after the first one fails '
                    '(BMC error or no answer). Wrong credentials are not '
                    'retried.'),
    cfg.FloatOpt('retry_backoff', default=0.5, min=0.0,
                 help='Seconds to wait before the first retry; doubled for '
                      'each further retry.'),
    cfg.FloatOpt('retry_backoff_max', default=5.0, min=0.0,
                 help='Longest wait between two attempts.'),
    cfg.StrOpt('ipmitool_path', default='ipmitool',
               help='ipmitool binary used by the ipmi driver (name on $PATH '
                    'or absolute path).'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
