"""The migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from callbacks import models as callback_models
from crm_sync import models as crm_models
from crm_sync import sync_models
from ivr.agents import models as agent_models
from ivr.auth import tokens as api_tokens
from ivr.calls import models as call_models
from ivr.core.db import Base
from ivr.core.migrate import is_at_head

# Every table the migrations build, registered on Base.metadata by importing it.
REGISTERED = (crm_models, sync_models, agent_models, call_models, callback_models,
              api_tokens)


def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert is_at_head(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diffs == [], "models and migrations differ: add a migration (alembic revision " \
                        "--autogenerate)"
