"""The console event stream: replay after Last-Event-ID, live wake-ups, heartbeats."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import create_engine

from ivr.agents import repository as repo
from ivr.agents.events import EventBus, console_stream
from tests.conftest import statements_sent


def test_stream_replays_after_the_last_id_then_follows_live_events() -> None:
    store: list[tuple[int, str, str]] = [(1, "state", "{}"), (2, "screenpop", '{"a":1}')]

    async def load(after: int) -> list[tuple[int, str, str]]:
        return [e for e in store if e[0] > after]

    async def scenario() -> list[str]:
        bus = EventBus(None)
        await bus.start()
        stream = console_stream(bus, load, 7, 1, ["retry: 2000\n\n"], heartbeat=0.05)
        got = [await anext(stream), await anext(stream)]  # first chunk, replay of id 2
        store.append((3, "call", '{"status":"ringing"}'))
        bus.published([(7, 3), (8, 3)])  # agent 8's wake-up is not ours
        got.append(await anext(stream))
        got.append(await anext(stream))  # nothing new: a heartbeat comment
        assert bus.connected() == 1
        await stream.aclose()
        assert bus.connected() == 0
        return got

    assert asyncio.run(scenario()) == [
        "retry: 2000\n\n",
        'id: 2\nevent: screenpop\ndata: {"a":1}\n\n',
        'id: 3\nevent: call\ndata: {"status":"ringing"}\n\n',
        ": keep-alive\n\n",
    ]


def test_wake_ups_from_another_thread_reach_the_loop() -> None:
    async def scenario() -> int:
        bus = EventBus(None)
        await bus.start()
        queue = bus.subscribe(5)
        await asyncio.to_thread(bus.published, [(5, 42)])
        return await asyncio.wait_for(queue.get(), 1)

    assert asyncio.run(scenario()) == 42


def _counted_stream(bus: EventBus, heartbeats: int) -> int:
    """How many times a console reads its rows over its first chunk and ``heartbeats``
    keep-alives, with nothing new to read."""
    reads = [0]

    async def load(after: int) -> list[tuple[int, str, str]]:
        reads[0] += 1
        return []

    async def scenario() -> None:
        stream = console_stream(bus, load, 7, 0, ["retry: 2000\n\n"], heartbeat=0.02)
        assert await anext(stream) == "retry: 2000\n\n"
        for _ in range(heartbeats):
            assert await anext(stream) == ": keep-alive\n\n"
        await stream.aclose()

    asyncio.run(scenario())
    return reads[0]


def test_a_console_reads_nothing_at_its_heartbeats_while_notify_wakes_it() -> None:
    """PostgreSQL with its LISTEN connection up: the wake-ups are relied on, a heartbeat is
    just the comment (1,000 consoles read 67 times a second otherwise)."""
    bus = EventBus("postgresql://example.invalid/ivr")  # not started: no connection made
    bus.listening.set()
    assert _counted_stream(bus, 4) == 1  # the read when it opened


def test_a_console_reads_at_each_heartbeat_without_notify() -> None:
    """The LISTEN connection down, or SQLite (whose worker process writes events no
    in-process wake-up announces): each heartbeat reads."""
    down = EventBus("postgresql://example.invalid/ivr")
    # When it opened, then after each keep-alive but the fourth (the stream closes there).
    assert _counted_stream(down, 4) == 4

    async def in_process() -> EventBus:
        bus = EventBus(None)
        await bus.start()
        return bus

    assert _counted_stream(asyncio.run(in_process()), 4) == 4


def test_an_event_is_one_statement_and_its_notify_comes_with_the_commit(
        database_url: str) -> None:
    """``add_event`` stores the row (and, on PostgreSQL, queues its NOTIFY) in one
    statement; other processes hear ``<agent>:<event>`` when the change commits, and nothing
    for a change rolled back."""
    engine = create_engine(database_url)
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    listener = None
    try:
        with engine.begin() as conn:
            agent = repo.create_agent(conn, username="noa", name="Noa", password="pw-noa-1234",
                                      now=now)
        if engine.dialect.name == "postgresql":
            listener = psycopg.connect(
                engine.url.set(drivername="postgresql").render_as_string(
                    hide_password=False), autocommit=True)
            listener.execute(f"LISTEN {repo.NOTIFY_CHANNEL}")
        sent = statements_sent(engine)
        with engine.connect() as conn:
            repo.add_event(conn, agent, "state", {"state": "gone"}, now)
            conn.rollback()
            event_id = repo.add_event(conn, agent, "screenpop", {"call": "CA1"}, now, "CA1")
            assert len(sent) == 2  # one statement each
            heard_before = _notifications(listener)
            conn.commit()
            rows = repo.events_after(conn, agent, 0)
        heard = _notifications(listener)
    finally:
        if listener is not None:
            listener.close()
        engine.dispose()
    assert [(i, kind, json.loads(data)) for i, kind, data in rows] == [
        (event_id, "screenpop", {"call": "CA1"})]
    if listener is not None:
        assert heard_before == []
        assert heard == [f"{agent}:{event_id}"]


def _notifications(listener: psycopg.Connection[Any] | None) -> list[str]:
    """What the LISTEN connection has received so far (waiting up to half a second)."""
    if listener is None:
        return []
    return [n.payload for n in listener.notifies(timeout=0.5, stop_after=1)]
