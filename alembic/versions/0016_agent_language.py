"""agent_language: each agent's console language (issue 17.5)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 14:00:00.000000
"""
import sqlalchemy as sa

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # None: the centre's language (IVR_INTERFACE_LANGUAGE).
    with op.batch_alter_table('agents') as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agents') as batch_op:
        batch_op.drop_column('language')
