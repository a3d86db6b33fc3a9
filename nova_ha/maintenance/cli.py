"""``nova-ha maintenance``: drain a compute host before maintenance.

::

    nova-ha maintenance start HOST [--reason TEXT] [--power-off] [--wait]
    nova-ha maintenance status [HOST]
    nova-ha maintenance abort HOST [--no-wait]
    nova-ha maintenance complete HOST
    nova-ha maintenance run [HOST] [--daemon]

Exit codes: 0 done (drain started / host ready / completed), 1 the drain
ended incomplete, a power step failed or --wait timed out, 2 bad
arguments (unknown host, host already draining, nothing to abort...).
"""

import argparse
import sys
import time

from oslo_config import cfg

from nova_ha.maintenance import engine as engine_mod

STATE_ORDER = ('moved', 'moving', 'waiting', 'blocked')


def _default_engine(conf):
    from nova_ha import journal
    from nova_ha.conf import maintenance as maint_conf
    from nova_ha.maintenance import nova as nova_mod
    from nova_ha.maintenance import notify
    from nova_ha.maintenance import policy
    from nova_ha.maintenance import power
    maint_conf.register_opts(conf)

    class LazyPower(power.Power):
        _impl = None

        def _get(self):
            if self._impl is None:
                self._impl = power.FencerPower.from_conf(conf)
            return self._impl

        def power_off(self, host):
            return self._get().power_off(host)

        def power_on(self, host):
            return self._get().power_on(host)

    return engine_mod.Engine(
        nova_mod.NovaAPI(factory=lambda: nova_mod.client_from_conf(conf)),
        journal.Journal.from_conf(conf),
        limits=policy.Limits.from_conf(conf),
        notifier=notify.make_notifier(conf, conf.maintenance.publisher_id),
        power=LazyPower(),
        move_start_timeout=conf.maintenance.move_start_timeout,
        drain_on_disable=conf.maintenance.drain_on_disable,
        refresh_interval=conf.maintenance.refresh_interval)


#: tests replace this with a function returning an Engine on their Nova
ENGINE_FACTORY = _default_engine


def _conf():
    from nova_ha.conf import maintenance as maint_conf
    maint_conf.register_opts(cfg.CONF)
    return cfg.CONF


def _engine():
    return ENGINE_FACTORY(_conf())


def _counts_line(drain, counts):
    return '%s drain #%d %s: %s' % (
        drain.host, drain.id, drain.state,
        ', '.join('%s %d' % (s, counts.get(s, 0)) for s in STATE_ORDER))


def _item_line(item):
    text = '  %-8s %s (%s)' % (item.state, item.name, item.instance_uuid)
    if item.method:
        text += ' %s' % item.method
    if item.state == 'moved' and item.dest_host:
        text += ' -> %s' % item.dest_host
    if item.reason and item.state in ('blocked', 'waiting', 'moved'):
        text += ': %s' % item.reason
    return text


class Progress:
    """Prints a line per instance that changed and a summary line when the
    counts change (live progress of ``--wait``, ``abort``, ``run``)."""

    def __init__(self, eng, out=None):
        self.eng = eng
        self.out = out or sys.stdout
        self.last = None

    def __call__(self, drain, changed):
        if drain is None:
            return
        for item in changed:
            print(_item_line(item), file=self.out)
        counts = self.eng.journal.drain_progress(drain.id)
        key = (drain.state, tuple(sorted(counts.items())))
        if key != self.last:
            self.last = key
            print('[%s] %s' % (time.strftime('%H:%M:%S'),
                               _counts_line(drain, counts)), file=self.out)
        self.out.flush()


def _fail(msg):
    print('nova-ha maintenance: %s' % msg, file=sys.stderr)
    return 2


def _result(drain):
    """Exit code and a final line for a drain that stopped being driven."""
    if drain.state == 'ready':
        if drain.power_off and not drain.powered_off_by_nova_ha:
            print('%s is empty but was NOT powered off: %s'
                  % (drain.host, drain.detail))
            return 1
        print('%s is ready for maintenance%s' % (
            drain.host, ' (powered off by nova-ha)'
            if drain.powered_off_by_nova_ha else ''))
        return 0
    if drain.state == 'incomplete':
        print('%s drain INCOMPLETE: %s\nthe host stays disabled; nothing '
              'was forced' % (drain.host, drain.detail))
        return 1
    if drain.state in ('aborted', 'completed'):
        print('%s drain #%d %s' % (drain.host, drain.id, drain.state))
        return 0
    print('%s drain #%d still %s (stopped following it; resume with '
          '"nova-ha maintenance run %s")' % (drain.host, drain.id,
                                             drain.state, drain.host))
    return 1


def _wait_opts():
    conf = _conf()
    return conf.maintenance.poll_interval, conf.maintenance.wait_timeout


def cmd_start(args):
    eng = _engine()
    try:
        drain = eng.start(args.host, reason=args.reason,
                          power_off=args.power_off)
    except engine_mod.DrainError as exc:
        return _fail(str(exc))
    progress = Progress(eng)
    progress(drain, eng.journal.list_drain_items(drain.id))
    if not args.wait:
        print('drain #%d started; follow it with "nova-ha maintenance '
              'status %s"' % (drain.id, args.host))
        return 0
    interval, timeout = _wait_opts()
    drain = eng.wait(drain.id, interval=interval, timeout=timeout,
                     on_pass=progress)
    return _result(drain)


