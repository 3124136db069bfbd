"""claim_index_due: the claim index checks ``due_at`` on its entries (issue 18 item 6)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 23:00:00.000000
"""
import sqlalchemy as sa

from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_OLD = ['queue', sa.text('priority DESC'), 'deadline_at', 'entered_at', 'id']
_PENDING = sa.text("status = 'pending'")


def _claim_index(columns: list) -> None:
    op.create_index('ix_callback_requests_claim', 'callback_requests', columns,
                    unique=False, postgresql_where=_PENDING, sqlite_where=_PENDING)


def upgrade() -> None:
    # The same order with ``due_at`` last: a claim passes over the requests not yet due in
    # the index instead of reading each from the table (callbacks/models.py). Built in the
    # migration's transaction: writes to callback_requests wait while it builds (1.9-2.8 s
    # for 1,000,000 pending requests on PostgreSQL, bench/results.md).
    op.drop_index('ix_callback_requests_claim', table_name='callback_requests')
    _claim_index([*_OLD, 'due_at'])


def downgrade() -> None:
    op.drop_index('ix_callback_requests_claim', table_name='callback_requests')
    _claim_index(_OLD)
