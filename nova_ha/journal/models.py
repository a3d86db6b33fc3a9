"""The journal's schema: SQLAlchemy 2.0 declarative models.

These models are the single description of the schema; the alembic
revisions in ``nova_ha/journal/migrations/versions`` create exactly this
(``tests/unit/journal`` compares the two on every supported database).

Design rules that keep the schema portable across SQLite, MariaDB and
PostgreSQL:

* "At most one X per host" is a UNIQUE index on a nullable shadow column
  (``open_host``, ``active_host``, ``active_key``, ``inflight_host``,
  ``evacuating_uuid``, ``moving_uuid``) that holds the key while the row
  is open/active and NULL once it is closed. All three databases allow
  any number of NULLs in a unique index, so the constraint holds only
  for the open rows -- the portable equivalent of a PostgreSQL partial
  unique index.
* States are short strings validated by :mod:`nova_ha.journal.api` (no
  database ENUMs/CHECKs, so adding a state needs no table rebuild).
* Times are naive UTC ``DATETIME(6)`` (microseconds on MariaDB too);
  :class:`UTCDateTime` converts to and from timezone-aware UTC datetimes.
* Durations are seconds as DOUBLE.
"""

import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy import orm


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC in Python, naive UTC with microseconds in SQL."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ('mysql', 'mariadb'):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(
                tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # defensive: raw SQLite text
            value = datetime.datetime.fromisoformat(value)
        return value.replace(tzinfo=datetime.timezone.utc)


HOST = 255       # nova host names (nova's services.host is String(255))
UUID = 36
NAME = 255
STATE = 32
TEXT = sa.Text

_MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}


class Base(orm.DeclarativeBase):
    metadata = sa.MetaData(naming_convention={
        'ix': 'ix_%(table_name)s_%(column_0_N_name)s',
        'uq': 'uq_%(table_name)s_%(column_0_N_name)s',
        'fk': 'fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s',
        'pk': 'pk_%(table_name)s',
    })


class Leadership(Base):
    """A leader record with a monotonic epoch (fencing token).

    ``claim`` bumps ``epoch``; writes carrying an older epoch are refused.
    ``name`` allows several independent leaderships (e.g. one per host
    partition when the evacuators split the hosts between them).
    """

    __tablename__ = 'leadership'
    __table_args__ = (_MYSQL,)

    name: orm.Mapped[str] = orm.mapped_column(sa.String(NAME),
                                              primary_key=True)
    epoch: orm.Mapped[int] = orm.mapped_column(sa.BigInteger, nullable=False)
    holder: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    acquired_at = orm.mapped_column(UTCDateTime, nullable=False)
    renewed_at = orm.mapped_column(UTCDateTime, nullable=False)


class HostState(Base):
    """Current state of one compute host (one row per host)."""

    __tablename__ = 'host_states'
    __table_args__ = (sa.Index(None, 'state'), _MYSQL)

    host: orm.Mapped[str] = orm.mapped_column(sa.String(HOST),
                                              primary_key=True)
    state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                               nullable=False)
    previous_state: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(STATE))
    state_since = orm.mapped_column(UTCDateTime, nullable=False)
    detail: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    # Bumped on every state change: a cheap version for compare-and-set.
    generation: orm.Mapped[int] = orm.mapped_column(sa.Integer,
                                                    nullable=False)
    recovery_id: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    # Operator override of the mass-failure guard (issue 6).
    guard_lifted_by: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(NAME))
    guard_lifted_at = orm.mapped_column(UTCDateTime)
    updated_at = orm.mapped_column(UTCDateTime, nullable=False)


class HostStateChange(Base):
    """Append-only history of host state changes (flapping, audit)."""

    __tablename__ = 'host_state_changes'
    __table_args__ = (sa.Index(None, 'host', 'at'), sa.Index(None, 'at'),
                      _MYSQL)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(HOST),
                                              nullable=False)
    from_state: orm.Mapped[str | None] = orm.mapped_column(sa.String(STATE))
    to_state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                                  nullable=False)
    at = orm.mapped_column(UTCDateTime, nullable=False)
    detail: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    epoch: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)


