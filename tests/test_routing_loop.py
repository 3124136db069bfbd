"""The routing loop coalesces a burst: changes that arrive while a pass runs are covered by
one more pass, not one pass each (bench/load.py: N triggers cost N passes and queued every
request that triggered routing behind the others), and each caller still returns only after
a pass that started after its change."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr.agents import dispatch
from ivr.agents.dispatch import RoutingLoop
from ivr.agents.ports import Reservation, RoutingPass


class FakeDb:
    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


class FakeService:
    def __init__(self) -> None:
        self.passes: list[int] = []
        self.changes = 0
        self.delivered = 0

    def route(self) -> RoutingPass:
        import time

        self.passes.append(self.changes)  # what this pass saw
        time.sleep(0.05)
        return RoutingPass([], [])

    def needs_delivery(self, offers: list[Any]) -> bool:
        return False

    def deliver(self, offers: list[Any]) -> Any:
        self.delivered += 1


class FakeBus:
    def published(self, _events: Any) -> None:
        return None


def test_a_burst_of_changes_costs_one_more_pass_and_each_caller_sees_its_change() -> None:
    service = FakeService()
    loop = RoutingLoop(FakeDb(), service, FakeBus())  # type: ignore[arg-type]

    async def change_then_route() -> int:
        service.changes += 1
        mine = service.changes
        await loop.route_now()
        return mine

    async def main() -> list[int]:
        first = asyncio.create_task(change_then_route())
        await asyncio.sleep(0.01)  # the first pass is running
        burst = [asyncio.create_task(change_then_route()) for _ in range(8)]
        return [await first] + [await t for t in burst]

    changes = asyncio.run(main())
    assert len(service.passes) == 2  # not 9
    # Every caller's change was seen by a pass that ran after it.
    assert all(any(seen >= c for seen in service.passes) for c in changes)
    assert service.passes[-1] == 9


class HeldService(FakeService):
    """Passes that meet their match held by another transaction ``held`` times, then offer
    it (a caller's wait round commits)."""

    def __init__(self, held: int) -> None:
        super().__init__()
        self.held = held

    def route(self) -> RoutingPass:
        self.passes.append(self.changes)
        if len(self.passes) <= self.held:
            return RoutingPass([], [], contended=True)
        if len(self.passes) == self.held + 1:
            return RoutingPass([Reservation(1, "CA1", None, 1)], [])
        return RoutingPass([], [])


def passes_while_running(service: FakeService, seconds: float) -> list[int]:
    """The passes a routing loop (sweep every 60 s: none in this time) ran for one change
    and its ``run`` in ``seconds``."""
    loop = RoutingLoop(FakeDb(), service, FakeBus())  # type: ignore[arg-type]

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(loop.run(60, stop))
        await loop.route_now()
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.wait_for(runner, 5)  # stops when told, without being cancelled

    asyncio.run(main())
    return service.passes


def test_a_pass_that_met_its_match_held_is_tried_again_soon_not_at_the_sweep() -> None:
    service = HeldService(held=2)
    passes = passes_while_running(service, 0.2 + 10 * dispatch.RETRY_SECONDS)
    # held, held, then the offer, and the pass after it (nothing more): 4, not 1
    assert len(passes) == 4


def test_a_match_held_for_long_is_left_to_the_sweep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "RETRY_SECONDS", 0.002)
    service = HeldService(held=1000)
    passes = passes_while_running(service, 0.3 + 3 * dispatch.RETRIES * dispatch.RETRY_SECONDS)
    assert len(passes) == 1 + dispatch.RETRIES


def test_a_pass_with_nothing_held_asks_for_no_other() -> None:
    service = HeldService(held=0)  # the first pass offers, the second finds nothing
    assert len(passes_while_running(service, 0.3)) == 2
