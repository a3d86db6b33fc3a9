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

The actions (:func:`start`, :func:`abort`, :func:`complete`,
:func:`follow`, :func:`outcome`, :func:`drains`) and the columns are shared
with the OpenStackClient plugin (``openstack ha maintenance ...``,
nova_ha/osc/maintenance.py); failures are
:class:`nova_ha.journal.cli.CommandError` or mapped by :func:`error_of`.
"""

import argparse
import collections
import sys
import time

from oslo_config import cfg

from nova_ha import lazy
from nova_ha.journal import cli as journal_cli

engine_mod = lazy.Module('nova_ha.maintenance.engine')

CommandError = journal_cli.CommandError

STATE_ORDER = ('moved', 'moving', 'waiting', 'blocked')


def _default_engine(conf):
    from nova_ha import journal
    from nova_ha import nova_ops
    from nova_ha.conf import maintenance as maint_conf
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
        nova_ops.NovaOps(factory=lambda: nova_ops.client_from_conf(conf)),
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


def engine():
    """The maintenance engine on ``cfg.CONF`` (``ENGINE_FACTORY``)."""
    return _engine()


# --- actions (nova-ha maintenance and openstack ha maintenance) -------------

def start(eng, host, reason=None, power_off=False):
    """Disable `host` and start draining it; the new Drain."""
    try:
        return eng.start(host, reason=reason, power_off=power_off)
    except engine_mod.DrainError as exc:
        raise CommandError(str(exc), 2)


def abort(eng, host):
    """Start no new move on `host`'s drain; the Drain."""
    try:
        return eng.abort(host)
    except engine_mod.DrainError as exc:
        raise CommandError(str(exc), 2)


def complete(eng, host):
    """Power `host` on (if nova-ha powered it off) and enable it."""
    try:
        return eng.complete(host)
    except engine_mod.DrainError as exc:
        raise CommandError(str(exc), 2)
    except RuntimeError as exc:
        raise CommandError(str(exc), 1)


def follow(eng, drain, on_pass=None):
    """Drive `drain` until it ends or ``[maintenance] wait_timeout``."""
    interval, timeout = _wait_opts()
    return eng.wait(drain.id, interval=interval, timeout=timeout,
                    on_pass=on_pass)


def drains(eng, host=None):
    """`host`'s latest drain ([] if none), or every active drain."""
    if host:
        return eng.journal.list_drains(host=host, limit=1)
    return eng.journal.list_drains(states=engine_mod.ACTIVE_DRAIN)


def drain_items(eng, drain):
    """The drain's instances, in :data:`STATE_ORDER`."""
    items = eng.journal.list_drain_items(drain.id)
    rank = {state: n for n, state in enumerate(STATE_ORDER)}
    return sorted(items, key=lambda i: rank.get(i.state, len(rank)))


def outcome(drain):
    """(exit code, final line) for a drain that stopped being driven."""
    if drain.state == 'ready':
        if drain.power_off and not drain.powered_off_by_nova_ha:
            return 1, ('%s is empty but was NOT powered off: %s'
                       % (drain.host, drain.detail))
        return 0, '%s is ready for maintenance%s' % (
            drain.host, ' (powered off by nova-ha)'
            if drain.powered_off_by_nova_ha else '')
    if drain.state == 'incomplete':
        return 1, ('%s drain INCOMPLETE: %s\nthe host stays disabled; '
                   'nothing was forced' % (drain.host, drain.detail))
    if drain.state in ('aborted', 'completed'):
        return 0, '%s drain #%d %s' % (drain.host, drain.id, drain.state)
    return 1, ('%s drain #%d still %s (stopped following it; resume with '
               '"nova-ha maintenance run %s")' % (drain.host, drain.id,
                                                  drain.state, drain.host))


def error_of(exc, prog):
    """(exit code, message) for a failure of a maintenance command, or None
    if `exc` is not one. `prog` prefixes the message."""
    from keystoneauth1 import exceptions as ks_exc
    from nova_ha import journal
    from nova_ha import nova_api
    from nova_ha import nova_ops
    if isinstance(exc, CommandError):
        return exc.code, '%s: %s' % (prog, exc)
    if isinstance(exc, (nova_api.NovaConfigError, journal.SchemaError,
                        cfg.Error)):
        return 2, '%s: configuration error: %s' % (prog, exc)
    if isinstance(exc, (ks_exc.ClientException, nova_ops.ClientException)):
        return 1, '%s: Nova API error: %s' % (prog, exc)
    return None


C = journal_cli.C

#: One drain (``status`` rows, ``start``/``abort``/``complete`` records).
DRAIN_COLUMNS = (
    C('HOST', 'host'), C('DRAIN', 'id'), C('STATE', 'state'),
    C('REASON', 'reason'), C('STARTED', 'started_at', kind='time'),
    C('STARTED_BY', 'started_by'), C('POWER_OFF', 'power_off'),
    C('POWERED_OFF_BY_NOVA_HA', 'powered_off_by_nova_ha'),
    C('FINISHED', 'finished_at', kind='time'), C('DETAIL', 'detail'))

#: One instance of a drain.
ITEM_COLUMNS = (
    C('INSTANCE', 'instance_uuid'), C('NAME', 'name'), C('STATE', 'state'),
    C('METHOD', 'method'), C('GROUP', 'server_group'),
    C('DEST', 'dest_host'), C('TRIES', 'attempts'), C('REASON', 'reason'))


