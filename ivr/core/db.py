"""Database plumbing shared by every feature: declarative base, UTC timestamps, engine factory.

One ``Database`` per process, created from the settings in the app's lifespan (or by the CLI),
never at import time. Database work from async handlers goes through ``Database.run``:

* PostgreSQL: on the event loop too, in a greenlet (SQLAlchemy's ``greenlet_spawn``): the use
  case's sync code runs on the loop's thread, and each round trip's wait is handed to the
  loop (``LoopConnection``), so other requests go on meanwhile. Up to ``db_pool_size`` use
  cases at once, each on a connection of its own (``LoopQueuePool`` never blocks the loop).
  Until issue 18 this was a thread per pooled connection: eight database threads and the
  loop took the GIL from one another at every round trip, and that was the agent side's
  tail under load (bench/results.md, "Use cases on the event loop").
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
import contextlib
import logging
import select
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
from psycopg import waiting
from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, QueuePool
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import await_, greenlet_spawn
from sqlalchemy.util import queue as sqla_queue
from sqlalchemy.util.concurrency import in_greenlet

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
SQLITE_PING_BUSY_MS = 200  # /readyz waits this long for another process's write lock


# How long a webhook can wait on a PostgreSQL server that went away (README, "Running in
# production"). Every answer must reach Twilio far within its 15 s timeout: the safe route
# when the database is gone.
PG_CONNECT_TIMEOUT_S = 3  # libpq connect_timeout: a host that takes a connection, no answer
PG_TCP_USER_TIMEOUT_MS = 3000  # a request sent and not acknowledged this long: link is dead
PG_KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3,
                "keepalives_count": 3}  # an idle connection whose peer vanished: ~20 s
STEP_POOL_WAIT_S = 2.0  # a menu step waits this long for a connection of its pool
# A lost connection is retried this long (at 0, ~1 and 2 s), then again at the next request
# that finds none: once the database is back, a step never waits for a long back-off.
STEP_POOL_RECONNECT_S = 2.0
STEP_STATEMENT_TIMEOUT_MS = 3000  # a menu step's statement (a lock held by a stuck session)


class LoopConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits for the server the way its caller can afford. In a
    thread, or any plain code (the worker, the CLI, tests), it blocks, as psycopg does.
    Inside ``Database.run`` (a greenlet on the event loop, SQLAlchemy's ``greenlet_spawn``)
    each wait goes to the loop, through psycopg's own asyncio wait: the use case's sync
    SQLAlchemy code runs on the loop's thread, and no thread takes the GIL back for every
    round trip."""

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if in_greenlet():
            return await_(waiting.wait_async(gen, self.pgconn.socket, interval=interval,
                                             timeout=timeout))
        return super().wait(gen, interval, timeout)


T = TypeVar("T")


def _in_thread(fn: Callable[[], T], release: Callable[[T], object]) -> T:
    """From a greenlet on the loop: run ``fn`` in a thread and wait for it on the loop. If the
    wait is cancelled (a server shutting down cancels what is left), what ``fn`` made (a
    connection, a pool checkout) is given back with ``release`` once it exists, instead of
    being dropped: a dropped connection stays open until the collector finds it, and a
    dropped checkout holds a place of the pool for ever."""
    lock = threading.Lock()
    abandoned = False
    made: list[T] = []  # what fn made, once its result is on its way to this greenlet

    def work() -> T:
        result = fn()
        with lock:
            if not abandoned:
                made.append(result)
                return result
        release(result)
        return result

    try:
        return await_(asyncio.to_thread(work))
    except BaseException:
        with lock:
            abandoned = True
        for result in made:  # made, but the result never reached this greenlet
            release(result)
        raise


