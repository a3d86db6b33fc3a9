"""``nova-ha alarm|recovery|host ...``: the evacuator's operator commands.

    nova-ha alarm list [--all] [--host H] [--type T] [--min-severity S]
    nova-ha recovery list [--host H] [--state S]
    nova-ha recovery show ID        per-step timeline with durations
    nova-ha recovery retry ID --operator NAME [--host-is-off]
                                    evacuate again the instances an
                                    incomplete recovery could not place
                                    (capacity added since)
    nova-ha host list               journal state of every compute host
    nova-ha host enable HOST        return a recovered host to service
    nova-ha host lift-guard HOST... --operator NAME
                                    let fencing through the mass-failure
                                    guard for the named hosts

Exit codes (as every nova-ha command): 0 ok, 1 the action failed (e.g.
Nova refused), 2 bad arguments or configuration (an unknown host), 3 not
reachable / not allowed now (a recovery in progress).
"""

import sys

from nova_ha.journal import cli as journal_cli


#: Columns of ``host list`` (nova-ha and ``openstack ha host list``).
HOST_COLUMNS = (
    journal_cli.C('HOST', 'host'), journal_cli.C('STATE', 'state'),
    journal_cli.C('SINCE', 'state_since', kind='time'),
    journal_cli.C('DETAIL', 'detail', lambda s: s.detail or ''))


def list_hosts(j):
    """Every compute host's state in the journal."""
    return j.list_host_states()


def _journal_command(sub, name, func, help):
    p = sub.add_parser(name, help=help, description=help)
    journal_cli.add_connection_option(p)
    p.set_defaults(func=func)
    return p


def add_parser(subparsers):
    alarm = subparsers.add_parser(
        'alarm', help='alarms raised by the evacuator (journal)')
    sub = alarm.add_subparsers(dest='alarm_command', metavar='COMMAND')
    sub.required = True
    journal_cli.add_format_option(journal_cli.add_alarm_filters(
        _journal_command(sub, 'list', journal_cli._alarms,
                         'List alarms (time, location, type, severity), '
                         'newest first.')))

    rec = subparsers.add_parser('recovery', help='host recoveries')
    sub = rec.add_subparsers(dest='recovery_command', metavar='COMMAND')
    sub.required = True
    journal_cli.add_format_option(journal_cli.add_recovery_filters(
        _journal_command(sub, 'list', journal_cli._recoveries,
                         'List recoveries, newest first.')))
    p = _journal_command(sub, 'show', journal_cli._recovery,
                         'One recovery: per-step timeline with durations, '
                         'its fencing attempts (operator confirmations '
                         'included) and each instance\'s outcome.')
    p.add_argument('id', type=int, metavar='ID',
                   help='recovery id (see "nova-ha recovery list")')
    journal_cli.add_format_option(p, journal_cli.SHOW_FORMATS)

    p = _journal_command(sub, 'retry', _recovery_retry,
                         'Evacuate again the instances a recovery could not '
                         'recover (no_valid_host, error), once capacity has '
                         'been added: the recovery re-opens and the running '
                         'evacuator evacuates them with no target host, so '
                         'the scheduler applies their rules again. Only for '
                         'a recovery that ended incomplete, while its host '
                         'is still fenced and RECOVERED (not enabled '
                         'again).')
    p.add_argument('id', type=int, metavar='ID',
                   help='recovery id (see "nova-ha recovery list --state '
                        'incomplete")')
    p.add_argument('--operator', required=True,
                   help='who asks for the retry (journalled)')
    p.add_argument('--host-is-off', action='store_true',
                   help='the host answered again after it was fenced '
                        '(FLAPPING alarm) and you checked that it is '
                        'powered off: retry anyway')

    host = subparsers.add_parser('host', help='compute hosts as nova-ha '
                                 'sees them')
    sub = host.add_subparsers(dest='host_command', metavar='COMMAND')
    sub.required = True
    journal_cli.add_format_option(_journal_command(
        sub, 'list', _host_list,
        'Every compute host\'s state in the journal.'))
    p = _journal_command(sub, 'enable', _host_enable,
                         'Return a recovered host to service: lift '
                         'forced_down, enable nova-compute, clear its '
                         'alarms. Do it once the host is repaired and its '
                         'nova-compute runs again.')
    p.add_argument('host', metavar='HOST',
                   help='compute host name as Nova reports it')
    p = _journal_command(sub, 'lift-guard', _host_lift_guard,
                         'Let the evacuator fence and recover HOST although '
                         'the mass-failure guard holds fencing back (many '
                         'hosts look failed at once). Check first that the '
                         'host really is down, not the evacuator cut off. '
                         'Holds until the host\'s recovery closes.')
    p.add_argument('hosts', nargs='+', metavar='HOST',
                   help='compute host(s) to let through')
    p.add_argument('--operator', required=True,
                   help='who lifts the guard (journalled)')


