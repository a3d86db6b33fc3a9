"""The journal's repository API -- what the reconcile loops call.

Every method is one short transaction of its own (no session lives between
calls) and returns plain frozen dataclasses (:class:`HostState`,
:class:`Recovery`, ...), never ORM objects. Every write is idempotent or
guarded by a unique constraint / compare-and-set, so a loop that re-runs a
step after a crash (kill -9) or that races a second actor never duplicates
anything. Works the same on SQLite (default, WAL + busy timeout, several
processes may share the file), MariaDB and PostgreSQL.

Set-up::

    from nova_ha import journal
    journal.upgrade(url)                    # or: nova-ha journal upgrade
    j = journal.Journal(url)                # or: Journal.from_conf(CONF)

Leadership / fencing token (issue 6) -- every mutating call takes an
optional ``epoch`` (an :class:`Epoch` from :meth:`Journal.claim_leadership`,
or a bare int meaning leadership ``'evacuator'``); the write is refused with
:class:`StaleEpoch` when a newer leader has claimed since. The check holds a
shared lock on the leadership row for the transaction, so once
``claim_leadership`` has returned, no write of the deposed epoch can commit::

    claim_leadership(name, holder) -> Epoch          # epoch += 1
    renew_leadership(epoch) -> bool                  # False: deposed
    get_leadership(name) -> Leadership | None
    check_epoch(epoch)                               # raises StaleEpoch

Host state machine (one row per compute host; states in HOST_STATES)::

    set_host_state(host, state, detail=None, expected=<unset>,
                   recovery_id=<unset>, at=None, epoch=None)
        -> HostState | None
        Idempotent: setting the current state again keeps state_since (only
        detail -- replaced -- and recovery_id, if given, are refreshed).
        ``expected`` (a state or a collection of states; None in it means
        "no row yet") makes it a compare-and-set: returns None when the
        current state is not expected. Every real change is appended to
        host_state_changes.
    get_host_state(host) / list_host_states(states=None)
    host_state_map(states=None) -> {host: HostStateBrief(state,
                                    recovery_id, generation)}   # one query
    host_state_history(host=None, since=None, limit=None)  # newest first
    count_state_changes(host, since) -> int                # flapping
    lift_guard(host, operator) / reset_guard(host)         # mass-failure
                                                           # guard override

Fencing attempts::

    start_fencing(host, driver, recovery_id=None, at=None, epoch=None)
        -> FencingAttempt                        # outcome None = in flight
        # at most one attempt in flight per host: if one is (e.g. left by a
        # crashed leader: see its epoch/started_at), that one is returned
        # and no row is added; fence and finish it (power-off is
        # idempotent), or finish it as INTERRUPTED and start again.
    finish_fencing(attempt_id, outcome, reason=None, at=None, epoch=None)
        -> bool      # False if already finished (first outcome wins)
    confirm_fenced_by_operator(host, operator, reason=None, recovery_id=None)
        -> FencingAttempt     # outcome CONFIRMED_BY_OPERATOR, driver 'manual'
    list_fencing_attempts(host=None, recovery_id=None, unfinished=False,
                          limit=None)                        # newest first
    last_fencing_attempt(host) -> FencingAttempt | None

Recoveries (at most ONE open recovery per host, enforced by a unique
index)::

    open_recovery(host, reason, detected_at=None, detail=None, epoch=None)
        -> (Recovery, created)        # returns the open one if it exists
        # a new recovery starts its timeline with step 'detected'
    get_recovery(id) / get_open_recovery(host)
    list_recoveries(host=None, states=None, since=None, limit=None)
    close_recovery(id, state, detail=None, at=None, epoch=None,
                   host_state=None, host_detail=None) -> bool
        # with host_state: the host's state changes in the same transaction
    reopen_recovery(id, detail, at=None, epoch=None,
                    host_state='EVACUATING') -> bool
        # journal said done, Nova disagrees: open again (one transaction)
    forget_steps(id, steps, epoch=None) -> int   # wrong active:<uuid> steps
    recovery_failed(id, error, retry_at, epoch=None) -> bool
    recovery_succeeded(id, epoch=None) -> bool
        # per-recovery error isolation: failures, retry_at, last_error
        # state: done / incomplete / failed; False if it was not open;
        # adds the final step (named after the state) to the timeline
    record_step(recovery_id, step, at=None, duration=None, detail=None,
                epoch=None) -> bool
        # timeline entry, unique per (recovery, step): a re-run records
        # nothing (returns False). Steps 'fenced' and 'forced_down' also
        # set recoveries.fenced_at / forced_down_at (first time only).
        # Name retries distinctly, e.g. 'evacuate:<uuid>#2'.
    timeline(recovery_id) -> [TimelineEntry]   # ordered by (at, id), with
                                               # seconds since detection

Recovery items (unique per (recovery, instance); an instance can be
'evacuating' in at most one item at a time, across recoveries)::

    add_recovery_items(recovery_id, items, epoch=None) -> int  # new rows
        # items: dicts with instance_uuid and optionally name, server_group,
        # sal, priority, state ('pending' or 'skipped'), source_host,
        # last_error. Existing (recovery, instance) rows are left alone.
    list_recovery_items(recovery_id=None, states=None, server_group=None)
        # ordered SAL ascending (NULL last), priority DESCENDING, id
    get_recovery_item(recovery_id, instance_uuid)
    transition_item(recovery_id, instance_uuid, from_states, to_state,
                    at=None, epoch=None, migration_id=..., dest_host=...,
                    source_host=..., last_error=...) -> bool
        # compare-and-set: True only for the caller that moved it.
        # -> evacuating: attempts += 1, started_at set the first time.
        # -> done/error/skipped/no_valid_host: finished_at = at.
        # Do not "transition" evacuating->evacuating to record a field:
    update_item(recovery_id, instance_uuid, state, at=None, epoch=None,
                migration_id=..., dest_host=..., ...) -> bool
        # set fields while the item is still in `state` (no state change)
    count_items(states=('evacuating',), server_group=None,
                recovery_id=None, open_only=True) -> int

Alarms (at most one uncleared alarm per key; key defaults to
'TYPE|host|instance_uuid', so a level-triggered loop can raise the same
alarm every iteration)::

    raise_alarm(type, severity, message, host=None, rack=None,
                power_domain=None, availability_zone=None,
                instance_uuid=None, recovery_id=None, key=None, at=None,
                epoch=None) -> (Alarm, created)
        # an uncleared alarm with the key: count += 1, last_seen_at,
        # severity and message refreshed, created=False
    acknowledge_alarm(alarm_id, by, at=None) -> bool
    clear_alarms(alarm_id=None, key=None, host=None, type=None, by=None,
                 at=None, epoch=None) -> int   # at least one filter
    get_alarm(alarm_id)
    list_alarms(status='active'|'cleared'|'all', host=None, types=None,
                severities=None, min_severity=None, acknowledged=None,
                rack=None, power_domain=None, availability_zone=None,
                recovery_id=None, since=None, until=None, limit=None)
        # newest first

Maintenance drains (at most one active drain per host; active =
draining/aborting/ready/incomplete)::

    start_drain(host, reason=None, power_off=False, by=None, at=None,
                epoch=None) -> (Drain, created)  # existing active one if any
    get_drain(id) / get_active_drain(host) / list_drains(host, states, limit)
    transition_drain(drain_id, from_states, to_state, by=None, detail=...,
                     powered_off_by_nova_ha=..., at=None, epoch=None) -> bool
        # -> aborted/completed: finished_at, finished_by, host freed
    add_drain_items(drain_id, items, epoch=None) -> int
        # dicts: instance_uuid, name, server_group, method, state, reason,
        # source_host
    list_drain_items(drain_id, states=None, server_group=None)
    transition_drain_item(drain_id, instance_uuid, from_states, to_state,
                          at=None, epoch=None, method=..., reason=...,
                          migration_id=..., dest_host=...) -> bool
        # -> moving: attempts += 1, started_at the first time; -> moved/
        # blocked: finished_at. At most one moving item per instance.
    update_drain_item(drain_id, instance_uuid, state, **fields) -> bool
    count_drain_items(states=('moving',), server_group=None, drain_id=None,
                      active_only=True) -> int     # plan group concurrency
    drain_progress(drain_id) -> {state: count} (every DRAIN_ITEM_STATES key)

Retention::

    purge(older_than=None, now=None) -> {table: rows deleted}
        # older_than: timedelta (default [journal] retention_days). Deletes
        # closed recoveries (and their items/steps), finished fencing
        # attempts, cleared alarms, finished drains (and items) and host
        # state history older than that. Never current host states, open
        # recoveries, active drains, uncleared alarms or leadership.

Low level: ``transaction(write=True, epoch=None)`` yields a SQLAlchemy Core
Connection in a transaction (epoch-guarded when given), for reads the API
does not cover; tables are ``nova_ha.journal.models.<Model>.__table__``.

Times: pass timezone-aware UTC datetimes (naive ones are taken as UTC);
everything read back is timezone-aware UTC. ``at`` defaults to now.
"""

