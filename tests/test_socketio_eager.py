"""fastsio._eager: async handlers start in the caller's stack, no Task unless they suspend.

Every test runs against each implementation the running Python has (the hand-driven one
everywhere, ``asyncio.Task(eager_start=True)`` on 3.12+; ``_eager.start`` is whichever of them this
Python uses in production), on asyncio's own loop and on uvloop. Each test body runs in a Task (as
``run_until_complete`` makes one); :func:`from_callback` calls something the way the server calls
handlers, from a protocol callback, with no current task.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys

import pytest

from fastsio import _eager

var: contextvars.ContextVar = contextvars.ContextVar("var", default="unset")

IMPLEMENTATIONS = {"driven": _eager._start_driven}
if _eager.EAGER_TASKS:
    IMPLEMENTATIONS["eager_task"] = _eager._start_eager_task

LOOPS = {"asyncio": asyncio.new_event_loop}
try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency where it exists
    pass
else:
    LOOPS["uvloop"] = uvloop.new_event_loop

needs_timeout = pytest.mark.skipif(
    not hasattr(asyncio, "timeout"), reason="asyncio.timeout and TaskGroup are 3.11+"
)


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request, monkeypatch):
    """The implementation under test, installed as ``_eager.start`` (``_eager.call`` uses it)."""
    monkeypatch.setattr(_eager, "start", IMPLEMENTATIONS[request.param])
    return request.param


@pytest.fixture(params=list(LOOPS))
def run(request, impl):
    """``run(main)``: ``await main()`` on a new loop of the kind under test; returns its result."""

    def run(main):
        loop = LOOPS[request.param]()
        try:
            return loop.run_until_complete(asyncio.wait_for(main(), 10))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    return run


class Recorder:
    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, result, exc) -> None:
        self.calls.append((result, exc))


def running_here() -> list:
    """``_eager.running_tasks`` of the running loop (a failed test may leave some of its own)."""
    loop = asyncio.get_running_loop()
    return [task for task in _eager.running_tasks if task.get_loop() is loop]


def from_callback(fn, *args):
    """``fn(*args)`` from a loop callback, as the protocol calls handlers: no current task.
    Returns a future of what it returned (or raised)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def callback():
        assert asyncio.current_task() is None
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            future.set_exception(exc)

    loop.call_soon(callback)
    return future


def test_production_implementation_for_this_python():
    expected = _eager._start_eager_task if sys.version_info >= (3, 12) else _eager._start_driven
    assert _eager.start is expected


# -- handlers that never suspend: done before start() returns -----------------------------------


def test_coroutine_that_never_awaits_finishes_synchronously(run):
    async def main():
        done = Recorder()
        steps = []

        async def handler():
            steps.append("ran")
            return 42

        tasks_before = asyncio.all_tasks()
        assert _eager.start(handler(), done) is None
        assert steps == ["ran"]
        assert done.calls == [(42, None)]
        assert asyncio.all_tasks() == tasks_before
        assert not running_here()

        # the same from a protocol callback
        assert await from_callback(_eager.start, handler(), done) is None
        assert done.calls == [(42, None), (42, None)]

    run(main)


def test_await_of_a_done_coroutine_chain_stays_synchronous(run):
    async def main():
        done = Recorder()

        async def inner():
            return "x"

        async def handler():
            return await inner() + "y"

        assert _eager.start(handler(), done) is None
        assert done.calls == [("xy", None)]

    run(main)


def test_no_on_done_and_no_result(run):
    async def main():
        async def handler():
            pass

        assert _eager.start(handler()) is None

    run(main)


# -- handlers that suspend: carried on by a Task ------------------------------------------------


def test_coroutine_that_awaits_a_future_continues_in_the_loop(run, impl):
    async def main():
        future = asyncio.get_running_loop().create_future()
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
        assert task in _eager.running_tasks
        if impl == "driven":  # the Task shows the handler, not fastsio's wrapper
            assert "handler" in repr(task)
        future.set_result(21)
        assert await task is None
        assert steps == ["before", "after"]
        assert done.calls == [(42, None)]
        assert task not in _eager.running_tasks

    run(main)


def test_suspending_from_a_callback(run):
    async def main():
        done = Recorder()
        gate = asyncio.get_running_loop().create_future()

        async def handler(x):
            await gate
            return x

        task = await from_callback(_eager.start, handler("cb"), done)
        assert done.calls == []
        gate.set_result(None)
        await task
        assert done.calls == [("cb", None)]

    run(main)


