"""``Database.run`` on PostgreSQL: use cases run on the event loop's own thread, their round
trips handed to the loop (``ivr.core.db.LoopConnection``), while plain code and threads on
the same engine still block as psycopg always did (issue 18 item 1: the thread hand-offs of
eight database threads sharing one GIL were the agent side's tail)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
from importlib.metadata import requires
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from sqlalchemy import create_engine, text
from sqlalchemy.util import greenlet_spawn

from ivr.app import create_app
from ivr.core.clock import FrozenClock
from ivr.core.db import Database, LoopConnection, _in_thread
from ivr.core.settings import Settings
from tests.conftest import ADMIN, OPEN_TIME, TOKEN


@pytest.fixture
def pg_db(pg_url: str) -> Any:
    db = Database(Settings(_env_file=None, database_url=pg_url, db_pool_size=4))
    yield db
    db.close()


@pytest.fixture
def probe_table(pg_url: str) -> Any:
    """A table ``loop_probe (n int)`` for the use cases that write, and a plain engine to
    read it with; dropped afterwards."""
    probe = create_engine(pg_url)
    with probe.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS loop_probe"))
        conn.execute(text("CREATE TABLE loop_probe (n int)"))
    yield probe
    with probe.begin() as conn:
        conn.execute(text("DROP TABLE loop_probe"))
    probe.dispose()


def _write_two_rows(engine: Any, pause_s: float) -> None:
    """A use case with a wait between its two writes, for its caller to go away in."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO loop_probe VALUES (1)"))
        conn.execute(text(f"SELECT pg_sleep({pause_s})"))
        conn.execute(text("INSERT INTO loop_probe VALUES (2)"))


def test_use_cases_run_on_the_loop_thread_and_overlap_their_waits(pg_db: Database) -> None:
    """Three use cases that each wait 0.3 s on the server finish together, all on the loop's
    thread: the waits went to the loop, not to threads (with threads they ran elsewhere; on
    one thread with blocking waits they would take 0.9 s)."""

    def use_case() -> tuple[int, Any]:
        with pg_db.engine.begin() as conn:
            conn.execute(text("SELECT pg_sleep(0.3)"))
            raw = conn.connection.dbapi_connection
            return threading.get_ident(), type(raw)

    async def main() -> tuple[int, float, list[tuple[int, Any]]]:
        await pg_db.run(use_case)  # the pool's first connections are made
        start = time.perf_counter()
        done = await asyncio.gather(*(pg_db.run(use_case) for _ in range(2)))
        return threading.get_ident(), time.perf_counter() - start, done

    loop_thread, elapsed, done = asyncio.run(main())
    assert all(ident == loop_thread for ident, _ in done)
    assert all(cls is LoopConnection for _, cls in done)
    assert elapsed < 0.55, elapsed


def test_the_loop_serves_other_work_while_a_use_case_waits(pg_db: Database) -> None:
    """While a use case waits on the server, the loop keeps answering: a ticker task
    advances during the wait (a blocking wait on the loop's thread would freeze it)."""
    ticks: list[float] = []

    def slow() -> None:
        with pg_db.engine.begin() as conn:
            conn.execute(text("SELECT pg_sleep(0.4)"))

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.02)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(ticker(stop))
        await pg_db.run(slow)
        stop.set()
        await task

    asyncio.run(main())
    assert len(ticks) >= 10, ticks
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2


def test_threads_and_plain_code_on_the_same_engine_still_block(pg_db: Database) -> None:
    """Work outside ``Database.run`` (Twilio work that writes its outcome, in a thread; the
    CLI; a test) uses the same engine and connections with psycopg's blocking wait."""

    def in_thread() -> int:
        with pg_db.engine.begin() as conn:
            return int(conn.execute(text("SELECT 41 + 1")).scalar_one())

    async def main() -> list[int]:
        # a connection first made on the loop, then reused from a thread and back
        first = await pg_db.run(in_thread)
        second = await asyncio.to_thread(in_thread)
        third = await pg_db.run(in_thread)
        return [first, second, third, in_thread()]

    assert asyncio.run(main()) == [42, 42, 42, 42]


def test_a_request_that_goes_away_does_not_cut_its_transaction(
        pg_db: Database, probe_table: Any) -> None:
    """The caller of ``run`` is cancelled in the middle of the use case's round trips: the
    use case still finishes and commits (as a thread's work did), and the connection goes
    back to the pool clean."""

    async def main() -> None:
        task = asyncio.create_task(pg_db.run(_write_two_rows, pg_db.engine, 0.3))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)  # the shielded use case ends on its own
        n = await pg_db.run(lambda: _count(pg_db))
        assert n == 2

    asyncio.run(main())


def test_what_a_thread_makes_after_its_wait_was_cancelled_is_given_back() -> None:
    """A connection (or a pool checkout) asked for in a thread, whose waiter is cancelled
    while the thread works (a server shutting down cancels what is left): once made, it is
    released, not dropped (a dropped psycopg connection stayed open until the collector
    found it, and failed a later test with its ResourceWarning; a dropped checkout keeps a
    place of the pool)."""
    released: list[str] = []
    gate = threading.Event()

    def make() -> str:
        gate.wait(5)
        return "connection"

    async def main() -> None:
        task = asyncio.ensure_future(greenlet_spawn(_in_thread, make, released.append))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(200):
            if released:
                return
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert released == ["connection"]