import collections
import contextlib
import dataclasses
import datetime
import logging
import math
import os
import random
import sqlite3
import time

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from nova_ha.journal import models

LOG = logging.getLogger(__name__)

# --- vocabulary --------------------------------------------------------------

HOST_STATES = (
    'OK',            # healthy, in service
    'SUSPECT',       # some signal missing, inside the confirmation window
    'HOST_DOWN',     # every plane silent past the window: recover
    'SERVICE_DOWN',  # heartbeats fine, nova-compute dead: alarm, no evacuation
    'PARTITION',     # some planes silent: alarm, no evacuation by default
    'FENCING',       # a fence is in flight
    'FENCED',        # power off confirmed (or confirmed by an operator)
    'FENCE_FAILED',  # fencing did not confirm: never evacuate, keep retrying
    'GUARDED',       # mass-failure guard holds fencing back
    'FORCED_DOWN',   # nova-compute forced down and disabled
    'EVACUATING',    # instances being evacuated
    'RECOVERED',     # evacuation finished; host stays down until enabled
    'MAINTENANCE',   # being drained / in maintenance
    'DISABLED',      # disabled by an operator outside nova-ha
)
FENCE_OUTCOMES = ('FENCED', 'FAILED', 'UNREACHABLE', 'CONFIRMED_BY_OPERATOR',
                  'INTERRUPTED')
RECOVERY_STATES = ('open', 'done', 'incomplete', 'failed')
ITEM_STATES = ('pending', 'evacuating', 'done', 'error', 'skipped',
               'no_valid_host')
ITEM_FINISHED = ('done', 'error', 'skipped', 'no_valid_host')
ALARM_TYPES = ('HOST_DOWN', 'SERVICE_DOWN', 'PARTITION', 'FENCE_FAILED',
               'NO_VALID_HOST', 'MASS_FAILURE_GUARD', 'FLAPPING',
               'EVACUATION_FAILED', 'PROCESS_RESTARTED', 'SELF_CHECK',
               'MAINTENANCE', 'EVACUATION_STUCK', 'CAPACITY',
               # issue 17 (nova_ha/evacuator/instance_ha.py)
               'INSTANCE_FAILED', 'INSTANCE_ESCALATED',
               'INSTANCE_RECOVERY_FAILED', 'HOST_SUSPECT')
SEVERITIES = ('CRITICAL', 'MAJOR', 'MINOR', 'WARNING', 'INFO')  # worst first
DRAIN_STATES = ('draining', 'aborting', 'ready', 'incomplete', 'aborted',
                'completed')
DRAIN_ACTIVE = ('draining', 'aborting', 'ready', 'incomplete')
DRAIN_ITEM_STATES = ('waiting', 'moving', 'moved', 'blocked')
DRAIN_METHODS = ('live', 'cold')
DEFAULT_LEADERSHIP = 'evacuator'


class JournalError(Exception):
    """Base class of the journal's errors."""


class StaleEpoch(JournalError):
    """A write carried an epoch older than the current leader's."""

    def __init__(self, name, epoch, current):
        self.name, self.epoch, self.current = name, epoch, current
        super().__init__(
            'journal: write refused: leadership %r epoch %s is stale '
            '(current epoch %s)' % (name, epoch, current))


class NotFound(JournalError):
    pass


class RetryRefused(JournalError):
    """``retry_recovery``: the recovery is not one an operator may retry
    now; the message says why."""


class SchemaError(JournalError):
    """The database is not at the journal's newest schema revision."""


def _check(kind, value, allowed):
    if value not in allowed:
        raise ValueError('journal: invalid %s %r (expected one of: %s)'
                         % (kind, value, ', '.join(allowed)))
    return value


def _states(kind, value, allowed, allow_none=False):
    """A state or a collection of states -> tuple, validated."""
    if value is None or isinstance(value, str):
        value = (value,)
    value = tuple(value)
    if not value:
        raise ValueError('journal: empty %s list' % kind)
    for v in value:
        if v is None and allow_none:
            continue
        _check(kind, v, allowed)
    return value


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _utc(at):
    if at is None:
        return utcnow()
    if at.tzinfo is None:
        return at.replace(tzinfo=datetime.timezone.utc)
    return at.astimezone(datetime.timezone.utc)


def _seconds(start, end):
    if start is None or end is None:
        return None
    return (_utc(end) - _utc(start)).total_seconds()


_UNSET = object()


def _lit(at):
    """A bound time with the journal's UTC type (inside SQL functions)."""
    return sa.literal(at, models.UTCDateTime())

# --- records -----------------------------------------------------------------


def _record(name, model, doc):
    cls = dataclasses.make_dataclass(
        name, [c.name for c in model.__table__.columns], frozen=True)
    cls.__doc__ = doc
    cls.__module__ = __name__
    return cls


Leadership = _record('Leadership', models.Leadership, 'A leader record.')
HostState = _record('HostState', models.HostState, 'A host state row.')
HostStateChange = _record('HostStateChange', models.HostStateChange,
                          'One host state change.')
FencingAttempt = _record('FencingAttempt', models.FencingAttempt,
                         'One fencing attempt.')
Recovery = _record('Recovery', models.Recovery, 'One host recovery.')
RecoveryItem = _record('RecoveryItem', models.RecoveryItem,
                       'One instance of a recovery.')
RecoveryStep = _record('RecoveryStep', models.RecoveryStep,
                       'One timeline step.')
Alarm = _record('Alarm', models.Alarm, 'One alarm.')
Drain = _record('Drain', models.Drain, 'One maintenance drain.')
DrainItem = _record('DrainItem', models.DrainItem,
                    'One instance of a drain.')


HostStateBrief = collections.namedtuple(
    'HostStateBrief', 'state recovery_id generation')
HostStateBrief.__doc__ = ('A host state row without its times and details '
                          '(host_state_map).')


@dataclasses.dataclass(frozen=True)
class Epoch:
    """A fencing token: leadership ``name`` at ``epoch``."""
    name: str
    epoch: int
    holder: str | None = None

    def __int__(self):
        return self.epoch


@dataclasses.dataclass(frozen=True)
class TimelineEntry:
    step: str
    at: datetime.datetime
    since_detected: float   # seconds from the recovery's detected_at
    duration: float | None  # as recorded by the loop (e.g. evacuate->ACTIVE)
    detail: str | None


def _reopen_rows(conn, rec, step, detail, at):
    """A closed recovery open again (inside the caller's transaction):
    its row, its closing steps forgotten, a ``<step>:<time>`` step."""
    conn.execute(T_REC.update().where(T_REC.c.id == rec.id).values(
        state='open', open_host=rec.host, finished_at=None, detail=detail,
        failures=0, retry_at=None))
    conn.execute(T_STEP.delete().where(
        T_STEP.c.recovery_id == rec.id,
        T_STEP.c.step.in_(RECOVERY_STATES[1:] + ('finished',))))
    _insert_ignore(conn, T_STEP, dict(
        recovery_id=rec.id, step='%s:%s' % (step, at.isoformat()), at=at,
        detail=detail))


def _row(cls, row):
    return None if row is None else cls(**row._mapping)


def _rows(cls, result):
    return [cls(**r._mapping) for r in result]


T_LEADER = models.Leadership.__table__
T_HOST = models.HostState.__table__
T_HOSTCHG = models.HostStateChange.__table__
T_FENCE = models.FencingAttempt.__table__
T_REC = models.Recovery.__table__
T_ITEM = models.RecoveryItem.__table__
T_STEP = models.RecoveryStep.__table__
T_ALARM = models.Alarm.__table__
T_DRAIN = models.Drain.__table__
T_DITEM = models.DrainItem.__table__

