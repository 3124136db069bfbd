"""The routing loop coalesces a burst: changes that arrive while a pass runs are covered by
one more pass, not one pass each (bench/load.py: N triggers cost N passes and queued every
request that triggered routing behind the others), and each caller still returns only after
a pass that started after its change."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.agents.dispatch import RoutingLoop


class FakeDb:
    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


class FakeService:
    def __init__(self) -> None:
        self.passes: list[int] = []
        self.changes = 0
        self.delivered = 0

    def route(self) -> tuple[list[Any], list[Any]]:
        import time

        self.passes.append(self.changes)  # what this pass saw
        time.sleep(0.05)
        return [], []

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
