"""Crash safety of recovery.

recoveries: failures, retry_at, last_error (per-recovery error isolation
with backoff). recovery_items: call_started_at, accepted_at, progress,
progress_at (evidence before re-issuing an evacuate; stuck evacuations).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def _dt():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql',
                                      'mariadb')


def upgrade():
    with op.batch_alter_table('recoveries') as batch:
        batch.add_column(sa.Column('failures', sa.Integer, nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('retry_at', _dt(), nullable=True))
        batch.add_column(sa.Column('last_error', sa.Text(), nullable=True))
    with op.batch_alter_table('recovery_items') as batch:
        batch.add_column(sa.Column('call_started_at', _dt(), nullable=True))
        batch.add_column(sa.Column('accepted_at', _dt(), nullable=True))
        batch.add_column(sa.Column('progress', sa.String(255),
                                   nullable=True))
        batch.add_column(sa.Column('progress_at', _dt(), nullable=True))


def downgrade():
    with op.batch_alter_table('recovery_items') as batch:
        for col in ('progress_at', 'progress', 'accepted_at',
                    'call_started_at'):
            batch.drop_column(col)
    with op.batch_alter_table('recoveries') as batch:
        for col in ('last_error', 'retry_at', 'failures'):
            batch.drop_column(col)
