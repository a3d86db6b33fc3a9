"""[heartbeat]: authenticated per-plane heartbeats (agent and evacuator).

One group serves both ends: ``nova-ha-agent`` reads ``target``, ``host``,
``sal``, ``watch_processes``; the evacuator's receiver reads ``listen``.
Both read ``key``/``key_file``, ``planes``, intervals and
``max_clock_skew``. See doc/heartbeat.md.

Per-plane addresses are repeatable ``PLANE=ADDRESS:PORT`` lines (one per
address, so a plane can have several -- an evacuator pair)::

    [heartbeat]
    planes = management, storage
    key_file = /etc/nova-ha/heartbeat.key
    target = management=192.0.2.10:4800
    target = management=192.0.2.11:4800
    target = storage=198.51.100.10:4800
    target = storage=198.51.100.11:4800

Watched processes are named in ``watch_processes``; each may have a
``[watch:NAME]`` section (pidfile, process_name, restart_command), whose
options default to: match a process called NAME, restart with
``systemctl restart NAME``.

Helpers (``load_keyring``, ``plane_addresses``, ``interval_for``,
``watch_specs``, ``make_receiver``) validate and raise
:class:`HeartbeatConfigError` with a message naming the option and value
-- never the key.
"""

import ipaddress
import logging
import os
import socket
import stat

from oslo_config import cfg

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 4800

GROUP = cfg.OptGroup(
    'heartbeat', title='Heartbeats',
    help='Authenticated heartbeats from nova-ha-agent on every compute '
         'host to the evacuators, over every network plane.')

OPTS = [
    cfg.StrOpt('key', secret=True,
               help='HMAC-SHA256 key (at least 16 bytes; e.g. `openssl '
                    'rand -hex 32`): the key shared by every agent and '
                    'evacuator, or with key_mode = per_host the master key '
                    '(evacuators) / the host\'s derived key (agents). '
                    'Prefer key_file.'),
    cfg.StrOpt('key_file',
               help='File holding the key(s), one per line: the first '
                    'signs, every one verifies (key rotation). Blank lines '
                    'and #-comments ignored. Should be mode 0600 or 0640.'),
    cfg.StrOpt('key_mode', default='shared',
               choices=[('shared', 'every agent and evacuator holds the '
                         'same key'),
                        ('per_host', 'evacuators hold the master key; each '
                         'agent holds only the key derived for its host '
                         '(nova-ha-agent --derive-host-key HOST), so a '
                         'compromised host cannot sign for another')],
               help='How heartbeat keys are distributed.'),
    cfg.ListOpt('planes', default=['management'],
                help='Network planes heartbeats travel on, in order. Every '
                     'target/listen entry must name one of them; every '
                     'plane needs at least one.'),
    cfg.MultiStrOpt('target', default=[],
                    help='Agent: where to send, as PLANE=ADDRESS[:PORT] '
                         '(IPv6: PLANE=[ADDR]:PORT). Repeat the option for '
                         'several evacuators or planes.'),
    cfg.MultiStrOpt('listen', default=[],
                    help='Evacuator: where to receive, as '
                         'PLANE=ADDRESS[:PORT]; repeatable. Bind each plane '
                         'to that plane\'s own interface address.'),
    cfg.PortOpt('port', default=DEFAULT_PORT,
                help='UDP port used when a target/listen entry has none.'),
    cfg.IntOpt('interval_ms', default=200, min=10, max=60000,
               help='Milliseconds between two heartbeats (all planes).'),
    cfg.DictOpt('sal_interval_ms', default={},
                help='Per-SAL override of interval_ms, e.g. 1:100,3:1000. '
                     'The agent uses the entry of its own `sal`.'),
    cfg.IntOpt('sal', min=1, max=3,
               help='Agent: the SAL this host is certified for (its '
                    'aggregate\'s ha:sal); picks sal_interval_ms.'),
    cfg.FloatOpt('max_clock_skew', default=2.0, min=0.05,
                 help='Seconds a heartbeat\'s send time may differ from the '
                      'receiver\'s clock; older or newer packets are '
                      'rejected (replay window). Hosts must run NTP.'),
    cfg.StrOpt('host', default=socket.gethostname(),
               sample_default='<hostname>',
               help='Agent: this host\'s name; must equal Nova\'s compute '
                    'service host name ([DEFAULT] host of nova-compute).'),
    cfg.StrOpt('state_file', default='/var/lib/nova-ha/heartbeat-epoch',
               help='Agent: where the epoch is kept so that it grows '
                    'across restarts even if the clock is stepped back.'),
    cfg.ListOpt('watch_processes',
                default=['nova-compute', 'libvirtd', 'ovs-vswitchd'],
                help='Agent: processes to watch, restart and report; each '
                     'may have a [watch:NAME] section. Empty: none.'),
    cfg.FloatOpt('watch_interval', default=1.0, min=0.1,
                 help='Agent: seconds between two process checks.'),
    cfg.IntOpt('restart_max', default=5, min=0,
               help='Agent: restarts of one process within restart_window '
                    'before the watchdog gives up (reports "failed").'),
    cfg.FloatOpt('restart_window', default=600.0, min=1.0,
                 help='Agent: seconds over which restart_max counts.'),
    cfg.FloatOpt('restart_backoff', default=1.0, min=0.0,
                 help='Agent: seconds before the second consecutive restart;'
                      ' doubled each time up to restart_backoff_max.'),
    cfg.FloatOpt('restart_backoff_max', default=60.0, min=0.0,
                 help='Agent: longest delay between two restarts.'),
]

