"""performance: indexes for the production path (issue 18)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A routing pass reads the heads of the queues with free agents, a wait round counts
    # the callers ahead: both through this index, in routing order.
    op.create_index('ix_queue_entries_routing', 'queue_entries',
                    ['queue', 'status', sa.text('priority DESC'),
                     sa.text('coalesce(deadline_at, entered_at)'), 'entered_at', 'id'])
    op.create_index('ix_queue_entries_preferred_agent_id', 'queue_entries',
                    ['preferred_agent_id'])


def downgrade() -> None:
    op.drop_index('ix_queue_entries_preferred_agent_id', table_name='queue_entries')
    op.drop_index('ix_queue_entries_routing', table_name='queue_entries')
