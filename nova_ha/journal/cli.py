"""``nova-ha journal ...``: schema upgrades, retention and read-only views.

    nova-ha journal upgrade [--revision REV]     create/upgrade the schema
    nova-ha journal version                      current and newest revision
    nova-ha journal purge [--older-than-days N]  apply the retention
    nova-ha journal alarms [filters]             list alarms
    nova-ha journal recoveries [--host H] [--state S]
    nova-ha journal recovery ID                  one recovery's timeline

Every command takes ``--connection URL`` to override ``[journal]
connection`` (prefer the configuration file: a URL on the command line is
visible to other local users). The rendering helpers (``format_alarms``,
``format_recoveries``, ``format_recovery``) are reusable by other command
groups.
"""

import argparse
import datetime
import sys

from oslo_config import cfg
import sqlalchemy as sa

from nova_ha.conf import journal as journal_conf
from nova_ha.journal import api
from nova_ha.journal import migrations


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'journal', help='the SQL journal: schema, retention, views',
        description='Manage and read the nova-ha journal database.')
    sub = parser.add_subparsers(dest='journal_command', metavar='COMMAND')
    sub.required = True

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument('--connection', metavar='URL',
                       help='database URL (default: [journal] connection)')
        p.set_defaults(func=func)
        return p

    p = command('upgrade', _upgrade,
                'Create the journal schema or upgrade it to the newest '
                'revision (idempotent).')
    p.add_argument('--revision', default='head',
                   help='target revision (default: head)')
    command('version', _version,
            'Print the schema revision of the database and the newest one.')
    p = command('purge', _purge,
                'Delete closed recoveries, finished fencing attempts and '
                'drains, cleared alarms and host state history older than '
                'the retention.')
    p.add_argument('--older-than-days', type=_positive_days, metavar='N',
                   help='retention in days (default: [journal] '
                        'retention_days)')
    add_alarm_filters(command('alarms', _alarms,
                              'List alarms, newest first.'))
    add_recovery_filters(command('recoveries', _recoveries,
                                 'List recoveries, newest first.'))
    p = command('recovery', _recovery,
                'Show one recovery: per-step timeline with times and the '
                'outcome of each instance.')
    p.add_argument('id', type=int, metavar='ID')


def add_alarm_filters(p):
    """Options of every alarm listing (here and ``nova-ha alarm list``)."""
    p.add_argument('--all', dest='status', action='store_const',
                   const='all', default='active',
                   help='include cleared alarms')
    p.add_argument('--cleared', dest='status', action='store_const',
                   const='cleared', help='only cleared alarms')
    p.add_argument('--host')
    p.add_argument('--type', dest='types', action='append',
                   choices=api.ALARM_TYPES, metavar='TYPE',
                   help='alarm type (repeatable): %s'
                        % ', '.join(api.ALARM_TYPES))
    p.add_argument('--min-severity', choices=api.SEVERITIES,
                   metavar='SEVERITY',
                   help='%s' % ' > '.join(api.SEVERITIES))
    p.add_argument('--rack')
    p.add_argument('--availability-zone')
    p.add_argument('--limit', type=int, default=100)
    return p


def add_recovery_filters(p):
    """Options of every recovery listing."""
    p.add_argument('--host')
    p.add_argument('--state', dest='states', action='append',
                   choices=api.RECOVERY_STATES, metavar='STATE',
                   help='recovery state (repeatable): %s'
                        % ', '.join(api.RECOVERY_STATES))
    p.add_argument('--limit', type=int, default=50)
    return p


def _positive_days(value):
    try:
        days = float(value)
    except ValueError:
        days = -1
    if days <= 0:
        raise argparse.ArgumentTypeError('must be a positive number of '
                         'days, got %r' % value)
    return days


def _url(args):
    journal_conf.register_opts(cfg.CONF)
    value = args.connection or cfg.CONF.journal.connection
    try:
        return journal_conf.validate_connection(value)
    except cfg.Error as exc:
        raise _Usage(str(exc))


class _Usage(Exception):
    pass


def _journal(args, check=True):
    journal_conf.register_opts(cfg.CONF)
    group = cfg.CONF.journal
    j = api.Journal(_url(args), busy_timeout=group.sqlite_busy_timeout,
                    max_retries=group.max_retries,
                    retention_days=group.retention_days)
    if check:
        j.check_schema()
    return j


def _safe(func):
    def wrapper(args):
        try:
            return func(args) or 0
        except _Usage as exc:
            print('nova-ha journal: %s' % exc, file=sys.stderr)
            return 2
        except api.NotFound as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except api.JournalError as exc:
            print(str(exc), file=sys.stderr)
            return 1
        except sa.exc.SQLAlchemyError as exc:
            # the driver's message, never the URL (it may hold a password)
            detail = getattr(exc, 'orig', None) or exc.__class__.__name__
            print('nova-ha journal: database error: %s' % detail,
                  file=sys.stderr)
            return 1
    wrapper.__name__ = func.__name__
    return wrapper