def _connect_pg(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    """The pool's new PostgreSQL connections are ``LoopConnection``s. psycopg connects with
    a blocking wait: asked from the loop (a connection recycled or renewed at checkout), the
    connect runs in a thread."""
    if in_greenlet():
        return _in_thread(lambda: LoopConnection.connect(*cargs, **cparams),
                          release=LoopConnection.close)
    return LoopConnection.connect(*cargs, **cparams)


class LoopQueuePool(QueuePool):
    """A ``QueuePool`` that never blocks the event loop. On the loop, an idle connection is
    taken at once; otherwise the checkout (a new connection, SQLAlchemy's first-connect set
    up under its thread lock, or a wait for a connection to come back) happens in a thread
    while the loop goes on."""

    def _do_get(self) -> ConnectionPoolEntry:
        if not in_greenlet():
            return super()._do_get()
        try:
            return self._pool.get(False)
        except sqla_queue.Empty:
            return _in_thread(lambda: QueuePool._do_get(self), release=self._do_return_conn)


# The pool's own log lines (disposed, recreating) stay at WARNING, as SQLAlchemy keeps those
# of its pools (its logger is named after the pool's class).
logging.getLogger(f"{__name__}.{LoopQueuePool.__name__}").setLevel(logging.WARNING)


def make_engine(url: str, pool_size: int = 16, busy_timeout_ms: int = 30000,
                *, sqlite_autocheckpoint: bool = True,
                direct_url: str | None = None) -> Engine:
    """The engine of a process. ``direct_url`` (PostgreSQL only) says that ``url`` is a
    PgBouncer in transaction pooling and names the database behind it: statements are then
    never prepared on the server (the next transaction may run on another server
    connection), and ``session_engine`` gives the direct connection for what needs a
    session of its own (session advisory locks)."""
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
    # No pre-ping round trip on every checkout: ``_went_away`` looks at the idle socket
    # instead (a poll, no round trip); a connection the server or a proxy closed is found
    # there, and the whole pool is renewed. A connection that dies during its statement fails
    # it, SQLAlchemy invalidates the pool on the disconnect error, and that one webhook
    # answers the safe route.
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size // 2,
        pool_recycle=1800,
        poolclass=LoopQueuePool,
        connect_args=pg_connect_args(pooled=direct_url is not None),
    )
    if direct_url is not None:
        _DIRECT[engine] = direct_url
    event.listen(engine, "do_connect", _connect_pg)

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if _went_away(dbapi_conn):
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise InvalidatePoolError(f"the database closed the connection: {exc}") from exc

    return engine


def reading(engine: Engine) -> Connection:
    """A connection for reads alone (``with reading(engine) as conn``). On PostgreSQL in
    autocommit: each statement is a transaction of its own, without the BEGIN and ROLLBACK
    round trips around it (two of a lone read's three; under READ COMMITTED each statement
    of a transaction reads a snapshot of its own anyway, so the reads see the same). Never
    for writes, nor for reads that lock rows (``FOR UPDATE``): those need ``begin()``."""
    conn = engine.connect()
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def settings_engine(settings: Settings, pool_size: int) -> Engine:
    """A command's engine on the configured database (through PgBouncer when one is set)."""
    return make_engine(settings.database_url, pool_size, settings.sqlite_busy_timeout_ms,
                       direct_url=settings.database_direct_url if settings.pooled else None)


def pg_connect_args(*, pooled: bool = False) -> dict[str, Any]:
    """libpq connection parameters of every PostgreSQL connection of a process (and, through
    a transaction-pooling PgBouncer, psycopg's: no server-side prepared statements)."""
    args: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT_S,
                            "tcp_user_timeout": PG_TCP_USER_TIMEOUT_MS, **PG_KEEPALIVE}
    if pooled:
        args["prepare_threshold"] = None
    return args


# Engines whose URL is a transaction-pooling PgBouncer -> the database's own URL.
_DIRECT: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()
_SESSION_ENGINES: dict[str, Engine] = {}
_SESSION_LOCK = threading.Lock()


def session_engine(engine: Engine) -> Engine:
    """An engine whose connections are sessions of their own: ``engine`` itself, or for an
    engine behind a transaction-pooling PgBouncer a small engine on the database's direct
    URL (a session advisory lock taken through the pooler would stay on a server connection
    that other clients' transactions then run on)."""
    direct = _DIRECT.get(engine)
    if direct is None:
        return engine
    with _SESSION_LOCK:
        found = _SESSION_ENGINES.get(direct)
        if found is None:
            found = create_engine(direct, pool_size=1, max_overflow=2, pool_recycle=1800,
                                  connect_args=pg_connect_args())
            _SESSION_ENGINES[direct] = found
        return found


def _went_away(conn: Any) -> bool:
    """An idle psycopg connection with something to read: most likely the end of the stream
    (the server, or something in between, closed it), or a notice. Checked with a poll of
    its socket, no round trip; the caller pings to tell the two apart."""
    try:
        if conn.closed:
            return True
        poller = select.poll()
        poller.register(conn.pgconn.socket, select.POLLIN)
        return bool(poller.poll(0))
    except Exception:
        return True


