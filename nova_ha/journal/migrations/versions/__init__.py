"""alembic revisions of the journal (alembic skips this file)."""
