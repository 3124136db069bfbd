"""The migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from ivr.core.migrate import is_at_head
from ivr.schema import metadata


def test_migrations_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert is_at_head(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diffs == [], "models and migrations differ: add a migration (alembic revision " \
                        "--autogenerate)"
