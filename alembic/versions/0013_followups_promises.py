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
    pass


def downgrade() -> None:
    pass
