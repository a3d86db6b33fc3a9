"""Render a :class:`nova_ha.report.collect.Report` as table, JSON or CSV.

Pure functions of the report: no journal, no Nova. Times are UTC ISO 8601
with milliseconds (``Z``), durations seconds with 3 decimals.
"""

import csv
import datetime
import io
import json

# journal_cli.plain_table: the command line's one plain table (also the
# ``-f text`` of every listing).
from nova_ha.journal import cli as journal_cli

FORMATS = ('table', 'json', 'csv')

# The CSV columns: one row per outage (instance x recovery). Aggregates are
# in the table and the JSON.
CSV_COLUMNS = (
    'recovery_id', 'recovery_state', 'host', 'server_group', 'group_name',
    'instance_uuid', 'name', 'sal', 'state', 'attempts', 'dest_host',
    'failure_at', 'failure_source', 'detected_at', 'fenced_at',
    'evacuate_at', 'active_at', 'detection', 'fencing', 'evacuation',
    'time_to_recover', 'downtime', 'sal_met')


def t(value):
    if value is None:
        return '-'
    return value.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3] + 'Z'


def s(seconds):
    return '-' if seconds is None else '%.3f' % seconds


def group_label(server_group, group_name):
    if server_group is None:
        return '(no group)'
    return group_name or server_group


def period(report):
    return '%s .. %s' % (t(report.since) if report.since else
                         '(start of journal)', t(report.until))


def format_table(report):
    out = ['nova-ha HA report: recoveries detected %s (UTC)'
           % period(report)]
    if report.host:
        out.append('failed host: %s' % report.host)
    if report.groups_filter:
        out.append('server groups: %s' % ', '.join(report.groups_filter))
    o = report.overall
    out.append('%d recover%s, %d outage%s of %d instance%s: %d recovered, '
               '%d not recovered%s'
               % (report.recoveries, 'y' if report.recoveries == 1
                  else 'ies', o.outages, '' if o.outages == 1 else 's',
                  o.instances, '' if o.instances == 1 else 's', o.recovered,
                  o.unrecovered,
                  ', %d over their SAL recovery time' % o.sal_missed
                  if o.sal_missed else ''))
    unknown = sum(1 for x in report.outages
                  if x.failure_source != 'last_heartbeat')
    if unknown:
        out.append('%s: the journal has no last-heartbeat time, so failure '
                   'time = detection time and DOWNTIME = TTR, a lower bound '
                   'of the real outage (which adds the detection window)'
                   % ('every outage' if unknown == len(report.outages) else
                      '%d of %d outages' % (unknown, len(report.outages))))
    out.append('seconds; TTR = detection -> ACTIVE on the new host, '
               'DOWNTIME = failure -> ACTIVE, FENCING = detection -> '
               'power-off confirmed; p50/p95 nearest-rank')
    if not report.outages:
        out += ['', 'no outages in the period']
    else:
        rows = [_group_row(g) for g in report.groups]
        rows.append(_group_row(o, label='(all)'))
        out += ['', 'server groups:', journal_cli.plain_table(
            ('GROUP', 'INSTANCES', 'OUTAGES', 'RECOVERED', 'DOWNTIME_SUM',
             'DOWNTIME_P50', 'DOWNTIME_P95', 'DOWNTIME_MAX', 'TTR_P50',
             'TTR_P95', 'TTR_MAX', 'FENCING_P50', 'FENCING_MAX'), rows)]
        out += ['', 'instances:', journal_cli.plain_table(
            ('GROUP', 'INSTANCE', 'NAME', 'OUTAGES', 'RECOVERED',
             'DOWNTIME_SUM', 'DOWNTIME_MAX', 'TTR_MAX', 'FENCING_MAX'),
            [(group_label(i.server_group, i.group_name), i.key, i.label,
              i.outages, i.recovered, s(i.downtime.total),
              s(i.downtime.max), s(i.time_to_recover.max),
              s(i.fencing.max)) for i in report.instances])]
        out += ['', 'outages:', journal_cli.plain_table(
            ('FAILURE', 'RECOVERY', 'HOST', 'GROUP', 'NAME', 'SAL', 'STATE',
             'DETECTION', 'FENCING', 'EVACUATION', 'TTR', 'DOWNTIME',
             'SAL_OK', 'DEST'),
            [(t(x.failure_at), x.recovery_id, x.host,
              group_label(x.server_group, x.group_name),
              x.name or x.instance_uuid, x.sal, x.state, s(x.detection),
              s(x.fencing), s(x.evacuation), s(x.time_to_recover),
              s(x.downtime),
              {True: 'yes', False: 'NO', None: '-'}[x.sal_met],
              x.dest_host) for x in report.outages])]
    if report.drains:
        out += ['', 'maintenance moves (MOVE = migration start -> end; for '
                'a live move the guest pauses only briefly inside it):',
                journal_cli.plain_table(
                    ('STARTED', 'DRAIN', 'HOST', 'GROUP', 'NAME', 'METHOD',
                     'STATE', 'MOVE', 'DEST'),
                    [(t(m.started_at), m.drain_id, m.host,
                      group_label(m.server_group, m.group_name),
                      m.name or m.instance_uuid, m.method, m.state,
                      s(m.move_time), m.dest_host)
                     for m in report.drains])]
    if report.instance_outages:
        io = report.instance_outages
        down = [x.downtime for x in io if x.downtime is not None]
        out += ['', 'instance outages (instance HA: crashed / stopped / '
                'paused on error on a running host; DOWNTIME = reported -> '
                'ACTIVE again): %d, %d recovered, downtime max %s'
                % (len(io), len(down), s(max(down)) if down else '-'),
                journal_cli.plain_table(
                    ('DETECTED', 'HOST', 'INSTANCE', 'KIND', 'ACTION',
                     'DOWNTIME'),
                    [(t(x.detected_at), x.host, x.instance_uuid, x.kind,
                      x.action, s(x.downtime)) for x in io])]
    return '\n'.join(out)


def _group_row(g, label=None):
    return (label or group_label(g.server_group, g.group_name), g.instances,
            g.outages, g.recovered, s(g.downtime.total), s(g.downtime.p50),
            s(g.downtime.p95), s(g.downtime.max), s(g.time_to_recover.p50),
            s(g.time_to_recover.p95), s(g.time_to_recover.max),
            s(g.fencing.p50), s(g.fencing.max))


def _json_default(value):
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError('not JSON serialisable: %r' % (value,))


def format_json(report):
    return json.dumps(report.as_dict(), indent=2, sort_keys=True,
                      default=_json_default)


def format_csv(report):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(CSV_COLUMNS)
    for o in report.outages:
        d = o.as_dict()
        row = []
        for col in CSV_COLUMNS:
            v = d[col]
            if isinstance(v, datetime.datetime):
                v = t(v)
            elif isinstance(v, float):
                v = '%.3f' % v
            elif v is None:
                v = ''
            row.append(v)
        w.writerow(row)
    return buf.getvalue()


def render(report, fmt='table'):
    if fmt == 'table':
        return format_table(report)
    if fmt == 'json':
        return format_json(report)
    if fmt == 'csv':
        return format_csv(report)
    raise ValueError('--format %r: expected one of %s'
                     % (fmt, ', '.join(FORMATS)))