class _TimedStepPool:
    """The step pool behind PgBouncer: each transaction starts with ``SET LOCAL
    statement_timeout`` (one more round trip a step) instead of the session option."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        async with self.pool.connection() as conn:
            await conn.execute(f"SET LOCAL statement_timeout = {STEP_STATEMENT_TIMEOUT_MS}")
            yield conn

    def __getattr__(self, name: str) -> Any:  # close, check, get_stats, …
        return getattr(self.pool, name)


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.database_url
        # SQLite work runs on the event loop; the WAL checkpoint (a few ms every few hundred
        # writes) is moved off it, to ``checkpoint`` run from a background thread.
        self.engine = make_engine(settings.database_url, settings.db_pool_size,
                                  settings.sqlite_busy_timeout_ms, sqlite_autocheckpoint=False,
                                  direct_url=settings.database_direct_url
                                  if settings.pooled else None)
        self.pooled = settings.pooled
        self.direct_url = settings.direct_database_url
        self.async_pool_size = settings.db_pool_size
        self.busy_timeout_ms = settings.sqlite_busy_timeout_ms
        # Use cases at once on the loop (PostgreSQL): as many as the pool keeps connections;
        # its overflow is for the threads that also use it (Twilio work writing its outcome).
        self._slots = asyncio.Semaphore(settings.db_pool_size)
        self._running: set[asyncio.Future[Any]] = set()  # use cases in flight (PostgreSQL)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run database work on the event loop: inline (SQLite), or in a greenlet whose
        waits for PostgreSQL go to the loop (``LoopConnection``). The work is shielded: a
        request that goes away does not cut a transaction in the middle of a round trip."""
        if self.is_sqlite:
            return fn(*args)
        work = asyncio.ensure_future(self._on_loop(fn, args))
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        return await asyncio.shield(work)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (up to ``timeout``) for the use cases still in flight: those whose callers
        went away go on to their commit or rollback (``run``). A server shutting down calls
        this before closing the pool, so none is cut between two round trips."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)

    async def _on_loop(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        async with self._slots:
            return await greenlet_spawn(fn, *args)

    async def open_async_pool(self) -> Any:
        """psycopg's async pool for the menu-step hot path (PostgreSQL only)."""
        if self.is_sqlite:
            return None
        from psycopg_pool import AsyncConnectionPool  # noqa: PLC0415

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        async def alive(conn: Any) -> None:
            """The pool's check when lending a connection (see ``_went_away``). One closed
            connection means the others most likely are: they are all checked at once, so
            the step waits for new connections rather than trying the dead ones one by one."""
            if not _went_away(conn):
                return
            try:
                await AsyncConnectionPool.check_connection(conn)
            except Exception:
                await pool.check()
                raise

        # Through a transaction-pooling PgBouncer a startup option would be refused and a
        # session SET would leak to other clients: the timeout is set per transaction.
        # Straight to PostgreSQL, the connections are in autocommit: a step is its read and
        # its conditional write (``StepStore``: ``WHERE step = expected``, which is what makes
        # a concurrent retry lose), two round trips where BEGIN and COMMIT made four; the
        # transaction around them locked nothing and added no check. Behind PgBouncer the
        # step keeps its transaction, which carries the timeout.
        kwargs = pg_connect_args(pooled=self.pooled)
        if not self.pooled:
            kwargs["options"] = f"-c statement_timeout={STEP_STATEMENT_TIMEOUT_MS}"
            kwargs["autocommit"] = True
        pool = AsyncConnectionPool(conninfo, kwargs=kwargs, min_size=self.async_pool_size,
                                   max_size=self.async_pool_size, open=False, check=alive,
                                   timeout=STEP_POOL_WAIT_S,
                                   reconnect_timeout=STEP_POOL_RECONNECT_S)
        await pool.open(wait=True, timeout=30)
        return _TimedStepPool(pool) if self.pooled else pool

    def ping(self) -> None:
        """Raise unless this process could serve a call now (``/readyz``). PostgreSQL: a
        statement answers. SQLite: a write can begin, since every call writes; a lock another
        process holds (past a short wait) fails it, where a read would still succeed."""
        with self.engine.connect() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql("SELECT 1")
                return
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout={SQLITE_PING_BUSY_MS}")
            try:
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("ROLLBACK")
            finally:
                raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")

    def checkpoint(self) -> None:
        """Fold the SQLite write-ahead log back into the database (PASSIVE: never blocks
        writers). A no-op on PostgreSQL."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        self.engine.dispose()
