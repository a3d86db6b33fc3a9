"""``nova-ha-evacuator --config-file /etc/nova-ha/nova-ha.conf``.

Exit codes: 0 stopped by SIGTERM/SIGINT; 2 configuration refused (the
message names the option or host); 1 any other failure.
"""

import os
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

import nova_ha.conf
from nova_ha.conf import coordination as coord_conf
from nova_ha.conf import validate as validate_conf
from nova_ha.conf import heartbeat as hb_conf
from nova_ha.evacuator import engine
from nova_ha.evacuator import leader as leader_mod
from nova_ha.evacuator import metrics as metrics_mod
from nova_ha.fencing import fencer as fencer_mod
from nova_ha.fencing import inventory as inventory_mod
from nova_ha import journal as journal_mod
from nova_ha import nova_api
from nova_ha import notifications

LOG = logging.getLogger(__name__)
CONF = cfg.CONF


class StartupError(Exception):
    pass


def build(conf):
    """Everything the evacuator needs, or StartupError naming what's wrong.
    """
    try:
        inventory = inventory_mod.load(conf.fencing.inventory_file)
    except (OSError, ValueError) as exc:
        raise StartupError('[fencing] inventory_file: %s' % exc)
    fencer = fencer_mod.Fencer(inventory,
                               fencer_mod.FenceParams.from_conf(conf))
    journal = journal_mod.Journal.from_conf(conf)
    try:
        nova = nova_api.client(conf=conf)
    except nova_api.NovaConfigError as exc:
        raise StartupError(str(exc))
    holder = {}
    try:
        receiver = hb_conf.make_receiver(
            conf, window_for=lambda host: holder['ev'].window_for(host))
    except hb_conf.HeartbeatConfigError as exc:
        raise StartupError(str(exc))
    try:
        coord_conf.validate(conf)
    except ValueError as exc:
        raise StartupError(str(exc))
    group = conf.coordination
    if (journal.engine.dialect.name == 'sqlite'
            and not group.backend_url.startswith('file://')):
        # Evacuators on several nodes share this journal; see
        # journal.api.create_engine for why SQLite cannot serve them.
        LOG.warning('[journal] connection is SQLite while [coordination] '
                    'backend_url (%s) spans nodes: an evacuator paused '
                    'inside a journal write keeps every other one from '
                    'taking over until it runs again; use MariaDB or '
                    'PostgreSQL for a group of evacuators',
                    leader_mod.redact(group.backend_url))
    elector = leader_mod.LeaderElector(
        group.backend_url, '%s.%d' % (conf.evacuator.name, os.getpid()),
        journal, name=group.lock_name, lease=group.lease,
        renew_interval=group.renew_interval, lock_ttl=group.lock_ttl)
    ev = engine.Evacuator(conf, nova, fencer, journal, receiver,
                          notifier=notifications.Notifier(conf),
                          leader=elector)
    ev.metrics = metrics_mod.Metrics(ev)
    if conf.instance_ha.enabled:     # issue 17 (doc/instance-ha.md)
        from nova_ha.evacuator import instance_ha
        ev.instance_ha = instance_ha.InstanceHA(ev)
    holder['ev'] = ev
    return ev


def start_election(ev):
    try:
        ev.leader.start()
    except Exception as exc:
        raise StartupError('[coordination] backend_url %s: %s' % (
            leader_mod.redact(ev.leader.url), exc))


def main(argv=None):
    logging.register_options(CONF)
    nova_ha.conf.register_opts(CONF)
    try:
        CONF(argv if argv is not None else sys.argv[1:], project='nova-ha',
             prog='nova-ha-evacuator')
    except cfg.Error as exc:
        print('nova-ha-evacuator: configuration error: %s' % exc,
              file=sys.stderr)
        return 2
    # Every option read and range-checked now, not when a host fails.
    refused = validate_conf.check(CONF, 'nova-ha-evacuator')
    if refused:
        return refused
    logging.setup(CONF, 'nova-ha')
    validate_conf.warn_unknown(CONF, 'nova-ha-evacuator', LOG)
    try:
        ev = build(CONF)
        ev.check_config()
        try:
            ev.receiver.start()
        except OSError as exc:
            raise StartupError('[heartbeat] listen %s: cannot listen: %s'
                               % (CONF.heartbeat.listen, exc.strerror))
        ev.start()
        if CONF.metrics.port:
            try:
                ev.metrics.serve(CONF.metrics.port, CONF.metrics.address)
            except OSError as exc:
                raise StartupError('[metrics] port %s: cannot listen: %s'
                                   % (CONF.metrics.port, exc.strerror))
        start_election(ev)
    except (StartupError, engine.ConfigError, ValueError) as exc:
        LOG.error('refusing to start: %s', exc)
        print('nova-ha-evacuator: refusing to start: %s' % exc,
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *a: stop.set())
    LOG.info('evacuator %s running; heartbeats on %s', CONF.evacuator.name,
             ev.receiver.addresses)
    try:
        ev.run(stop)
    finally:
        ev.leader.stop()
        ev.metrics.stop()
        ev.stop()
        ev.receiver.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
