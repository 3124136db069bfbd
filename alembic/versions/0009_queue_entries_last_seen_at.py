"""queue_entries.last_seen_at: when a queued call last proved it is alive (issue 15)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('queue_entries') as batch:
        batch.add_column(sa.Column('last_seen_at', ivr.core.db.UTCDateTime(timezone=True),
                                   nullable=True))
    # Entries live at the upgrade were last heard of when they last changed.
    op.execute("UPDATE queue_entries SET last_seen_at = updated_at "
               "WHERE status IN ('waiting', 'offered', 'connected')")


def downgrade() -> None:
    with op.batch_alter_table('queue_entries') as batch:
        batch.drop_column('last_seen_at')
