"""alembic environment for the nova-ha journal.

Configured programmatically by :func:`nova_ha.journal.migration.upgrade`
(no alembic.ini): the caller puts an open SQLAlchemy ``Connection`` in
``config.attributes['connection']``, or a URL in the ``sqlalchemy.url``
main option.
"""

from alembic import context
import sqlalchemy as sa

from nova_ha.journal import models

VERSION_TABLE = 'nova_ha_journal_version'

config = context.config
target_metadata = models.metadata


def _configure(connection=None, url=None):
    kwargs = dict(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things: later revisions use batch ops.
        render_as_batch=True,
        compare_type=True,
    )
    if connection is not None:
        context.configure(connection=connection, **kwargs)
    else:
        context.configure(url=url, literal_binds=True, **kwargs)


def run_migrations_offline():
    _configure(url=config.get_main_option('sqlalchemy.url'))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    connection = config.attributes.get('connection')
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(config.get_main_option('sqlalchemy.url'),
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