class Recovery(Base):
    """One recovery of one failed host. At most one ``open`` per host."""

    __tablename__ = 'recoveries'
    __table_args__ = (sa.UniqueConstraint('open_host'),
                      sa.Index(None, 'host', 'detected_at'),
                      sa.Index(None, 'state', 'finished_at'),
                      {'sqlite_autoincrement': True, **_MYSQL})

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(HOST),
                                              nullable=False)
    # = host while state == 'open', NULL afterwards (see module doc).
    open_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(HOST))
    reason: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                                nullable=False)
    state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                               nullable=False)
    detected_at = orm.mapped_column(UTCDateTime, nullable=False)
    fenced_at = orm.mapped_column(UTCDateTime)
    forced_down_at = orm.mapped_column(UTCDateTime)
    finished_at = orm.mapped_column(UTCDateTime)
    detail: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    epoch: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)
    # Per-recovery error isolation (a controller's per-key requeue): the
    # passes that raised in a row, when the next may run, and the error.
    failures: orm.Mapped[int] = orm.mapped_column(
        sa.Integer, nullable=False, default=0, server_default='0')
    retry_at = orm.mapped_column(UTCDateTime)
    last_error: orm.Mapped[str | None] = orm.mapped_column(TEXT)


class RecoveryItem(Base):
    """One instance to recover within a recovery."""

    __tablename__ = 'recovery_items'
    __table_args__ = (sa.UniqueConstraint('recovery_id', 'instance_uuid'),
                      sa.UniqueConstraint('evacuating_uuid'),
                      sa.Index(None, 'state', 'server_group'),
                      sa.Index(None, 'instance_uuid'),
                      _MYSQL)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    recovery_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey('recoveries.id', ondelete='CASCADE'), nullable=False)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(sa.String(UUID),
                                                       nullable=False)
    # = instance_uuid while state == 'evacuating': never two evacuations
    # of one instance at once, even across two recoveries.
    evacuating_uuid: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(UUID))
    name: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    server_group: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(UUID))
    sal: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    priority: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                               nullable=False)
    attempts: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    migration_id: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    source_host: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(HOST))
    dest_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(HOST))
    started_at = orm.mapped_column(UTCDateTime)
    finished_at = orm.mapped_column(UTCDateTime)
    updated_at = orm.mapped_column(UTCDateTime, nullable=False)
    last_error: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    # The current attempt: when its evacuate call was about to be sent
    # (set on -> evacuating), when Nova answered it (2xx), and the last
    # progress seen in Nova (migration status / task state) and since when.
    call_started_at = orm.mapped_column(UTCDateTime)
    accepted_at = orm.mapped_column(UTCDateTime)
    progress: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    progress_at = orm.mapped_column(UTCDateTime)


class RecoveryStep(Base):
    """The timeline of a recovery: one row per named step, never twice."""

    __tablename__ = 'recovery_steps'
    __table_args__ = (sa.UniqueConstraint('recovery_id', 'step'), _MYSQL)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    recovery_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey('recoveries.id', ondelete='CASCADE'), nullable=False)
    step: orm.Mapped[str] = orm.mapped_column(sa.String(NAME),
                                              nullable=False)
    at = orm.mapped_column(UTCDateTime, nullable=False)
    duration: orm.Mapped[float | None] = orm.mapped_column(sa.Double)
    detail: orm.Mapped[str | None] = orm.mapped_column(TEXT)


class FencingAttempt(Base):
    """One attempt to fence a host (or an operator's manual confirmation)."""

    __tablename__ = 'fencing_attempts'
    __table_args__ = (sa.UniqueConstraint('inflight_host'),
                      sa.Index(None, 'host', 'started_at'),
                      sa.Index(None, 'finished_at'), _MYSQL)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(HOST),
                                              nullable=False)
    # = host while the attempt is in flight: never two fences of one host
    # at once (two evacuators, or a resumed one).
    inflight_host: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(HOST))
    recovery_id: orm.Mapped[int | None] = orm.mapped_column(
        sa.ForeignKey('recoveries.id', ondelete='SET NULL'))
    driver: orm.Mapped[str] = orm.mapped_column(sa.String(NAME),
                                                nullable=False)
    # NULL while in flight.
    outcome: orm.Mapped[str | None] = orm.mapped_column(sa.String(STATE))
    reason: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    operator: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    started_at = orm.mapped_column(UTCDateTime, nullable=False)
    finished_at = orm.mapped_column(UTCDateTime)
    duration: orm.Mapped[float | None] = orm.mapped_column(sa.Double)
    epoch: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)


