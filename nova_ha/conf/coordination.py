"""[coordination]: leader election among evacuators (tooz).

See doc/evacuator-ha.md.
"""

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'coordination', title='Coordination',
    help='Leader election among two or more evacuators, through tooz: one '
         'leader acts, the others stand by (and keep receiving heartbeats). '
         'The journal epoch is the fencing token: a deposed leader\'s writes '
         'are refused.')

DEFAULT_BACKEND = 'file:///var/lib/nova-ha/coordination'

OPTS = [
    cfg.StrOpt('backend_url', default=DEFAULT_BACKEND, secret=True,
               help='tooz coordination backend. file:///DIR (default; no '
                    'server, every evacuator on one machine sharing DIR: '
                    'single node and demo; a crashed leader\'s lock is freed '
                    'by the kernel at once), redis://HOST:6379, '
                    'etcd3+http://HOST:2379 (tooz etcd3gw driver), '
                    'zookeeper://HOST:2181. For redis the lock TTL defaults '
                    'to lock_ttl (URL option lock_timeout overrides).'),
    cfg.StrOpt('lock_name', default='nova-ha-evacuator-leader',
               help='Name of the tooz lock evacuators compete for; also '
                    'the journal leadership name. Evacuators with one '
                    'lock_name form one HA group.'),
    cfg.FloatOpt('renew_interval', default=0.2, min=0.02,
                 help='Seconds between two renewals of the leader\'s lock '
                      'and journal leadership row; also how often a '
                      'standby tries to take the lock.'),
    cfg.FloatOpt('lease', default=0.8, min=0.05,
                 help='The leader acts only within this many seconds of its '
                      'last successful renewal. Must be shorter than '
                      'lock_ttl, so a leader that is paused or cut off from '
                      'the coordinator has stopped acting before its lock '
                      'expires and a standby can take over.'),
    cfg.IntOpt('lock_ttl', default=1, min=1,
               help='Seconds a lock lives without renewal on backends with '
                    'expiring locks (redis lock_timeout, etcd lease). A '
                    'standby takes over at most this long (plus '
                    'renew_interval) after the leader died.'),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS)]


def validate(conf):
    """Raise ValueError naming the option when the timings cannot work."""
    group = conf.coordination
    if group.lease >= group.lock_ttl:
        raise ValueError(
            '[coordination] lease = %s must be shorter than lock_ttl = %s '
            '(a deposed leader must stop before a standby can take over)'
            % (group.lease, group.lock_ttl))
    if group.renew_interval >= group.lease:
        raise ValueError(
            '[coordination] renew_interval = %s must be shorter than '
            'lease = %s' % (group.renew_interval, group.lease))
    if '://' not in (group.backend_url or ''):
        raise ValueError('[coordination] backend_url = %r is not a URL '
                         '(e.g. file:///var/lib/nova-ha/coordination, '
                         'redis://127.0.0.1:6379)' % group.backend_url)