def test_what_a_thread_made_but_never_delivered_is_given_back() -> None:
    """The thread has returned, but the loop has not yet handed its result to the waiter
    when the waiter is cancelled: the result is released all the same."""
    released: list[str] = []
    gate, started = threading.Event(), threading.Event()

    def make() -> str:
        started.set()
        gate.wait(5)
        return "connection"

    async def main() -> None:
        task = asyncio.ensure_future(greenlet_spawn(_in_thread, make, released.append))
        while not started.is_set():
            await asyncio.sleep(0.005)
        gate.set()
        time.sleep(0.2)  # blocks the loop: the thread returns, its result is not delivered
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert released == ["connection"]


def test_a_server_shutting_down_lets_its_use_cases_in_flight_finish(
        pg_url: str, menus_dir: Path, probe_table: Any) -> None:
    """A request goes away in the middle of its use case, then the server shuts down: the
    use case (shielded from its request) commits before the lifespan closes the pool, and
    no connection is left to the collector. Without ``Database.drain`` the pool was closed
    under it and the loop's end cancelled it: neither row was written."""
    settings = Settings(_env_file=None, database_url=pg_url, menus_dir=menus_dir,
                        twilio_auth_token=TOKEN, admin_token=ADMIN, watch_menus=False,
                        db_pool_size=4)
    app = create_app(settings, FrozenClock(OPEN_TIME))

    async def main() -> None:
        async with app.router.lifespan_context(app):
            db: Database = app.state.web.db
            request = asyncio.create_task(db.run(_write_two_rows, db.engine, 0.4))
            await asyncio.sleep(0.1)
            request.cancel()
            with pytest.raises(asyncio.CancelledError):
                await request

    asyncio.run(main())
    gc.collect()  # a connection left open would warn here (warnings are errors)
    with probe_table.connect() as conn:
        rows = conn.execute(text("SELECT n FROM loop_probe ORDER BY n")).scalars().all()
    assert rows == [1, 2]

def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM loop_probe")).scalar_one())


def test_more_use_cases_than_slots_all_finish(pg_url: str) -> None:
    """More use cases at once than the pool lends to the loop: they queue for a slot
    instead of blocking the loop on the pool, and all of them finish."""
    db = Database(Settings(_env_file=None, database_url=pg_url, db_pool_size=2))

    def use_case(i: int) -> int:
        with db.engine.begin() as conn:
            conn.execute(text("SELECT pg_sleep(0.02)"))
            return i

    async def main() -> list[int]:
        return list(await asyncio.wait_for(
            asyncio.gather(*(db.run(use_case, i) for i in range(12))), 10))

    try:
        assert asyncio.run(main()) == list(range(12))
    finally:
        db.close()


def test_a_fresh_pool_s_first_use_cases_at_once_do_not_lock_the_loop(pg_url: str) -> None:
    """The first connections of a fresh pool, asked by several use cases at once from the
    loop: SQLAlchemy sets the first one up under a thread lock, round trips included, so a
    second use case waiting for that lock on the loop's thread would hang the loop. The
    pool makes new connections in a thread (``LoopQueuePool``)."""
    db = Database(Settings(_env_file=None, database_url=pg_url, db_pool_size=4))

    def use_case(i: int) -> int:
        with db.engine.begin() as conn:
            return int(conn.execute(text("SELECT :i"), {"i": i}).scalar_one())

    async def main() -> list[int]:
        return list(await asyncio.gather(*(db.run(use_case, i) for i in range(6))))

    # A hung loop cannot time itself out: it runs in a thread the test waits for.
    got: list[list[int]] = []
    runner = threading.Thread(target=lambda: got.append(asyncio.run(main())), daemon=True)
    runner.start()
    runner.join(20)
    try:
        assert not runner.is_alive(), "the event loop hung on the pool's first connections"
        assert got == [list(range(6))]
    finally:
        if not runner.is_alive():
            db.close()


def test_a_failing_statement_on_the_loop_raises_and_leaves_the_pool_usable(
        pg_db: Database) -> None:
    def bad() -> None:
        with pg_db.engine.begin() as conn:
            conn.execute(text("SELECT no_such_column FROM no_such_table"))

    def good() -> int:
        with pg_db.engine.connect() as conn:
            return int(conn.execute(text("SELECT 7")).scalar_one())

    async def main() -> int:
        with pytest.raises(Exception, match="no_such_table"):
            await pg_db.run(bad)
        return await pg_db.run(good)

    assert asyncio.run(main()) == 7


def test_greenlet_comes_with_the_product_not_only_with_the_dev_tools() -> None:
    """``Database.run`` needs greenlet on PostgreSQL; a production install (no dev extra,
    where Playwright brought it) gets it through SQLAlchemy's ``asyncio`` extra."""
    runtime = [Requirement(r) for r in requires("ivr-router") or [] if "extra ==" not in r]
    assert any(r.name == "sqlalchemy" and "asyncio" in r.extras for r in runtime), runtime
