"""``nova-ha journal ...``: schema upgrades, retention and read-only views.

    nova-ha journal upgrade [--revision REV]     create/upgrade the schema
    nova-ha journal version                      current and newest revision
    nova-ha journal purge [--older-than-days N]  apply the retention
    nova-ha journal alarms [filters]             list alarms
    nova-ha journal recoveries [--host H] [--state S]
    nova-ha journal recovery ID                  one recovery's timeline

Every command takes ``--connection URL`` to override ``[journal]
connection`` (prefer the configuration file: a URL on the command line is
visible to other local users).

The queries and columns here are shared by every front end of the journal:
``nova-ha alarm|recovery|host`` (nova_ha/evacuator/cli.py), ``nova-ha
journal`` and the OpenStackClient plugin (``openstack ha ...``,
nova_ha/osc). A :class:`Column` gives one value two renderings: ``text``
for nova-ha's tables (``-`` for nothing, ``1.234s``) and ``data`` for
machine-readable output (``None``, seconds as a number, times as ISO 8601
UTC). Failures are :class:`CommandError` (message and exit code) or mapped
by :func:`error_of`, so both command lines report them alike.
"""

import argparse
import collections
import datetime
import functools
import sys

from oslo_config import cfg

from nova_ha import lazy

# Imported on first use: `nova-ha --help` must not load SQLAlchemy/alembic.
sa = lazy.Module('sqlalchemy')
journal_conf = lazy.Module('nova_ha.conf.journal')
api = lazy.Module('nova_ha.journal.api')
migrations = lazy.Module('nova_ha.journal.migrations')
placement_plan = lazy.Module('nova_ha.evacuator.placement_plan')


def add_parser(subparsers):
    parser = subparsers.add_parser(
        'journal', help='the SQL journal: schema, retention, views',
        description='Manage and read the nova-ha journal database.')
    sub = parser.add_subparsers(dest='journal_command', metavar='COMMAND')
    sub.required = True

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help)
        add_connection_option(p, 'database URL (default: [journal] '
                                 'connection)')
        p.set_defaults(func=func)
        return p

    p = command('upgrade', _upgrade,
                'Create the journal schema or upgrade it to the newest '
                'revision (idempotent).')
    p.add_argument('--revision', default='head',
                   help='target revision (default: head)')
    command('version', _version,
            'Print the schema revision of the database and the newest one.')
    p = command('leader', _leader,
                'Which evacuator leads: the journal\'s leadership row '
                '(epoch = the fencing token, holder = NAME.PID, when it was '
                'claimed and last renewed). Exit 1 if none has led yet.')
    p.add_argument('--name', metavar='LOCK',
                   help='leadership name (default: [coordination] '
                        'lock_name)')
    p = command('purge', _purge,
                'Delete closed recoveries, finished fencing attempts and '
                'drains, cleared alarms and host state history older than '
                'the retention.')
    p.add_argument('--older-than-days', type=_positive_days, metavar='N',
                   help='retention in days (default: [journal] '
                        'retention_days)')
    add_format_option(add_alarm_filters(command(
        'alarms', _alarms, 'List alarms, newest first.')))
    add_format_option(add_recovery_filters(command(
        'recoveries', _recoveries, 'List recoveries, newest first.')))
    p = command('recovery', _recovery,
                'Show one recovery: per-step timeline with times and the '
                'outcome of each instance.')
    p.add_argument('id', type=int, metavar='ID', help='recovery id (see '
                   '"nova-ha recovery list")')
    add_format_option(p, SHOW_FORMATS)


def add_connection_option(p, help='journal database URL (default: '
                          '[journal] connection)'):
    """``--connection URL``: every command reading the journal has it."""
    p.add_argument('--connection', metavar='URL', help=help)
    return p


