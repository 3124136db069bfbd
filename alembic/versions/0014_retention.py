"""retention: exit interviews, leaving reasons and leaving signals (issue 17.4)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exit_interviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('interaction_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('agent', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('reason_text', sa.Text(), nullable=True),
    sa.Column('stayed', sa.Boolean(), nullable=True),
    sa.Column('tier', sa.String(length=32), nullable=True),
    sa.Column('segment', sa.String(length=32), nullable=True),
    sa.Column('branch', sa.String(length=64), nullable=True),
    sa.Column('customer_since', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'],
                            name=op.f('fk_exit_interviews_customer_id_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exit_interviews')),
    sa.UniqueConstraint('call_sid', 'source', name='uq_exit_interviews_call_sid_source')
    )
    with op.batch_alter_table('exit_interviews', schema=None) as batch_op:
        batch_op.create_index('ix_exit_interviews_customer_recorded',
                              ['customer_id', 'recorded_at'], unique=False)
        batch_op.create_index('ix_exit_interviews_recorded', ['recorded_at'], unique=False)
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.create_index('ix_queue_entries_customer_entered',
                              ['customer_id', 'entered_at'], unique=False)
        batch_op.create_index('ix_queue_entries_abandoned_entered', ['entered_at'],
                              unique=False,
                              postgresql_where=sa.text("status = 'abandoned'"),
                              sqlite_where=sa.text("status = 'abandoned'"))
    leaving = "status IN ('leaving', 'left')"
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_leaving', ['id'], unique=False,
                              postgresql_where=sa.text(leaving),
                              sqlite_where=sa.text(leaving))
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_leaving_started', ['started_at'],
                              unique=False,
                              postgresql_where=sa.text("leaving_reason IS NOT NULL"),
                              sqlite_where=sa.text("leaving_reason IS NOT NULL"))
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index('ix_survey_responses_low_started', ['started_at'],
                              unique=False, postgresql_where=sa.text("low IS true"),
                              sqlite_where=sa.text("low IS 1"))


def downgrade() -> None:
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_responses_low_started')
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_leaving_started')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_leaving')
    with op.batch_alter_table('queue_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_queue_entries_abandoned_entered')
        batch_op.drop_index('ix_queue_entries_customer_entered')
    with op.batch_alter_table('exit_interviews', schema=None) as batch_op:
        batch_op.drop_index('ix_exit_interviews_recorded')
        batch_op.drop_index('ix_exit_interviews_customer_recorded')
    op.drop_table('exit_interviews')