def cmd_status(args):
    eng = _engine()
    if args.host:
        drains = eng.journal.list_drains(host=args.host, limit=1)
        if not drains:
            print('%s: no drain recorded' % args.host)
            return 0
    else:
        drains = eng.journal.list_drains(states=engine_mod.ACTIVE_DRAIN)
        if not drains:
            print('no active drain')
            return 0
    for drain in drains:
        counts = eng.journal.drain_progress(drain.id)
        print(_counts_line(drain, counts))
        print('  reason: %s; started %s by %s%s' % (
            drain.reason or '-', drain.started_at.strftime(
                '%Y-%m-%d %H:%M:%S'), drain.started_by or '-',
            '; power off when empty' if drain.power_off else ''))
        if drain.detail:
            print('  %s' % drain.detail)
        if args.host:
            items = eng.journal.list_drain_items(drain.id)
            for state in STATE_ORDER:
                for item in items:
                    if item.state == state:
                        print(_item_line(item))
    return 0


def cmd_abort(args):
    eng = _engine()
    try:
        drain = eng.abort(args.host)
    except engine_mod.DrainError as exc:
        return _fail(str(exc))
    progress = Progress(eng)
    progress(drain, [])
    if args.no_wait or drain.state == 'aborted':
        return _result(drain) if drain.state == 'aborted' else 0
    interval, timeout = _wait_opts()
    drain = eng.wait(drain.id, interval=interval, timeout=timeout,
                     on_pass=progress)
    return _result(drain)


def cmd_complete(args):
    eng = _engine()
    try:
        drain = eng.complete(args.host)
    except engine_mod.DrainError as exc:
        return _fail(str(exc))
    except RuntimeError as exc:
        print('nova-ha maintenance: %s' % exc, file=sys.stderr)
        return 1
    print('%s drain #%d completed; nova-compute enabled' % (drain.host,
                                                              drain.id))
    return 0


def cmd_run(args):
    eng = _engine()
    interval, timeout = _wait_opts()
    progress = {}
    if args.host:
        drain = eng.journal.get_active_drain(args.host)
        if drain is None:
            return _fail('host %s has no active drain' % args.host)
        return _result(eng.wait(drain.id, interval=interval,
                                timeout=timeout, on_pass=Progress(eng)))
    while True:
        for drain, changed in eng.reconcile_all():
            if drain is not None:
                progress.setdefault(drain.id, Progress(eng))(drain, changed)
        if not args.daemon:
            return 0
        time.sleep(interval)


def _guarded(func):
    """Configuration and connection problems -> one clear line, not a
    traceback (exit 2 for configuration, 1 for a failure at run time)."""
    import functools

    @functools.wraps(func)
    def wrapper(args):
        from keystoneauth1 import exceptions as ks_exc
        from nova_ha import journal
        from nova_ha import nova_api
        from nova_ha.maintenance import nova as nova_mod
        try:
            return func(args)
        except (nova_api.NovaConfigError, journal.SchemaError,
                cfg.Error) as exc:
            print('nova-ha maintenance: configuration error: %s' % exc,
                  file=sys.stderr)
            return 2
        except (ks_exc.ClientException, nova_mod.ClientException) as exc:
            print('nova-ha maintenance: Nova API error: %s' % exc,
                  file=sys.stderr)
            return 1
    return wrapper


def _add_commands(parser):
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    p = sub.add_parser('start', help='disable HOST and move every instance '
                       'off it within each VNF\'s limits')
    p.add_argument('host', metavar='HOST')
    p.add_argument('--reason', default=None, metavar='TEXT',
                   help='why (shown in the service\'s disabled reason)')
    p.add_argument('--power-off', action='store_true',
                   help='power the host off (fencing driver) once empty')
    p.add_argument('--wait', action='store_true',
                   help='follow the drain, printing progress, until it '
                        'ends (exit 0 ready, 1 incomplete)')
    p.set_defaults(func=_guarded(cmd_start))
    p = sub.add_parser('status', help='drains and per-instance progress')
    p.add_argument('host', metavar='HOST', nargs='?')
    p.set_defaults(func=_guarded(cmd_status))
    p = sub.add_parser('abort', help='start no new move; moves in flight '
                       'finish; the host stays disabled')
    p.add_argument('host', metavar='HOST')
    p.add_argument('--no-wait', action='store_true',
                   help='return at once instead of waiting for the moves '
                        'in flight')
    p.set_defaults(func=_guarded(cmd_abort))
    p = sub.add_parser('complete', help='end maintenance: power on (if '
                       'nova-ha powered it off) and re-enable HOST')
    p.add_argument('host', metavar='HOST')
    p.set_defaults(func=_guarded(cmd_complete))
    p = sub.add_parser('run', help='drive (resume) active drains: one '
                       'pass, or HOST until it ends, or --daemon forever '
                       '(also starts drains for services disabled with a '
                       'reason beginning "maintenance" when [maintenance] '
                       'drain_on_disable is set)')
    p.add_argument('host', metavar='HOST', nargs='?')
    p.add_argument('--daemon', action='store_true')
    p.set_defaults(func=_guarded(cmd_run))


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'maintenance', help='drain a host before maintenance',
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_commands(parser)
    return parser


def build_standalone_parser():
    parser = argparse.ArgumentParser(prog='nova-ha maintenance')
    _add_commands(parser)
    return parser
