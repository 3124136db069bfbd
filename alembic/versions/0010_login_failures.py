"""login_failures: failed sign-ins, the sign-in throttle's sliding window (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 11:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    op.create_index('ix_login_failures_username_at', 'login_failures', ['username', 'at'])
    op.create_index('ix_login_failures_address_at', 'login_failures', ['address', 'at'])
    op.create_index('ix_login_failures_at', 'login_failures', ['at'])


def downgrade() -> None:
    op.drop_table('login_failures')