@_safe
def _upgrade(args):
    url = _url(args)
    before = migrations.current(url)
    after = migrations.upgrade(url, args.revision)
    print('journal %s: %s' % (
        url.render_as_string(hide_password=True),
        'already at %s' % after if before == after
        else 'upgraded %s -> %s' % (before or '(empty)', after)))


@_safe
def _version(args):
    url = _url(args)
    print('current: %s' % (migrations.current(url) or '(empty)'))
    print('head:    %s' % migrations.head())


@_safe
def _purge(args):
    j = _journal(args)
    try:
        older = (datetime.timedelta(days=args.older_than_days)
                 if args.older_than_days else None)
        counts = j.purge(older)
    finally:
        j.close()
    print('purged: ' + ', '.join('%s=%d' % kv for kv in sorted(
        counts.items())))


@_safe
def _alarms(args):
    j = _journal(args)
    try:
        alarms = j.list_alarms(
            status=args.status, host=args.host, types=args.types,
            min_severity=args.min_severity, rack=args.rack,
            availability_zone=args.availability_zone, limit=args.limit)
    finally:
        j.close()
    print(format_alarms(alarms))


@_safe
def _recoveries(args):
    j = _journal(args)
    try:
        recs = j.list_recoveries(host=args.host, states=args.states,
                                 limit=args.limit)
    finally:
        j.close()
    print(format_recoveries(recs))


@_safe
def _recovery(args):
    j = _journal(args)
    try:
        rec = j.get_recovery(args.id)
        if rec is None:
            raise api.NotFound('nova-ha journal: no recovery %d' % args.id)
        text = format_recovery(rec, j.timeline(rec.id),
                               j.list_recovery_items(rec.id),
                               j.list_fencing_attempts(recovery_id=rec.id))
    finally:
        j.close()
    print(text)


# --- rendering ---------------------------------------------------------------

def _t(value):
    if value is None:
        return '-'
    return value.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def _s(seconds):
    return '-' if seconds is None else '%.3fs' % seconds


def _table(headers, rows):
    rows = [['-' if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    line = '  '.join('%-*s' % (w, h) for w, h in zip(widths, headers))
    out = [line.rstrip()]
    for r in rows:
        out.append('  '.join('%-*s' % (w, c)
                             for w, c in zip(widths, r)).rstrip())
    return '\n'.join(out)


def format_alarms(alarms):
    if not alarms:
        return 'no alarms'
    return _table(
        ('ID', 'TIME', 'SEVERITY', 'TYPE', 'HOST', 'RACK', 'POWER_DOMAIN',
         'AZ', 'COUNT', 'STATUS', 'MESSAGE'),
        [(a.id, _t(a.created_at), a.severity, a.type, a.host, a.rack,
          a.power_domain, a.availability_zone, a.count,
          'cleared' if a.cleared_at else
          ('acked' if a.acknowledged_at else 'active'), a.message)
         for a in alarms])


def format_recoveries(recoveries):
    if not recoveries:
        return 'no recoveries'
    return _table(
        ('ID', 'HOST', 'REASON', 'STATE', 'DETECTED', 'FENCED',
         'FORCED_DOWN', 'FINISHED', 'TOTAL'),
        [(r.id, r.host, r.reason, r.state, _t(r.detected_at),
          _t(r.fenced_at), _t(r.forced_down_at), _t(r.finished_at),
          _s(api._seconds(r.detected_at, r.finished_at)))
         for r in recoveries])


def format_recovery(rec, timeline, items=(), fencing=()):
    out = ['recovery %d  host %s  reason %s  state %s'
           % (rec.id, rec.host, rec.reason, rec.state),
           '  detected %s  finished %s  total %s'
           % (_t(rec.detected_at), _t(rec.finished_at),
              _s(api._seconds(rec.detected_at, rec.finished_at))), '',
           'timeline:']
    out.append(_table(('T+', 'AT', 'STEP', 'DURATION', 'DETAIL'),
                      [(_s(e.since_detected), _t(e.at), e.step,
                        _s(e.duration), e.detail) for e in timeline]))
    if fencing:
        out += ['', 'fencing attempts:', _table(
            ('ID', 'DRIVER', 'OUTCOME', 'STARTED', 'DURATION', 'OPERATOR',
             'REASON'),
            [(f.id, f.driver, f.outcome or 'in flight', _t(f.started_at),
              _s(f.duration), f.operator, f.reason)
             for f in reversed(fencing)])]
    if items:
        out += ['', 'instances:', _table(
            ('INSTANCE', 'NAME', 'SAL', 'PRIO', 'GROUP', 'STATE', 'TRIES',
             'DEST', 'TOOK', 'ERROR'),
            [(i.instance_uuid, i.name, i.sal, i.priority, i.server_group,
              i.state, i.attempts, i.dest_host,
              _s(api._seconds(i.started_at, i.finished_at)), i.last_error)
             for i in items])]
    return '\n'.join(out)
