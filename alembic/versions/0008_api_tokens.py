"""api_tokens: API tokens by role, stored as SHA-256 (ivr tokens create)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 14:27:34.511800
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'integration', 'metrics')", name=op.f('ck_api_tokens_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )


def downgrade() -> None:
    op.drop_table('api_tokens')
