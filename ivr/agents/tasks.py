"""Routing in the server process: right after every change that can make a match (inline,
so a test or a caller sees the result at once), and a sweep every
``route_every_seconds`` that takes back expired offers, runs the callback timers (when this
process dispatches callbacks: leases, warnings, breaches) and matches what another process
left (several processes on PostgreSQL share the rows; SKIP LOCKED keeps them apart)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ivr.agents.events import EventBus
from ivr.agents.service import AgentService, Outcome
from ivr.core.db import Database

log = logging.getLogger(__name__)


class RoutingLoop:
    def __init__(self, db: Database, service: AgentService, bus: EventBus) -> None:
        self.db = db
        self.service = service
        self.bus = bus
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
            for _ in range(10):
                offers, published = await self.db.run(self.service.route)
                self.bus.published(published)
                if not offers:
                    break
                if self.service.needs_delivery(offers):
                    # REST dequeues and callback dials: network calls, off the event loop.
                    out: Outcome = await asyncio.to_thread(self.service.deliver, offers)
                    self.bus.published(out.published)
            self._covered = max(self._covered, covering)

    async def sweep(self) -> None:
        out = await self.db.run(self.service.expire_offers)
        self.bus.published(out.published)
        callbacks = self.service.callbacks
        if callbacks is not None and self.service.settings.dispatch_callbacks:
            timers = Outcome()
            await self.db.run(callbacks.sweep, timers)
            self.bus.published(timers.published)
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