def test_sleep_0_in_the_first_step_pauses_for_one_iteration(run):
    """As in a Task: the handler resumes in the next loop iteration, not two later."""

    async def main():
        steps = []

        async def handler():
            steps.append("a")
            await asyncio.sleep(0)
            steps.append("b")

        task = _eager.start(handler())
        assert steps == ["a"]
        await asyncio.sleep(0)  # one iteration: the handler's Task runs before this resumes
        assert steps == ["a", "b"]
        await task

    run(main)


def test_current_task_and_timeout_after_suspension(run):
    async def main():
        done = Recorder()
        seen = []

        async def handler():
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())
            await asyncio.sleep(0.001)
            seen.append(asyncio.current_task())
            if hasattr(asyncio, "timeout"):
                async with asyncio.timeout(1):
                    await asyncio.sleep(0)
            return "ok"

        task = _eager.start(handler(), done)
        await task
        assert seen == [task, task]
        assert done.calls == [("ok", None)]

    run(main)


def test_current_task_in_the_first_step(run, impl):
    async def main():
        me = asyncio.current_task()
        seen = []

        async def quick():
            seen.append(asyncio.current_task())

        async def slow():
            seen.append(asyncio.current_task())
            await asyncio.sleep(0)
            seen.append(asyncio.current_task())

        assert _eager.start(quick()) is None
        assert asyncio.current_task() is me  # the caller's task is current again
        assert await from_callback(_eager.start, quick()) is None
        task = _eager.start(slow())
        assert asyncio.current_task() is me
        await task
        if impl == "eager_task":  # the handler's own Task, from the start
            quick_task, quick_task_2, slow_task, slow_task_2 = seen
            assert isinstance(quick_task, asyncio.Task) and quick_task.done()
            assert quick_task is not me and quick_task_2 is not quick_task
            assert slow_task is task and slow_task_2 is task
        else:  # no task at all until the first suspension (the caller's is hidden)
            assert seen == [None, None, None, task]

    run(main)


@needs_timeout
def test_timeout_at_the_start_of_a_handler(run, impl):
    """``asyncio.timeout()`` before the first suspension: works with eager Tasks; with the driver
    it raises RuntimeError (there is no task yet), and never binds to the caller's task."""

    async def main():
        me = asyncio.current_task()
        done = Recorder()

        async def handler():
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
            except TimeoutError:
                return "timed out"
            return "not timed out"

        for task in (
            _eager.start(handler(), done),
            await from_callback(_eager.start, handler(), done),
        ):
            if task is not None:
                await task
        await asyncio.sleep(0.03)  # the caller would be cancelled here if the timeout were its
        assert me.cancelling() == 0
        if impl == "eager_task":
            assert done.calls == [("timed out", None), ("timed out", None)]
        else:
            assert [type(exc) for _, exc in done.calls] == [RuntimeError, RuntimeError]
            assert "inside a task" in str(done.calls[0][1])

    run(main)


@needs_timeout
def test_timeout_that_does_not_expire_at_the_start_of_a_handler(run, impl):
    async def main():
        done = Recorder()

        async def no_wait(x):
            return x

        async def handler(suspend):
            async with asyncio.timeout(1):
                if suspend:
                    await asyncio.sleep(0)
                return await no_wait(f"in time, suspended: {suspend}")

        assert _eager.start(handler(False), done) is None
        task = _eager.start(handler(True), done)
        if task is not None:
            await task
        if impl == "eager_task":
            assert done.calls == [
                ("in time, suspended: False", None),
                ("in time, suspended: True", None),
            ]
        else:
            assert [type(exc) for _, exc in done.calls] == [RuntimeError, RuntimeError]

    run(main)


@needs_timeout
def test_task_group_at_the_start_of_a_handler(run, impl):
    async def main():
        done = Recorder()

        async def child(x):
            await asyncio.sleep(0)
            return x

        async def handler():
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(child(i)) for i in range(3)]
            return [t.result() for t in tasks]

        task = _eager.start(handler(), done)
        if task is not None:
            await task
        if impl == "eager_task":
            assert done.calls == [([0, 1, 2], None)]
        else:
            assert isinstance(done.calls[0][1], RuntimeError)

    run(main)