#: ``-f``: ``text`` is nova-ha's plain table; the others are cliff's
#: formatters, as ``openstack ha ...`` prints them (same column labels and
#: values).
LIST_FORMATS = ('text', 'table', 'json', 'yaml', 'csv', 'value')
SHOW_FORMATS = ('text', 'json', 'yaml')
_CLIFF_FORMATTERS = {
    'table': ('cliff.formatters.table', 'TableFormatter'),
    'json': ('cliff.formatters.json_format', 'JSONFormatter'),
    'yaml': ('cliff.formatters.yaml_format', 'YAMLFormatter'),
    'csv': ('cliff.formatters.commaseparated', 'CSVLister'),
    'value': ('cliff.formatters.value', 'ValueFormatter'),
}


def add_format_option(p, formats=LIST_FORMATS):
    """``-f/--format`` of a listing (or, with SHOW_FORMATS, of a show)."""
    p.add_argument('-f', '--format', dest='format', choices=formats,
                   default='text',
                   help='output format: %(choices)s (default: text, a '
                        'plain table; table: a boxed one)')
    return p


def _cliff_formatter(name):
    """cliff's formatter ``name`` and its options at their defaults."""
    import importlib
    module, cls = _CLIFF_FORMATTERS[name]
    formatter = getattr(importlib.import_module(module), cls)()
    parser = argparse.ArgumentParser(add_help=False)
    formatter.add_argument_group(parser)
    return formatter, parser.parse_args([])


def emit_list(args, columns, objs, empty='(none)'):
    """Print ``objs`` in the format of ``args.format``."""
    fmt = getattr(args, 'format', 'text') or 'text'
    if fmt == 'text':
        print(text_table(columns, objs) if objs else empty)
        return
    formatter, opts = _cliff_formatter(fmt)
    formatter.emit_list(labels(columns), [data_row(columns, o)
                                          for o in objs], sys.stdout, opts)


def emit_record(args, record):
    """Print one record (an ordered dict) as json or yaml."""
    formatter, opts = _cliff_formatter(args.format)
    formatter.emit_one(list(record), list(record.values()), sys.stdout, opts)


def add_alarm_filters(p):
    """Options of every alarm listing (here, ``nova-ha alarm list`` and
    ``openstack ha alarm list``)."""
    p.add_argument('--all', dest='status', action='store_const',
                   const='all', default='active',
                   help='include cleared alarms')
    p.add_argument('--cleared', dest='status', action='store_const',
                   const='cleared', help='only cleared alarms')
    p.add_argument('--host', help='only alarms of this compute host')
    p.add_argument('--type', dest='types', action='append',
                   choices=lazy.Choices(lambda: api.ALARM_TYPES),
                   metavar='TYPE',
                   help='alarm type (repeatable): %(choices)s')
    p.add_argument('--min-severity',
                   choices=lazy.Choices(lambda: api.SEVERITIES),
                   metavar='SEVERITY',
                   help='only alarms of this severity or worse: '
                        '%(choices)s (worst first)')
    p.add_argument('--rack', help='only alarms located in this rack')
    p.add_argument('--availability-zone', metavar='AZ',
                   help='only alarms located in this availability zone')
    p.add_argument('--limit', type=int, default=100, metavar='N',
                   help='at most N alarms (default: 100)')
    return p


def add_recovery_filters(p):
    """Options of every recovery listing."""
    p.add_argument('--host', help='only recoveries of this compute host')
    p.add_argument('--state', dest='states', action='append',
                   choices=lazy.Choices(lambda: api.RECOVERY_STATES),
                   metavar='STATE',
                   help='recovery state (repeatable): %(choices)s')
    p.add_argument('--limit', type=int, default=50, metavar='N',
                   help='at most N recoveries (default: 50)')
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


