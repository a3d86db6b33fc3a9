"""``nova-ha-agent``: heartbeats and process watchdog on a compute host.

    nova-ha-agent --config-file /etc/nova-ha/nova-ha.conf

Reads [heartbeat] (doc/heartbeat.md), then every interval sends one signed
heartbeat per plane to every target, carrying the states of the watched
processes, which it restarts when they die. SIGTERM/SIGINT: clean exit 0.
Bad configuration: exit 2 with a message naming the option and value.
"""

import os
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from nova_ha.conf import heartbeat as hb_conf
from nova_ha.conf import validate as validate_conf
from nova_ha.conf import instance_ha as iha_conf

LOG = logging.getLogger(__name__)
PROG = 'nova-ha-agent'


CLI_OPTS = [
    cfg.StrOpt('derive-host-key', metavar='HOST',
               help='Print the key_file lines of HOST for [heartbeat] '
                    'key_mode = per_host, derived from this '
                    'configuration\'s (master) key, and exit. Run it where '
                    'the master key is; install the output as HOST\'s '
                    'key_file (mode 0600).'),
]


def _register(conf):
    try:
        hb_conf.register_opts(conf)
        iha_conf.register_opts(conf)
        conf.register_cli_opts(CLI_OPTS)
    except cfg.DuplicateOptError:  # pragma: no cover
        pass
    try:
        logging.register_options(conf)
    except cfg.ArgsAlreadyParsedError:  # pragma: no cover
        pass
    except cfg.DuplicateOptError:  # pragma: no cover
        pass


def build(conf):
    """Validate the configuration; return (agent, watchdog) not started.
    Raises HeartbeatConfigError."""
    from nova_ha.heartbeat import agent as hb_agent
    from nova_ha.heartbeat import watchdog as hb_watchdog

    hb = conf.heartbeat
    keyring = hb_conf.load_keyring(conf)
    targets = hb_conf.plane_addresses(conf, 'target')
    interval = hb_conf.interval_for(conf)
    host = (hb.host or '').strip()
    if not host or len(host.encode('utf-8')) > 255:
        raise hb_conf.HeartbeatConfigError(
            '[heartbeat] host = %r: need Nova\'s compute host name' % hb.host)
    specs = hb_conf.watch_specs(conf)
    wd = hb_watchdog.Watchdog(
        specs, max_restarts=hb.restart_max,
        restart_window=hb.restart_window,
        backoff_initial=hb.restart_backoff,
        backoff_max=max(hb.restart_backoff, hb.restart_backoff_max))
    state_file = hb.state_file or None
    if state_file:
        d = os.path.dirname(os.path.abspath(state_file))
        try:
            os.makedirs(d, exist_ok=True)
            epoch = hb_agent.new_epoch(state_file)
        except OSError as exc:
            raise hb_conf.HeartbeatConfigError(
                '[heartbeat] state_file = %r: %s' % (state_file,
                                                     exc.strerror)) from None
    else:
        epoch = None
    agent = hb_agent.Agent(host, targets, keyring, interval=interval,
                           epoch=epoch, state_file=state_file,
                           process_states=wd.states if specs else None)
    return agent, wd


def main(argv=None, conf=None):
    conf = conf if conf is not None else cfg.CONF
    _register(conf)
    try:
        conf(sys.argv[1:] if argv is None else argv, project='nova-ha',
             prog=PROG)
    except cfg.Error as exc:
        print('%s: configuration error: %s' % (PROG, exc), file=sys.stderr)
        return 2
    if conf.derive_host_key is not None:
        try:
            lines = hb_conf.derive_host_keys(conf, conf.derive_host_key)
        except hb_conf.HeartbeatConfigError as exc:
            print('%s: configuration error: %s' % (PROG, exc),
                  file=sys.stderr)
            return 2
        print('# [heartbeat] key_file of %s (key_mode = per_host)'
              % conf.derive_host_key.strip())
        for line in lines:
            print(line)
        return 0
    refused = validate_conf.check(conf, PROG)
    if refused:
        return refused
    logging.setup(conf, 'nova-ha')
    validate_conf.warn_unknown(conf, PROG, LOG)
    if conf.debug:
        conf.log_opt_values(LOG, logging.DEBUG)   # secret=True: masked
    try:
        agent, wd = build(conf)
    except (hb_conf.HeartbeatConfigError, cfg.Error) as exc:
        print('%s: configuration error: %s' % (PROG, exc), file=sys.stderr)
        LOG.error('configuration error: %s', exc)
        return 2

    stop = threading.Event()
    got = []

    def on_signal(signum, frame):
        # No logging here: the handler may interrupt a thread holding the
        # logging lock.
        got.append(signum)
        stop.set()

    monitor = None
    if conf.instance_ha.monitor:
        # Issue 17: libvirt lifecycle events -> instance reports.
        from nova_ha.heartbeat import instances
        monitor = instances.InstanceMonitor(
            conf.instance_ha.libvirt_uri, on_reports=agent.send_instances,
            queue_max=conf.instance_ha.event_queue_max,
            watch_processes=conf.instance_ha.process_watch)
        try:
            monitor.start()
        except instances.LibvirtUnavailable as exc:
            print('%s: [instance_ha] monitor = true: %s' % (PROG, exc),
                  file=sys.stderr)
            LOG.error('[instance_ha] monitor = true: %s', exc)
            agent.close()
            return 2
        agent.instance_failures = monitor.failures
    old = {s: signal.signal(s, on_signal)
           for s in (signal.SIGTERM, signal.SIGINT)}
    LOG.info('%s: host %s, epoch %d, every %d ms on %s; watching %s',
             PROG, agent.host, agent.epoch, agent.interval * 1000,
             '; '.join('%s -> %s' % (p, ', '.join('%s:%d' % a for a in t))
                       for p, t in agent.targets.items()),
             ', '.join(wd.states()) or 'nothing')
    try:
        wd.check()   # first states before the first beat
        wd_thread = wd.start(stop, conf.heartbeat.watch_interval)
        agent.run(stop)
        wd_thread.join(5)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if monitor is not None:
            monitor.stop()
        agent.close()
        wd.close()
    LOG.info('%s: stopped (signal %s) after %d heartbeats', PROG,
             got[0] if got else '-', agent.seq)
    return 0


if __name__ == '__main__':  # pragma: no cover
    sys.exit(main())