# --- per-instance work items ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ItemKind:
    """Recovery items and drain items are one shape: rows per instance under
    a parent (recovery / drain), moved between states by compare-and-set,
    with a unique "active" column (evacuating_uuid / moving_uuid) that keeps
    one instance from being moved twice at once."""
    label: str              # 'recovery item' / 'drain item'
    parent_label: str       # 'recovery' / 'drain'
    states: tuple
    initial: tuple          # states an item may be added in (first: default)
    active: str             # the state that holds the active column
    active_uuid: str        # the unique column set while active
    finished: tuple         # states that set finished_at
    inputs: tuple           # fields accepted by add
    fields: tuple           # fields accepted by transition / update

    @property
    def table(self):
        return T_ITEM if self.parent_label == 'recovery' else T_DITEM

    @property
    def parent(self):
        return T_REC if self.parent_label == 'recovery' else T_DRAIN

    @property
    def parent_key(self):
        return self.table.c[self.parent_label + '_id']


# --- engine ------------------------------------------------------------------


def create_engine(url, busy_timeout=30.0, transaction_timeout=None,
                  **kwargs):
    """A SQLAlchemy engine set up for the journal.

    SQLite: WAL, ``busy_timeout``, foreign keys on, and write transactions
    started with BEGIN IMMEDIATE (so two processes never deadlock on a
    read->write lock upgrade). The file's directory is created if missing.
    MariaDB/MySQL and PostgreSQL: READ COMMITTED, pre-ping, and with
    ``transaction_timeout`` (seconds) the server aborts a transaction left
    idle that long and a lock wait gives up after it. Why: a paused or hung
    evacuator (SIGSTOP, a VM freeze) in the middle of a transaction would
    otherwise hold its row locks -- among them the shared lock on the
    leadership row that every epoch-guarded write takes -- for as long as
    it is stuck, and the standby could never claim leadership. SQLite has
    no such timeout: a process stopped inside a write transaction blocks
    every other writer, which is why a multi-node evacuator group needs a
    server database.
    """
    url = sa.engine.make_url(url)
    backend = url.get_backend_name()
    if backend == 'sqlite':
        db = url.database
        memory = not db or db == ':memory:' or db.startswith('file::memory')
        if not memory:
            directory = os.path.dirname(os.path.abspath(db))
            os.makedirs(directory, exist_ok=True)
        connect_args = dict(kwargs.pop('connect_args', {}))
        connect_args.setdefault('timeout', busy_timeout)
        connect_args.setdefault('check_same_thread', False)
        if memory:
            kwargs.setdefault('poolclass', sa.pool.StaticPool)
        engine = sa.create_engine(url, connect_args=connect_args, **kwargs)
        ms = int(busy_timeout * 1000)

        @event.listens_for(engine, 'connect')
        def _sqlite_connect(dbapi_conn, record):
            # Let SQLAlchemy's 'begin' event (below) issue BEGIN.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute('PRAGMA busy_timeout=%d' % ms)
            if not memory:
                _sqlite_wal(cur, busy_timeout)
                cur.execute('PRAGMA synchronous=NORMAL')
            cur.execute('PRAGMA foreign_keys=ON')
            cur.close()

        @event.listens_for(engine, 'begin')
        def _sqlite_begin(conn):
            mode = conn.get_execution_options().get('nova_ha_begin',
                                                    'IMMEDIATE')
            conn.exec_driver_sql('BEGIN %s' % mode)

        return engine
    kwargs.setdefault('pool_pre_ping', True)
    kwargs.setdefault('pool_recycle', 3600)
    kwargs.setdefault('isolation_level', 'READ COMMITTED')
    engine = sa.create_engine(url, **kwargs)
    if transaction_timeout:
        statements = _timeout_statements(backend, transaction_timeout)

        @event.listens_for(engine, 'connect')
        def _server_timeouts(dbapi_conn, record):
            cur = dbapi_conn.cursor()
            for stmt in statements:
                cur.execute(stmt)
            cur.close()
            # psycopg2 opened a transaction for the SETs: end it, or the
            # pool's reset would roll the settings back.
            dbapi_conn.commit()
    return engine


def _sqlite_wal(cur, busy_timeout):
    """Switch the file to WAL. SQLite answers "database is locked" at once
    (no busy handler) when two connections convert a new file together, as
    two processes upgrading one journal at the same moment do: retry."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            cur.execute('PRAGMA journal_mode=WAL')
            return
        except sqlite3.OperationalError as exc:
            if 'locked' not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.005, 0.03))


def _timeout_statements(backend, seconds):
    """Session settings that bound idle transactions and lock waits."""
    if backend == 'postgresql':
        ms = max(1, int(seconds * 1000))
        return ["SET SESSION idle_in_transaction_session_timeout = %d" % ms,
                "SET SESSION lock_timeout = %d" % ms]
    if backend in ('mysql', 'mariadb'):
        whole = max(1, int(math.ceil(seconds)))
        # idle_transaction_timeout is MariaDB >= 10.3 (MySQL has none: lock
        # waits are still bounded).
        return ["SET SESSION innodb_lock_wait_timeout = %d" % whole,
                "SET SESSION idle_transaction_timeout = %d" % whole]
    return []


def _is_retryable(exc):
    """A deadlock / serialization failure / lock timeout anywhere in the
    exception chain (a failed ROLLBACK TO SAVEPOINT after a MariaDB deadlock
    hides the deadlock in __context__)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        orig = getattr(exc, 'orig', None) or exc
        code = getattr(orig, 'pgcode', None)
        if code in ('40001', '40P01', '55P03'):  # serialization, deadlock,
            return True                          # lock timeout
        args = getattr(orig, 'args', ())
        if args and args[0] in (1213, 1205):  # MariaDB deadlock, lock wait
            return True
        msg = str(orig).lower()
        if 'database is locked' in msg or 'deadlock' in msg:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _insert_ignore(conn, table, values):
    """INSERT that silently does nothing on a unique conflict.

    Returns True when a row was inserted. Portable: SQLite ``INSERT OR
    IGNORE``, PostgreSQL ``ON CONFLICT DO NOTHING``, MariaDB a savepoint
    around a plain INSERT.
    """
    name = conn.dialect.name
    if name == 'sqlite':
        stmt = sqlite_dialect.insert(table).values(**values)
        return conn.execute(stmt.on_conflict_do_nothing()).rowcount == 1
    if name == 'postgresql':
        stmt = pg_dialect.insert(table).values(**values)
        return conn.execute(stmt.on_conflict_do_nothing()).rowcount == 1
    if name in ('mysql', 'mariadb'):
        # INSERT IGNORE would also hide other errors, and ON DUPLICATE KEY
        # UPDATE's row count is ambiguous with CLIENT_FOUND_ROWS: use a
        # savepoint and catch the duplicate-key error (1062) only.
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
            return True
        except sa_exc.IntegrityError as exc:
            if exc.orig.args and exc.orig.args[0] == 1062:
                return False
            raise
    raise JournalError('journal: unsupported database %s' % name)


# --- the API -----------------------------------------------------------------