def _operator(args, command):
    """The --operator of an evacuator action (journalled), or None with
    the error printed (an empty name is a bad argument)."""
    name = args.operator.strip()
    if not name:
        print('nova-ha %s: --operator must name someone' % command,
              file=sys.stderr)
    return name or None


@journal_cli._safe
def _recovery_retry(args):
    from nova_ha.journal import api as journal_api
    operator = _operator(args, 'recovery retry')
    if operator is None:
        return 2
    j = journal_cli._journal(args)
    try:
        rec = j.get_recovery(args.id)
        flapping = j.list_alarms(types=['FLAPPING'], host=rec.host) \
            if rec is not None and rec.state == 'incomplete' else []
        if flapping and not args.host_is_off:
            print('nova-ha recovery retry: host %s answered again after '
                  'it was fenced (FLAPPING alarm %s): its instances may be '
                  'running there. Check that it is powered off ("nova-ha '
                  'fence status %s"), then add --host-is-off'
                  % (rec.host, flapping[0].id, rec.host), file=sys.stderr)
            return 3
        items = j.retry_recovery(args.id, operator)
    except journal_api.NotFound:
        print('nova-ha recovery retry: no recovery %s (see "nova-ha '
              'recovery list")' % args.id, file=sys.stderr)
        return 2
    except journal_api.RetryRefused as exc:
        print('nova-ha recovery retry: %s' % exc, file=sys.stderr)
        return 3
    finally:
        j.close()
    print('recovery %s re-opened by %s: %d instance(s) to evacuate again '
          '(follow with "nova-ha recovery show %s")'
          % (args.id, operator, len(items), args.id))
    for item in items:
        print('  %s (%s)' % (item.name or '-', item.instance_uuid))
    return 0


@journal_cli._safe
def _host_lift_guard(args):
    operator = _operator(args, 'host lift-guard')
    if operator is None:
        return 2
    j = journal_cli._journal(args)
    try:
        for host in args.hosts:
            j.lift_guard(host, operator)
            print('%s: mass-failure guard lifted by %s' % (host, operator))
    finally:
        j.close()
    return 0


@journal_cli._safe
def _host_list(args):
    j = journal_cli._journal(args)
    try:
        states = list_hosts(j)
    finally:
        j.close()
    journal_cli.emit_list(args, HOST_COLUMNS, states, 'no hosts')


def _host_enable(args):
    from nova_ha.evacuator import engine
    from nova_ha import nova_ops
    from nova_ha import nova_api
    try:
        j = journal_cli._journal(args)
    except Exception as exc:
        print('nova-ha host enable: %s' % exc, file=sys.stderr)
        return 2
    try:
        ops = nova_ops.NovaOps(nova_api.client())
        engine.enable_host(ops, j, args.host)
    except nova_api.NovaConfigError as exc:
        print('nova-ha host enable: %s' % exc, file=sys.stderr)
        return 2
    except LookupError as exc:      # unknown host: a bad argument
        print('nova-ha host enable: %s' % exc, file=sys.stderr)
        return 2
    except engine.HostBusy as exc:
        print('nova-ha host enable: %s' % exc, file=sys.stderr)
        return 3
    except Exception as exc:
        print('nova-ha host enable: %s failed: %s' % (args.host, exc),
              file=sys.stderr)
        return 1
    finally:
        j.close()
    print('%s: enabled' % args.host)
    return 0