class CommandError(Exception):
    """A command cannot do what was asked: ``str(exc)`` is the message (it
    names the offending value), ``code`` the exit code."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


class _Usage(CommandError):
    """Bad arguments or configuration (exit 2)."""

    def __init__(self, message):
        super().__init__(message, 2)


def error_of(exc, prog):
    """(exit code, message) for a failure of a journal command, or None if
    `exc` is not one (a bug: let it raise). `prog` prefixes the message."""
    if isinstance(exc, CommandError):
        return exc.code, '%s: %s' % (prog, exc)
    if isinstance(exc, api.JournalError):       # NotFound, SchemaError...
        return 1, str(exc)
    if isinstance(exc, sa.exc.SQLAlchemyError):
        # the driver's message, never the URL (it may hold a password)
        detail = getattr(exc, 'orig', None) or exc.__class__.__name__
        return 1, '%s: database error: %s' % (prog, detail)
    return None


def _journal(args, check=True):
    journal_conf.register_opts(cfg.CONF)
    group = cfg.CONF.journal
    j = api.Journal(_url(args), busy_timeout=group.sqlite_busy_timeout,
                    max_retries=group.max_retries,
                    retention_days=group.retention_days)
    if check:
        j.check_schema()
    return j


def open_journal(args, check=True):
    """The journal of ``args.connection`` or ``[journal] connection``."""
    return _journal(args, check=check)


def one_line_errors(classify, prog):
    """Decorator of a command ``func(args) -> exit code``: an error that
    ``classify(exc, prog)`` knows becomes one line on stderr and its exit
    code (2 configuration, 1 failure at run time), not a traceback."""
    def decorate(func):
        @functools.wraps(func)
        def wrapper(args):
            try:
                return func(args) or 0
            except Exception as exc:
                handled = classify(exc, prog)
                if handled is None:
                    raise
                code, message = handled
                print(message, file=sys.stderr)
                return code
        return wrapper
    return decorate


def _safe(func):
    return one_line_errors(error_of, 'nova-ha journal')(func)


# --- queries (every front end) -----------------------------------------------

def query_alarms(j, args):
    """Alarms matching the options of :func:`add_alarm_filters`."""
    return j.list_alarms(
        status=args.status, host=args.host, types=args.types,
        min_severity=args.min_severity, rack=args.rack,
        availability_zone=args.availability_zone, limit=args.limit)


def query_recoveries(j, args):
    """Recoveries matching the options of :func:`add_recovery_filters`."""
    return j.list_recoveries(host=args.host, states=args.states,
                             limit=args.limit)


Recovery = collections.namedtuple('Recovery',
                                  'recovery timeline items fencing')


def get_recovery(j, recovery_id):
    """One recovery with its timeline, instances and fencing attempts."""
    rec = j.get_recovery(recovery_id)
    if rec is None:
        raise CommandError('no recovery %d' % recovery_id, 1)
    fencing = j.list_fencing_attempts(recovery_id=rec.id)
    # An operator's confirmation recorded without the recovery's id (a
    # file recorder, an older nova-ha) still belongs to it by host and time.
    seen = {f.id for f in fencing}
    for f in j.list_fencing_attempts(host=rec.host):
        if f.id not in seen and f.recovery_id is None and \
                f.started_at >= rec.detected_at and (
                    rec.finished_at is None or
                    f.started_at <= rec.finished_at):
            fencing.append(f)
    fencing.sort(key=lambda f: (f.started_at, f.id), reverse=True)
    return Recovery(rec, j.timeline(rec.id), j.list_recovery_items(rec.id),
                    fencing)


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
def _leader(args):
    from nova_ha.conf import coordination as coord_conf
    coord_conf.register_opts(cfg.CONF)
    name = args.name or cfg.CONF.coordination.lock_name
    j = _journal(args)
    try:
        lead = j.get_leadership(name)
    finally:
        j.close()
    if lead is None or lead.holder is None:
        print('no evacuator has led %r yet' % name)
        return 1
    age = (api.utcnow() - lead.renewed_at).total_seconds()
    print('leadership: %s' % lead.name)
    print('epoch:      %d' % lead.epoch)
    print('holder:     %s' % lead.holder)
    print('since:      %s' % lead.acquired_at.isoformat())
    print('renewed:    %s (%.1f s ago%s)' % (
        lead.renewed_at.isoformat(), age,
        '' if age < 5 else '; the holder may be gone: a standby takes '
        'over once the coordinator lock expires'))
    return 0


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
        alarms = query_alarms(j, args)
    finally:
        j.close()
    emit_list(args, ALARM_COLUMNS, alarms, 'no alarms')


@_safe
def _recoveries(args):
    j = _journal(args)
    try:
        recs = query_recoveries(j, args)
    finally:
        j.close()
    emit_list(args, RECOVERY_COLUMNS, recs, 'no recoveries')


@_safe
def _recovery(args):
    j = _journal(args)
    try:
        got = get_recovery(j, args.id)
    finally:
        j.close()
    if (getattr(args, 'format', 'text') or 'text') == 'text':
        print(format_recovery(*got))
    else:
        emit_record(args, recovery_record(*got))


# --- rendering ---------------------------------------------------------------

def _t(value):
    if value is None:
        return '-'
    return value.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def _s(seconds):
    return '-' if seconds is None else '%.3fs' % seconds


def plain_table(headers, rows):
    """nova-ha's one plain-text table: left-aligned columns two spaces
    apart, ``-`` for nothing. Used by ``-f text`` (the default) of every
    listing, ``recovery show`` and the plain-text reports (``nova-ha
    report``, ``capacity check``, ``nova-ha-sim status``); every other
    format is cliff's (:func:`emit_list`)."""
    rows = [['-' if c is None else str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows])
              for i, h in enumerate(headers)]
    line = '  '.join('%-*s' % (w, h) for w, h in zip(widths, headers))
    out = [line.rstrip()]
    for r in rows:
        out.append('  '.join('%-*s' % (w, c)
                             for w, c in zip(widths, r)).rstrip())
    return '\n'.join(out)


