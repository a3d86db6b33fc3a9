"""Journal test fixtures: the same tests on SQLite, MariaDB and PostgreSQL.

MariaDB (127.0.0.1:3306, root, no password) and PostgreSQL (127.0.0.1:5432,
trust auth) get a uniquely named database per test module and xdist worker,
dropped afterwards. A backend whose server is not reachable is skipped with
the reason; SQLite always runs.
"""

import pytest
import sqlalchemy as sa

from nova_ha import journal
from nova_ha.journal import models

from tests.dbservers import BACKENDS, Database  # noqa: F401


@pytest.fixture
def make_database(request, tmp_path_factory):
    """Factory of fresh empty databases, dropped at the end of the test."""
    made = []

    def make(backend):
        db = Database(backend, 'm', tmp_path_factory)
        made.append(db)
        return db
    yield make
    for db in made:
        db.drop()


@pytest.fixture(scope='module', params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope='module')
def module_db(backend, request, tmp_path_factory):
    """One upgraded database per (module, backend, worker)."""
    label = request.module.__name__.rsplit('.', 1)[-1].replace('test_', '')
    db = Database(backend, label[:12], tmp_path_factory)
    try:
        journal.upgrade(db.url)
        yield db
    finally:
        db.drop()


_CLEAN_ORDER = ('drain_items', 'drains', 'alarms', 'fencing_attempts',
                'recovery_steps', 'recovery_items', 'recoveries',
                'host_state_changes', 'host_states', 'leadership')


@pytest.fixture
def jrnl(module_db):
    """A Journal on an empty (but migrated) database."""
    j = journal.Journal(module_db.url, busy_timeout=10)
    with j.transaction() as conn:
        for name in _CLEAN_ORDER:
            conn.execute(models.metadata.tables[name].delete())
    yield j
    j.close()


@pytest.fixture
def second(module_db):
    """A second, independent Journal (own engine, own connections)."""
    j = journal.Journal(module_db.url, busy_timeout=10)
    yield j
    j.close()


def table_names(url):
    engine = journal.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