def test_wait_for_at_the_start_of_a_handler(run, impl):
    async def main():
        loop = asyncio.get_running_loop()
        done = Recorder()

        async def handler():
            soon = loop.create_future()
            loop.call_soon(soon.set_result, "slept")
            value = await asyncio.wait_for(soon, 1)
            try:
                await asyncio.wait_for(loop.create_future(), 0.01)
            except asyncio.TimeoutError:
                return value

        task = _eager.start(handler(), done)
        if task is not None:
            await task
        if impl == "driven" and sys.version_info >= (3, 12):
            # wait_for is built on timeout() since 3.12: the driver is not used there for this
            assert isinstance(done.calls[0][1], RuntimeError)
        else:
            assert done.calls == [("slept", None)]

    run(main)


# -- exceptions ---------------------------------------------------------------------------------


def test_exception_before_suspension_goes_to_on_done(run):
    async def main():
        done = Recorder()

        async def handler():
            raise ValueError("boom")

        assert _eager.start(handler(), done) is None
        ((result, exc),) = done.calls
        assert result is None and isinstance(exc, ValueError)

    run(main)


def test_exception_after_suspension_goes_to_on_done_not_into_the_task(run):
    async def main():
        done = Recorder()

        async def handler():
            await asyncio.sleep(0)
            raise KeyError("late")

        task = _eager.start(handler(), done)
        assert await task is None  # the Task itself succeeds: the exception is on_done's
        ((_result, exc),) = done.calls
        assert isinstance(exc, KeyError)

    run(main)


def test_exception_without_on_done_is_logged(run, caplog):
    async def main():
        async def early():
            raise RuntimeError("nobody listens")

        async def late():
            await asyncio.sleep(0)
            raise RuntimeError("late failure")

        with caplog.at_level(logging.ERROR, logger="fastsio"):
            assert _eager.start(early()) is None
            await _eager.start(late())
        assert "nobody listens" in caplog.text
        assert "late failure" in caplog.text

    run(main)


def test_exception_in_on_done_is_logged(run, caplog):
    async def main():
        def on_done(result, exc):
            raise ZeroDivisionError(f"on_done saw {result}")

        async def early():
            return "early"

        async def late():
            await asyncio.sleep(0)
            return "late"

        with caplog.at_level(logging.ERROR, logger="fastsio"):
            assert _eager.start(early(), on_done) is None
            await _eager.start(late(), on_done)
        assert "on_done saw early" in caplog.text
        assert "on_done saw late" in caplog.text

    run(main)


def test_keyboard_interrupt_propagates(run):
    async def main():
        me = asyncio.current_task()
        done = Recorder()

        async def handler():
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            _eager.start(handler(), done)
        assert done.calls == []
        assert asyncio.current_task() is me

    run(main)


# -- cancellation -------------------------------------------------------------------------------


def test_cancellation_reaches_the_coroutine(run):
    async def main():
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
        assert task not in _eager.running_tasks

    run(main)


def test_cancellation_right_after_start(run):
    """Cancelled before the Task had a single step: the handler still gets the CancelledError
    where it waits, and on_done hears of it."""

    async def main():
        loop = asyncio.get_running_loop()
        done = Recorder()
        cleanup = []

        async def handler():
            try:
                await loop.create_future()
            finally:
                cleanup.append("finally")

        task = _eager.start(handler(), done)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleanup == ["finally"]
        assert [type(exc) for _, exc in done.calls] == [asyncio.CancelledError]

    run(main)


def test_cancellation_can_be_caught_by_the_coroutine(run):
    async def main():
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
        assert await task is None
        assert done.calls == [("caught", None)]

    run(main)


def test_handler_cancelling_itself_before_suspending(run):
    async def main():
        done = Recorder()

        async def handler():
            raise asyncio.CancelledError

        assert _eager.start(handler(), done) is None
        assert [type(exc) for _, exc in done.calls] == [asyncio.CancelledError]

    run(main)


# -- context variables --------------------------------------------------------------------------


def test_context_variables_are_isolated_and_kept_across_steps(run):
    async def main():
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
        assert var.get() == "caller"
        assert seen == ["caller", "handler"]

    run(main)


def test_on_done_runs_in_the_handlers_context(run):
    """So what a handler sets reaches what its completion starts (the next connection
    middleware), and nothing else."""

    async def main():
        var.set("caller")
        seen = []

        def on_done(result, exc):
            seen.append((result, var.get()))

        async def quick():
            var.set("quick")
            return 1

        async def slow():
            var.set("slow")
            await asyncio.sleep(0)
            return 2

        _eager.start(quick(), on_done)
        await _eager.start(slow(), on_done)
        assert seen == [(1, "quick"), (2, "slow")]
        assert var.get() == "caller"

    run(main)


