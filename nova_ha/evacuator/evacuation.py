"""Evacuating a fenced host's instances: start, follow, verify, close.

Crash safety rules (issue 12):

- **Never two evacuations of one instance.** An evacuate is (re-)issued
  only on evidence that no evacuation of that instance is in flight in
  Nova: Nova sets the instance's task state, records an ``evacuate``
  instance action and creates the migration record inside the evacuate
  API call, in that order. An item whose call's fate is unknown (its
  leader died during it) is re-issued only when Nova shows none of the
  three for that attempt ``[evacuator] evacuate_reissue_after`` seconds
  after the call began (a call still inside Nova's API leaves its traces
  within that time). A retry of a failed attempt is issued only when
  Nova's task state is empty again.
- **Done means ACTIVE elsewhere.** An item is ``done`` only when Nova shows
  the server on another host, no task state, status ACTIVE (or SHUTOFF,
  the state of an instance evacuated while stopped) -- not on the
  migration record alone.
- **The journal is audited against Nova.** Before a recovery closes, and
  for every closed recovery whose host still awaits ``host enable``
  (RECOVERED) once per term and every AUDIT_INTERVAL, items ``done`` in
  the journal but not in Nova are re-opened (and their recovery with
  them, in one transaction with its host state).
- **A stuck evacuation is visible.** An evacuation whose Nova progress
  (migration status, task state) has not changed for ``[evacuator]
  evacuation_stall_alarm`` seconds raises a MAJOR ``EVACUATION_STUCK``
  alarm naming the server, its migration and Nova's task state.
"""

import dataclasses
import datetime
import logging

from nova_ha import nova_ops
from nova_ha.evacuator import detection
from nova_ha.evacuator import placement_plan
from nova_ha.journal import api as journal_api

LOG = logging.getLogger(__name__)

# Closed recoveries whose host is still RECOVERED are audited against Nova
# once per term and then at most this often.
AUDIT_INTERVAL = 60.0
# A stuck evacuation's alarm is refreshed at most this often.
STUCK_REFRESH = 30.0
# An evacuation's migration status set by nova-conductor when scheduling
# it failed (computes set 'failed').
SCHEDULING_FAILED = 'error'
# Server statuses of an instance that an evacuation has put down for good.
SETTLED = ('ACTIVE', 'SHUTOFF')
# Seconds between reads of the servers whose accepted evacuation shows no
# migration record yet (Evacuations._accepted_unseen).
UNSEEN_REREAD = 10.0
# Servers to read one GET each rather than with one list of all the
# recovery's changed servers (Evacuations._servers).
GET_EACH_AT_MOST = 4
# Nova truncates created_at filters to the second; our clocks and Nova's
# (one host, but separate processes) agree to well under this.
SLACK = datetime.timedelta(seconds=2)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


@dataclasses.dataclass(frozen=True)
class ServerView:
    """What Nova shows of one instance."""
    uuid: str
    host: str | None
    status: str | None
    task_state: str | None
    fault: str

    @classmethod
    def of(cls, server):
        return cls(uuid=server.id,
                   host=getattr(server, 'OS-EXT-SRV-ATTR:host', None),
                   status=getattr(server, 'status', None),
                   task_state=getattr(server, 'OS-EXT-STS:task_state', None),
                   fault=nova_ops.server_fault(server))

    def recovered_from(self, source):
        """True if Nova shows the instance settled on another host."""
        return (bool(self.host) and self.host != source
                and self.task_state is None and self.status in SETTLED)

    def contradicts_done(self, source):
        """True if Nova's view contradicts a journal ``done``: the server
        is on the failed host, in ERROR, or being rebuilt (an evacuation
        in flight). A server paused, resized or migrated since is not."""
        return (self.host == source or self.status in ('ERROR', 'REBUILD')
                or (self.task_state or '').startswith('rebuild'))

    def describe(self):
        return 'status %s on %s, task state %s' % (
            self.status, self.host, self.task_state or 'none')