class Alarm(Base):
    """An alarm. At most one active (uncleared) alarm per ``key``."""

    __tablename__ = 'alarms'
    __table_args__ = (sa.UniqueConstraint('active_key'),
                      sa.Index(None, 'created_at'),
                      sa.Index(None, 'host', 'created_at'),
                      sa.Index(None, 'cleared_at'),
                      {'sqlite_autoincrement': True, **_MYSQL})

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    key: orm.Mapped[str] = orm.mapped_column(sa.String(NAME),
                                             nullable=False)
    # = key while not cleared, NULL once cleared.
    active_key: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    created_at = orm.mapped_column(UTCDateTime, nullable=False)
    last_seen_at = orm.mapped_column(UTCDateTime, nullable=False)
    count: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    host: orm.Mapped[str | None] = orm.mapped_column(sa.String(HOST))
    rack: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    power_domain: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(NAME))
    availability_zone: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(NAME))
    type: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                              nullable=False)
    severity: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                                  nullable=False)
    message: orm.Mapped[str] = orm.mapped_column(TEXT, nullable=False)
    instance_uuid: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(UUID))
    recovery_id: orm.Mapped[int | None] = orm.mapped_column(
        sa.ForeignKey('recoveries.id', ondelete='SET NULL'))
    acknowledged_at = orm.mapped_column(UTCDateTime)
    acknowledged_by: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(NAME))
    cleared_at = orm.mapped_column(UTCDateTime)
    cleared_by: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))


class Drain(Base):
    """A maintenance drain of one host. At most one active per host."""

    __tablename__ = 'drains'
    __table_args__ = (sa.UniqueConstraint('active_host'),
                      sa.Index(None, 'host', 'started_at'),
                      sa.Index(None, 'state', 'finished_at'),
                      {'sqlite_autoincrement': True, **_MYSQL})

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    host: orm.Mapped[str] = orm.mapped_column(sa.String(HOST),
                                              nullable=False)
    # = host while the drain is active (not aborted/completed).
    active_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(HOST))
    state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                               nullable=False)
    reason: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    power_off: orm.Mapped[bool] = orm.mapped_column(sa.Boolean,
                                                    nullable=False)
    powered_off_by_nova_ha: orm.Mapped[bool] = orm.mapped_column(
        sa.Boolean, nullable=False)
    started_at = orm.mapped_column(UTCDateTime, nullable=False)
    finished_at = orm.mapped_column(UTCDateTime)
    updated_at = orm.mapped_column(UTCDateTime, nullable=False)
    started_by: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    finished_by: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    detail: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    epoch: orm.Mapped[int | None] = orm.mapped_column(sa.BigInteger)


class DrainItem(Base):
    """One instance to move off a draining host."""

    __tablename__ = 'drain_items'
    __table_args__ = (sa.UniqueConstraint('drain_id', 'instance_uuid'),
                      sa.UniqueConstraint('moving_uuid'),
                      sa.Index(None, 'state', 'server_group'),
                      _MYSQL)

    id: orm.Mapped[int] = orm.mapped_column(sa.Integer, primary_key=True)
    drain_id: orm.Mapped[int] = orm.mapped_column(
        sa.ForeignKey('drains.id', ondelete='CASCADE'), nullable=False)
    instance_uuid: orm.Mapped[str] = orm.mapped_column(sa.String(UUID),
                                                       nullable=False)
    # = instance_uuid while state == 'moving'.
    moving_uuid: orm.Mapped[str | None] = orm.mapped_column(sa.String(UUID))
    name: orm.Mapped[str | None] = orm.mapped_column(sa.String(NAME))
    server_group: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(UUID))
    method: orm.Mapped[str | None] = orm.mapped_column(sa.String(STATE))
    state: orm.Mapped[str] = orm.mapped_column(sa.String(STATE),
                                               nullable=False)
    reason: orm.Mapped[str | None] = orm.mapped_column(TEXT)
    attempts: orm.Mapped[int] = orm.mapped_column(sa.Integer, nullable=False)
    migration_id: orm.Mapped[int | None] = orm.mapped_column(sa.Integer)
    source_host: orm.Mapped[str | None] = orm.mapped_column(
        sa.String(HOST))
    dest_host: orm.Mapped[str | None] = orm.mapped_column(sa.String(HOST))
    started_at = orm.mapped_column(UTCDateTime)
    finished_at = orm.mapped_column(UTCDateTime)
    updated_at = orm.mapped_column(UTCDateTime, nullable=False)


metadata = Base.metadata
