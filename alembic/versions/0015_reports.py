"""reports: the reports' indexes or rollups (issue 17.5)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The rollup: counters per day (the centre's calendar), queue ("" = the menu) and agent
    # (0 = not answered); the wait histogram; the days rolled up.
    op.create_table('report_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('inbound', sa.Integer(), nullable=False),
    sa.Column('abandoned_menu', sa.Integer(), nullable=False),
    sa.Column('offered', sa.Integer(), nullable=False),
    sa.Column('answered', sa.Integer(), nullable=False),
    sa.Column('abandoned_queue', sa.Integer(), nullable=False),
    sa.Column('callback_left', sa.Integer(), nullable=False),
    sa.Column('wait_sum', sa.BigInteger(), nullable=False),
    sa.Column('cb_met', sa.Integer(), nullable=False),
    sa.Column('cb_missed', sa.Integer(), nullable=False),
    sa.Column('fcr_calls', sa.Integer(), nullable=False),
    sa.Column('fcr_ok', sa.Integer(), nullable=False),
    sa.Column('identified', sa.Integer(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('csat_n', sa.Integer(), nullable=False),
    sa.Column('csat_sum', sa.Integer(), nullable=False),
    sa.Column('fu_due', sa.Integer(), nullable=False),
    sa.Column('fu_on_time', sa.Integer(), nullable=False),
    sa.Column('pr_due', sa.Integer(), nullable=False),
    sa.Column('pr_kept', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'queue', 'agent_id', name=op.f('pk_report_days'))
    )
    op.create_table('report_waits',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=False),
    sa.Column('wait_s', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'queue', 'agent_id', 'wait_s', name=op.f('pk_report_waits'))
    )
    op.create_table('report_rolled_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('rolled_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_report_rolled_days'))
    )
    # Days not rolled up yet (today) are read from the calls' own tables by time.
    op.create_index('ix_queue_entries_entered_at', 'queue_entries', ['entered_at'])
    op.create_index('ix_interactions_started_at', 'interactions', ['started_at'])
    op.create_index('ix_callback_requests_requested_at', 'callback_requests', ['requested_at'])


def downgrade() -> None:
    op.drop_index('ix_callback_requests_requested_at', table_name='callback_requests')
    op.drop_index('ix_interactions_started_at', table_name='interactions')
    op.drop_index('ix_queue_entries_entered_at', table_name='queue_entries')
    op.drop_table('report_rolled_days')
    op.drop_table('report_waits')
    op.drop_table('report_days')
