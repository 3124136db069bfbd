"""surveys: post-call surveys (issue 17.1)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('survey_responses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('about_call_sid', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('survey', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.Integer(), nullable=True),
    sa.Column('offer_id', sa.Integer(), nullable=True),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('topic', sa.String(length=128), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('followup_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('low', sa.Boolean(), nullable=False),
    sa.Column('started_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_responses')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_survey_responses_call_sid'))
    )
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.create_index('ix_survey_responses_started', ['started_at'], unique=False)
        batch_op.create_index('ix_survey_responses_customer_started', ['customer_id', 'started_at'], unique=False)
        batch_op.create_index('ix_survey_responses_followup', ['followup_id'], unique=False)

    op.create_table('survey_answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('response_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=8), nullable=False),
    sa.Column('speech', sa.String(length=200), nullable=True),
    sa.Column('answered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['response_id'], ['survey_responses.id'], name=op.f('fk_survey_answers_response_id_survey_responses'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_answers')),
    sa.UniqueConstraint('response_id', 'question', name=op.f('uq_survey_answers_response_id'))
    )


def downgrade() -> None:
    op.drop_table('survey_answers')
    with op.batch_alter_table('survey_responses', schema=None) as batch_op:
        batch_op.drop_index('ix_survey_responses_followup')
        batch_op.drop_index('ix_survey_responses_customer_started')
        batch_op.drop_index('ix_survey_responses_started')
    op.drop_table('survey_responses')
