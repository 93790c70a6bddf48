"""The event bus: numbering, fan-out, and a slow consumer that gets a resync instead of a stall."""

from __future__ import annotations

import asyncio

from gexdaemon.daemon.events import RESYNC, EventBus


def test_events_are_numbered_without_gaps_and_fanned_out() -> None:
    async def run() -> tuple[list[int], list[int]]:
        bus = EventBus(buffer=100)
        a, b = bus.subscribe(), bus.subscribe()
        for i in range(10):
            bus.publish("job.queued", {"i": i})
        got_a = [(await a.next(wait_s=1)).seq for _ in range(10)]  # type: ignore[union-attr]
        got_b = [(await b.next(wait_s=1)).seq for _ in range(10)]  # type: ignore[union-attr]
        return got_a, got_b

    a, b = asyncio.run(run())
    assert a == b == list(range(1, 11))


def test_a_slow_consumer_gets_one_resync_marker_and_never_blocks_publishing() -> None:
    async def run() -> tuple[list[str], int]:
        bus = EventBus(buffer=5)
        slow = bus.subscribe()
        fast = bus.subscribe()
        for i in range(50):  # publishing never awaits anyone
            bus.publish("job.completed", {"i": i})
        kinds = []
        while (event := await slow.next(wait_s=0.01)) is not None:
            kinds.append(event.type)
        fast_count = 0
        while await fast.next(wait_s=0.01) is not None:
            fast_count += 1
        return kinds, fast_count

    kinds, fast_count = asyncio.run(run())
    assert RESYNC in kinds and len(kinds) <= 5
    assert fast_count <= 5  # the same bound applies to every consumer that does not read


def test_payloads_are_only_built_for_listeners() -> None:
    built = []

    def payload() -> dict[str, int]:
        built.append(1)
        return {"x": 1}

    bus = EventBus()
    assert bus.publish("job.queued", payload) is None and not built
    bus.subscribe()
    assert bus.publish("job.queued", payload) is not None and built == [1]


def test_a_client_can_ask_for_a_resync() -> None:
    async def run() -> str:
        bus = EventBus()
        sub = bus.subscribe()
        bus.publish("job.queued", {})
        sub.request_resync()
        event = await sub.next(wait_s=1)
        assert event is not None
        return event.type

    assert asyncio.run(run()) == RESYNC
