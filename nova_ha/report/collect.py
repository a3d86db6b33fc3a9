"""Collect HA metrics from the journal: pure functions, no Nova, no output.

One :class:`Outage` per instance per recovery (a ``recovery_items`` row):
the instance was on a compute host that failed. Its times come from the
recovery (``recoveries``), its timeline (``recovery_steps``) and the item:

============== =============================================================
failure_at     when the host failed: the ``last_heartbeat`` step of the
               recovery if the journal has one, else ``detected_at`` (see
               ``failure_source``; the evacuator does not record the last
               heartbeat yet, so today failure_at == detected_at)
detected_at    the evacuator confirmed HOST_DOWN (every plane silent past
               the window) and opened the recovery
fenced_at      power-off confirmed (driver or operator)
evacuate_at    nova-ha asked Nova to evacuate this instance (first attempt)
active_at      nova-ha saw the instance ACTIVE on its new host (step
               ``active:<uuid>``; the item's finished_at when it is done)
============== =============================================================

Durations (seconds, None when an end is missing):

* ``detection``  = detected_at - failure_at (None unless the failure time
  is known, i.e. failure_source == 'last_heartbeat')
* ``fencing``    = fenced_at - detected_at (detection to power-off
  confirmed, retries and a guard hold included)
* ``evacuation`` = active_at - evacuate_at
* ``time_to_recover`` = active_at - detected_at
* ``downtime``   = active_at - failure_at (the instance's outage)

An outage is *recovered* when the item is ``done`` (ACTIVE elsewhere); a
skipped, failed (``error``/``no_valid_host``) or still running one has no
time to recover or downtime and is counted as unrecovered.

Aggregates (:class:`Stats`) use nearest-rank percentiles: p50/p95 are
always one of the observed values.
"""

import dataclasses
import datetime
import math
import re

from nova_ha.journal import api

UTC = datetime.timezone.utc

# The step the evacuator may record at the host's last heartbeat (the
# failure time). Not written by nova_ha.evacuator.engine yet; used as soon
# as it is (a step's ``at`` may precede ``detected``).
FAILURE_STEP = 'last_heartbeat'

# Service Availability Levels (seed 003, ETSI GS NFV-REL 001): upper
# bounds in seconds of failure detection and failure recovery.
SAL_DETECTION = {1: 1.0, 2: 5.0, 3: 10.0}
SAL_RECOVERY = {1: 6.0, 2: 15.0, 3: 25.0}

NO_GROUP = None


class ReportError(ValueError):
    """Bad report input; the message names the option and the value."""


# --- times -------------------------------------------------------------------

_RELATIVE = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$', re.I)
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}