WATCH_OPTS = [
    cfg.StrOpt('pidfile',
               help='Find the process by this pidfile (else by name).'),
    cfg.StrOpt('process_name',
               help='Process name to match (comm, or basename of argv[0] '
                    'or argv[1]); default: the section\'s NAME.'),
    cfg.StrOpt('restart_command',
               help='Command that restarts it (split like a shell, run '
                    'without one); default `systemctl restart NAME`. Set '
                    'to an empty value to watch and report only.'),
    cfg.FloatOpt('restart_timeout', default=60.0, min=1.0,
                 help='Seconds a restart may take to show the process.'),
]


class HeartbeatConfigError(ValueError):
    """Bad [heartbeat] configuration; the message names option and value.
    """


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return [(GROUP, OPTS), ('watch:nova-compute', WATCH_OPTS)]


def _err(option, value, why, group='heartbeat'):
    return HeartbeatConfigError('[%s] %s = %r: %s' % (group, option, value,
                                                      why))


def load_keyring(conf, receiver=False):
    """The Keyring from key or key_file (exactly one of them); for a
    receiver in ``key_mode = per_host``, a HostKeyring of master keys."""
    from nova_ha.heartbeat import protocol
    keys, where = _load_keys(conf)
    try:
        if receiver and conf.heartbeat.key_mode == 'per_host':
            return protocol.HostKeyring(keys)
        return protocol.Keyring(keys)
    except (TypeError, ValueError) as exc:
        raise _err(where[0], where[1], str(exc)) from None


def derive_host_keys(conf, host):
    """Lines of `host`'s key_file under per_host keys (one per master key,
    the signing one first)."""
    from nova_ha.heartbeat import protocol
    keys, where = _load_keys(conf)
    try:
        protocol.Keyring(keys)   # same validation as everywhere
    except (TypeError, ValueError) as exc:
        raise _err(where[0], where[1], str(exc)) from None
    host = host.strip()
    if not host or len(host.encode('utf-8')) > 255:
        raise HeartbeatConfigError('--derive-host-key %r: need a compute '
                                   'host name' % host)
    return [protocol.derive_host_key(k, host) for k in keys]


def _load_keys(conf):
    hb = conf.heartbeat
    if hb.key and hb.key_file:
        raise HeartbeatConfigError('[heartbeat] key and key_file are both '
                                   'set; set only one')
    if hb.key_file:
        path = hb.key_file
        try:
            st = os.stat(path)
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise _err('key_file', path, 'cannot read: %s'
                       % exc.strerror) from None
        if st.st_mode & stat.S_IROTH:
            LOG.warning('[heartbeat] key_file %s is readable by everyone; '
                        'make it mode 0600 or 0640', path)
        keys = [ln.strip() for ln in lines
                if ln.strip() and not ln.strip().startswith('#')]
        if not keys:
            raise _err('key_file', path, 'holds no key')
        where = ('key_file', path)
    elif hb.key:
        keys = [hb.key]
        where = ('key', '***')
    else:
        raise HeartbeatConfigError('[heartbeat] key_file (or key) is '
                                   'required: the shared heartbeat key')
    return keys, where


