"""The migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from ivr.core.migrate import is_at_head
from ivr.schema import metadata

# Alembic and SQLAlchemy do not compare expression indexes (the routing order's
# ``coalesce``); ``test_every_index_of_the_models_exists`` checks them by name.
EXPRESSION_INDEXES = pytest.mark.filterwarnings(
    "ignore:autogenerate skipping metadata-specified expression-based index",
    "ignore:Skipped unsupported reflection of expression-based index")


@EXPRESSION_INDEXES
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


def test_every_index_of_the_models_exists(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                names = set(conn.execute(text(
                    "SELECT name FROM sqlite_master WHERE type = 'index'")).scalars())
            else:
                names = set(conn.execute(text(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")).scalars())
    finally:
        engine.dispose()
    wanted = {str(index.name) for table in metadata.tables.values() for index in table.indexes}
    assert wanted - names == set()
