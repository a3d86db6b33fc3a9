"""Schema migrations on every backend: from empty, idempotent, == models."""

import threading

from alembic.autogenerate import compare_metadata
from alembic.runtime import migration as alembic_migration
import pytest

from nova_ha import journal
from nova_ha.journal import migrations
from nova_ha.journal import models
from tests.unit.journal import conftest

HEAD = '0003'
TABLES = set(models.metadata.tables) | {migrations.VERSION_TABLE}


@pytest.mark.parametrize('backend', conftest.BACKENDS)
class TestMigrations:

    def test_upgrade_from_empty_and_twice(self, backend, make_database):
        db = make_database(backend)
        assert journal.current(db.url) is None
        assert journal.upgrade(db.url) == journal.head() == HEAD
        assert conftest.table_names(db.url) == TABLES
        # idempotent: a second upgrade is a no-op
        assert journal.upgrade(db.url) == HEAD
        assert conftest.table_names(db.url) == TABLES
        j = journal.Journal(db.url)
        try:
            j.check_schema()
        finally:
            j.close()

    def test_schema_matches_models(self, backend, make_database):
        db = make_database(backend)
        journal.upgrade(db.url)
        engine = journal.create_engine(db.url)
        try:
            with engine.connect() as conn:
                ctx = alembic_migration.MigrationContext.configure(
                    conn, opts={'compare_type': True,
                          'version_table': migrations.VERSION_TABLE})
                diff = compare_metadata(ctx, models.metadata)
        finally:
            engine.dispose()
        assert diff == []

    def test_upgrade_from_0001_keeps_data(self, backend, make_database):
        import sqlalchemy as sa
        db = make_database(backend)
        assert journal.upgrade(db.url, '0001') == '0001'
        engine = journal.create_engine(db.url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(
                    "INSERT INTO fencing_attempts (host, driver, started_at)"
                    " VALUES ('h', 'ipmi', '2026-01-01 00:00:00')"))
        finally:
            engine.dispose()
        j = journal.Journal(db.url)
        try:
            with pytest.raises(journal.SchemaError, match='0001'):
                j.check_schema()
            assert journal.upgrade(db.url) == HEAD
            j.check_schema()
            old = j.list_fencing_attempts('h')[0]
            assert old.inflight_host is None     # left unguarded
            new = j.start_fencing('h', 'ipmi')
            assert new.id != old.id and new.inflight_host == 'h'
            assert j.start_fencing('h', 'ipmi') == new
        finally:
            j.close()

    def test_check_schema_on_empty_database(self, backend, make_database):
        db = make_database(backend)
        j = journal.Journal(db.url)
        try:
            with pytest.raises(journal.SchemaError,
                               match='nova-ha journal upgrade'):
                j.check_schema()
        finally:
            j.close()

    def test_concurrent_upgrades(self, backend, make_database):
        db = make_database(backend)
        barrier = threading.Barrier(2)
        errors, results = [], []

        def run():
            try:
                barrier.wait(5)
                results.append(journal.upgrade(db.url))
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert results == [HEAD, HEAD]
        assert conftest.table_names(db.url) == TABLES

    def test_downgrade_and_upgrade_again(self, backend, make_database):
        from alembic import command
        db = make_database(backend)
        journal.upgrade(db.url)
        engine = journal.create_engine(db.url)
        try:
            with engine.begin() as conn:
                cfg = migrations.alembic_cfg()
                cfg.attributes['connection'] = conn
                command.downgrade(cfg, 'base')
        finally:
            engine.dispose()
        assert conftest.table_names(db.url) == {migrations.VERSION_TABLE}
        assert journal.upgrade(db.url) == HEAD


def test_sqlite_is_wal_with_busy_timeout(tmp_path):
    url = 'sqlite:///%s' % (tmp_path / 'sub' / 'j.sqlite')  # dir created
    journal.upgrade(url)
    j = journal.Journal(url, busy_timeout=7)
    try:
        with j.transaction(write=False) as conn:
            assert conn.exec_driver_sql(
                'PRAGMA journal_mode').scalar() == 'wal'
            assert conn.exec_driver_sql(
                'PRAGMA busy_timeout').scalar() == 7000
            assert conn.exec_driver_sql(
                'PRAGMA foreign_keys').scalar() == 1
    finally:
        j.close()


def test_script_location_is_the_package():
    # works from an installed package: no alembic.ini, no cwd dependency
    import os
    assert os.path.isfile(os.path.join(migrations.SCRIPT_LOCATION, 'env.py'))
    assert os.path.isdir(os.path.join(migrations.SCRIPT_LOCATION,
                                      'versions'))
