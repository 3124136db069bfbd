"""The console event stream: replay after Last-Event-ID, live wake-ups, heartbeats."""

from __future__ import annotations

import asyncio

from ivr.agents.events import EventBus, console_stream


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