class Column(collections.namedtuple('Column', 'header key get kind')):
    """One column of a view. ``header``: nova-ha's table heading; ``key``:
    the field name in machine-readable records; ``get(obj)``: the raw
    value; ``kind``: '' (as is), 'time' (datetime) or 'seconds'."""

    def text(self, obj):
        value = self.get(obj)
        if self.kind == 'time':
            return _t(value)
        if self.kind == 'seconds':
            return _s(value)
        return value

    def data(self, obj):
        value = self.get(obj)
        if value is None:
            return None
        if self.kind == 'time':
            return _t(value)
        if self.kind == 'seconds':
            return round(value, 3)
        return value

    @property
    def label(self):
        """Column name of the OpenStackClient plugin (``-c``)."""
        if self.header in ('ID', 'AZ', 'SAL', 'T+'):
            return self.header
        return self.header.replace('_', ' ').title()


def C(header, key, get=None, kind=''):
    return Column(header, key, get or (lambda o: getattr(o, key)), kind)


def text_table(columns, objs):
    """nova-ha's plain table of `objs`."""
    return plain_table([c.header for c in columns],
                  [[c.text(o) for c in columns] for o in objs])


def labels(columns):
    return tuple(c.label for c in columns)


def data_row(columns, obj):
    return tuple(c.data(obj) for c in columns)


def data_record(columns, obj):
    return {c.key: c.data(obj) for c in columns}


def _alarm_status(a):
    if a.cleared_at:
        return 'cleared'
    return 'acked' if a.acknowledged_at else 'active'


ALARM_COLUMNS = (
    C('ID', 'id'), C('TIME', 'created_at', kind='time'),
    C('SEVERITY', 'severity'), C('TYPE', 'type'), C('HOST', 'host'),
    C('RACK', 'rack'), C('POWER_DOMAIN', 'power_domain'),
    C('AZ', 'availability_zone'), C('COUNT', 'count'),
    C('STATUS', 'status', _alarm_status), C('MESSAGE', 'message'))