def parse_time(value, now=None, option='time'):
    """ISO 8601 (``2026-11-21T07:00:00Z``, ``2026-11-21``, with an offset
    or without -- then UTC) or relative to now (``90s``, ``30m``, ``1h``,
    ``2d``, ``1w``: that long ago) -> timezone-aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        return api._utc(value)
    now = api._utc(now)
    text = (value or '').strip()
    m = _RELATIVE.match(text)
    if m:
        return now - datetime.timedelta(
            seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    iso = text[:-1] + '+00:00' if text[-1:] in ('Z', 'z') else text
    try:
        at = datetime.datetime.fromisoformat(iso)
    except ValueError:
        raise ReportError(
            '%s %r: not a time (expected ISO 8601 such as '
            '2026-11-21T07:00:00Z or 2026-11-21, or relative such as '
            '90s, 30m, 1h, 2d, 1w)' % (option, value))
    return api._utc(at)


# --- records -----------------------------------------------------------------

def _sec(start, end):
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


@dataclasses.dataclass(frozen=True)
class Outage:
    """One instance on one failed host (one recovery item)."""

    recovery_id: int
    recovery_state: str
    host: str
    instance_uuid: str
    name: str | None
    server_group: str | None
    group_name: str | None
    sal: int | None
    state: str            # the item's state (done = ACTIVE elsewhere)
    attempts: int
    dest_host: str | None
    failure_at: datetime.datetime
    failure_source: str   # 'last_heartbeat' or 'detected'
    detected_at: datetime.datetime
    fenced_at: datetime.datetime | None
    forced_down_at: datetime.datetime | None
    evacuate_at: datetime.datetime | None
    active_at: datetime.datetime | None
    finished_at: datetime.datetime | None = None  # item ended (any state)
    error: str | None = None

    @property
    def recovered(self):
        return self.state == 'done' and self.active_at is not None

    @property
    def detection(self):
        if self.failure_source != FAILURE_STEP:
            return None
        return _sec(self.failure_at, self.detected_at)

    @property
    def fencing(self):
        return _sec(self.detected_at, self.fenced_at)

    @property
    def evacuation(self):
        return _sec(self.evacuate_at, self.active_at) if self.recovered \
            else None

    @property
    def time_to_recover(self):
        return _sec(self.detected_at, self.active_at) if self.recovered \
            else None

    @property
    def downtime(self):
        return _sec(self.failure_at, self.active_at) if self.recovered \
            else None

    @property
    def sal_met(self):
        """Downtime within the SAL's recovery bound (None: no SAL or not
        recovered)."""
        if self.sal not in SAL_RECOVERY or self.downtime is None:
            return None
        return self.downtime <= SAL_RECOVERY[self.sal]

    def as_dict(self):
        d = dataclasses.asdict(self)
        for k in ('recovered', 'detection', 'fencing', 'evacuation',
                  'time_to_recover', 'downtime', 'sal_met'):
            d[k] = getattr(self, k)
        return d


@dataclasses.dataclass(frozen=True)
class Stats:
    """count / total / mean / p50 / p95 / max of a list of seconds."""

    count: int
    total: float | None
    mean: float | None
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values):
        values = sorted(v for v in values if v is not None)
        if not values:
            return cls(0, None, None, None, None, None)
        total = sum(values)
        return cls(len(values), total, total / len(values),
                   percentile(values, 50), percentile(values, 95),
                   values[-1])


def percentile(values, p):
    """Nearest-rank percentile of ``values`` (0 < p <= 100)."""
    values = sorted(values)
    if not values:
        return None
    if not 0 < p <= 100:
        raise ValueError('percentile %r not in (0, 100]' % p)
    return values[max(1, math.ceil(p / 100.0 * len(values))) - 1]


@dataclasses.dataclass(frozen=True)
class Summary:
    """Aggregates over a set of outages (an instance, a group, all)."""

    key: str | None           # instance uuid, group uuid, or None (all)
    label: str                # instance/group name (uuid if unknown)
    server_group: str | None
    group_name: str | None
    instances: int
    outages: int
    recovered: int
    unrecovered: int
    detection: Stats
    fencing: Stats
    evacuation: Stats
    time_to_recover: Stats
    downtime: Stats
    sal_missed: int           # recovered outages over their SAL's bound

    @classmethod
    def of(cls, key, label, outages, server_group=None, group_name=None):
        outages = list(outages)
        rec = [o for o in outages if o.recovered]
        return cls(
            key=key, label=label, server_group=server_group,
            group_name=group_name,
            instances=len({o.instance_uuid for o in outages}),
            outages=len(outages), recovered=len(rec),
            unrecovered=len(outages) - len(rec),
            detection=Stats.of(o.detection for o in outages),
            fencing=Stats.of(o.fencing for o in outages),
            evacuation=Stats.of(o.evacuation for o in rec),
            time_to_recover=Stats.of(o.time_to_recover for o in rec),
            downtime=Stats.of(o.downtime for o in rec),
            sal_missed=sum(1 for o in rec if o.sal_met is False))

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DrainMove:
    """One instance moved off a host by a maintenance drain."""

    drain_id: int
    host: str
    instance_uuid: str
    name: str | None
    server_group: str | None
    group_name: str | None
    method: str | None      # live / cold
    state: str
    dest_host: str | None
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None

    @property
    def move_time(self):
        """Migration start to end. For a cold move the instance is down
        all along; for a live one only its final pause (not recorded)."""
        return (_sec(self.started_at, self.finished_at)
                if self.state == 'moved' else None)

    def as_dict(self):
        return dict(dataclasses.asdict(self), move_time=self.move_time)


@dataclasses.dataclass(frozen=True)
class Report:
    since: datetime.datetime | None
    until: datetime.datetime
    generated_at: datetime.datetime
    host: str | None
    groups_filter: tuple
    recoveries: int             # recoveries detected in the period (of
                                # the groups, when filtered)
    failure_known: bool         # every outage has its last-heartbeat time
    outages: tuple              # Outage, by failure time
    instances: tuple            # Summary per instance
    groups: tuple               # Summary per server group
    overall: Summary
    drains: tuple = ()          # DrainMove
    instance_outages: tuple = ()   # InstanceOutage (issue 17)

    def as_dict(self):
        return {
            'since': self.since, 'until': self.until,
            'generated_at': self.generated_at, 'host': self.host,
            'groups_filter': list(self.groups_filter),
            'recoveries': self.recoveries,
            'failure_known': self.failure_known,
            'outages': [o.as_dict() for o in self.outages],
            'instances': [s.as_dict() for s in self.instances],
            'groups': [s.as_dict() for s in self.groups],
            'overall': self.overall.as_dict(),
            'maintenance_moves': [d.as_dict() for d in self.drains],
            'instance_outages': [o.as_dict()
                                 for o in self.instance_outages],
        }


# --- collection --------------------------------------------------------------

def _in_period(at, since, until):
    return at is not None and (since is None or at >= since) and at < until


def outages_of(recovery, items, timeline, group_names=None):
    """The :class:`Outage` of each item of one recovery (pure)."""
    group_names = group_names or {}
    steps = {e.step: e.at for e in timeline}
    failure_at = steps.get(FAILURE_STEP)
    source = FAILURE_STEP
    if failure_at is None or failure_at > recovery.detected_at:
        failure_at, source = recovery.detected_at, 'detected'
    out = []
    for item in items:
        active_at = steps.get('active:%s' % item.instance_uuid)
        if active_at is None and item.state == 'done':
            active_at = item.finished_at
        if item.state != 'done':
            active_at = None
        out.append(Outage(
            recovery_id=recovery.id, recovery_state=recovery.state,
            host=recovery.host, instance_uuid=item.instance_uuid,
            name=item.name, server_group=item.server_group,
            group_name=group_names.get(item.server_group),
            sal=item.sal, state=item.state, attempts=item.attempts,
            dest_host=item.dest_host, failure_at=failure_at,
            failure_source=source, detected_at=recovery.detected_at,
            fenced_at=recovery.fenced_at,
            forced_down_at=recovery.forced_down_at,
            evacuate_at=item.started_at, active_at=active_at,
            finished_at=item.finished_at, error=item.last_error))
    return out


def _group_sort(summary_or_outage):
    gid = summary_or_outage.server_group
    name = summary_or_outage.group_name
    return (gid is None, name or gid or '')


def summarise(outages, group_names=None):
    """(per-instance summaries, per-group summaries, overall) (pure)."""
    group_names = group_names or {}
    by_instance, by_group = {}, {}
    for o in outages:
        by_instance.setdefault(o.instance_uuid, []).append(o)
        by_group.setdefault(o.server_group, []).append(o)
    instances = []
    for uuid, outs in by_instance.items():
        last = max(outs, key=lambda o: o.failure_at)
        gid = last.server_group
        instances.append(Summary.of(uuid, last.name or uuid, outs,
                                    server_group=gid,
                                    group_name=group_names.get(gid)))
    instances.sort(key=lambda s: _group_sort(s) + (s.label, s.key))
    groups = [Summary.of(gid, group_names.get(gid) or gid or '(no group)',
                         outs, server_group=gid,
                         group_name=group_names.get(gid))
              for gid, outs in by_group.items()]
    groups.sort(key=_group_sort)
    overall = Summary.of(None, 'all', outages)
    return tuple(instances), tuple(groups), overall


def collect(journal, since=None, until=None, host=None, groups=None,
            group_names=None, now=None, drains=True):
    """Build a :class:`Report` from ``journal`` (a Journal).

    Period: recoveries *detected* in ``[since, until)`` (``until`` defaults
    to now; ``since`` None = from the beginning of the journal, i.e. its
    retention). ``host``: only recoveries of that failed host. ``groups``:
    only instances of these server group UUIDs. ``group_names``: {uuid:
    name} to label groups (the journal stores group UUIDs only).
    """
    now = api._utc(now)
    until = api._utc(until) if until is not None else now
    since = api._utc(since) if since is not None else None
    if since is not None and since >= until:
        raise ReportError('--since %s is not before --until %s'
                          % (since.isoformat(), until.isoformat()))
    groups = tuple(sorted(set(groups))) if groups else ()
    group_names = dict(group_names or {})
    recs = [r for r in journal.list_recoveries(host=host, since=since)
            if _in_period(r.detected_at, since, until)]
    outages = []
    n_recs = 0
    for rec in recs:
        items = journal.list_recovery_items(rec.id)
        if groups:
            items = [i for i in items if i.server_group in groups]
            if not items:
                continue        # this recovery touched none of the groups
        n_recs += 1
        if items:
            outages += outages_of(rec, items, journal.timeline(rec.id),
                                  group_names)
    outages.sort(key=lambda o: (o.failure_at, o.recovery_id,
                                o.name or '', o.instance_uuid))
    instances, group_sums, overall = summarise(outages, group_names)
    moves = ()
    if drains:
        moves = tuple(_drain_moves(journal, since, until, host, groups,
                                   group_names))
    iouts = () if groups else tuple(instance_outages(journal, since, until,
                                                     host))
    return Report(
        since=since, until=until, generated_at=now, host=host,
        groups_filter=groups, recoveries=n_recs,
        failure_known=bool(outages) and all(
            o.failure_source == FAILURE_STEP for o in outages),
        outages=tuple(outages), instances=instances, groups=group_sums,
        overall=overall, drains=moves, instance_outages=iouts)


# --- instance outages (issue 17, nova_ha/evacuator/instance_ha.py) -----------

@dataclasses.dataclass(frozen=True)
class InstanceOutage:
    """One instance failure on a running host (an INSTANCE_FAILED alarm:
    raised when the evacuator learned of it, cleared when the instance was
    ACTIVE again with its domain running)."""
    instance_uuid: str
    host: str
    kind: str | None          # crashed / stopped / paused_error
    action: str | None        # restart / rebuild-elsewhere / none
    detected_at: datetime.datetime
    recovered_at: datetime.datetime | None

    @property
    def downtime(self):
        return _sec(self.detected_at, self.recovered_at)

    def as_dict(self):
        return {'instance_uuid': self.instance_uuid, 'host': self.host,
                'kind': self.kind, 'action': self.action,
                'detected_at': self.detected_at,
                'recovered_at': self.recovered_at,
                'downtime': self.downtime}


_IO_KIND = re.compile(r' on \S+ (crashed|stopped|paused_error) \(')
_IO_ACTION = re.compile(r'\[action=([\w-]+)\]')


def instance_outages(journal, since, until, host=None):
    """InstanceOutage per INSTANCE_FAILED alarm raised in the period."""
    out = []
    for a in journal.list_alarms(status='all', host=host,
                                 types=['INSTANCE_FAILED'], since=since):
        if not _in_period(a.created_at, since, until):
            continue
        kind = _IO_KIND.search(a.message or '')
        action = _IO_ACTION.search(a.message or '')
        out.append(InstanceOutage(
            a.instance_uuid, a.host, kind.group(1) if kind else None,
            action.group(1) if action else None, a.created_at,
            a.cleared_at))
    out.sort(key=lambda o: (o.detected_at, o.instance_uuid))
    return out


def _drain_moves(journal, since, until, host, groups, group_names):
    moves = []
    for drain in journal.list_drains(host=host):
        if not _in_period(drain.started_at, since, until):
            continue
        for item in journal.list_drain_items(drain.id):
            if groups and item.server_group not in groups:
                continue
            if item.started_at is None:      # never moved (blocked/waiting)
                continue
            moves.append(DrainMove(
                drain_id=drain.id, host=drain.host,
                instance_uuid=item.instance_uuid, name=item.name,
                server_group=item.server_group,
                group_name=group_names.get(item.server_group),
                method=item.method, state=item.state,
                dest_host=item.dest_host, started_at=item.started_at,
                finished_at=item.finished_at))
    moves.sort(key=lambda m: (m.started_at, m.drain_id, m.name or ''))
    return moves


def journal_groups(journal):
    """Every server group UUID the journal knows (recoveries and drains)."""
    import sqlalchemy as sa
    from nova_ha.journal import models
    ti = models.RecoveryItem.__table__
    td = models.DrainItem.__table__
    with journal.transaction(write=False) as conn:
        found = {g for g, in conn.execute(
            sa.select(ti.c.server_group).distinct()) if g}
        found |= {g for g, in conn.execute(
            sa.select(td.c.server_group).distinct()) if g}
    return found


def resolve_groups(values, known, nova_groups=None, nova_error=None):
    """Map each ``--group`` value (name or UUID) to group UUIDs.

    ``known``: UUIDs in the journal; ``nova_groups``: {uuid: name} from
    Nova (None when Nova was not asked or could not answer, then
    ``nova_error`` says why). A UUID is accepted if the journal or Nova
    knows it; a name needs Nova. Raises :class:`ReportError`.
    """
    nova_groups = nova_groups or {}
    out = set()
    for value in values:
        if value in known or value in nova_groups:
            out.add(value)
            continue
        by_name = sorted(u for u, n in nova_groups.items() if n == value)
        if len(by_name) == 1:
            out.add(by_name[0])
            continue
        if len(by_name) > 1:
            raise ReportError(
                '--group %r: %d server groups have this name (%s); give '
                'the UUID' % (value, len(by_name), ', '.join(by_name)))
        why = ('Nova does not know it either' if nova_error is None else
               'names cannot be resolved without Nova (%s)' % nova_error)
        raise ReportError(
            '--group %r: no server group with this UUID in the journal '
            '(%d known) and %s' % (value, len(known), why))
    return out
