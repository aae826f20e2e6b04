"""The heartbeat's timer queues (fastsio/engine/timers.py): many timers on one loop timer."""

from __future__ import annotations

import asyncio

import pytest

from fastsio.engine import timers
from fastsio.engine.timers import TimerQueue, TimerQueues


async def test_timers_fire_in_order_at_their_due_time() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    queue = TimerQueue(loop, 0.05, lambda name: fired.append((name, loop.time())))
    armed = {}
    for name in "abc":
        armed[name] = queue.add(name).when
        await asyncio.sleep(0.01)
    assert len(queue) == 3
    await asyncio.sleep(0.08)
    assert [name for name, _ in fired] == ["a", "b", "c"]
    for name, at in fired:
        assert at >= armed[name] - timers._CLOCK_SLACK
        assert at - armed[name] < 0.03
    assert len(queue) == 0 and queue._handle is None


async def test_a_cancelled_timer_does_not_fire_nor_keep_its_target() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    queue = TimerQueue(loop, 0.02, fired.append)
    first = queue.add("a")
    queue.add("b")
    first.cancel()
    first.cancel()  # twice is once
    assert first.target is None and len(queue) == 1
    await asyncio.sleep(0.05)
    assert fired == ["b"]
    assert queue._stale == 0 and not queue._entries


async def test_a_target_can_rearm_from_its_callback() -> None:
    loop = asyncio.get_running_loop()
    fired: list[int] = []

    def fire(n: int) -> None:
        fired.append(n)
        if n < 3:
            queue.add(n + 1)

    queue = TimerQueue(loop, 0.01, fire)
    queue.add(1)
    await asyncio.sleep(0.1)
    assert fired == [1, 2, 3]


async def test_churn_is_compacted() -> None:
    loop = asyncio.get_running_loop()
    queue = TimerQueue(loop, 60.0, lambda target: None)
    kept = [queue.add(i) for i in range(10)]
    for i in range(1000):
        queue.add(i).cancel()
    # never more cancelled entries than twice the live ones (past the minimum)
    assert len(queue._entries) <= max(2 * len(kept), timers._MIN_COMPACT * 2 + len(kept))
    assert len(queue) == 10
    queue.close()
    assert len(queue) == 0 and queue._handle is None


async def test_an_error_is_reported_and_the_others_still_fire() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    loop.set_exception_handler(lambda loop, context: reported.append(context))
    fired: list[str] = []

    def fire(name: str) -> None:
        if name == "bad":
            raise RuntimeError("boom")
        fired.append(name)

    queue = TimerQueue(loop, 0.01, fire)
    queue.add("bad")
    queue.add("good")
    await asyncio.sleep(0.05)
    assert fired == ["good"]
    assert isinstance(reported[0]["exception"], RuntimeError)


async def test_queues_per_delay_and_callback() -> None:
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, str]] = []

    def ping(target: str) -> None:
        fired.append(("ping", target))

    def timeout(target: str) -> None:
        fired.append(("timeout", target))

    queues = TimerQueues()
    queues.call_later(loop, 0.04, ping, "a")
    queues.call_later(loop, 0.01, timeout, "b")
    queues.call_later(loop, 0.02, ping, "c")
    await asyncio.sleep(0.08)
    assert fired == [("timeout", "b"), ("ping", "c"), ("ping", "a")]


def test_a_new_loop_gets_its_own_queue() -> None:
    queues = TimerQueues()
    fired: list[str] = []

    async def arm(name: str) -> None:
        queues.call_later(asyncio.get_running_loop(), 0.01, fired.append, name)
        await asyncio.sleep(0.03)

    asyncio.run(arm("first"))
    asyncio.run(arm("second"))
    assert fired == ["first", "second"]


@pytest.mark.parametrize("delay", [0.003, 0.05])
async def test_short_delays_fire_once(delay: float) -> None:
    # uvloop rounds a delay to milliseconds: an early wake-up must neither lose nor repeat one
    loop = asyncio.get_running_loop()
    fired: list[int] = []
    queue = TimerQueue(loop, delay, fired.append)
    for i in range(20):
        queue.add(i)
        await asyncio.sleep(0.001)
    await asyncio.sleep(delay + 0.05)
    assert fired == list(range(20))
