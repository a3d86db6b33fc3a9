"""[metrics]: the evacuator's Prometheus endpoint. See doc/evacuator-ha.md.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'metrics', title='Metrics',
    help='Prometheus text-format metrics (detection, fencing and evacuation '
         'latencies and counts, leadership) over HTTP.')

OPTS = [
    cfg.PortOpt('port', default=0,
                help='TCP port of the metrics endpoint (/metrics); 0 turns '
                     'it off.'),
    cfg.HostAddressOpt('address', default='127.0.0.1',
                       help='Address the metrics endpoint listens on '
                            '(loopback by default: scrape through a local '
                            'agent or open it deliberately).'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]
