"""crm sync cursors and the outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:25:28.204124
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('subscriber', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('origin', sa.String(length=64), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('leased_until', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_status_due', ['status', 'due_at'], unique=False)
        batch_op.create_index('ix_outbox_undelivered', ['id'], unique=False,
                              postgresql_where=sa.text("status IN ('pending', 'sending')"),
                              sqlite_where=sa.text("status IN ('pending', 'sending')"))

    op.create_table('outbox_customers',
    sa.Column('customer_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('events', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_outbox_customers'))
    )
    op.create_table('outbox_subscribers',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_outbox_subscribers'))
    )
    op.create_table('sync_cursors',
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('run_since', sa.Text(), nullable=True),
    sa.Column('position', sa.JSON(), nullable=True),
    sa.Column('high_water', sa.Text(), nullable=True),
    sa.Column('last_run_id', sa.Integer(), nullable=True),
    sa.Column('last_started_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_success_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('source', 'kind', name=op.f('pk_sync_cursors'))
    )


def downgrade() -> None:
    op.drop_table('sync_cursors')
    op.drop_table('outbox_subscribers')
    op.drop_table('outbox_customers')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_undelivered')
        batch_op.drop_index('ix_outbox_status_due')

    op.drop_table('outbox')
