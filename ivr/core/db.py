"""Database plumbing shared by every feature: declarative base, UTC timestamps, engine factory.

One ``Database`` per process, created from the settings in the app's lifespan (or by the CLI),
never at import time. Database work from async handlers goes through ``Database.run``:

* PostgreSQL: a thread per pooled connection (``db_pool_size``), so the pool never churns and
  the event loop never waits on a socket.
* SQLite: inline, on the event loop. SQLite is an in-process library with one writer at a
  time; a menu step's read and write take a few hundred microseconds. Handing them to a
  thread costs more than that: two CPU-bound threads contend for the GIL, and each hand-off
  can wait for the interpreter's 5 ms switch interval (measured: p99 above 80 ms at 32
  concurrent requests, against the 25 ms target). A lock held by another process (a CLI
  import) is bounded by ``sqlite_busy_timeout_ms``; past it the webhook answers the safe
  route. Several server processes belong on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import NullPool, QueuePool
from sqlalchemy.types import TypeDecorator

from ivr.core.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SQLITE_CACHE_KIB = 64 * 1024
SQLITE_MMAP_BYTES = 1 << 30


def make_engine(url: str, pool_size: int = 16, busy_timeout_ms: int = 30000,
                *, sqlite_autocheckpoint: bool = True) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            poolclass=QueuePool if ":memory:" not in url else NullPool,
            pool_size=2,
            max_overflow=4,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            # Index pages of a large customer store stay in memory: a 64 MiB page cache per
            # connection and reads through mmap (the default 2 MiB cache made a caller
            # look-up 1.55x slower at 1M customers than at 10k; bench/results.md).
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            if not sqlite_autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    # No pre-ping: it is a round trip on every checkout. A connection the server dropped
    # fails its statement, SQLAlchemy invalidates the pool on a disconnect error, and that
    # one webhook answers the safe route; the next gets a fresh connection.
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_recycle=1800,
    )


T = TypeVar("T")


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        # SQLite work runs on the event loop; the WAL checkpoint (a few ms every few hundred
        # writes) is moved off it, to ``checkpoint`` run from a background thread.
        self.engine = make_engine(settings.database_url, settings.db_pool_size,
                                  settings.sqlite_busy_timeout_ms, sqlite_autocheckpoint=False)
        self.async_pool_size = settings.db_pool_size
        self._executor = (None if settings.is_sqlite else
                          ThreadPoolExecutor(max_workers=settings.db_pool_size,
                                             thread_name_prefix="db"))

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work: in a pool thread (PostgreSQL) or inline (SQLite)."""
        if self._executor is None:
            return fn(*args)
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor, functools.partial(ctx.run, fn, *args)
        )

    async def open_async_pool(self) -> Any:
        """psycopg's async pool for the menu-step hot path (PostgreSQL only)."""
        if self.is_sqlite:
            return None
        from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        pool = AsyncConnectionPool(conninfo, min_size=self.async_pool_size,
                                   max_size=self.async_pool_size, open=False)
        await pool.open(wait=True, timeout=30)
        return pool

    def checkpoint(self) -> None:
        """Fold the SQLite write-ahead log back into the database (PASSIVE: never blocks
        writers). A no-op on PostgreSQL."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.engine.dispose()
