"""Initial journal schema: leadership, host states, fencing attempts,
recoveries (+ items, steps), alarms, maintenance drains (+ items).

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

HOST = 255
UUID = 36
NAME = 255
STATE = 32
MYSQL = {'mysql_engine': 'InnoDB', 'mysql_charset': 'utf8mb4'}
AUTOINC = dict(MYSQL, sqlite_autoincrement=True)


def dt(name, nullable=True):
    # naive UTC with microseconds (MariaDB's DATETIME has none by default)
    return sa.Column(
        name,
        sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql', 'mariadb'),
        nullable=nullable)


def s(name, length, nullable=True):
    return sa.Column(name, sa.String(length), nullable=nullable)


def i(name, nullable=True, big=False):
    return sa.Column(name, sa.BigInteger() if big else sa.Integer(),
                     nullable=nullable)


def text(name, nullable=True):
    return sa.Column(name, sa.Text(), nullable=nullable)


def pk():
    return sa.Column('id', sa.Integer(), primary_key=True,
                     autoincrement=True, nullable=False)


def upgrade():
    op.create_table(
        'leadership',
        sa.Column('name', sa.String(NAME), nullable=False),
        i('epoch', False, big=True),
        s('holder', NAME),
        dt('acquired_at', False),
        dt('renewed_at', False),
        sa.PrimaryKeyConstraint('name', name='pk_leadership'),
        **MYSQL)

    op.create_table(
        'host_states',
        sa.Column('host', sa.String(HOST), nullable=False),
        s('state', STATE, False),
        s('previous_state', STATE),
        dt('state_since', False),
        text('detail'),
        i('generation', False),
        i('recovery_id'),
        s('guard_lifted_by', NAME),
        dt('guard_lifted_at'),
        dt('updated_at', False),
        sa.PrimaryKeyConstraint('host', name='pk_host_states'),
        **MYSQL)
    op.create_index('ix_host_states_state', 'host_states', ['state'])

    op.create_table(
        'host_state_changes',
        pk(),
        s('host', HOST, False),
        s('from_state', STATE),
        s('to_state', STATE, False),
        dt('at', False),
        text('detail'),
        i('epoch', big=True),
        sa.PrimaryKeyConstraint('id', name='pk_host_state_changes'),
        **MYSQL)
    op.create_index('ix_host_state_changes_host_at', 'host_state_changes',
                    ['host', 'at'])
    op.create_index('ix_host_state_changes_at', 'host_state_changes', ['at'])

    op.create_table(
        'recoveries',
        pk(),
        s('host', HOST, False),
        s('open_host', HOST),
        s('reason', STATE, False),
        s('state', STATE, False),
        dt('detected_at', False),
        dt('fenced_at'),
        dt('forced_down_at'),
        dt('finished_at'),
        text('detail'),
        i('epoch', big=True),
        sa.PrimaryKeyConstraint('id', name='pk_recoveries'),
        sa.UniqueConstraint('open_host', name='uq_recoveries_open_host'),
        **AUTOINC)
    op.create_index('ix_recoveries_host_detected_at', 'recoveries',
                    ['host', 'detected_at'])
    op.create_index('ix_recoveries_state_finished_at', 'recoveries',
                    ['state', 'finished_at'])

    op.create_table(
        'recovery_items',
        pk(),
        i('recovery_id', False),
        s('instance_uuid', UUID, False),
        s('evacuating_uuid', UUID),
        s('name', NAME),
        s('server_group', UUID),
        i('sal'),
        i('priority', False),
        s('state', STATE, False),
        i('attempts', False),
        i('migration_id'),
        s('source_host', HOST),
        s('dest_host', HOST),
        dt('started_at'),
        dt('finished_at'),
        dt('updated_at', False),
        text('last_error'),
        sa.PrimaryKeyConstraint('id', name='pk_recovery_items'),
        sa.ForeignKeyConstraint(
            ['recovery_id'], ['recoveries.id'], ondelete='CASCADE',
            name='fk_recovery_items_recovery_id_recoveries'),
        sa.UniqueConstraint(
            'recovery_id', 'instance_uuid',
            name='uq_recovery_items_recovery_id_instance_uuid'),
        sa.UniqueConstraint('evacuating_uuid',
                            name='uq_recovery_items_evacuating_uuid'),
        **MYSQL)
    op.create_index('ix_recovery_items_state_server_group',
                    'recovery_items', ['state', 'server_group'])
    op.create_index('ix_recovery_items_instance_uuid', 'recovery_items',
                    ['instance_uuid'])

    op.create_table(
        'recovery_steps',
        pk(),
        i('recovery_id', False),
        s('step', NAME, False),
        dt('at', False),
        sa.Column('duration', sa.Double(), nullable=True),
        text('detail'),
        sa.PrimaryKeyConstraint('id', name='pk_recovery_steps'),
        sa.ForeignKeyConstraint(
            ['recovery_id'], ['recoveries.id'], ondelete='CASCADE',
            name='fk_recovery_steps_recovery_id_recoveries'),
        sa.UniqueConstraint('recovery_id', 'step',
                            name='uq_recovery_steps_recovery_id_step'),
        **MYSQL)

    op.create_table(
        'fencing_attempts',
        pk(),
        s('host', HOST, False),
        i('recovery_id'),
        s('driver', NAME, False),
        s('outcome', STATE),
        text('reason'),
        s('operator', NAME),
        dt('started_at', False),
        dt('finished_at'),
        sa.Column('duration', sa.Double(), nullable=True),
        i('epoch', big=True),
        sa.PrimaryKeyConstraint('id', name='pk_fencing_attempts'),
        sa.ForeignKeyConstraint(
            ['recovery_id'], ['recoveries.id'], ondelete='SET NULL',
            name='fk_fencing_attempts_recovery_id_recoveries'),
        **MYSQL)
    op.create_index('ix_fencing_attempts_host_started_at',
                    'fencing_attempts', ['host', 'started_at'])
    op.create_index('ix_fencing_attempts_finished_at', 'fencing_attempts',
                    ['finished_at'])

    op.create_table(
        'alarms',
        pk(),
        s('key', NAME, False),
        s('active_key', NAME),
        dt('created_at', False),
        dt('last_seen_at', False),
        i('count', False),
        s('host', HOST),
        s('rack', NAME),
        s('power_domain', NAME),
        s('availability_zone', NAME),
        s('type', STATE, False),
        s('severity', STATE, False),
        text('message', False),
        s('instance_uuid', UUID),
        i('recovery_id'),
        dt('acknowledged_at'),
        s('acknowledged_by', NAME),
        dt('cleared_at'),
        s('cleared_by', NAME),
        sa.PrimaryKeyConstraint('id', name='pk_alarms'),
        sa.ForeignKeyConstraint(
            ['recovery_id'], ['recoveries.id'], ondelete='SET NULL',
            name='fk_alarms_recovery_id_recoveries'),
        sa.UniqueConstraint('active_key', name='uq_alarms_active_key'),
        **AUTOINC)
    op.create_index('ix_alarms_created_at', 'alarms', ['created_at'])
    op.create_index('ix_alarms_host_created_at', 'alarms',
                    ['host', 'created_at'])
    op.create_index('ix_alarms_cleared_at', 'alarms', ['cleared_at'])

    op.create_table(
        'drains',
        pk(),
        s('host', HOST, False),
        s('active_host', HOST),
        s('state', STATE, False),
        text('reason'),
        sa.Column('power_off', sa.Boolean(), nullable=False),
        sa.Column('powered_off_by_nova_ha', sa.Boolean(), nullable=False),
        dt('started_at', False),
        dt('finished_at'),
        dt('updated_at', False),
        s('started_by', NAME),
        s('finished_by', NAME),
        text('detail'),
        i('epoch', big=True),
        sa.PrimaryKeyConstraint('id', name='pk_drains'),
        sa.UniqueConstraint('active_host', name='uq_drains_active_host'),
        **AUTOINC)
    op.create_index('ix_drains_host_started_at', 'drains',
                    ['host', 'started_at'])
    op.create_index('ix_drains_state_finished_at', 'drains',
                    ['state', 'finished_at'])

    op.create_table(
        'drain_items',
        pk(),
        i('drain_id', False),
        s('instance_uuid', UUID, False),
        s('moving_uuid', UUID),
        s('name', NAME),
        s('server_group', UUID),
        s('method', STATE),
        s('state', STATE, False),
        text('reason'),
        i('attempts', False),
        i('migration_id'),
        s('source_host', HOST),
        s('dest_host', HOST),
        dt('started_at'),
        dt('finished_at'),
        dt('updated_at', False),
        sa.PrimaryKeyConstraint('id', name='pk_drain_items'),
        sa.ForeignKeyConstraint(
            ['drain_id'], ['drains.id'], ondelete='CASCADE',
            name='fk_drain_items_drain_id_drains'),
        sa.UniqueConstraint('drain_id', 'instance_uuid',
                            name='uq_drain_items_drain_id_instance_uuid'),
        sa.UniqueConstraint('moving_uuid', name='uq_drain_items_moving_uuid'),
        **MYSQL)
    op.create_index('ix_drain_items_state_server_group', 'drain_items',
                    ['state', 'server_group'])


def downgrade():
    for table in ('drain_items', 'drains', 'alarms', 'fencing_attempts',
                  'recovery_steps', 'recovery_items', 'recoveries',
                  'host_state_changes', 'host_states', 'leadership'):
        op.drop_table(table)