RECOVERY_COLUMNS = (
    C('ID', 'id'), C('HOST', 'host'), C('REASON', 'reason'),
    C('STATE', 'state'), C('DETECTED', 'detected_at', kind='time'),
    C('FENCED', 'fenced_at', kind='time'),
    C('FORCED_DOWN', 'forced_down_at', kind='time'),
    C('FINISHED', 'finished_at', kind='time'),
    C('TOTAL', 'total', lambda r: api._seconds(r.detected_at,
                                               r.finished_at), 'seconds'))

TIMELINE_COLUMNS = (
    C('T+', 'since_detected', kind='seconds'), C('AT', 'at', kind='time'),
    C('STEP', 'step'), C('DURATION', 'duration', kind='seconds'),
    C('DETAIL', 'detail'))

FENCING_COLUMNS = (
    C('ID', 'id'), C('DRIVER', 'driver'),
    C('OUTCOME', 'outcome', lambda f: f.outcome or 'in flight'),
    C('STARTED', 'started_at', kind='time'),
    C('DURATION', 'duration', kind='seconds'), C('OPERATOR', 'operator'),
    C('REASON', 'reason'))

ITEM_COLUMNS = (
    C('INSTANCE', 'instance_uuid'), C('NAME', 'name'), C('SAL', 'sal'),
    C('PRIO', 'priority'), C('GROUP', 'server_group'), C('STATE', 'state'),
    C('TRIES', 'attempts'), C('DEST', 'dest_host'),
    C('TOOK', 'took', lambda i: api._seconds(i.started_at, i.finished_at),
      'seconds'),
    C('ERROR', 'last_error'))


def format_alarms(alarms):
    if not alarms:
        return 'no alarms'
    return text_table(ALARM_COLUMNS, alarms)


def format_recoveries(recoveries):
    if not recoveries:
        return 'no recoveries'
    return text_table(RECOVERY_COLUMNS, recoveries)


def recovery_record(rec, timeline, items=(), fencing=()):
    """One recovery as machine-readable data (``openstack ha recovery
    show``): the fields of :data:`RECOVERY_COLUMNS` plus ``timeline``,
    ``fencing_attempts`` (oldest first) and ``instances``."""
    record = collections.OrderedDict(
        (c.label, c.data(rec)) for c in RECOVERY_COLUMNS)
    record['Timeline'] = [data_record(TIMELINE_COLUMNS, e)
                          for e in timeline]
    record['Fencing Attempts'] = [data_record(FENCING_COLUMNS, f)
                                  for f in reversed(fencing)]
    record['Instances'] = [data_record(ITEM_COLUMNS, i) for i in items]
    # issue 14: instances recovered per destination host.
    record['Spread'] = dict(sorted(placement_plan.spread(items).items()))
    return record


def format_recovery(rec, timeline, items=(), fencing=()):
    out = ['recovery %d  host %s  reason %s  state %s'
           % (rec.id, rec.host, rec.reason, rec.state),
           '  detected %s  finished %s  total %s'
           % (_t(rec.detected_at), _t(rec.finished_at),
              _s(api._seconds(rec.detected_at, rec.finished_at)))]
    if getattr(rec, 'failures', 0):
        # Per-recovery backoff after an error (the other recoveries go on).
        out.append('  failing: %d pass(es) in a row, next try %s: %s' % (
            rec.failures, _t(rec.retry_at), rec.last_error))
    out += ['', 'timeline:']
    out.append(text_table(TIMELINE_COLUMNS, timeline))
    if fencing:
        out += ['', 'fencing attempts:',
                text_table(FENCING_COLUMNS, list(reversed(fencing)))]
    if items:
        out += ['', 'instances:', text_table(ITEM_COLUMNS, items)]
    spread = placement_plan.spread_text(items)     # issue 14
    if spread:
        out += ['', 'spread (instances recovered per host): ' + spread]
    return '\n'.join(out)
