"""``nova-ha report``: HA metrics per server group and per instance.

    nova-ha report [--since TIME] [--until TIME] [--group NAME_OR_UUID]...
                   [--host HOST] [--format table|json|csv]
                   [--chart PATH.svg|PATH.png] [--no-nova] [--connection URL]

Reads the journal (``[journal] connection``). Server group *names* come
from Nova (``[nova]``), since the journal stores group UUIDs only; without
Nova, groups are shown by UUID and ``--group`` takes UUIDs.

Exit codes: 0 report written; 1 database or chart error; 2 bad arguments
or configuration (the message names the option and the value).
"""

import argparse
import sys

from oslo_config import cfg

from nova_ha import lazy

journal_conf = lazy.Module('nova_ha.conf.journal')
api = lazy.Module('nova_ha.journal.api')
collect = lazy.Module('nova_ha.report.collect')
render = lazy.Module('nova_ha.report.render')

DESCRIPTION = """\
HA metrics from the journal (the metrics the OPNFV HA requirements ask a
cloud to collect for its VNFs): for each server group and each instance, the outages (an instance on a compute host that failed and was
recovered by nova-ha), their downtime and time to recover.

Period: recoveries DETECTED in [--since, --until). TIME is ISO 8601
(2026-11-21T07:00:00Z, 2026-11-21; no offset = UTC) or relative to now
(90s, 30m, 1h, 2d, 1w = that long ago). Default: the whole journal (its
retention) up to now.

Columns (seconds):
  FAILURE     when the host failed: its last heartbeat if the journal has
              it (recovery step 'last_heartbeat'), otherwise the detection
              time (the report says so; DOWNTIME then equals TTR)
  DETECTION   failure -> HOST_DOWN confirmed ('-' when the failure time is
              not known)
  FENCING     HOST_DOWN confirmed -> power-off confirmed (driver or
              operator), retries and a mass-failure guard hold included
  EVACUATION  evacuate requested -> instance ACTIVE on its new host
  TTR         time to recover: HOST_DOWN confirmed -> instance ACTIVE on
              its new host (as seen by the evacuator's Nova polling)
  DOWNTIME    failure -> instance ACTIVE on its new host: the outage
  SAL_OK      DOWNTIME within the instance's SAL recovery time (SAL1 6 s,
              SAL2 15 s, SAL3 25 s; ETSI GS NFV-REL 001)
  OUTAGES / RECOVERED  outages, and those that ended ACTIVE on another
              host; unrecovered ones (skipped, error, no valid host, still
              running) have no TTR/DOWNTIME
  _SUM/_P50/_P95/_MAX  sum, nearest-rank percentiles and maximum over the
              recovered outages of the group or instance; '(all)' is every
              group together.

Maintenance drains in the period are listed with each instance's move time
(migration start -> end; a cold move is an interruption of that length, a
live one pauses the guest only briefly inside it).

--format csv writes one row per outage (all times and durations);
--format json the whole report (outages, instances, groups, overall).
--chart writes a timeline (one row per instance, grouped by server group,
bars for the fencing / preparing / evacuating phases) as SVG or PNG.

Exit codes: 0 ok; 1 database or chart error; 2 bad arguments or
configuration (an unparsable time, an unknown group, a chart file name
not ending in .svg/.png)."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        'report', help='HA metrics: outages, downtime and time to recover '
                       'per server group and instance, with a timeline chart',
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--since', metavar='TIME',
                   help='start of the period (ISO 8601 or 30m/1h/2d ago); '
                        'default: the start of the journal')
    p.add_argument('--until', metavar='TIME',
                   help='end of the period, exclusive (default: now)')
    p.add_argument('--group', dest='groups', action='append', default=[],
                   metavar='NAME_OR_UUID',
                   help='only this server group (repeatable); a name needs '
                        'Nova ([nova] options)')
    p.add_argument('--host', metavar='HOST',
                   help='only recoveries of this failed compute host')
    p.add_argument('--format', dest='fmt', choices=lazy.Choices(lambda: render.FORMATS),
                   default='table',
                   help='table (default), json (everything) or csv (one '
                        'row per outage)')
    p.add_argument('--chart', metavar='PATH',
                   help='also write the recovery timeline to PATH (.svg or '
                        '.png)')
    p.add_argument('--no-nova', action='store_true',
                   help='do not ask Nova for server group names (show '
                        'UUIDs; --group then takes UUIDs only)')
    p.add_argument('--connection', metavar='URL',
                   help='journal database URL (default: [journal] '
                        'connection)')
    p.set_defaults(func=run)
    return p


def nova_group_names():
    """({uuid: name}, None) from Nova, or (None, why not)."""
    from nova_ha import nova_api
    try:
        nova = nova_api.client()
        return {g.id: g.name for g in
                nova.server_groups.list(all_projects=True)}, None
    except nova_api.NovaConfigError as exc:
        return None, str(exc)
    except Exception as exc:        # unreachable, auth: names are optional
        return None, '%s: %s' % (type(exc).__name__, exc)


def open_journal(connection=None):
    """The journal of ``--connection`` or ``[journal]``, schema checked
    (cfg.Error for a bad URL, without its password; SchemaError)."""
    journal_conf.register_opts(cfg.CONF)
    group = cfg.CONF.journal
    url = journal_conf.validate_connection(connection or group.connection)
    j = api.Journal(url, busy_timeout=group.sqlite_busy_timeout,
                    max_retries=group.max_retries)
    try:
        j.check_schema()
    except Exception:
        j.close()
        raise
    return j


def _error(message, code=2):
    print('nova-ha report: %s' % message, file=sys.stderr)
    return code


def run(args, out=None):
    out = out or sys.stdout
    now = api.utcnow()
    try:
        since = (collect.parse_time(args.since, now, '--since')
                 if args.since else None)
        until = (collect.parse_time(args.until, now, '--until')
                 if args.until else None)
        if args.chart:
            from nova_ha.report import chart
            chart.chart_format(args.chart)
    except collect.ReportError as exc:
        return _error(exc)
    try:
        j = open_journal(args.connection)
    except (cfg.Error, api.SchemaError) as exc:
        return _error(exc)
    except Exception as exc:
        return _error('journal: %s' % (getattr(exc, 'orig', None) or exc), 1)
    try:
        names, why = ({}, 'disabled by --no-nova') if args.no_nova \
            else nova_group_names()
        if names is None and not args.no_nova:
            print('nova-ha report: server group names unavailable, showing '
                  'UUIDs (%s)' % why, file=sys.stderr)
        groups = None
        if args.groups:
            groups = collect.resolve_groups(
                args.groups, collect.journal_groups(j), names,
                nova_error=why if not names else None)
        report = collect.collect(j, since=since, until=until,
                                 host=args.host, groups=groups,
                                 group_names=names, now=now)
    except collect.ReportError as exc:
        return _error(exc)
    except api.JournalError as exc:
        return _error(exc, 1)
    except Exception as exc:
        import sqlalchemy as sa
        if isinstance(exc, sa.exc.SQLAlchemyError):
            return _error('database error: %s'
                          % (getattr(exc, 'orig', None) or
                             type(exc).__name__), 1)
        raise
    finally:
        j.close()
    print(render.render(report, args.fmt), file=out)
    if args.chart:
        from nova_ha.report import chart
        try:
            chart.write_chart(report, args.chart)
        except OSError as exc:
            return _error('--chart %r: cannot write: %s'
                          % (args.chart, exc.strerror or exc), 1)
        print('chart: %s' % args.chart, file=sys.stderr if args.fmt != 'table'
              else out)
    return 0