# -- call() -------------------------------------------------------------------------------------


def test_call_sync_handler_result_and_exception(run):
    async def main():
        done = Recorder()
        assert _eager.call(lambda a, b: a + b, (1, 2), done) is None
        assert done.calls == [(3, None)]

        def bad():
            raise ValueError("sync")

        _eager.call(bad, (), done)
        assert isinstance(done.calls[-1][1], ValueError)
        _eager.call(lambda: None, (), done)
        assert done.calls[-1] == (None, None)

    run(main)


def test_call_async_handler_and_future_result(run):
    async def main():
        done = Recorder()

        async def handler(x):
            return x + 1

        assert _eager.call(handler, (1,), done) is None
        assert done.calls == [(2, None)]

        future = asyncio.get_running_loop().create_future()
        task = _eager.call(lambda: future, (), done)
        future.set_result("from future")
        await task
        assert done.calls[-1] == ("from future", None)

    run(main)


# -- many at once -------------------------------------------------------------------------------


def test_a_suspended_coroutine_is_driven_to_the_end_in_order(run):
    async def main():
        order = []

        async def worker(name, n):
            for i in range(n):
                order.append((name, i))
                await asyncio.sleep(0)
            return name

        done = Recorder()
        tasks = [_eager.start(worker("a", 3), done), _eager.start(worker("b", 3), done)]
        assert order[:2] == [("a", 0), ("b", 0)]
        await asyncio.gather(*tasks)
        assert sorted(order) == [(n, i) for n in "ab" for i in range(3)]
        assert sorted(done.calls) == [("a", None), ("b", None)]
        assert not running_here()

    run(main)


def test_handler_started_from_another_handlers_completion(run):
    """A chain (connection middlewares): each handler starts the next from its on_done, before
    or after suspending."""

    async def main():
        order = []
        finished = asyncio.get_running_loop().create_future()

        async def step(i):
            order.append((i, asyncio.current_task() is not None))
            if i % 2:
                await asyncio.sleep(0)
            return i

        def next_step(result, exc):
            assert exc is None
            if result < 4:
                _eager.start(step(result + 1), next_step)
            else:
                finished.set_result(order)

        _eager.start(step(0), next_step)
        await finished
        assert [i for i, _ in order] == [0, 1, 2, 3, 4]

    run(main)


# -- through the server (the implementation this Python uses) -----------------------------------


@needs_timeout
async def test_server_handler_using_timeout_before_it_suspends(caplog):
    import fastsio

    from .fakes import FakeEngine

    sio = fastsio.Server()
    engine = FakeEngine(sio)

    @sio.on("double")
    async def double(socket, x):
        async with asyncio.timeout(1):
            return await asyncio.sleep(0, x * 2) if x > 10 else x * 2

    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('21["double",4]')
        if _eager.EAGER_TASKS:
            assert session.take() == ["31[8]"]  # before receive() returned: no loop iteration
            session.receive('22["double",21]')
            await asyncio.sleep(0.01)
            assert session.take() == ["32[42]"]
        else:  # before 3.12: no task before the first suspension
            assert session.take() == []
            assert "Timeout should be used inside a task" in caplog.text


@needs_timeout
async def test_server_disconnect_handler_started_from_a_handler_task(caplog):
    """``socket.disconnect()`` in a handler that has suspended fires the disconnect handlers
    from inside that handler's Task: their timeouts must never bind to (and cancel) it."""
    import fastsio

    from .fakes import FakeEngine

    sio = fastsio.Server()
    engine = FakeEngine(sio)
    outcome = []

    @sio.on("bye")
    async def bye(socket):
        await asyncio.sleep(0)
        socket.disconnect()
        await asyncio.sleep(0.05)  # cancelled here if the timeout below bound to this task
        outcome.append("bye finished")

    @sio.on("disconnect")
    async def on_disconnect(socket, reason):
        try:
            async with asyncio.timeout(0.01):
                await asyncio.get_running_loop().create_future()
        except TimeoutError:
            outcome.append("disconnect handler timed out")

    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('2["bye"]')
        for _ in range(100):
            if "bye finished" in outcome:
                break
            await asyncio.sleep(0.01)
    if _eager.EAGER_TASKS:
        assert outcome == ["disconnect handler timed out", "bye finished"]
    else:
        assert outcome == ["bye finished"]
        assert "Timeout should be used inside a task" in caplog.text
