"""At most one fencing attempt in flight per host.

Adds fencing_attempts.inflight_host (= host while the attempt has no
outcome, NULL afterwards) with a unique constraint. Attempts already in
flight when this runs are left unguarded (NULL).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('fencing_attempts') as batch:
        batch.add_column(sa.Column('inflight_host', sa.String(255),
                                   nullable=True))
        batch.create_unique_constraint('uq_fencing_attempts_inflight_host',
                                       ['inflight_host'])


def downgrade():
    with op.batch_alter_table('fencing_attempts') as batch:
        batch.drop_constraint('uq_fencing_attempts_inflight_host',
                              type_='unique')
        batch.drop_column('inflight_host')
