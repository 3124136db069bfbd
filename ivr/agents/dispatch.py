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
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ivr.agents.events import EventBus, Published
from ivr.agents.ports import Outcome, RoutingPass
from ivr.agents.service import AgentService
from ivr.core.db import Database

log = logging.getLogger("ivr.agents.dispatch")
T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]

#: Routing passes per dispatch at most (each pass commits; a pass that reserves nothing
#: ends the dispatch).
MAX_PASSES = 10
#: A pass that met its match's rows held by another transaction (the caller's own wait
#: round, mostly: a few milliseconds) is tried again this much later, up to RETRIES times
#: in a row; then the sweep's passes take over.
RETRY_SECONDS = 0.025
RETRIES = 20


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


async def _until(timeout: float, *events: asyncio.Event) -> None:
    """Until one of ``events`` is set, or ``timeout`` seconds have passed."""
    waits = {asyncio.ensure_future(e.wait()) for e in events}
    try:
        await asyncio.wait(waits, timeout=max(0.0, timeout),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


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

    async def route(self) -> bool:
        """Match waiting calls (and due callbacks) with free agents until nothing more
        matches; deliver each pass's reservations after its commit. True when the last pass
        left a match to rows another transaction held (``RoutingPass.contended``)."""
        for _ in range(MAX_PASSES):
            done: RoutingPass = await self.run_db(self.agents.route)
            self.publish(done.published)
            if not done.offers:
                return done.contended
            if self.agents.needs_delivery(done.offers):
                out: Outcome = await self.run_io(self.agents.deliver, done.offers)
                self.publish(out.published)
        return False

    async def run_once(self) -> None:
        await self.sweep()
        await self.route()


#: Routing in the server process: right after every change that can make a match (inline,
#: so a test or a caller sees the result at once), and a sweep every ``route_every_seconds``
#: that takes back expired offers, runs the callback timers (when this process dispatches
#: callbacks: leases, warnings, breaches) and matches what another process left (several
#: processes on PostgreSQL share the rows; SKIP LOCKED keeps them apart). A pass that skipped
#: its match because another transaction held a row of it (the caller's wait round updates
#: its entry) is tried again ``RETRY_SECONDS`` later: before, the caller waited for the sweep.
class RoutingLoop:
    def __init__(self, db: Database, service: AgentService, bus: EventBus) -> None:
        self.db = db
        self.service = service
        self.bus = bus
        self.dispatcher = Dispatcher(service, run_db=db.run, publish=bus.published)
        self._lock = asyncio.Lock()
        self._asked = 0  # route_now calls so far
        self._covered = 0  # every call up to this one saw a pass start after it
        self._retry = asyncio.Event()  # a contended pass asks ``run`` for another soon
        self._retries = 0  # contended passes in a row

    async def route_now(self) -> None:
        """Match waiting calls and free agents until nothing more matches. A burst of
        changes costs one pass, not one each: a caller waiting for the lock returns as soon
        as a pass that started after its change has run (it saw the change). A pass that
        met its match held by another transaction asks ``run`` to try again shortly."""
        self._asked += 1
        ticket = self._asked
        async with self._lock:
            if self._covered >= ticket:
                return
            covering = self._asked
            contended = await self.dispatcher.route()
            self._covered = max(self._covered, covering)
        if not contended:
            self._retries = 0
        elif self._retries < RETRIES:
            self._retries += 1
            self._retry.set()
        else:  # held that long: no longer a wait round's moment; the sweep takes it
            self._retries = 0

    async def sweep(self) -> None:
        await self.dispatcher.sweep()
        await self.route_now()

    async def run(self, every: float, stop: asyncio.Event) -> None:
        """A sweep every ``every`` seconds, and the passes contended ones ask for
        ``RETRY_SECONDS`` after them."""
        loop = asyncio.get_running_loop()
        due = loop.time() + every
        while not stop.is_set():
            if not self._retry.is_set():
                await _until(due - loop.time(), stop, self._retry)
            if self._retry.is_set() and loop.time() < due:
                await _until(RETRY_SECONDS, stop)
            if stop.is_set():
                return
            try:
                if loop.time() >= due:
                    self._retry.clear()
                    try:
                        await self.sweep()
                    finally:
                        due = loop.time() + every
                elif self._retry.is_set():
                    self._retry.clear()
                    await self.route_now()
            except Exception:
                log.exception("routing sweep failed; will retry")
