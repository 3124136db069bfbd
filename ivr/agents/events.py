"""Pushing events to agents' open consoles, across server processes.

Events are rows (``agent_events``) written in the transaction of the change they describe.
On PostgreSQL that transaction also sends ``NOTIFY ivr_agent_events, '<agent>:<event>'``;
every server process LISTENs on one dedicated connection and wakes the consoles of that
agent it holds, which read the rows after the last one they sent. So a webhook served by
one process reaches a console connected to another, and a console that reconnects with
``Last-Event-ID`` gets what it missed. On SQLite (one process) the wake-up is in-process.

A console is sent a keep-alive comment every ``heartbeat`` seconds. It reads its rows then
too only when no ``NOTIFY`` can be relied on: on SQLite (``ivr worker`` writes events from
another process) and while the ``LISTEN`` connection is down (when it is back, every
console reads once). With 1,000 consoles open those reads were as many database round trips
as the calls' own (67 a second), queued in the same threads as the webhooks. Each console's
first heartbeat comes at a random point of the first period, so consoles opened together
(a server restart) do not all read at the same instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any

from ivr.agents.repository import NOTIFY_CHANNEL

log = logging.getLogger(__name__)

Published = list[tuple[int, int]]  # (agent id, event id)


class EventBus:
    def __init__(self, conninfo: str | None) -> None:
        """``conninfo``: a libpq URL to LISTEN on (PostgreSQL), or None (in-process)."""
        self.conninfo = conninfo
        self._subs: dict[int, set[asyncio.Queue[int]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.conninfo is None:
            self.listening.set()
        else:
            self._task = asyncio.create_task(self._listen())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.listening.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        import psycopg  # noqa: PLC0415

        assert self.conninfo is not None
        failures = 0
        while True:
            try:
                # Bounded connect and keepalives (as the engine's): a dead database or link
                # is noticed, not waited on; the consoles fall back to their own reads.
                async with await psycopg.AsyncConnection.connect(
                        self.conninfo, autocommit=True, connect_timeout=3, keepalives=1,
                        keepalives_idle=10, keepalives_interval=3,
                        keepalives_count=3) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if failures:
                        log.info("LISTEN connection back after %d failed attempt(s)",
                                 failures)
                    failures = 0
                    self.listening.set()
                    self._wake_all()  # anything sent while we were not listening
                    async for note in conn.notifies():
                        agent, _, event = note.payload.partition(":")
                        if agent.isdigit() and event.isdigit():
                            self._deliver(int(agent), int(event))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                failures += 1
                if failures == 1:
                    log.exception("LISTEN connection lost; reconnecting")
                elif failures % 60 == 0:  # every 60th attempt (5 minutes) while it is away
                    log.warning("LISTEN connection still down (%d attempts): %s", failures,
                                exc)
                await asyncio.sleep(min(1.0 * failures, 5.0))

    # -- subscribers (consoles)

    def subscribe(self, agent_id: int) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._subs.setdefault(agent_id, set()).add(queue)
        return queue

    def unsubscribe(self, agent_id: int, queue: asyncio.Queue[int]) -> None:
        subs = self._subs.get(agent_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subs[agent_id]

    def connected(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def polls(self) -> bool:
        """Whether a console reads its rows at each heartbeat: no ``NOTIFY`` to rely on
        (in-process wake-ups only, or the ``LISTEN`` connection down)."""
        return self.conninfo is None or not self.listening.is_set()

    def _deliver(self, agent_id: int, event_id: int) -> None:
        for queue in self._subs.get(agent_id, ()):
            queue.put_nowait(event_id)

    def _wake_all(self) -> None:
        for agent_id in list(self._subs):
            self._deliver(agent_id, 0)

    def published(self, events: Iterable[tuple[int, int]]) -> None:
        """After a commit: wake local consoles (PostgreSQL's NOTIFY already did)."""
        if self.conninfo is not None or self._loop is None:
            return
        for agent_id, event_id in events:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self._loop:
                self._deliver(agent_id, event_id)
            else:
                self._loop.call_soon_threadsafe(self._deliver, agent_id, event_id)


async def console_stream(bus: EventBus, load: Callable[[int], Any], agent_id: int,
                         after: int, first: list[str], *, heartbeat: float = 15.0,
                         ) -> AsyncGenerator[str, None]:
    """Server-Sent Events for one console: ``first`` (already formatted), then every event
    of the agent after ``after``, as they are written. ``load(after)`` is awaited and
    returns ``[(id, kind, json)]``; it is called when the bus wakes the console, and at a
    heartbeat only when the bus ``polls``."""
    queue = bus.subscribe(agent_id)
    wait = heartbeat * random.uniform(0.1, 1.0)  # the first: spread over a period
    read = True
    try:
        for chunk in first:
            yield chunk
        while True:
            if read:
                for event_id, kind, data in await load(after):
                    after = event_id
                    yield f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n"
            try:
                await asyncio.wait_for(queue.get(), wait)
                read = True
            except TimeoutError:
                yield ": keep-alive\n\n"
                read = bus.polls()
            wait = heartbeat
            while not queue.empty():
                queue.get_nowait()
    finally:
        bus.unsubscribe(agent_id, queue)
