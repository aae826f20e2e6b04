"""Eager start of async handlers: no asyncio Task per message.

``start(coro, on_done)`` runs the coroutine *now*, in the caller's stack, until it first suspends.
A handler that never waits on anything (most of them: they emit and return) therefore finishes
before ``start`` returns, costs no Task and no loop iteration, and its ack goes out at once. Only a
coroutine that really suspends is handed to the loop, wrapped in a Task that resumes it exactly
where it stopped.

Python >= 3.12 has this machinery built in (``asyncio.Task(..., eager_start=True)``, the engine of
``asyncio.eager_task_factory``), and it also makes ``asyncio.current_task()`` return the new Task
during the first step, which ``asyncio.timeout()`` and (since 3.12) ``asyncio.wait_for()`` need. It
is used there. Older Pythons get the hand-written driver below; on it the first step runs with the
caller's current task (usually none, as handlers run from protocol callbacks), so
``asyncio.timeout()`` before the first suspension raises RuntimeError there; ``wait_for`` works.

Each step runs in a copy of the caller's context (``contextvars``), as a Task's would.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import types
from typing import Any, Callable, Optional

__all__ = ["call", "is_coroutine", "running_tasks", "start"]

logger = logging.getLogger("fastsio")

OnDone = Callable[[Any, Optional[BaseException]], None]

_CoroutineType = types.CoroutineType
_CancelledError = asyncio.CancelledError
_USE_EAGER_TASKS = sys.version_info >= (3, 12)

#: Tasks carrying on suspended handlers. asyncio keeps only weak references to tasks; this set
#: keeps them alive until they finish (and lets the server cancel them when it closes).
running_tasks: set = set()


def is_coroutine(value: Any) -> bool:
    """True for a coroutine object (also a compiled one); fast for the common types."""
    if value is None:
        return False
    if type(value) is _CoroutineType:
        return True
    return asyncio.iscoroutine(value)


def start(coro: Any, on_done: OnDone | None = None) -> asyncio.Task | None:
    """Run ``coro`` until it first suspends, then let the loop carry on with it.

    ``on_done(result, None)`` or ``on_done(None, exception)`` is called when the coroutine ends:
    before ``start`` returns if it never suspended. Returns None then, else the Task that carries
    on (``task.cancel()`` cancels the coroutine; ``on_done`` then gets the CancelledError).
    Exceptions are passed to ``on_done``, or logged when there is none; KeyboardInterrupt and
    SystemExit propagate.
    """
    if _USE_EAGER_TASKS:  # pragma: no cover - depends on the Python version
        return _start_eager_task(coro, on_done)
    ctx = contextvars.copy_context()
    try:
        yielded = ctx.run(coro.send, None)
    except StopIteration as stop:
        _finish(on_done, stop.value, None)
        return None
    except (Exception, _CancelledError) as exc:  # noqa: BLE001 - reported to on_done
        _finish(on_done, None, exc)
        return None
    task = asyncio.get_running_loop().create_task(_carry_on(coro, yielded, ctx, on_done))
    running_tasks.add(task)
    task.add_done_callback(running_tasks.discard)
    return task


def call(handler: Callable, args: tuple, on_done: OnDone | None = None) -> asyncio.Task | None:
    """Call a sync or async handler with ``args``; ``on_done`` as for :func:`start`.

    A sync handler's return value (or exception) goes to ``on_done`` before ``call`` returns; a
    coroutine it returns is started eagerly; a Future it returns is waited for.
    """
    try:
        result = handler(*args)
    except Exception as exc:  # noqa: BLE001 - reported to on_done
        _finish(on_done, None, exc)
        return None
    if result is None:
        if on_done is not None:
            _finish(on_done, None, None)
        return None
    if is_coroutine(result):
        return start(result, on_done)
    if asyncio.isfuture(result):
        return start(_wait_future(result), on_done)
    if on_done is not None:
        _finish(on_done, result, None)
    return None


async def _wait_future(future: Any) -> Any:
    return await future


def _finish(on_done: OnDone | None, result: Any, exc: BaseException | None) -> None:
    if on_done is None:
        if exc is not None and not isinstance(exc, _CancelledError):
            logger.error("exception in handler", exc_info=exc)
        return
    try:
        on_done(result, exc)
    except Exception:
        logger.exception("exception in a handler's completion callback")


@types.coroutine
def _delegate(coro: Any, yielded: Any, ctx: contextvars.Context) -> Any:
    """``yield from`` for a coroutine that has already been started: pass what it yielded up to
    the Task, and what the Task sends or throws back down, each step in the coroutine's context."""
    run = ctx.run
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - thrown into the coroutine, as yield from does
            try:
                yielded = run(coro.throw, exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = run(coro.send, sent)
            except StopIteration as stop:
                return stop.value


async def _carry_on(coro: Any, yielded: Any, ctx: contextvars.Context, on_done: OnDone | None):
    try:
        result = await _delegate(coro, yielded, ctx)
    except _CancelledError as exc:
        _finish(on_done, None, exc)
        raise
    except Exception as exc:  # noqa: BLE001 - reported to on_done
        _finish(on_done, None, exc)
    else:
        _finish(on_done, result, None)


def _start_eager_task(coro: Any, on_done: OnDone | None) -> asyncio.Task | None:  # pragma: no cover
    loop = asyncio.get_running_loop()
    task = asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    if task.done():
        _report_task(on_done, task)
        return None
    running_tasks.add(task)

    def done(finished: asyncio.Task) -> None:
        running_tasks.discard(finished)
        _report_task(on_done, finished)

    task.add_done_callback(done)
    return task


def _report_task(on_done: OnDone | None, task: asyncio.Task) -> None:  # pragma: no cover
    if task.cancelled():
        try:
            task.result()
        except _CancelledError as exc:
            _finish(on_done, None, exc)
        return
    exc = task.exception()
    if exc is not None:
        _finish(on_done, None, exc)
    else:
        _finish(on_done, task.result(), None)
