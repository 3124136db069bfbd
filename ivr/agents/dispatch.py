"""The one dispatcher: timers, then routing until nothing more matches, each pass's
reservations delivered after its commit (REST dequeues, callback dials).

Servers run it from ``ivr.agents.tasks.RoutingLoop`` (right after changes and on a sweep);
``ivr worker`` runs ``run_once`` as the callbacks job. Database work goes through
``run_db`` (``Database.run`` in a server: on the event loop, its PostgreSQL round trips
handed to the loop; a thread in ``ivr worker``), network work through ``run_io`` (a thread:
never on the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ivr.agents.events import EventBus, Published
from ivr.agents.ports import Outcome
from ivr.agents.service import AgentService
from ivr.core.db import Database

log = logging.getLogger("ivr.agents.dispatch")
T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]

#: Routing passes per dispatch at most (each pass commits; a pass that reserves nothing
#: ends the dispatch).
MAX_PASSES = 10


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


class Dispatcher:
    def __init__(self, agents: AgentService, *, timers: bool | None = None,
                 run_db: Runner = _in_thread, run_io: Runner = _in_thread,
                 publish: Callable[[Published], None] = lambda _published: None) -> None:
        """``timers``: whether this process runs the callback timers (leases, warnings,
        breaches) in its sweep (None: as ``IVR_DISPATCH_CALLBACKS`` says)."""
        self.agents = agents
        self.timers = timers
        self.run_db = run_db
        self.run_io = run_io
        self.publish = publish

    async def sweep(self) -> None:
        """Take back offers never connected in time (and free agents nothing backs); close
        queued calls silent too long whose call is over (Twilio is asked in a thread, outside
        any transaction); run the callback timers."""
        out: Outcome = await self.run_db(self.agents.expire_offers)
        self.publish(out.published)
        silent = await self.run_db(self.agents.silent_entries)
        if silent:
            verdicts = await self.run_io(self.agents.liveness, silent)
            out = await self.run_db(self.agents.close_silent, verdicts)
            self.publish(out.published)
        # Transfers never confirmed (a process died in between): rolled back (issue 16).
        await self._follow(await self.run_db(self.agents.bridge.sweep))
        timers_on = (self.agents.settings.dispatch_callbacks if self.timers is None
                     else self.timers)
        if timers_on:
            timers = Outcome()
            await self.run_db(self.agents.callbacks.sweep, timers)
            self.publish(timers.published)

    async def _follow(self, out: Outcome) -> None:
        """Publish what ``out`` changed; run its use cases, then its requests to Twilio (and
        what they set off in turn)."""
        self.publish(out.published)
        for use_case in out.then:
            await self._follow(await self.run_db(use_case))
        for work in out.after:
            await self._follow(await self.run_io(work))

    async def route(self) -> None:
        """Match waiting calls (and due callbacks) with free agents until nothing more
        matches; deliver each pass's reservations after its commit."""
        for _ in range(MAX_PASSES):
            reservations, published = await self.run_db(self.agents.route)
            self.publish(published)
            if not reservations:
                break
            if self.agents.needs_delivery(reservations):
                out: Outcome = await self.run_io(self.agents.deliver, reservations)
                self.publish(out.published)

    async def run_once(self) -> None:
        await self.sweep()
        await self.route()


#: Routing in the server process: right after every change that can make a match (inline,
#: so a test or a caller sees the result at once), and a sweep every ``route_every_seconds``
#: that takes back expired offers, runs the callback timers (when this process dispatches
#: callbacks: leases, warnings, breaches) and matches what another process left (several
#: processes on PostgreSQL share the rows; SKIP LOCKED keeps them apart).
class RoutingLoop:
    def __init__(self, db: Database, service: AgentService, bus: EventBus) -> None:
        self.db = db
        self.service = service
        self.bus = bus
        self.dispatcher = Dispatcher(service, run_db=db.run, publish=bus.published)
        self._lock = asyncio.Lock()
        self._asked = 0  # route_now calls so far
        self._covered = 0  # every call up to this one saw a pass start after it

    async def route_now(self) -> None:
        """Match waiting calls and free agents until nothing more matches. A burst of
        changes costs one pass, not one each: a caller waiting for the lock returns as soon
        as a pass that started after its change has run (it saw the change)."""
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._covered >= ticket:
                return
            covering = self._asked
            await self.dispatcher.route()
            self._covered = max(self._covered, covering)

    async def sweep(self) -> None:
        await self.dispatcher.sweep()
        await self.route_now()

    async def run(self, every: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                await self.sweep()
            except Exception:
                log.exception("routing sweep failed; will retry")
