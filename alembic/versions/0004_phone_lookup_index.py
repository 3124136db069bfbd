"""caller look-up index on (e164, customer_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:16:00
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customer_phones', schema=None) as batch_op:
        batch_op.create_index('ix_customer_phones_e164_customer', ['e164', 'customer_id'],
                              unique=False)
        batch_op.drop_index('ix_customer_phones_e164')


def downgrade() -> None:
    with op.batch_alter_table('customer_phones', schema=None) as batch_op:
        batch_op.create_index('ix_customer_phones_e164', ['e164'], unique=False)
        batch_op.drop_index('ix_customer_phones_e164_customer')
