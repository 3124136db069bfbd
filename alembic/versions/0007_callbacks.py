"""callbacks: requests, attempts, events; queue entry deadlines

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:24:21.392466
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('callback_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('caller_number', sa.String(length=32), nullable=True),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('entered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('requested_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('scheduled_for', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deadline_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('warn_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('open_key', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('warned_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('breached_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_requests')),
    sa.UniqueConstraint('open_key', name=op.f('uq_callback_requests_open_key'))
    )
    with op.batch_alter_table('callback_requests', schema=None) as batch_op:
        batch_op.create_index('ix_callback_requests_caller_requested', ['caller_number', 'requested_at'], unique=False)
        batch_op.create_index('ix_callback_requests_claim', ['queue', sa.text('priority DESC'), 'deadline_at', 'entered_at', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_callback_requests_pending_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_callback_requests_customer', ['customer_id'], unique=False)
        batch_op.create_index('ix_callback_requests_lease', ['lease_until'], unique=False, postgresql_where=sa.text("status = 'dialing'"), sqlite_where=sa.text("status = 'dialing'"))
        batch_op.create_index('ix_callback_requests_open_deadline', ['deadline_at'], unique=False, postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
        batch_op.create_index('ix_callback_requests_phone_requested', ['phone', 'requested_at'], unique=False)

    op.create_table('callback_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('offer_id', sa.Integer(), nullable=True),
    sa.Column('agent_key', sa.String(length=64), nullable=True),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dialed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_by', sa.String(length=32), nullable=True),
    sa.Column('bridged_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['callback_requests.id'], name=op.f('fk_callback_attempts_request_id_callback_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_attempts')),
    sa.UniqueConstraint('agent_key', name=op.f('uq_callback_attempts_agent_key')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_callback_attempts_call_sid'))
    )
    with op.batch_alter_table('callback_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callback_attempts_request_id'), ['request_id'], unique=False)

    op.create_table('callback_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('notified_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['callback_requests.id'], name=op.f('fk_callback_events_request_id_callback_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_callback_events'))
    )
    with op.batch_alter_table('callback_events', schema=None) as batch_op:
        batch_op.create_index('ix_callback_events_kind_at', ['kind', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_callback_events_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_callback_events_unnotified', ['id'], unique=False, postgresql_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'breach', 'failed')"), sqlite_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'breach', 'failed')"))

    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('callback_id', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_column('callback_id')
        batch_op.drop_column('deadline_at')

    with op.batch_alter_table('callback_events', schema=None) as batch_op:
        batch_op.drop_index('ix_callback_events_unnotified', postgresql_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'breach', 'failed')"), sqlite_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'breach', 'failed')"))
        batch_op.drop_index(batch_op.f('ix_callback_events_request_id'))
        batch_op.drop_index('ix_callback_events_kind_at')

    op.drop_table('callback_events')
    with op.batch_alter_table('callback_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_attempts_request_id'))

    op.drop_table('callback_attempts')
    with op.batch_alter_table('callback_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_callback_requests_phone_requested')
        batch_op.drop_index('ix_callback_requests_open_deadline', postgresql_where=sa.text('closed_at IS NULL'), sqlite_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index('ix_callback_requests_lease', postgresql_where=sa.text("status = 'dialing'"), sqlite_where=sa.text("status = 'dialing'"))
        batch_op.drop_index('ix_callback_requests_customer')
        batch_op.drop_index('ix_callback_requests_pending_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_callback_requests_claim', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_callback_requests_caller_requested')

    op.drop_table('callback_requests')