def _planes(conf):
    planes = [p.strip() for p in conf.heartbeat.planes if p.strip()]
    if not planes:
        raise _err('planes', conf.heartbeat.planes, 'at least one plane')
    if len(set(planes)) != len(planes):
        raise _err('planes', ','.join(planes), 'duplicate plane name')
    for p in planes:
        if len(p.encode('utf-8')) > 32 or '=' in p:
            raise _err('planes', p, 'plane names are 1..32 bytes, no "="')
    return planes


def plane_addresses(conf, option):
    """{plane: [(address, port), ...]} from the `target` or `listen`
    option, in `planes` order; every plane must have an address."""
    from nova_ha.heartbeat.receiver import parse_address
    planes = _planes(conf)
    out = {p: [] for p in planes}
    for entry in getattr(conf.heartbeat, option):
        plane, sep, addr = entry.partition('=')
        plane = plane.strip()
        if not sep:
            raise _err(option, entry, 'expected PLANE=ADDRESS[:PORT]')
        if plane not in out:
            raise _err(option, entry, 'plane %r is not in [heartbeat] '
                       'planes (%s)' % (plane, ', '.join(planes)))
        try:
            host, port = parse_address(addr, conf.heartbeat.port)
        except ValueError as exc:
            raise _err(option, entry, str(exc)) from None
        if option == 'target' and port == 0:
            raise _err(option, entry, 'port 0 is not a destination')
        out[plane].append((_resolve(option, entry, host, port), port))
    missing = [p for p, a in out.items() if not a]
    if missing:
        raise HeartbeatConfigError(
            '[heartbeat] %s: no address for plane(s) %s (planes = %s)'
            % (option, ', '.join(missing), ', '.join(planes)))
    return out


def _resolve(option, entry, host, port):
    """An IP literal as is; a name resolved once, at start (never a DNS
    lookup per heartbeat)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise _err(option, entry, 'cannot resolve %r: %s'
                   % (host, exc.strerror or exc)) from None
    return infos[0][4][0]


def interval_for(conf, sal=None):
    """Heartbeat interval in seconds for a host of `sal` (None: the
    configured [heartbeat] sal, else interval_ms)."""
    hb = conf.heartbeat
    if sal is None:
        sal = hb.sal
    if sal is not None and str(sal) in hb.sal_interval_ms:
        raw = hb.sal_interval_ms[str(sal)]
        try:
            ms = int(raw)
            if ms < 10:
                raise ValueError
        except ValueError:
            raise _err('sal_interval_ms', '%s:%s' % (sal, raw),
                       'interval must be an integer >= 10 ms') from None
        return ms / 1000.0
    for k, v in hb.sal_interval_ms.items():
        if k not in ('1', '2', '3'):
            raise _err('sal_interval_ms', '%s:%s' % (k, v),
                       'SAL must be 1, 2 or 3')
    return hb.interval_ms / 1000.0


def register_watch_opts(conf, name):
    group = 'watch:%s' % name
    conf.register_opts(WATCH_OPTS, group=group)
    return getattr(conf, group)


def watch_specs(conf):
    """ProcessSpecs from watch_processes and their [watch:NAME] sections."""
    from nova_ha.heartbeat import watchdog
    specs = []
    for name in conf.heartbeat.watch_processes:
        name = name.strip()
        if not name:
            continue
        w = register_watch_opts(conf, name)
        cmd = w.restart_command
        if cmd is None:
            cmd = 'systemctl restart %s' % name
        try:
            specs.append(watchdog.ProcessSpec(
                name, restart_command=cmd or None, pidfile=w.pidfile,
                process_name=w.process_name or name,
                restart_timeout=w.restart_timeout))
        except ValueError as exc:
            raise _err('restart_command', cmd, str(exc),
                       group='watch:%s' % name) from None
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise _err('watch_processes', ','.join(names), 'duplicate name')
    if len(specs) > 16:
        raise _err('watch_processes', ','.join(names), 'at most 16')
    return specs


def make_receiver(conf, window_for=None, **kwargs):
    """A HeartbeatReceiver (not started) from `listen`, for the evacuator.
    """
    from nova_ha.heartbeat import receiver
    return receiver.HeartbeatReceiver(
        plane_addresses(conf, 'listen'), load_keyring(conf, receiver=True),
        max_clock_skew=conf.heartbeat.max_clock_skew,
        window_for=window_for, **kwargs)