@dataclasses.dataclass(frozen=True)
class MigrationView:
    """An evacuation's migration record."""
    id: int
    status: str
    dest: str | None

    @classmethod
    def of(cls, mig):
        return cls(id=int(mig.id), status=mig.status,
                   dest=getattr(mig, 'dest_compute', None))

    @property
    def done(self):
        return self.status in nova_ops.MIGRATION_DONE

    @property
    def failed(self):
        return self.status in nova_ops.MIGRATION_FAILED

    @property
    def finished(self):
        return self.done or self.failed


@dataclasses.dataclass
class Polled:
    """One recovery's items in flight and Nova's view of them, this pass."""
    items: list                    # journal RecoveryItems, 'evacuating'
    migrations: dict               # instance uuid -> Nova migration
    servers: dict = dataclasses.field(default_factory=dict)


def attempt_since(item, rec):
    """Migrations and actions of the item's current attempt are created
    after this (its call's start, less SLACK)."""
    start = item.call_started_at or item.started_at or rec.detected_at
    return start - SLACK


class Evacuations:
    """The evacuation steps of an Evacuator's open recoveries.

    ``ev`` is the nova_ha.evacuator.engine.Evacuator: its journal, Nova
    operations, options, epoch, alarms and API pool.
    """

    def __init__(self, ev):
        self.ev = ev
        self._polled = {}        # recovery id -> Polled, this pass
        self._last_poll = 0.0
        self._last_audit = None  # monotonic time of the last audit
        self._unseen_read = {}   # recovery id -> when its accepted-but-
        #                          unseen servers were last read
        self._checked = {}       # instance uuid -> last clear-to-issue GET

    # -- shortcuts -----------------------------------------------------------
    @property
    def journal(self):
        return self.ev.journal

    @property
    def ops(self):
        return self.ev.ops

    @property
    def opts(self):
        return self.ev.opts

    def forget(self):
        """A new term (or none): nothing of the last one's view is kept."""
        self._polled = {}
        self._last_poll = 0.0
        self._last_audit = None
        self._checked = {}
        self._unseen_read = {}

    # -- one pass ------------------------------------------------------------
    def poll(self, recs, now):
        """Every nova_poll_interval, the items in flight of every open
        recovery and the migration records of all of them: one journal
        read and ONE Nova call however many hosts are being recovered."""
        self._polled = {}
        if not recs or now - self._last_poll < self.opts.nova_poll_interval:
            return
        by_rec = {}
        for item in self.journal.list_recovery_items(states=['evacuating']):
            by_rec.setdefault(item.recovery_id, []).append(item)
        recs = [r for r in recs if r.id in by_rec]
        if not recs:
            return
        self._last_poll = now
        since = min(r.detected_at for r in recs) - SLACK
        migrations = self.ops.evacuations_since(since,
                                                {r.host for r in recs})
        self._polled = {r.id: Polled(by_rec[r.id],
                                     migrations.get(r.host, {}))
                        for r in recs}

    def run(self, rec):
        """Follow the recovery's evacuations, start the next ones, close
        it when none is left (after checking Nova agrees)."""
        self.follow(rec)
        self.start(rec)
        remaining = self.journal.list_recovery_items(
            rec.id, states=['pending', 'evacuating'])
        if not remaining:
            self.close(rec)

    # -- following -----------------------------------------------------------
    def _migration_of(self, rec, item, polled):
        """The current attempt's migration record, or None."""
        mig = polled.migrations.get(item.instance_uuid)
        if mig is None:
            return None
        if nova_ops.created_before(mig, attempt_since(item, rec)):
            return None      # an earlier recovery's or attempt's
        if item.migration_id is not None and \
                int(mig.id) == item.migration_id:
            return None      # the attempt this one replaced
        return MigrationView.of(mig)

    def _servers(self, rec, polled, uuids):
        """ServerViews of ``uuids`` (None: deleted).

        A few: one GET each, side by side. Many: one list call of the
        servers changed since the recovery began (a GET for any it lacks).
        Why both: nova-api builds the full view of every server a list
        returns, and while a burst finishes a few evacuations per poll,
        listing all the recovery's servers on every poll cost nova-api
        more CPU than the evacuations themselves (issue 14)."""
        missing = [u for u in uuids if u not in polled.servers]
        if not missing:
            return polled.servers
        changed = {}
        if len(missing) > max(GET_EACH_AT_MOST, len(polled.items) // 4):
            try:
                changed = self.ops.servers_changed_since(
                    rec.detected_at - SLACK)
            except Exception as exc:   # noqa: BLE001 -- fall back to GETs
                LOG.warning('cannot list the servers changed since %s '
                            '(%s); reading them one by one',
                            rec.detected_at, exc)
        unlisted = [u for u in missing if u not in changed]
        if unlisted:
            gets = {u: self.ev._api_pool.submit(self.ops.server, u)
                    for u in unlisted}
            changed.update({u: f.result() for u, f in gets.items()})
        for uuid in missing:
            server = changed.get(uuid)
            # (changes-since lists deleted servers too)
            polled.servers[uuid] = ServerView.of(server) \
                if server is not None and server.status != 'DELETED' \
                else None
        return polled.servers

    def follow(self, rec):
        polled = self._polled.get(rec.id)
        if polled is None:
            return
        migs = {i.instance_uuid: self._migration_of(rec, i, polled)
                for i in polled.items}
        # Nova's view of the server is needed when the evacuation ended (is
        # the server ACTIVE elsewhere?) or left no migration record (what
        # does Nova show?), or shows no progress for a while.
        unseen_due = (self.ev.clock() - self._unseen_read.get(rec.id, -1e9)
                      >= UNSEEN_REREAD)
        need = [i.instance_uuid for i in polled.items
                if self._needs_server(rec, i, migs[i.instance_uuid],
                                      unseen_due)]
        if unseen_due and any(migs[u] is None for u in need):
            self._unseen_read[rec.id] = self.ev.clock()
        servers = self._servers(rec, polled, need) if need else {}
        for item in polled.items:
            mig = migs[item.instance_uuid]
            view = servers.get(item.instance_uuid, _UNKNOWN)
            self.follow_one(rec, item, mig, view)

    def _needs_server(self, rec, item, mig, unseen_due):
        if mig is None:
            return unseen_due or not self._accepted_unseen(rec, item)
        return (mig.finished
                or self._age(rec, item) > self.opts.evacuation_timeout
                or self._stalled(item, self._progress(mig, None)))

    def _accepted_unseen(self, rec, item):
        """Nova accepted the call, so it made the migration record, but the
        poll does not show it yet: changes-since selects records by
        ``updated_at``, which Nova leaves empty until the conductor first
        touches the record (seconds, in a burst). Such servers are read
        every UNSEEN_REREAD seconds, not on every poll: reading them all
        on every poll of a burst cost nova-api more than the evacuations
        (issue 14). Past evacuation_timeout they are read every poll."""
        return (item.accepted_at is not None
                and self._age(rec, item) <= self.opts.evacuation_timeout)

    @staticmethod
    def _progress(mig, view):
        """What Nova shows of the evacuation, as one comparable string."""
        parts = []
        if mig is not None:
            parts.append('migration %s %s' % (mig.id, mig.status))
        else:
            parts.append('no migration record')
        if view not in (None, _UNKNOWN) and view.task_state:
            parts.append('task state %s' % view.task_state)
        return '; '.join(parts)

    def _stalled(self, item, progress):
        since = item.progress_at or item.call_started_at or item.started_at
        if since is None or _progressed(item.progress or '', progress):
            return False
        return (utcnow() - since).total_seconds() >= \
            self.opts.evacuation_stall_alarm

    @staticmethod
    def _age(rec, item):
        """Seconds since the current attempt's call began."""
        return (utcnow() - (item.call_started_at or item.started_at
                            or rec.detected_at)).total_seconds()

    def follow_one(self, rec, item, mig, view):
        """One evacuating item, from the current attempt's migration record
        ``mig`` (a MigrationView or None) and ``view`` (a ServerView, None
        if the server was deleted, _UNKNOWN if not read this pass)."""
        ev = self.ev
        age = self._age(rec, item)
        if view is None:
            ev.journal.transition_item(
                rec.id, item.instance_uuid, ('evacuating',), 'skipped',
                last_error='instance deleted during recovery',
                epoch=ev.epoch)
            return
        if view is not _UNKNOWN and view.recovered_from(rec.host) and (
                mig is None or mig.finished):
            self._done(rec, item, view, mig, age)
            return
        self._note_progress(rec, item, mig, view)
        # Failed: its migration record says so, or the server went to ERROR
        # under this attempt's migration (without a record of this attempt,
        # an ERROR is the state the server was in before the call).
        if mig is not None and (mig.failed or (
                view is not _UNKNOWN and view.status == 'ERROR'
                and view.task_state is None)):
            if view is _UNKNOWN or view.task_state is not None:
                return   # Nova still unwinds it: never re-issue over it
            # nova-conductor marks an evacuation's migration 'error' only
            # when scheduling it failed (No valid host, the placement
            # claim): it never reached a compute (computes mark 'failed').
            # The fault may not be readable yet when the status is.
            unscheduled = 'No valid host' in view.fault or (
                mig is not None and mig.status == SCHEDULING_FAILED)
            if unscheduled and placement_plan.planner(ev).refused(rec, item):
                # issue 14: the scheduler refused the planned host: again
                # with no host (the scheduler chooses).
                ev.journal.transition_item(
                    rec.id, item.instance_uuid, ('evacuating',), 'pending',
                    last_error='planned host refused: %s' % (
                        view.fault or 'migration %s %s' % (mig.id,
                                                           mig.status)),
                    epoch=ev.epoch)
                return
            if 'No valid host' in view.fault:
                ev.journal.transition_item(
                    rec.id, item.instance_uuid, ('evacuating',),
                    'no_valid_host', last_error=view.fault,
                    migration_id=mig.id if mig else None, epoch=ev.epoch)
                ev.alarm('NO_VALID_HOST', 'CRITICAL',
                         'instance %s (%s) from %s has no valid host: the '
                         'scheduler\'s placement rules (server group, '
                         'anti-affinity level, SAL) admit no healthy host. '
                         '%s' % (item.name, item.instance_uuid, rec.host,
                                 view.fault),
                         host=rec.host, instance_uuid=item.instance_uuid,
                         recovery_id=rec.id)
                return
            self.retry_or_fail(rec, item, item.attempts,
                               view.fault or 'migration %s %s' % (
                                   mig.id if mig else '?',
                                   mig.status if mig else 'failed'),
                               migration_id=mig.id if mig else None)
            return
        if mig is None:
            self._no_record(rec, item, view, age)
            return
        if age > self.opts.evacuation_timeout:
            if view is _UNKNOWN:
                return     # read next poll
            if view.task_state is not None:
                self._timed_out_in_flight(rec, item, mig, view, age)
                return
            self.retry_or_fail(rec, item, item.attempts,
                               'evacuation still %s after %.0f s'
                               % (mig.status, age), migration_id=mig.id)

    def _timed_out_in_flight(self, rec, item, mig, view, age):
        """Past evacuation_timeout and Nova still runs the evacuation: a
        second evacuate would race it, so the item ends in error with a
        CRITICAL alarm (an operator decides)."""
        ev = self.ev
        what = 'migration %s %s' % (mig.id, mig.status) if mig else \
            'no migration record'
        fields = {'migration_id': mig.id} if mig else {}
        ev.journal.transition_item(
            rec.id, item.instance_uuid, ('evacuating',), 'error',
            epoch=ev.epoch, last_error='evacuation in flight after %.0f s '
            '(%s; %s); not re-issued while Nova runs it'
            % (age, what, view.describe()), **fields)
        ev.alarm('EVACUATION_FAILED', 'CRITICAL',
                 'instance %s (%s) from %s: evacuation still in flight after '
                 '%.0f s (%s; Nova: %s). Not re-issued while Nova runs it'
                 % (item.name, item.instance_uuid, rec.host, age, what,
                    view.describe()),
                 host=rec.host, instance_uuid=item.instance_uuid,
                 recovery_id=rec.id)

    def _done(self, rec, item, view, mig, age):
        ev = self.ev
        if ev.journal.transition_item(
                rec.id, item.instance_uuid, ('evacuating',), 'done',
                migration_id=mig.id if mig else item.migration_id,
                dest_host=view.host, epoch=ev.epoch):
            ev.step(rec.id, 'active:%s' % item.instance_uuid,
                    detail='%s on %s (%s%s)' % (
                        item.name, view.host, view.status,
                        '; migration %s %s' % (mig.id, mig.status)
                        if mig else '; moved by an earlier attempt'),
                    duration=age)
            if item.progress_at and (utcnow() - item.progress_at)\
                    .total_seconds() >= self.opts.evacuation_stall_alarm:
                ev.journal.clear_alarms(key=self._stuck_key(rec, item),
                                        by=self.opts.name, epoch=ev.epoch)
            self._clear_failure_alarms(rec, item)

    # An instance's final-failure alarms, cleared once it is recovered
    # after all (an operator's `recovery retry`).
    FAILURE_ALARMS = ('NO_VALID_HOST', 'EVACUATION_FAILED')

    def _clear_failure_alarms(self, rec, item):
        if item.last_error is None:
            return      # never failed: no such alarm (saves the writes)
        for type_ in self.FAILURE_ALARMS:
            self.ev.journal.clear_alarms(
                key=self.ev.journal.alarm_key(type_, rec.host,
                                              item.instance_uuid),
                by=self.opts.name, epoch=self.ev.epoch)

    def _no_record(self, rec, item, view, age):
        """No migration record of this attempt: evacuate again only on
        evidence that no evacuation of the instance is in flight."""
        if view is _UNKNOWN:
            return
        if view.task_state is not None:
            # Nova is evacuating it (task state before record): never
            # re-issued over it; past evacuation_timeout it is an error.
            if age > self.opts.evacuation_timeout:
                self._timed_out_in_flight(rec, item, None, view, age)
            return
        if item.accepted_at is not None:
            # Nova accepted the call, so it made its record: it is only
            # not visible (yet). Judged by evacuation_timeout.
            if age > self.opts.evacuation_timeout:
                self.retry_or_fail(rec, item, item.attempts,
                                   'no evacuation record %.0f s after Nova '
                                   'accepted the call' % age)
            return
        # The call's fate is unknown: its leader died during it, or before
        # it. A call still inside Nova's API leaves its task state, action
        # and record within evacuate_reissue_after.
        if age < self.opts.evacuate_reissue_after:
            return
        since = attempt_since(item, rec)
        actions = self.ops.evacuate_actions(item.instance_uuid, since)
        if actions:
            # The call reached Nova (it set and cleared the task state
            # without a record we can see): judged by evacuation_timeout.
            if age > self.opts.evacuation_timeout:
                self.retry_or_fail(rec, item, item.attempts,
                                   'evacuate action %s left no evacuation '
                                   'record' % actions[0].request_id)
            return
        LOG.warning('evacuate of %s (%s) sent at %s left no trace in Nova '
                    'after %.0f s (no task state, instance action or '
                    'migration record): issuing it again', item.name,
                    item.instance_uuid, item.call_started_at, age)
        self.ev.journal.transition_item(
            rec.id, item.instance_uuid, ('evacuating',), 'pending',
            last_error='%s sent at %s after %.0f s; re-issuing' % (
                placement_plan.NEVER_REACHED_NOVA, item.call_started_at,
                age),
            epoch=self.ev.epoch)

    @staticmethod
    def _stuck_key(rec, item):
        return 'EVACUATION_STUCK|%s|%s' % (rec.id, item.instance_uuid)

    def _note_progress(self, rec, item, mig, view):
        """Record Nova's progress of the evacuation; alarm (MAJOR) once it
        has not changed for evacuation_stall_alarm seconds."""
        ev = self.ev
        progress = self._progress(mig, view)
        known = item.progress or ''
        if progress != known:
            changed = _progressed(known, progress)
            if changed or len(progress) > len(known):
                fields = {'progress': progress[:255]}
                if changed:
                    fields['progress_at'] = utcnow()
                ev.journal.update_item(rec.id, item.instance_uuid,
                                       'evacuating', epoch=ev.epoch,
                                       **fields)
            if changed:
                return
        since = item.progress_at or item.call_started_at or item.started_at
        stalled = (utcnow() - since).total_seconds() if since else 0.0
        if stalled < self.opts.evacuation_stall_alarm:
            return
        key = self._stuck_key(rec, item)
        memo = ev._steady.stuck_alarm_at.get(key)
        now = ev.clock()
        if memo is not None and now - memo < STUCK_REFRESH:
            return
        ev._steady.stuck_alarm_at[key] = now
        task = view.task_state if view not in (None, _UNKNOWN) else None
        ev.alarm('EVACUATION_STUCK', 'MAJOR',
                 'evacuation of server %s (%s) from %s shows no progress for '
                 '%.0f s: migration %s, Nova task state %s' % (
                     item.name, item.instance_uuid, rec.host, stalled,
                     '%s %s' % (mig.id, mig.status) if mig else
                     '(no record)', task or 'none'),
                 host=rec.host, instance_uuid=item.instance_uuid,
                 recovery_id=rec.id, key=key,
                 extra={'migration_id': mig.id if mig else None,
                        'migration_status': mig.status if mig else None,
                        'task_state': task, 'stalled_seconds': stalled})

    def retry_or_fail(self, rec, item, attempt, error, migration_id=None):
        ev = self.ev
        fields = {} if migration_id is None else {
            'migration_id': migration_id}
        if attempt < self.opts.max_evacuation_attempts:
            ev.journal.transition_item(rec.id, item.instance_uuid,
                                       ('evacuating',), 'pending',
                                       last_error=error, epoch=ev.epoch,
                                       **fields)
            return
        ev.journal.transition_item(rec.id, item.instance_uuid,
                                   ('evacuating',), 'error',
                                   last_error=error, epoch=ev.epoch,
                                   **fields)
        ev.alarm('EVACUATION_FAILED', 'CRITICAL',
                 'instance %s (%s) from %s not recovered after %d '
                 'attempt(s): %s' % (item.name, item.instance_uuid,
                                     rec.host, attempt, error),
                 host=rec.host, instance_uuid=item.instance_uuid,
                 recovery_id=rec.id)

    # -- starting ------------------------------------------------------------
    def _clear_to_issue(self, rec, item):
        """A retry (or a re-issue): only if Nova shows no evacuation of the
        instance in flight. Returns True to issue, False to wait; an
        instance Nova already shows recovered is marked done here."""
        now = self.ev.clock()
        last = self._checked.get(item.instance_uuid)
        if last is not None and now - last < self.opts.nova_poll_interval:
            return False
        self._checked[item.instance_uuid] = now
        server = self.ops.server(item.instance_uuid)
        if server is None:
            self.ev.journal.transition_item(
                rec.id, item.instance_uuid, ('pending',), 'skipped',
                last_error='instance deleted during recovery',
                epoch=self.ev.epoch)
            return False
        view = ServerView.of(server)
        if view.task_state is not None:
            LOG.info('not re-issuing the evacuate of %s (%s): Nova shows '
                     'task state %s', item.name, item.instance_uuid,
                     view.task_state)
            return False
        if view.recovered_from(rec.host):
            self._moved_earlier(rec, item, view, 'pending')
            return False
        return True

    def _moved_earlier(self, rec, item, view, state):
        """Nova shows the instance recovered by an earlier attempt: the
        item (in ``state``) is done there."""
        if self.ev.journal.transition_item(
                rec.id, item.instance_uuid, (state,), 'done',
                dest_host=view.host, epoch=self.ev.epoch):
            self.ev.step(rec.id, 'active:%s' % item.instance_uuid,
                         detail='%s on %s (%s; moved by an earlier attempt)'
                         % (item.name, view.host, view.status))
            self._clear_failure_alarms(rec, item)

    def start(self, rec):
        ev = self.ev
        pending = ev.journal.list_recovery_items(rec.id, states=['pending'])
        if not pending:
            return
        # Read once per pass, then kept up to date by this pass's starts.
        memo = ev._pass
        if memo.in_flight is None:
            evacuating = ev.journal.list_recovery_items(
                states=['evacuating'])
            memo.in_flight = len(evacuating)
            memo.busy_groups = {i.server_group for i in evacuating
                                if i.server_group}
        in_flight = memo.in_flight
        busy_groups = memo.busy_groups
        started = []
        for item in pending:
            if in_flight >= self.opts.max_concurrent_evacuations:
                break
            if item.server_group and item.server_group in busy_groups:
                continue
            if item.attempts and not self._clear_to_issue(rec, item):
                continue
            if not ev.journal.transition_item(
                    rec.id, item.instance_uuid, ('pending',), 'evacuating',
                    epoch=ev.epoch):
                continue
            in_flight += 1
            if item.server_group:
                busy_groups.add(item.server_group)
            started.append(item)
        memo.in_flight = in_flight
        # The API calls return at once (nova casts the rebuild): issue them
        # side by side rather than one round trip after another.
        if started:
            ev._assert_leader()
        # issue 14: a planned target per instance (None: no host), that
        # nova-scheduler validates (nova_ha.evacuator.placement_plan).
        targets = placement_plan.planner(ev).targets(rec, started) \
            if started else {}
        calls = [(item, ev._api_pool.submit(
            self.ops.evacuate, item.instance_uuid,
            targets.get(item.instance_uuid))) for item in started]
        for item, call in calls:
            attempt = item.attempts + 1
            try:
                call.result()
            except Exception as exc:
                LOG.warning('evacuate %s (%s) refused: %s', item.name,
                            item.instance_uuid, exc)
                if not self._already_moved(rec, item):
                    self.retry_or_fail(rec, item, attempt, str(exc))
                continue
            ev.journal.update_item(rec.id, item.instance_uuid, 'evacuating',
                                   accepted_at=utcnow(), epoch=ev.epoch)
            ev.step(rec.id, 'evacuate:%s%s' % (
                item.instance_uuid, '#%d' % attempt if attempt > 1 else ''),
                detail=placement_plan.step_detail(
                    item.name, targets.get(item.instance_uuid)))

    def _already_moved(self, rec, item):
        """Nova refused an evacuation: if the instance runs elsewhere
        already (an earlier attempt that finished after we gave up on it),
        the item is done, not failed. If Nova is evacuating it (task state
        set: an earlier call still in flight), the item stays evacuating and
        is followed like any other."""
        try:
            server = self.ops.server(item.instance_uuid)
        except Exception:    # noqa: BLE001 -- judged on the next attempt
            return False
        if server is None:
            return False
        view = ServerView.of(server)
        if view.recovered_from(rec.host):
            self._moved_earlier(rec, item, view, 'evacuating')
            return True
        if view.task_state is not None:
            LOG.info('evacuate of %s refused while Nova shows task state '
                     '%s: following the evacuation in flight', item.name,
                     view.task_state)
            return True
        return False

    # -- closing and auditing ------------------------------------------------
    def unconfirmed(self, rec, items):
        """The ``done`` items whose server Nova shows on the failed host,
        in ERROR or being rebuilt: [(item, ServerView)]."""
        done = [i for i in items if i.state == 'done']
        if not done:
            return []
        polled = Polled([], {})
        views = self._servers(rec, polled, [i.instance_uuid for i in done])
        return [(i, views.get(i.instance_uuid)) for i in done
                if views.get(i.instance_uuid) is not None
                and views[i.instance_uuid].contradicts_done(rec.host)]

    def _reopen_items(self, rec, wrong):
        ev = self.ev
        for item, view in wrong:
            to = 'evacuating' if view.task_state is not None else 'pending'
            LOG.warning('journal says %s (%s) of recovery %s is done; Nova '
                        'shows %s: re-opening it (%s)', item.name,
                        item.instance_uuid, rec.id, view.describe(), to)
            if ev.journal.transition_item(
                    rec.id, item.instance_uuid, ('done',), to,
                    last_error='journal said done; Nova shows %s'
                    % view.describe(), epoch=ev.epoch):
                ev.journal.forget_steps(
                    rec.id, ['active:%s' % item.instance_uuid],
                    epoch=ev.epoch)

    def close(self, rec):
        ev = self.ev
        items = ev.journal.list_recovery_items(rec.id)
        wrong = self.unconfirmed(rec, items)
        if wrong:
            self._reopen_items(rec, wrong)
            return
        bad = [i for i in items if i.state in ('error', 'no_valid_host')]
        state = 'incomplete' if bad else 'done'
        if ev.journal.close_recovery(
                rec.id, state, epoch=ev.epoch,
                detail='%d instance(s) not recovered' % len(bad)
                if bad else None,
                host_state='RECOVERED'):
            self._unseen_read.pop(rec.id, None)
            ev.journal.reset_guard(rec.host, epoch=ev.epoch)
            ev.journal.clear_alarms(host=rec.host,
                                    type='MASS_FAILURE_GUARD',
                                    by=self.opts.name, epoch=ev.epoch)
            ev.journal.clear_alarms(host=rec.host, type='EVACUATION_STUCK',
                                    by=self.opts.name, epoch=ev.epoch)
            ev.step(rec.id, 'finished', detail=state,
                    duration=(utcnow() - rec.detected_at).total_seconds())
            LOG.info('recovery %s of %s %s', rec.id, rec.host, state)

    def audit(self, states, now):
        """Closed recoveries whose host still awaits ``host enable``
        (RECOVERED): any item ``done`` in the journal that Nova does not
        show recovered re-opens its recovery (one transaction with the
        host's state) and the item. Once per term, then every
        AUDIT_INTERVAL."""
        if self._last_audit is not None and \
                now - self._last_audit < AUDIT_INTERVAL:
            return
        self._last_audit = now
        for host, st in sorted(states.items()):
            if st.state != 'RECOVERED' or st.recovery_id is None:
                continue
            rec = self.journal.get_recovery(st.recovery_id)
            if rec is None or rec.state not in ('done', 'incomplete'):
                continue
            items = self.journal.list_recovery_items(rec.id)
            wrong = self.unconfirmed(rec, items)
            if not wrong:
                self._retry_no_valid_host(rec, items)
                continue
            detail = ('%d instance(s) done in the journal but not in Nova '
                      '(%s): re-opened' % (len(wrong), ', '.join(
                          '%s: %s' % (i.name, v.describe())
                          for i, v in wrong)))
            if self.journal.reopen_recovery(rec.id, detail,
                                            epoch=self.ev.epoch):
                LOG.warning('recovery %s of %s: %s', rec.id, host, detail)
                self._reopen_items(rec, wrong)
                self.ev.forget_listed(rec.id)

    def _retry_no_valid_host(self, rec, items):
        """A recovery that ended incomplete because the scheduler found
        no host for some instance: every ``no_valid_host_retry_interval``
        (from its close, in the journal) those instances are evacuated
        again -- capacity may be back. The host is still fenced and
        RECOVERED (audit's precondition, checked again in the journal's
        transaction)."""
        interval = self.opts.no_valid_host_retry_interval
        if not interval or rec.state != 'incomplete' or \
                rec.finished_at is None or \
                not any(i.state == 'no_valid_host' for i in items):
            return
        if (utcnow() - rec.finished_at).total_seconds() < interval:
            return
        heard = self.ev._conditions.get(rec.host)
        if heard != detection.HOST_DOWN:
            # Any heartbeat: the host is powered again (being repaired?).
            # Its instances might be started there: no evacuation on our
            # own -- the operator enables it, or retries by hand. SUSPECT
            # (this evacuator just started, or stalled) is not judged
            # silent either: wait.
            LOG.info('recovery %s of %s: instances with no valid host not '
                     'tried again: the host is %s, not silent', rec.id,
                     rec.host, heard or 'not judged yet')
            return
        try:
            again = self.journal.retry_recovery(
                rec.id, 'evacuator %s' % self.opts.name,
                states=('no_valid_host',), epoch=self.ev.epoch)
        except (journal_api.RetryRefused, journal_api.NotFound) as exc:
            LOG.info('recovery %s of %s: no retry: %s', rec.id, rec.host,
                     exc)
            return
        LOG.warning('recovery %s of %s: %d instance(s) that found no valid '
                    'host %.0f s ago evacuated again: %s', rec.id, rec.host,
                    len(again), interval, ', '.join(
                        '%s (%s)' % (i.name, i.instance_uuid)
                        for i in again))
        self.ev.forget_listed(rec.id)


def _progressed(known, new):
    """True if Nova's progress ``new`` differs from ``known`` (both from
    Evacuations._progress): another migration record or status, or another
    task state when both name one (a task state read in only one of them
    is no change)."""
    if not known:
        return True
    k_mig, _, k_task = known.partition('; ')
    n_mig, _, n_task = new.partition('; ')
    if k_mig != n_mig:
        return True
    return bool(k_task and n_task and k_task != n_task)


class _Unknown:
    """Nova's view of a server not read this pass."""

    def __repr__(self):
        return '<not read>'


_UNKNOWN = _Unknown()
