"""transfers: the call on a conference, holds and transfers (issue 16)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_conferences',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('conference_sid', sa.String(length=64), nullable=True),
    sa.Column('agent_leg_sid', sa.String(length=64), nullable=True),
    sa.Column('held_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('pending_redirect', sa.String(length=256), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_conferences')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_call_conferences_call_sid'))
    )
    op.create_table('transfers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=256), nullable=False),
    sa.Column('target_name', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('from_agent_id', sa.Integer(), nullable=False),
    sa.Column('from_queue', sa.String(length=64), nullable=True),
    sa.Column('to_agent_id', sa.Integer(), nullable=True),
    sa.Column('to_offer_id', sa.Integer(), nullable=True),
    sa.Column('leg_sid', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('caller_back_to', sa.String(length=16), nullable=True),
    sa.Column('after_seconds', sa.Integer(), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    op.create_index('ix_transfers_call_sid', 'transfers', ['call_sid'])
    op.create_index('ix_transfers_state_updated_at', 'transfers', ['state', 'updated_at'])


def downgrade() -> None:
    op.drop_index('ix_transfers_state_updated_at', table_name='transfers')
    op.drop_index('ix_transfers_call_sid', table_name='transfers')
    op.drop_table('transfers')
    op.drop_table('call_conferences')
