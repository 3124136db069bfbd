"""followups_promises: follow-ups, promises and their SMS (issue 17.2)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 14:00:00.000000
"""
from alembic import op
import sqlalchemy as sa

import ivr.core.db


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('followups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source_key', sa.String(length=64), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('about_call_sid', sa.String(length=64), nullable=True),
    sa.Column('since_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=True),
    sa.Column('lease_until', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('callback_request_id', sa.Integer(), nullable=True),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('completed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followups')),
    sa.UniqueConstraint('source_key', name=op.f('uq_followups_source_key'))
    )
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followups_callback_request_id'), ['callback_request_id'], unique=False)
        batch_op.create_index('ix_followups_customer_due', ['customer_id', 'due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_followups_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index('ix_followups_lease', ['lease_until'], unique=False, postgresql_where=sa.text("status = 'dialing'"), sqlite_where=sa.text("status = 'dialing'"))
        batch_op.create_index('ix_followups_pending_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.create_table('promises',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('interaction_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('due_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('warn_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('owner_agent_id', sa.Integer(), nullable=True),
    sa.Column('owner_queue', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('warned_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('broken_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('kept_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('kept_by', sa.String(length=128), nullable=True),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_promises')),
    sa.UniqueConstraint('interaction_id', name=op.f('uq_promises_interaction_id'))
    )
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.create_index('ix_promises_customer_broken', ['customer_id', 'broken_at'], unique=False)
        batch_op.create_index('ix_promises_open_due', ['due_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.create_index('ix_promises_open_warn', ['warn_at'], unique=False, postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))

    op.create_table('sms_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('ref_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sid', sa.String(length=64), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lease_until', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_messages'))
    )
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.create_index('ix_sms_messages_pending', ['id'], unique=False, postgresql_where=sa.text("status IN ('pending', 'sending')"), sqlite_where=sa.text("status IN ('pending', 'sending')"))
        batch_op.create_index('uq_sms_messages_purpose_ref', ['purpose', 'ref_id'], unique=True)

    op.create_table('followup_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('followup_id', sa.Integer(), nullable=False),
    sa.Column('attempt_no', sa.Integer(), nullable=False),
    sa.Column('call_sid', sa.String(length=64), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=False),
    sa.Column('claimed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('dialed_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('answered_by', sa.String(length=32), nullable=True),
    sa.Column('ended_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['followup_id'], ['followups.id'], name=op.f('fk_followup_attempts_followup_id_followups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followup_attempts')),
    sa.UniqueConstraint('call_sid', name=op.f('uq_followup_attempts_call_sid'))
    )
    with op.batch_alter_table('followup_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_attempts_followup_id'), ['followup_id'], unique=False)

    op.create_table('followup_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('followup_id', sa.Integer(), nullable=True),
    sa.Column('promise_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', ivr.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('notified_at', ivr.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['followup_id'], ['followups.id'], name=op.f('fk_followup_events_followup_id_followups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['promise_id'], ['promises.id'], name=op.f('fk_followup_events_promise_id_promises'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_followup_events'))
    )
    with op.batch_alter_table('followup_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_followup_events_followup_id'), ['followup_id'], unique=False)
        batch_op.create_index('ix_followup_events_kind_at', ['kind', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_followup_events_promise_id'), ['promise_id'], unique=False)
        batch_op.create_index('ix_followup_events_unnotified', ['id'], unique=False, postgresql_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'broken', 'failed')"), sqlite_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'broken', 'failed')"))

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('ix_incidents_closed_at', ['closed_at'], unique=False, postgresql_where=sa.text("status = 'closed'"), sqlite_where=sa.text("status = 'closed'"))

    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.create_index('ix_interactions_promised_due', ['promised_due_at'], unique=False, postgresql_where=sa.text('promised_action IS NOT NULL'), sqlite_where=sa.text('promised_action IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('interactions', schema=None) as batch_op:
        batch_op.drop_index('ix_interactions_promised_due', postgresql_where=sa.text('promised_action IS NOT NULL'), sqlite_where=sa.text('promised_action IS NOT NULL'))

    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_closed_at', postgresql_where=sa.text("status = 'closed'"), sqlite_where=sa.text("status = 'closed'"))

    with op.batch_alter_table('followup_events', schema=None) as batch_op:
        batch_op.drop_index('ix_followup_events_unnotified', postgresql_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'broken', 'failed')"), sqlite_where=sa.text("notified_at IS NULL AND kind IN ('warning', 'broken', 'failed')"))
        batch_op.drop_index(batch_op.f('ix_followup_events_promise_id'))
        batch_op.drop_index('ix_followup_events_kind_at')
        batch_op.drop_index(batch_op.f('ix_followup_events_followup_id'))

    op.drop_table('followup_events')
    with op.batch_alter_table('followup_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_followup_attempts_followup_id'))

    op.drop_table('followup_attempts')
    with op.batch_alter_table('sms_messages', schema=None) as batch_op:
        batch_op.drop_index('uq_sms_messages_purpose_ref')
        batch_op.drop_index('ix_sms_messages_pending', postgresql_where=sa.text("status IN ('pending', 'sending')"), sqlite_where=sa.text("status IN ('pending', 'sending')"))

    op.drop_table('sms_messages')
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.drop_index('ix_promises_open_warn', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_promises_open_due', postgresql_where=sa.text("status = 'open'"), sqlite_where=sa.text("status = 'open'"))
        batch_op.drop_index('ix_promises_customer_broken')

    op.drop_table('promises')
    with op.batch_alter_table('followups', schema=None) as batch_op:
        batch_op.drop_index('ix_followups_pending_due', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_followups_lease', postgresql_where=sa.text("status = 'dialing'"), sqlite_where=sa.text("status = 'dialing'"))
        batch_op.drop_index('ix_followups_customer_due')
        batch_op.drop_index(batch_op.f('ix_followups_incident_id'))
        batch_op.drop_index(batch_op.f('ix_followups_callback_request_id'))

    op.drop_table('followups')
