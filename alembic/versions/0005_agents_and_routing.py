"""agents, sessions, queue entries, agent calls and events; wrap-up columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:21:19.170112
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_events'))
    )
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.create_index('ix_agent_events_agent_id_id', ['agent_id', 'id'], unique=False)

    op.create_table('agents',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('queues', sa.JSON(), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=True),
    sa.Column('reach_kind', sa.String(length=8), nullable=False),
    sa.Column('reach_target', sa.String(length=256), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('state_since', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('current_call_sid', sa.String(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents')),
    sa.UniqueConstraint('current_call_sid', name=op.f('uq_agents_current_call_sid')),
    sa.UniqueConstraint('username', name=op.f('uq_agents_username'))
    )
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.create_index('ix_agents_state_since', ['state', 'state_since'], unique=False)

    op.create_table('agent_calls',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('offered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('connected_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('wrapped_up_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('interaction_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_calls_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_calls'))
    )
    with op.batch_alter_table('agent_calls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_calls_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_calls_call_sid'), ['call_sid'], unique=False)

    op.create_table('agent_sessions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_sessions_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_agent_sessions_token_hash'))
    )
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_sessions_agent_id'), ['agent_id'], unique=False)

    op.create_table('agent_state_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_state_events_agent_id_agents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_state_events'))
    )
    with op.batch_alter_table('agent_state_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_state_events_agent_id'), ['agent_id'], unique=False)

    op.create_table('queue_entries',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('twilio_queue_sid', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('entered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('preferred_agent_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('offered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('connected_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_queue_entries_agent_id_agents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_queue_entries')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_queue_entries_call_sid'))
    )
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_entries_status_priority_entered', ['status', 'priority', 'entered_at'], unique=False)

    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wait_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('talk_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('leaving_reason', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('promise_kept_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_column('promise_kept_at')
        batch_op.drop_column('leaving_reason')
        batch_op.drop_column('talk_seconds')
        batch_op.drop_column('wait_seconds')

    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_entries_status_priority_entered')

    op.drop_table('queue_entries')
    with op.batch_alter_table('agent_state_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_state_events_agent_id'))

    op.drop_table('agent_state_events')
    with op.batch_alter_table('agent_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_sessions_agent_id'))

    op.drop_table('agent_sessions')
    with op.batch_alter_table('agent_calls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agent_calls_call_sid'))
        batch_op.drop_index(batch_op.f('ix_agent_calls_agent_id'))

    op.drop_table('agent_calls')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_index('ix_agents_state_since')

    op.drop_table('agents')
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_events_agent_id_id')

    op.drop_table('agent_events')