def drain_labels():
    """Field names of :func:`drain_record`."""
    return journal_cli.labels(DRAIN_COLUMNS) + tuple(
        state.title() for state in STATE_ORDER)


def drain_record(eng, drain):
    """The drain's fields and its per-state instance counts."""
    counts = eng.journal.drain_progress(drain.id)
    return collections.OrderedDict(zip(drain_labels(), tuple(
        c.data(drain) for c in DRAIN_COLUMNS) + tuple(
        counts.get(state, 0) for state in STATE_ORDER)))


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
    """Print the final line of a drain that stopped being driven; its exit
    code."""
    code, line = outcome(drain)
    print(line)
    return code


def _wait_opts():
    conf = _conf()
    return conf.maintenance.poll_interval, conf.maintenance.wait_timeout


def cmd_start(args):
    eng = _engine()
    drain = start(eng, args.host, reason=args.reason,
                  power_off=args.power_off)
    progress = Progress(eng)
    progress(drain, eng.journal.list_drain_items(drain.id))
    if not args.wait:
        print('drain #%d started; follow it with "nova-ha maintenance '
              'status %s"' % (drain.id, args.host))
        return 0
    return _result(follow(eng, drain, on_pass=progress))


def cmd_status(args):
    eng = _engine()
    found = drains(eng, args.host)
    if not found:
        print('%s: no drain recorded' % args.host if args.host
              else 'no active drain')
        return 0
    for drain in found:
        counts = eng.journal.drain_progress(drain.id)
        print(_counts_line(drain, counts))
        print('  reason: %s; started %s by %s%s' % (
            drain.reason or '-', drain.started_at.strftime(
                '%Y-%m-%d %H:%M:%S'), drain.started_by or '-',
            '; power off when empty' if drain.power_off else ''))
        if drain.detail:
            print('  %s' % drain.detail)
        if args.host:
            for item in drain_items(eng, drain):
                if item.state in STATE_ORDER:
                    print(_item_line(item))
    return 0


def cmd_abort(args):
    eng = _engine()
    drain = abort(eng, args.host)
    progress = Progress(eng)
    progress(drain, [])
    if args.no_wait or drain.state == 'aborted':
        return _result(drain) if drain.state == 'aborted' else 0
    return _result(follow(eng, drain, on_pass=progress))


def cmd_complete(args):
    eng = _engine()
    drain = complete(eng, args.host)
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
    return journal_cli.one_line_errors(error_of, 'nova-ha maintenance')(func)


DESCRIPTION = """\
Drain a compute host before maintenance: disable it, then move every
instance off it (live migration where the instance's policy allows it, cold
migration otherwise, no target host so every placement rule holds), never
more than a server group's limit at once. Resumable: the drain is kept in
the journal.

exit codes: 0 done (drain started / host ready / completed), 1 the drain
ended incomplete, a power step failed or --wait timed out, 2 bad arguments
or configuration (unknown host, host already draining, nothing to abort)"""


def _add_commands(parser):
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    host_help = 'compute host name as Nova reports it'
    p = sub.add_parser('start', help='disable HOST and move every instance '
                       'off it within each VNF\'s limits')
    p.add_argument('host', metavar='HOST', help=host_help)
    p.add_argument('--reason', default=None, metavar='TEXT',
                   help='why (shown in the service\'s disabled reason)')
    p.add_argument('--power-off', action='store_true',
                   help='power the host off (fencing driver) once empty')
    p.add_argument('--wait', action='store_true',
                   help='follow the drain, printing progress, until it '
                        'ends (exit 0 ready, 1 incomplete)')
    p.set_defaults(func=_guarded(cmd_start))
    p = sub.add_parser('status', help='drains and per-instance progress')
    p.add_argument('host', metavar='HOST', nargs='?',
                   help='this host\'s latest drain with every instance '
                        '(default: every active drain)')
    p.set_defaults(func=_guarded(cmd_status))
    p = sub.add_parser('abort', help='start no new move; moves in flight '
                       'finish; the host stays disabled')
    p.add_argument('host', metavar='HOST', help=host_help)
    p.add_argument('--no-wait', action='store_true',
                   help='return at once instead of waiting for the moves '
                        'in flight')
    p.set_defaults(func=_guarded(cmd_abort))
    p = sub.add_parser('complete', help='end maintenance: power on (if '
                       'nova-ha powered it off) and re-enable HOST')
    p.add_argument('host', metavar='HOST', help=host_help)
    p.set_defaults(func=_guarded(cmd_complete))
    p = sub.add_parser('run', help='drive (resume) active drains: one '
                       'pass, or HOST until it ends, or --daemon forever '
                       '(also starts drains for services disabled with a '
                       'reason beginning "maintenance" when [maintenance] '
                       'drain_on_disable is set)')
    p.add_argument('host', metavar='HOST', nargs='?',
                   help='follow this host\'s drain until it ends')
    p.add_argument('--daemon', action='store_true',
                   help='keep driving every active drain until stopped')
    p.set_defaults(func=_guarded(cmd_run))


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'maintenance', help='drain a host before maintenance',
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_commands(parser)
    return parser


def build_standalone_parser():
    parser = argparse.ArgumentParser(prog='nova-ha maintenance')
    _add_commands(parser)
    return parser
