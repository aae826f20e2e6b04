"""fastsio._eager: async handlers start in the caller's stack, no Task unless they suspend."""

from __future__ import annotations

import asyncio
import contextvars
import logging

import pytest

from fastsio import _eager

var: contextvars.ContextVar = contextvars.ContextVar("var", default="unset")


class Recorder:
    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, result, exc) -> None:
        self.calls.append((result, exc))


async def test_coroutine_that_never_awaits_finishes_synchronously():
    done = Recorder()
    steps = []

    async def handler():
        steps.append("ran")
        return 42

    tasks_before = len(asyncio.all_tasks())
    assert _eager.start(handler(), done) is None
    assert steps == ["ran"]
    assert done.calls == [(42, None)]
    assert len(asyncio.all_tasks()) == tasks_before


async def test_await_of_a_done_coroutine_chain_stays_synchronous():
    done = Recorder()

    async def inner():
        return "x"

    async def handler():
        return await inner() + "y"

    assert _eager.start(handler(), done) is None
    assert done.calls == [("xy", None)]


async def test_coroutine_that_awaits_a_future_continues_in_the_loop():
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    done = Recorder()
    steps = []

    async def handler():
        steps.append("before")
        value = await future
        steps.append("after")
        return value * 2

    task = _eager.start(handler(), done)
    assert isinstance(task, asyncio.Task)
    assert steps == ["before"]
    assert done.calls == []
    future.set_result(21)
    await task
    assert steps == ["before", "after"]
    assert done.calls == [(42, None)]
    assert task not in _eager.running_tasks


async def test_coroutine_with_sleeps_and_current_task_after_suspension():
    done = Recorder()
    seen = []

    async def handler():
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())
        await asyncio.sleep(0.001)
        async with asyncio.timeout(1):  # needs a current task
            await asyncio.sleep(0)
        return "ok"

    task = _eager.start(handler(), done)
    await task
    assert seen == [task]
    assert done.calls == [("ok", None)]


async def test_wait_for_works_at_the_start_of_a_handler():
    done = Recorder()

    async def handler():
        return await asyncio.wait_for(asyncio.sleep(0, "slept"), 1)

    task = _eager.start(handler(), done)
    if task is not None:
        await task
    assert done.calls == [("slept", None)]


async def test_exception_before_suspension_goes_to_on_done():
    done = Recorder()

    async def handler():
        raise ValueError("boom")

    assert _eager.start(handler(), done) is None
    ((result, exc),) = done.calls
    assert result is None and isinstance(exc, ValueError)


async def test_exception_after_suspension_goes_to_on_done():
    done = Recorder()

    async def handler():
        await asyncio.sleep(0)
        raise KeyError("late")

    await _eager.start(handler(), done)
    ((_result, exc),) = done.calls
    assert isinstance(exc, KeyError)


async def test_exception_without_on_done_is_logged(caplog):
    async def handler():
        raise RuntimeError("nobody listens")

    with caplog.at_level(logging.ERROR, logger="fastsio"):
        _eager.start(handler())
    assert "nobody listens" in caplog.text


async def test_exception_in_the_loop_part_is_logged(caplog):
    async def handler():
        await asyncio.sleep(0)
        raise RuntimeError("late failure")

    with caplog.at_level(logging.ERROR, logger="fastsio"):
        await _eager.start(handler())
    assert "late failure" in caplog.text


async def test_cancellation_reaches_the_coroutine():
    loop = asyncio.get_running_loop()
    done = Recorder()
    cleanup = []

    async def handler():
        try:
            await loop.create_future()
        finally:
            cleanup.append("finally")

    task = _eager.start(handler(), done)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleanup == ["finally"]
    ((_result, exc),) = done.calls
    assert isinstance(exc, asyncio.CancelledError)


async def test_cancellation_can_be_caught_by_the_coroutine():
    loop = asyncio.get_running_loop()
    done = Recorder()

    async def handler():
        try:
            await loop.create_future()
        except asyncio.CancelledError:
            return "caught"

    task = _eager.start(handler(), done)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert done.calls == [("caught", None)]


async def test_context_variables_are_isolated_and_kept_across_steps():
    var.set("caller")
    seen = []

    async def handler():
        seen.append(var.get())
        var.set("handler")
        await asyncio.sleep(0)
        seen.append(var.get())

    task = _eager.start(handler())
    assert var.get() == "caller"  # the handler's set() did not leak out
    await task
    assert seen == ["caller", "handler"]


async def test_call_sync_handler_result_and_exception():
    done = Recorder()
    assert _eager.call(lambda a, b: a + b, (1, 2), done) is None
    assert done.calls == [(3, None)]

    def bad():
        raise ValueError("sync")

    _eager.call(bad, (), done)
    assert isinstance(done.calls[-1][1], ValueError)


async def test_call_async_handler_and_future_result():
    done = Recorder()

    async def handler(x):
        return x + 1

    _eager.call(handler, (1,), done)
    assert done.calls == [(2, None)]

    future = asyncio.get_running_loop().create_future()
    task = _eager.call(lambda: future, (), done)
    future.set_result("from future")
    await task
    assert done.calls[-1] == ("from future", None)


async def test_a_suspended_coroutine_is_driven_to_the_end_in_order():
    # many suspensions interleaved with other work
    order = []

    async def worker(name, n):
        for i in range(n):
            order.append((name, i))
            await asyncio.sleep(0)

    tasks = [_eager.start(worker("a", 3)), _eager.start(worker("b", 3))]
    assert order[:2] == [("a", 0), ("b", 0)]
    await asyncio.gather(*tasks)
    assert sorted(order) == [(n, i) for n in "ab" for i in range(3)]
