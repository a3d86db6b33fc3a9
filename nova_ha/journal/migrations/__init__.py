"""Journal schema migrations (alembic), configured programmatically.

``upgrade(url_or_engine)`` brings a database to the newest revision; it is
idempotent (a second call is a no-op) and safe when two processes run it
at once: it holds a database lock for the duration (SQLite: the write
transaction; PostgreSQL: an advisory lock; MariaDB: ``GET_LOCK``).
``nova-ha journal upgrade`` is the command-line path.

The script directory is this package's directory, found from
``__file__``, so it works from a source tree and from an installed package
alike (no alembic.ini).
"""

import contextlib
import os

from alembic import command
from alembic import config as alembic_config
from alembic import script as alembic_script
from alembic.runtime import migration as alembic_migration
import sqlalchemy as sa

SCRIPT_LOCATION = os.path.dirname(os.path.abspath(__file__))
VERSION_TABLE = 'nova_ha_journal_version'
_LOCK_NAME = 'nova_ha_journal_upgrade'
_PG_LOCK_KEY = 0x6e6f7661_6861  # "novaha"


def alembic_cfg(url=None):
    cfg = alembic_config.Config()
    cfg.set_main_option('script_location', SCRIPT_LOCATION)
    if url is not None:
        cfg.set_main_option('sqlalchemy.url',
                            str(url).replace('%', '%%'))
    return cfg


def head():
    """The newest revision id in the scripts."""
    return alembic_script.ScriptDirectory.from_config(
        alembic_cfg()).get_current_head()


@contextlib.contextmanager
def _engine(url_or_engine):
    if isinstance(url_or_engine, sa.engine.Engine):
        yield url_or_engine
        return
    from nova_ha.journal import api  # engine set-up (SQLite pragmas)
    engine = api.create_engine(url_or_engine)
    try:
        yield engine
    finally:
        engine.dispose()


def current(url_or_engine):
    """The revision a database is at (None for an empty database)."""
    with _engine(url_or_engine) as engine, engine.connect() as conn:
        ctx = alembic_migration.MigrationContext.configure(
            conn, opts={'version_table': VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(url_or_engine, revision='head'):
    """Upgrade the journal database to ``revision``; returns the new one."""
    with _engine(url_or_engine) as engine:
        with engine.connect() as conn:
            dialect = conn.dialect.name
            if dialect in ('mysql', 'mariadb'):
                got = conn.exec_driver_sql(
                    "SELECT GET_LOCK('%s', 300)" % _LOCK_NAME).scalar()
                if got != 1:
                    raise RuntimeError('journal upgrade: could not take '
                                       'the %s lock' % _LOCK_NAME)
                conn.commit()
            try:
                with conn.begin():
                    if dialect == 'postgresql':
                        conn.exec_driver_sql(
                            'SELECT pg_advisory_xact_lock(%d)' % _PG_LOCK_KEY)
                    cfg = alembic_cfg()
                    cfg.attributes['connection'] = conn
                    command.upgrade(cfg, revision)
            finally:
                if dialect in ('mysql', 'mariadb'):
                    conn.exec_driver_sql(
                        "SELECT RELEASE_LOCK('%s')" % _LOCK_NAME)
                    conn.commit()
    return current(url_or_engine)