class Journal:
    """The journal. Thread-safe; one instance per process is enough."""

    def __init__(self, url, busy_timeout=30.0, max_retries=8,
                 retention_days=None, engine=None, transaction_timeout=None,
                 **engine_kwargs):
        self.url = sa.engine.make_url(url) if url is not None else None
        self.engine = engine or create_engine(
            url, busy_timeout, transaction_timeout=transaction_timeout,
            **engine_kwargs)
        self.max_retries = max_retries
        self.retention_days = retention_days

    @classmethod
    def from_conf(cls, conf=None):
        """A Journal configured from the ``[journal]`` option group."""
        if conf is None:
            from oslo_config import cfg
            conf = cfg.CONF
        from nova_ha.conf import journal as journal_conf
        journal_conf.register_opts(conf)
        group = conf.journal
        url = journal_conf.validate_connection(group.connection)
        j = cls(url, busy_timeout=group.sqlite_busy_timeout,
                max_retries=group.max_retries,
                retention_days=group.retention_days,
                transaction_timeout=group.transaction_timeout)
        if group.auto_upgrade:
            from nova_ha.journal import migrations
            migrations.upgrade(j.engine)
        return j

    def __repr__(self):
        return '<Journal %s>' % (
            self.engine.url.render_as_string(hide_password=True))

    def close(self):
        self.engine.dispose()

    def check_schema(self):
        """Raise SchemaError unless the database is at the newest revision."""
        from nova_ha.journal import migrations
        have, want = migrations.current(self.engine), migrations.head()
        if have != want:
            raise SchemaError(
                'journal: database %s is at schema revision %s, this '
                'nova-ha needs %s; run "nova-ha journal upgrade"'
                % (self.engine.url.render_as_string(hide_password=True),
                   have or '(empty)', want))

    # -- transactions --------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, write=True, epoch=None):
        """A Core connection inside one transaction (committed on exit).

        With ``epoch``, StaleEpoch is raised first if a newer leader
        exists, and no newer leader can be claimed until this transaction
        ends: the way to group several raw writes under the fencing token.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == 'sqlite':
                conn.execution_options(
                    nova_ha_begin='IMMEDIATE' if write else 'DEFERRED')
            with conn.begin():
                if epoch is not None:
                    self._guard(conn, epoch)
                yield conn

    def _run(self, fn, write=True):
        """Run fn(conn) in a transaction, retrying deadlocks."""
        for attempt in range(self.max_retries + 1):
            try:
                with self.transaction(write) as conn:
                    return fn(conn)
            except sa_exc.DBAPIError as exc:
                if (isinstance(exc, sa_exc.IntegrityError)
                        or attempt >= self.max_retries
                        or not _is_retryable(exc)):
                    raise
                LOG.debug('journal: retrying after %s', exc.orig)
                time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))

    def _read(self, fn):
        return self._run(fn, write=False)

    # -- leadership ----------------------------------------------------------

    @staticmethod
    def _epoch(epoch):
        if epoch is None or isinstance(epoch, Epoch):
            return epoch
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            return Epoch(DEFAULT_LEADERSHIP, epoch)
        raise TypeError('journal: epoch must be an Epoch or an int, not %r'
                        % (epoch,))

    def _guard(self, conn, epoch):
        """Refuse the write if a newer leader exists (shared row lock)."""
        epoch = self._epoch(epoch)
        if epoch is None:
            return None
        q = sa.select(T_LEADER.c.epoch).where(T_LEADER.c.name == epoch.name)
        if conn.dialect.name != 'sqlite':
            q = q.with_for_update(read=True)
        current = conn.execute(q).scalar()
        if current != epoch.epoch:
            raise StaleEpoch(epoch.name, epoch.epoch, current)
        return epoch.epoch

    def claim_leadership(self, name=DEFAULT_LEADERSHIP, holder=None,
                         at=None):
        """Become leader ``name``: bump its epoch and return the new token.

        Call it after winning the election (tooz lock); from the moment it
        returns, writes carrying an older epoch are refused.
        """
        at = _utc(at)

        def fn(conn):
            _insert_ignore(conn, T_LEADER, dict(
                name=name, epoch=0, holder=None, acquired_at=at,
                renewed_at=at))
            conn.execute(T_LEADER.update().where(T_LEADER.c.name == name)
                         .values(epoch=T_LEADER.c.epoch + 1, holder=holder,
                                 acquired_at=at, renewed_at=at))
            value = conn.execute(sa.select(T_LEADER.c.epoch).where(
                T_LEADER.c.name == name)).scalar()
            return Epoch(name, value, holder)
        return self._run(fn)

    def renew_leadership(self, epoch, at=None):
        """Record liveness; False if ``epoch`` has been superseded."""
        epoch = self._epoch(epoch)
        at = _utc(at)

        def fn(conn):
            res = conn.execute(T_LEADER.update().where(
                T_LEADER.c.name == epoch.name,
                T_LEADER.c.epoch == epoch.epoch).values(renewed_at=at))
            return res.rowcount == 1
        return self._run(fn)

    def get_leadership(self, name=DEFAULT_LEADERSHIP):
        return self._read(lambda conn: _row(Leadership, conn.execute(
            T_LEADER.select().where(T_LEADER.c.name == name)).first()))

    def check_epoch(self, epoch):
        """Raise StaleEpoch if ``epoch`` is no longer the current one."""
        self._read(lambda conn: self._guard(conn, epoch))

    # -- hosts ---------------------------------------------------------------

    def set_host_state(self, host, state, detail=None, expected=_UNSET,
                       recovery_id=_UNSET, at=None, epoch=None):
        _check('host state', state, HOST_STATES)
        if expected is not _UNSET:
            expected = _states('host state', expected, HOST_STATES,
                               allow_none=True)
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            return self._set_host_state(conn, ep, host, state, detail,
                                        expected, recovery_id, at)
        return self._run_retry(fn)

    @staticmethod
    def _set_host_state(conn, ep, host, state, detail, expected,
                        recovery_id, at):
        """set_host_state's compare-and-set inside a transaction (raises
        _Retry when the row changed under us)."""
        cur = conn.execute(T_HOST.select().where(
            T_HOST.c.host == host)).first()
        if cur is None:
            if expected is not _UNSET and None not in expected:
                return None
            values = dict(host=host, state=state, previous_state=None,
                          state_since=at, detail=detail, generation=1,
                          updated_at=at,
                          recovery_id=(None if recovery_id is _UNSET
                                       else recovery_id))
            if not _insert_ignore(conn, T_HOST, values):
                raise _Retry()   # a concurrent first write: redo
            conn.execute(T_HOSTCHG.insert().values(
                host=host, from_state=None, to_state=state, at=at,
                detail=detail, epoch=ep))
            return _row(HostState, conn.execute(T_HOST.select().where(
                T_HOST.c.host == host)).first())
        cur = cur._mapping
        if expected is not _UNSET and cur['state'] not in expected:
            return None
        values = dict(detail=detail, updated_at=at)
        if recovery_id is not _UNSET:
            values['recovery_id'] = recovery_id
        where = [T_HOST.c.host == host,
                 T_HOST.c.generation == cur['generation']]
        if cur['state'] != state:
            values.update(state=state, previous_state=cur['state'],
                          state_since=at,
                          generation=cur['generation'] + 1)
        res = conn.execute(T_HOST.update().where(*where).values(**values))
        if res.rowcount != 1:
            raise _Retry()       # changed under us: redo the CAS
        if cur['state'] != state:
            conn.execute(T_HOSTCHG.insert().values(
                host=host, from_state=cur['state'], to_state=state,
                at=at, detail=detail, epoch=ep))
        return _row(HostState, conn.execute(T_HOST.select().where(
            T_HOST.c.host == host)).first())

    def _run_retry(self, fn, tries=20):
        for _ in range(tries):
            try:
                return self._run(fn)
            except _Retry:
                continue
        raise JournalError('journal: too much contention')

    def get_host_state(self, host):
        return self._read(lambda conn: _row(HostState, conn.execute(
            T_HOST.select().where(T_HOST.c.host == host)).first()))

    def list_host_states(self, states=None):
        q = T_HOST.select().order_by(T_HOST.c.host)
        if states is not None:
            q = q.where(T_HOST.c.state.in_(
                _states('host state', states, HOST_STATES)))
        return self._read(lambda conn: _rows(HostState, conn.execute(q)))

    def host_state_map(self, states=None):
        """{host: HostStateBrief(state, recovery_id, generation)} of every
        host (or of those in ``states``): what a reconcile pass needs of
        every host, in one query and without decoding the other columns
        (times) -- several times cheaper than list_host_states() for
        thousands of hosts."""
        c = T_HOST.c
        q = sa.select(c.host, c.state, c.recovery_id, c.generation)
        if states is not None:
            q = q.where(c.state.in_(
                _states('host state', states, HOST_STATES)))
        return self._read(lambda conn: {
            r[0]: HostStateBrief(r[1], r[2], r[3]) for r in conn.execute(q)})

    def host_state_history(self, host=None, since=None, limit=None):
        q = T_HOSTCHG.select().order_by(T_HOSTCHG.c.at.desc(),
                                        T_HOSTCHG.c.id.desc())
        if host is not None:
            q = q.where(T_HOSTCHG.c.host == host)
        if since is not None:
            q = q.where(T_HOSTCHG.c.at >= _utc(since))
        if limit:
            q = q.limit(limit)
        return self._read(lambda conn: _rows(HostStateChange,
                                             conn.execute(q)))

    def count_state_changes(self, host, since):
        q = sa.select(sa.func.count()).select_from(T_HOSTCHG).where(
            T_HOSTCHG.c.host == host, T_HOSTCHG.c.at >= _utc(since))
        return self._read(lambda conn: conn.execute(q).scalar())

    def lift_guard(self, host, operator, at=None, epoch=None):
        """Operator override of the mass-failure guard for ``host``."""
        at = _utc(at)

        def fn(conn):
            self._guard(conn, epoch)
            _insert_ignore(conn, T_HOST, dict(
                host=host, state='OK', previous_state=None, state_since=at,
                detail=None, generation=1, updated_at=at))
            conn.execute(T_HOST.update().where(T_HOST.c.host == host).values(
                guard_lifted_by=operator, guard_lifted_at=at, updated_at=at))
        self._run(fn)

    def reset_guard(self, host, epoch=None):
        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(T_HOST.update().where(
                T_HOST.c.host == host,
                T_HOST.c.guard_lifted_at.is_not(None)).values(
                guard_lifted_by=None, guard_lifted_at=None)).rowcount == 1
        return self._run(fn)

    # -- fencing -------------------------------------------------------------

    def start_fencing(self, host, driver, recovery_id=None, at=None,
                      epoch=None):
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            created = _insert_ignore(conn, T_FENCE, dict(
                host=host, inflight_host=host, driver=driver,
                recovery_id=recovery_id, started_at=at, epoch=ep))
            att = _row(FencingAttempt, conn.execute(T_FENCE.select().where(
                T_FENCE.c.inflight_host == host)).first())
            if att is None:
                raise _Retry()   # finished between our insert and read
            if not created:
                LOG.info('journal: fencing of %s already in flight '
                         '(attempt %s, epoch %s): carrying on with it',
                         host, att.id, att.epoch)
            return att
        return self._run_retry(fn)

    def finish_fencing(self, attempt_id, outcome, reason=None, at=None,
                       epoch=None):
        _check('fencing outcome', outcome, FENCE_OUTCOMES)
        at = _utc(at)

        def fn(conn):
            self._guard(conn, epoch)
            started = conn.execute(sa.select(T_FENCE.c.started_at).where(
                T_FENCE.c.id == attempt_id)).scalar()
            if started is None:
                raise NotFound('journal: no fencing attempt %s' % attempt_id)
            return conn.execute(T_FENCE.update().where(
                T_FENCE.c.id == attempt_id,
                T_FENCE.c.finished_at.is_(None)).values(
                outcome=outcome, reason=reason, finished_at=at,
                inflight_host=None,
                duration=_seconds(started, at))).rowcount == 1
        return self._run(fn)

    def confirm_fenced_by_operator(self, host, operator, reason=None,
                                   recovery_id=None, at=None, epoch=None):
        if not operator:
            raise ValueError('journal: a manual fencing confirmation needs '
                             'the operator name')
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            res = conn.execute(T_FENCE.insert().values(
                host=host, driver='manual', recovery_id=recovery_id,
                outcome='CONFIRMED_BY_OPERATOR', reason=reason,
                operator=operator, started_at=at, finished_at=at,
                duration=0.0, epoch=ep))
            return _row(FencingAttempt, conn.execute(T_FENCE.select().where(
                T_FENCE.c.id == res.inserted_primary_key[0])).first())
        return self._run(fn)

    def list_fencing_attempts(self, host=None, recovery_id=None,
                              unfinished=False, limit=None):
        q = T_FENCE.select().order_by(T_FENCE.c.started_at.desc(),
                                      T_FENCE.c.id.desc())
        if host is not None:
            q = q.where(T_FENCE.c.host == host)
        if recovery_id is not None:
            q = q.where(T_FENCE.c.recovery_id == recovery_id)
        if unfinished:
            q = q.where(T_FENCE.c.finished_at.is_(None))
        if limit:
            q = q.limit(limit)
        return self._read(lambda conn: _rows(FencingAttempt,
                                             conn.execute(q)))

    def last_fencing_attempt(self, host):
        got = self.list_fencing_attempts(host=host, limit=1)
        return got[0] if got else None

    # -- recoveries ----------------------------------------------------------

    def open_recovery(self, host, reason, detected_at=None, detail=None,
                      epoch=None):
        detected_at = _utc(detected_at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            created = _insert_ignore(conn, T_REC, dict(
                host=host, open_host=host, reason=reason, state='open',
                detected_at=detected_at, detail=detail, epoch=ep))
            rec = _row(Recovery, conn.execute(T_REC.select().where(
                T_REC.c.open_host == host)).first())
            if rec is None:
                raise _Retry()   # closed between our insert and read
            if created:
                _insert_ignore(conn, T_STEP, dict(
                    recovery_id=rec.id, step='detected', at=detected_at,
                    detail=detail or reason))
            return rec, created
        return self._run_retry(fn)

    def get_recovery(self, recovery_id):
        return self._read(lambda conn: _row(Recovery, conn.execute(
            T_REC.select().where(T_REC.c.id == recovery_id)).first()))

    def get_open_recovery(self, host):
        return self._read(lambda conn: _row(Recovery, conn.execute(
            T_REC.select().where(T_REC.c.open_host == host)).first()))

    def list_recoveries(self, host=None, states=None, since=None,
                        limit=None):
        q = T_REC.select().order_by(T_REC.c.detected_at.desc(),
                                    T_REC.c.id.desc())
        if host is not None:
            q = q.where(T_REC.c.host == host)
        if states is not None:
            q = q.where(T_REC.c.state.in_(
                _states('recovery state', states, RECOVERY_STATES)))
        if since is not None:
            q = q.where(T_REC.c.detected_at >= _utc(since))
        if limit:
            q = q.limit(limit)
        return self._read(lambda conn: _rows(Recovery, conn.execute(q)))

    def close_recovery(self, recovery_id, state, detail=None, at=None,
                       epoch=None, host_state=None, host_detail=None):
        """Close an open recovery; with ``host_state``, set its host's
        state (recovery_id kept) in the SAME transaction: a crash can never
        leave a host in a recovery state with no open recovery."""
        _check('recovery state', state, RECOVERY_STATES[1:])
        if host_state is not None:
            _check('host state', host_state, HOST_STATES)
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            values = dict(state=state, open_host=None, finished_at=at,
                          retry_at=None)
            if detail is not None:
                values['detail'] = detail
            closed = conn.execute(T_REC.update().where(
                T_REC.c.id == recovery_id,
                T_REC.c.state == 'open').values(**values)).rowcount == 1
            if closed:
                _insert_ignore(conn, T_STEP, dict(
                    recovery_id=recovery_id, step=state, at=at,
                    detail=detail))
                if host_state is not None:
                    host = conn.execute(sa.select(T_REC.c.host).where(
                        T_REC.c.id == recovery_id)).scalar_one()
                    self._set_host_state(conn, ep, host, host_state,
                                         host_detail, _UNSET, recovery_id,
                                         at)
            return closed
        return self._run_retry(fn)

    def reopen_recovery(self, recovery_id, detail, at=None, epoch=None,
                        host_state='EVACUATING'):
        """Re-open a closed recovery (the journal said its instances were
        recovered, Nova disagrees) and put its host in ``host_state``, in
        one transaction. False if it is open already, or its host has
        another open recovery."""
        _check('host state', host_state, HOST_STATES)
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            rec = conn.execute(T_REC.select().where(
                T_REC.c.id == recovery_id)).first()
            if rec is None or rec.state == 'open':
                return False
            if conn.execute(sa.select(T_REC.c.id).where(
                    T_REC.c.open_host == rec.host)).first() is not None:
                return False
            _reopen_rows(conn, rec, 'reopened', detail, at)
            self._set_host_state(conn, ep, rec.host, host_state, detail,
                                 _UNSET, recovery_id, at)
            return True
        return self._run_retry(fn)

    RETRYABLE_ITEMS = ('error', 'no_valid_host')

    def retry_recovery(self, recovery_id, operator, at=None,
                       states=RETRYABLE_ITEMS, epoch=None):
        """An operator's retry of a recovery that ended ``incomplete``
        (typically NO_VALID_HOST: capacity has been added since). In one
        transaction: the recovery re-opens, its host goes back to
        EVACUATING and every ``error``/``no_valid_host`` item to
        ``pending``; the evacuator then evacuates them as any other (one
        more attempt each, Nova read first). Only while the host is still
        RECOVERED from this very recovery -- fenced, forced down, not
        enabled again -- so nothing is evacuated off a host in service.
        ``states``: the item states to retry (the evacuator's own
        retry takes ``no_valid_host`` only); ``epoch``: the leader's, when
        the evacuator retries. Returns the re-opened items; raises
        NotFound or RetryRefused."""
        states = _states('item state', states, self.RETRYABLE_ITEMS)
        at = _utc(at)

        def fn(conn):
            rec = conn.execute(T_REC.select().where(
                T_REC.c.id == recovery_id)).first()
            if rec is None:
                raise NotFound('journal: no recovery %s' % recovery_id)
            if rec.state != 'incomplete':
                raise RetryRefused({
                    'open': 'recovery %s of %s is open: the evacuator is '
                            'still working on it' % (rec.id, rec.host),
                    'done': 'recovery %s of %s is done: every instance was '
                            'recovered' % (rec.id, rec.host),
                    'failed': 'recovery %s of %s failed before any '
                              'evacuation (the host was not fenced): '
                              'nothing may be evacuated off it'
                              % (rec.id, rec.host),
                }.get(rec.state, 'recovery %s is %s' % (rec.id, rec.state)))
            host = conn.execute(T_HOST.select().where(
                T_HOST.c.host == rec.host)).first()
            if host is None or host.state != 'RECOVERED' or \
                    host.recovery_id != rec.id:
                raise RetryRefused(
                    'host %s is %s%s, not RECOVERED from recovery %s: its '
                    'instances are no longer nova-ha\'s to evacuate' % (
                        rec.host, host.state if host else 'unknown',
                        ' (recovery %s)' % host.recovery_id
                        if host is not None and host.recovery_id else '',
                        rec.id))
            if conn.execute(sa.select(T_REC.c.id).where(
                    T_REC.c.open_host == rec.host)).first() is not None:
                raise RetryRefused('host %s has another open recovery'
                                   % rec.host)
            items = conn.execute(T_ITEM.select().where(
                T_ITEM.c.recovery_id == rec.id,
                T_ITEM.c.state.in_(states)).order_by(
                    *self._item_order(T_ITEM))).all()
            if not items:
                raise RetryRefused('recovery %s of %s has no instance in '
                                   '%s' % (rec.id, rec.host,
                                           ' or '.join(states)))
            detail = 'retried by %s: %d instance(s)' % (operator, len(items))
            ep = self._guard(conn, epoch)
            _reopen_rows(conn, rec, 'retried', detail, at)
            for item in items:
                conn.execute(T_ITEM.update().where(
                    T_ITEM.c.id == item.id,
                    T_ITEM.c.state == item.state).values(
                        state='pending', finished_at=None, updated_at=at,
                        last_error='retried by %s (was %s: %s)' % (
                            operator, item.state, item.last_error or '-')))
            if self._set_host_state(conn, ep, rec.host, 'EVACUATING',
                                    detail, ['RECOVERED'], rec.id,
                                    at) is None:
                raise _Retry()     # the host changed under us: judge again
            return [_row(RecoveryItem, r) for r in conn.execute(
                T_ITEM.select().where(T_ITEM.c.id.in_(
                    [i.id for i in items]))).all()]
        return self._run_retry(fn)

    def forget_steps(self, recovery_id, steps, epoch=None):
        """Delete timeline steps that turned out wrong (``active:UUID`` of
        an item re-opened because Nova disagrees), so that they can be
        recorded again."""
        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(T_STEP.delete().where(
                T_STEP.c.recovery_id == recovery_id,
                T_STEP.c.step.in_(list(steps)))).rowcount
        return self._run(fn)

    def recovery_failed(self, recovery_id, error, retry_at, at=None,
                        epoch=None):
        """A reconcile pass raised for this recovery: count it, record
        the error and when the next pass may try it (backoff)."""
        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(T_REC.update().where(
                T_REC.c.id == recovery_id, T_REC.c.state == 'open').values(
                    failures=T_REC.c.failures + 1, retry_at=_utc(retry_at),
                    last_error=error)).rowcount == 1
        return self._run(fn)

    def recovery_succeeded(self, recovery_id, epoch=None):
        """A pass of this recovery ran through: reset its backoff."""
        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(T_REC.update().where(
                T_REC.c.id == recovery_id, T_REC.c.failures > 0).values(
                    failures=0, retry_at=None)).rowcount == 1
        return self._run(fn)

    _STEP_COLUMNS = {'fenced': 'fenced_at', 'forced_down': 'forced_down_at'}

    def record_step(self, recovery_id, step, at=None, duration=None,
                    detail=None, epoch=None):
        at = _utc(at)

        def fn(conn):
            self._guard(conn, epoch)
            created = _insert_ignore(conn, T_STEP, dict(
                recovery_id=recovery_id, step=step, at=at,
                duration=duration, detail=detail))
            column = self._STEP_COLUMNS.get(step)
            if created and column:
                conn.execute(T_REC.update().where(
                    T_REC.c.id == recovery_id,
                    T_REC.c[column].is_(None)).values({column: at}))
            return created
        return self._run(fn)

    def timeline(self, recovery_id):
        def fn(conn):
            rec = conn.execute(sa.select(T_REC.c.detected_at).where(
                T_REC.c.id == recovery_id)).first()
            if rec is None:
                raise NotFound('journal: no recovery %s' % recovery_id)
            steps = conn.execute(T_STEP.select().where(
                T_STEP.c.recovery_id == recovery_id).order_by(
                T_STEP.c.at, T_STEP.c.id))
            return [TimelineEntry(s.step, s.at,
                                  _seconds(rec.detected_at, s.at),
                                  s.duration, s.detail) for s in steps]
        return self._read(fn)

    # -- recovery items ------------------------------------------------------

    _ITEMS = _ItemKind(
        'recovery item', 'recovery', ITEM_STATES, ('pending', 'skipped'),
        'evacuating', 'evacuating_uuid', ITEM_FINISHED,
        inputs=('instance_uuid', 'name', 'server_group', 'sal', 'priority',
                'state', 'source_host', 'last_error'),
        fields=('migration_id', 'dest_host', 'source_host', 'last_error',
                'accepted_at', 'progress', 'progress_at'))

    def add_recovery_items(self, recovery_id, items, at=None, epoch=None):
        def row(item, state):
            return dict(item, priority=item.get('priority') or 0)
        return self._add_items(self._ITEMS, recovery_id, items, row, at,
                               epoch)

    def _add_items(self, kind, parent_id, items, make_row, at, epoch):
        """Insert items under a parent; an instance already listed is left
        as it is (idempotent). Returns how many were inserted."""
        at = _utc(at)
        rows = []
        for item in items:
            item = dict(item)
            unknown = set(item) - set(kind.inputs)
            if unknown:
                raise ValueError('journal: unknown %s field(s) %s'
                                 % (kind.label, ', '.join(sorted(unknown))))
            if not item.get('instance_uuid'):
                raise ValueError('journal: %s without instance_uuid: %r'
                                 % (kind.label, item))
            state = _check(kind.label + ' state', item.pop('state', None)
                           or kind.initial[0], kind.initial)
            row = make_row(item, state)
            row.update({kind.parent_key.name: parent_id, 'state': state,
                        'attempts': 0, 'updated_at': at,
                        'finished_at': at if state in kind.finished
                        else None})
            rows.append(row)

        def fn(conn):
            self._guard(conn, epoch)
            host = conn.execute(sa.select(kind.parent.c.host).where(
                kind.parent.c.id == parent_id)).scalar()
            if host is None:
                raise NotFound('journal: no %s %s'
                               % (kind.parent_label, parent_id))
            n = 0
            for row in rows:
                row.setdefault('source_host', host)
                n += _insert_ignore(conn, kind.table, row)
            return n
        return self._run(fn)

    def _transition(self, kind, parent_id, instance_uuid, from_states,
                    to_state, at, epoch, fields, caller):
        """Compare-and-set an item from one of ``from_states`` to
        ``to_state``; False if it was not in them (or the instance is
        already active in another item)."""
        from_states = _states(kind.label + ' state', from_states,
                              kind.states)
        _check(kind.label + ' state', to_state, kind.states)
        bad = set(fields) - set(kind.fields)
        if bad:
            raise TypeError('journal: %s: unknown field(s) %s'
                            % (caller, ', '.join(sorted(bad))))
        at = _utc(at)
        table = kind.table
        values = dict(fields, state=to_state, updated_at=at)
        if to_state == kind.active:
            if kind.parent_label == 'recovery':
                # A new attempt: its call is about to be sent.
                values.setdefault('call_started_at', at)
                values.setdefault('accepted_at', None)
                values.setdefault('progress', None)
                values.setdefault('progress_at', at)
            values.update({
                'attempts': table.c.attempts + 1,
                kind.active_uuid: instance_uuid,
                'started_at': sa.func.coalesce(table.c.started_at, _lit(at)),
                'finished_at': None})
        else:
            values[kind.active_uuid] = None
            values['finished_at'] = at if to_state in kind.finished else None
        where = (kind.parent_key == parent_id,
                 table.c.instance_uuid == instance_uuid,
                 table.c.state.in_(from_states))
        return self._cas(table, where, values, epoch)

    def _update_item(self, kind, parent_id, instance_uuid, state, at, epoch,
                     fields, caller):
        """Record fields on an item still in ``state`` (no state change)."""
        _check(kind.label + ' state', state, kind.states)
        bad = set(fields) - set(kind.fields)
        if bad or not fields:
            raise TypeError('journal: %s: unknown or no field(s) %s'
                            % (caller, ', '.join(sorted(bad))))
        table = kind.table
        where = (kind.parent_key == parent_id,
                 table.c.instance_uuid == instance_uuid,
                 table.c.state == state)
        return self._cas(table, where, dict(fields, updated_at=_utc(at)),
                         epoch)

    @staticmethod
    def _item_order(table):
        return (table.c.sal.is_(None), table.c.sal, table.c.priority.desc(),
                table.c.id)

    def list_recovery_items(self, recovery_id=None, states=None,
                            server_group=None):
        q = T_ITEM.select().order_by(*self._item_order(T_ITEM))
        if recovery_id is not None:
            q = q.where(T_ITEM.c.recovery_id == recovery_id)
        if states is not None:
            q = q.where(T_ITEM.c.state.in_(
                _states('recovery item state', states, ITEM_STATES)))
        if server_group is not None:
            q = q.where(T_ITEM.c.server_group == server_group)
        return self._read(lambda conn: _rows(RecoveryItem, conn.execute(q)))

    def get_recovery_item(self, recovery_id, instance_uuid):
        return self._read(lambda conn: _row(RecoveryItem, conn.execute(
            T_ITEM.select().where(T_ITEM.c.recovery_id == recovery_id,
                                  T_ITEM.c.instance_uuid == instance_uuid)
        ).first()))

    def transition_item(self, recovery_id, instance_uuid, from_states,
                        to_state, at=None, epoch=None, **fields):
        return self._transition(self._ITEMS, recovery_id, instance_uuid,
                                from_states, to_state, at, epoch, fields,
                                'transition_item')

    def update_item(self, recovery_id, instance_uuid, state, at=None,
                    epoch=None, **fields):
        """Record fields (e.g. the migration id once Nova answered) on an
        item that is still in ``state``; no state change, attempts kept.
        Returns False if the item is no longer in ``state``."""
        return self._update_item(self._ITEMS, recovery_id, instance_uuid,
                                 state, at, epoch, fields, 'update_item')

    def _cas(self, table, where, values, epoch):
        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(
                table.update().where(*where).values(**values)).rowcount == 1
        try:
            return self._run(fn)
        except sa_exc.IntegrityError:
            # evacuating_uuid / moving_uuid taken: the instance is already
            # being moved by another item.
            return False

    def count_items(self, states=('evacuating',), server_group=None,
                    recovery_id=None, open_only=True):
        return self._count_items(self._ITEMS, states, server_group,
                                 recovery_id, ('open',) if open_only
                                 else None)

    def _count_items(self, kind, states, server_group, parent_id,
                     parent_states):
        table = kind.table
        q = sa.select(sa.func.count()).select_from(table).where(
            table.c.state.in_(_states(kind.label + ' state', states,
                                      kind.states)))
        if server_group is not None:
            q = q.where(table.c.server_group == server_group)
        if parent_id is not None:
            q = q.where(kind.parent_key == parent_id)
        if parent_states is not None:
            q = q.where(kind.parent_key.in_(
                sa.select(kind.parent.c.id).where(
                    kind.parent.c.state.in_(parent_states))))
        return self._read(lambda conn: conn.execute(q).scalar())

    # -- alarms --------------------------------------------------------------

    @staticmethod
    def alarm_key(type, host=None, instance_uuid=None):
        return '%s|%s|%s' % (type, host or '', instance_uuid or '')

    def raise_alarm(self, type, severity, message, host=None, rack=None,
                    power_domain=None, availability_zone=None,
                    instance_uuid=None, recovery_id=None, key=None, at=None,
                    epoch=None):
        _check('alarm type', type, ALARM_TYPES)
        _check('alarm severity', severity, SEVERITIES)
        at = _utc(at)
        key = key or self.alarm_key(type, host, instance_uuid)

        def fn(conn):
            self._guard(conn, epoch)
            created = _insert_ignore(conn, T_ALARM, dict(
                key=key, active_key=key, created_at=at, last_seen_at=at,
                count=1, host=host, rack=rack, power_domain=power_domain,
                availability_zone=availability_zone, type=type,
                severity=severity, message=message,
                instance_uuid=instance_uuid, recovery_id=recovery_id))
            if not created:
                conn.execute(T_ALARM.update().where(
                    T_ALARM.c.active_key == key).values(
                    count=T_ALARM.c.count + 1, last_seen_at=at,
                    severity=severity, message=message))
            alarm = _row(Alarm, conn.execute(T_ALARM.select().where(
                T_ALARM.c.active_key == key)).first())
            if alarm is None:
                raise _Retry()   # cleared between insert and read
            return alarm, created
        return self._run_retry(fn)

    def acknowledge_alarm(self, alarm_id, by, at=None):
        at = _utc(at)

        def fn(conn):
            return conn.execute(T_ALARM.update().where(
                T_ALARM.c.id == alarm_id,
                T_ALARM.c.acknowledged_at.is_(None)).values(
                acknowledged_at=at, acknowledged_by=by)).rowcount == 1
        return self._run(fn)

    def clear_alarms(self, alarm_id=None, key=None, host=None, type=None,
                     by=None, at=None, epoch=None):
        if alarm_id is None and key is None and host is None and type is None:
            raise ValueError('journal: clear_alarms needs alarm_id, key, '
                             'host or type')
        if type is not None:
            _check('alarm type', type, ALARM_TYPES)
        at = _utc(at)
        where = [T_ALARM.c.cleared_at.is_(None)]
        if alarm_id is not None:
            where.append(T_ALARM.c.id == alarm_id)
        if key is not None:
            where.append(T_ALARM.c.key == key)
        if host is not None:
            where.append(T_ALARM.c.host == host)
        if type is not None:
            where.append(T_ALARM.c.type == type)

        def fn(conn):
            self._guard(conn, epoch)
            return conn.execute(T_ALARM.update().where(*where).values(
                cleared_at=at, cleared_by=by, active_key=None)).rowcount
        return self._run(fn)

    def get_alarm(self, alarm_id):
        return self._read(lambda conn: _row(Alarm, conn.execute(
            T_ALARM.select().where(T_ALARM.c.id == alarm_id)).first()))

    def get_active_alarm(self, key):
        """The uncleared alarm of ``key``, or None."""
        return self._read(lambda conn: _row(Alarm, conn.execute(
            T_ALARM.select().where(T_ALARM.c.active_key == key)).first()))

    def list_alarms(self, status='active', host=None, types=None,
                    severities=None, min_severity=None, acknowledged=None,
                    rack=None, power_domain=None, availability_zone=None,
                    recovery_id=None, since=None, until=None, limit=None):
        _check('alarm status filter', status, ('active', 'cleared', 'all'))
        c = T_ALARM.c
        q = T_ALARM.select().order_by(c.created_at.desc(), c.id.desc())
        if status == 'active':
            q = q.where(c.cleared_at.is_(None))
        elif status == 'cleared':
            q = q.where(c.cleared_at.is_not(None))
        if types is not None:
            q = q.where(c.type.in_(_states('alarm type', types,
                                           ALARM_TYPES)))
        if severities is not None:
            q = q.where(c.severity.in_(_states('alarm severity', severities,
                                               SEVERITIES)))
        if min_severity is not None:
            _check('alarm severity', min_severity, SEVERITIES)
            q = q.where(c.severity.in_(
                SEVERITIES[:SEVERITIES.index(min_severity) + 1]))
        if acknowledged is not None:
            q = q.where(c.acknowledged_at.is_not(None) if acknowledged
                        else c.acknowledged_at.is_(None))
        for col, value in ((c.host, host), (c.rack, rack),
                           (c.power_domain, power_domain),
                           (c.availability_zone, availability_zone),
                           (c.recovery_id, recovery_id)):
            if value is not None:
                q = q.where(col == value)
        if since is not None:
            q = q.where(c.created_at >= _utc(since))
        if until is not None:
            q = q.where(c.created_at < _utc(until))
        if limit:
            q = q.limit(limit)
        return self._read(lambda conn: _rows(Alarm, conn.execute(q)))

    # -- maintenance drains --------------------------------------------------

    def start_drain(self, host, reason=None, power_off=False, by=None,
                    at=None, epoch=None):
        at = _utc(at)

        def fn(conn):
            ep = self._guard(conn, epoch)
            created = _insert_ignore(conn, T_DRAIN, dict(
                host=host, active_host=host, state='draining', reason=reason,
                power_off=bool(power_off), powered_off_by_nova_ha=False,
                started_at=at, updated_at=at, started_by=by, epoch=ep))
            drain = _row(Drain, conn.execute(T_DRAIN.select().where(
                T_DRAIN.c.active_host == host)).first())
            if drain is None:
                raise _Retry()
            return drain, created
        return self._run_retry(fn)

    def get_drain(self, drain_id):
        return self._read(lambda conn: _row(Drain, conn.execute(
            T_DRAIN.select().where(T_DRAIN.c.id == drain_id)).first()))

    def get_active_drain(self, host):
        return self._read(lambda conn: _row(Drain, conn.execute(
            T_DRAIN.select().where(T_DRAIN.c.active_host == host)).first()))

    def list_drains(self, host=None, states=None, limit=None):
        q = T_DRAIN.select().order_by(T_DRAIN.c.started_at.desc(),
                                      T_DRAIN.c.id.desc())
        if host is not None:
            q = q.where(T_DRAIN.c.host == host)
        if states is not None:
            q = q.where(T_DRAIN.c.state.in_(
                _states('drain state', states, DRAIN_STATES)))
        if limit:
            q = q.limit(limit)
        return self._read(lambda conn: _rows(Drain, conn.execute(q)))

    def transition_drain(self, drain_id, from_states, to_state, by=None,
                         detail=_UNSET, powered_off_by_nova_ha=_UNSET,
                         at=None, epoch=None):
        from_states = _states('drain state', from_states, DRAIN_STATES)
        _check('drain state', to_state, DRAIN_STATES)
        at = _utc(at)
        values = dict(state=to_state, updated_at=at)
        if detail is not _UNSET:
            values['detail'] = detail
        if powered_off_by_nova_ha is not _UNSET:
            values['powered_off_by_nova_ha'] = bool(powered_off_by_nova_ha)
        if to_state in DRAIN_ACTIVE:
            values.update(active_host=T_DRAIN.c.host, finished_at=None)
        else:
            values.update(active_host=None, finished_at=at, finished_by=by)
        where = (T_DRAIN.c.id == drain_id, T_DRAIN.c.state.in_(from_states))
        return self._cas(T_DRAIN, where, values, epoch)

    _DITEMS = _ItemKind(
        'drain item', 'drain', DRAIN_ITEM_STATES, ('waiting', 'blocked'),
        'moving', 'moving_uuid', ('moved', 'blocked'),
        inputs=('instance_uuid', 'name', 'server_group', 'method', 'state',
                'reason', 'source_host'),
        fields=('method', 'reason', 'migration_id', 'dest_host'))

    def add_drain_items(self, drain_id, items, at=None, epoch=None):
        def row(item, state):
            if item.get('method') is not None:
                _check('drain method', item['method'], DRAIN_METHODS)
            return item
        return self._add_items(self._DITEMS, drain_id, items, row, at, epoch)

    def list_drain_items(self, drain_id, states=None, server_group=None):
        q = T_DITEM.select().where(T_DITEM.c.drain_id == drain_id).order_by(
            T_DITEM.c.id)
        if states is not None:
            q = q.where(T_DITEM.c.state.in_(
                _states('drain item state', states, DRAIN_ITEM_STATES)))
        if server_group is not None:
            q = q.where(T_DITEM.c.server_group == server_group)
        return self._read(lambda conn: _rows(DrainItem, conn.execute(q)))

    def transition_drain_item(self, drain_id, instance_uuid, from_states,
                              to_state, at=None, epoch=None, **fields):
        if fields.get('method') is not None:
            _check('drain method', fields['method'], DRAIN_METHODS)
        return self._transition(self._DITEMS, drain_id, instance_uuid,
                                from_states, to_state, at, epoch, fields,
                                'transition_drain_item')

    def update_drain_item(self, drain_id, instance_uuid, state, at=None,
                          epoch=None, **fields):
        """Like update_item, for drain items."""
        if fields.get('method') is not None:
            _check('drain method', fields['method'], DRAIN_METHODS)
        return self._update_item(self._DITEMS, drain_id, instance_uuid,
                                 state, at, epoch, fields,
                                 'update_drain_item')

    def count_drain_items(self, states=('moving',), server_group=None,
                          drain_id=None, active_only=True):
        """Items in ``states`` (default moving), across active drains."""
        return self._count_items(self._DITEMS, states, server_group,
                                 drain_id, DRAIN_ACTIVE if active_only
                                 else None)

    def drain_progress(self, drain_id):
        q = sa.select(T_DITEM.c.state, sa.func.count()).where(
            T_DITEM.c.drain_id == drain_id).group_by(T_DITEM.c.state)

        def fn(conn):
            counts = dict.fromkeys(DRAIN_ITEM_STATES, 0)
            counts.update({s: n for s, n in conn.execute(q)})
            return counts
        return self._read(fn)

    # -- retention -----------------------------------------------------------

    def purge(self, older_than=None, now=None):
        """Delete closed records older than ``older_than`` (a timedelta)."""
        if older_than is None:
            if self.retention_days is None:
                raise ValueError('journal: purge needs older_than (or '
                                 '[journal] retention_days)')
            older_than = datetime.timedelta(days=self.retention_days)
        if isinstance(older_than, (int, float)):
            older_than = datetime.timedelta(days=older_than)
        if older_than < datetime.timedelta(0):
            raise ValueError('journal: purge older_than must not be '
                             'negative: %s' % older_than)
        cutoff = _utc(now) - older_than

        def fn(conn):
            counts = {}
            old_rec = sa.select(T_REC.c.id).where(
                T_REC.c.state != 'open', T_REC.c.finished_at < cutoff)
            old_drain = sa.select(T_DRAIN.c.id).where(
                T_DRAIN.c.state.not_in(DRAIN_ACTIVE),
                T_DRAIN.c.finished_at < cutoff)
            # MariaDB cannot delete from a table it reads in a subquery, so
            # materialise the ids first.
            rec_ids = [r for r, in conn.execute(old_rec)]
            drain_ids = [d for d, in conn.execute(old_drain)]
            counts['alarms'] = conn.execute(T_ALARM.delete().where(
                T_ALARM.c.cleared_at.is_not(None),
                T_ALARM.c.cleared_at < cutoff)).rowcount
            counts['fencing_attempts'] = conn.execute(T_FENCE.delete().where(
                T_FENCE.c.finished_at.is_not(None),
                T_FENCE.c.finished_at < cutoff)).rowcount
            counts['recovery_items'] = counts['recovery_steps'] = 0
            counts['recoveries'] = counts['drain_items'] = 0
            counts['drains'] = 0
            for chunk in _chunks(rec_ids):
                # dependants first (no reliance on ON DELETE CASCADE)
                conn.execute(T_ALARM.update().where(
                    T_ALARM.c.recovery_id.in_(chunk)).values(
                    recovery_id=None))
                conn.execute(T_FENCE.update().where(
                    T_FENCE.c.recovery_id.in_(chunk)).values(
                    recovery_id=None))
                counts['recovery_items'] += conn.execute(
                    T_ITEM.delete().where(
                        T_ITEM.c.recovery_id.in_(chunk))).rowcount
                counts['recovery_steps'] += conn.execute(
                    T_STEP.delete().where(
                        T_STEP.c.recovery_id.in_(chunk))).rowcount
                counts['recoveries'] += conn.execute(T_REC.delete().where(
                    T_REC.c.id.in_(chunk))).rowcount
            for chunk in _chunks(drain_ids):
                counts['drain_items'] += conn.execute(T_DITEM.delete().where(
                    T_DITEM.c.drain_id.in_(chunk))).rowcount
                counts['drains'] += conn.execute(T_DRAIN.delete().where(
                    T_DRAIN.c.id.in_(chunk))).rowcount
            counts['host_state_changes'] = conn.execute(
                T_HOSTCHG.delete().where(T_HOSTCHG.c.at < cutoff)).rowcount
            return counts
        return self._run(fn)


def _chunks(ids, size=500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


class _Retry(Exception):
    """Internal: a guarded write lost a race; run the transaction again."""


__all__ = [
    'Journal', 'Epoch', 'TimelineEntry', 'create_engine', 'utcnow',
    'Leadership', 'HostState', 'HostStateChange', 'FencingAttempt',
    'Recovery', 'RecoveryItem', 'RecoveryStep', 'Alarm', 'Drain',
    'DrainItem', 'JournalError', 'StaleEpoch', 'NotFound', 'SchemaError',
    'RetryRefused',
    'HOST_STATES', 'FENCE_OUTCOMES', 'RECOVERY_STATES', 'ITEM_STATES',
    'ALARM_TYPES', 'SEVERITIES', 'DRAIN_STATES', 'DRAIN_ACTIVE',
    'DRAIN_ITEM_STATES', 'DRAIN_METHODS',
]
