"""Eager start of async handlers: no asyncio Task per message.

``start(coro, on_done)`` runs the coroutine *now*, in the caller's stack, until it first suspends.
A handler that never waits on anything (most of them: they emit and return) therefore finishes
before ``start`` returns, costs no loop iteration, and its ack goes out at once. Only a coroutine
that really suspends is left to the loop, in a Task that resumes it exactly where it stopped.

Two implementations, the same contract (``tests/test_socketio_eager.py`` runs both where both
exist):

- Python >= 3.12: ``asyncio.Task(..., eager_start=True)``, the engine of
  ``asyncio.eager_task_factory`` (:func:`_start_eager_task`). The Task exists from the first step
  on, so ``asyncio.current_task()`` is the handler's own Task throughout, and ``asyncio.timeout()``,
  ``asyncio.TaskGroup`` and (since 3.12 built on timeout) ``asyncio.wait_for()`` work anywhere in
  the handler. A Task that finishes during its first step is never scheduled.
- Older Pythons: a hand-written driver (:func:`_start_driven`). There a C Task cannot be created
  without scheduling its first step, which is the cost this module exists to avoid, so the first
  step runs with *no* current task: ``asyncio.current_task()`` is None there and
  ``asyncio.timeout()`` / ``TaskGroup`` raise RuntimeError until the handler first suspends (an
  ``await asyncio.sleep(0)`` at its top is the workaround; ``wait_for`` works everywhere). The
  caller's own task, when ``start`` is called from one (``await socket.disconnect()`` in a handler
  fires the disconnect handlers), is hidden during that step, so that a timeout or TaskGroup can
  never bind to it and cancel the wrong task. After the first suspension the handler runs in the
  Task that ``start`` returned, and all of asyncio works as usual.

Either way the handler runs in a copy of the caller's context (``contextvars``), as a Task does,
and ``on_done`` runs in the handler's context at its end (so a value a connection middleware sets
is seen by the next middleware and the connection handler, which it starts).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

from . import _arguments

__all__ = [
    "call",
    "call_failed",
    "finish_tasks",
    "is_coroutine",
    "running_tasks",
    "settle",
    "start",
]

logger = logging.getLogger("fastsio")

OnDone = Callable[[Any, BaseException | None], None]

_CoroutineType = types.CoroutineType
_CancelledError = asyncio.CancelledError
_copy_context = contextvars.copy_context
_get_running_loop = asyncio.get_running_loop
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_DONE = object()  # what the driver's first step returns when the coroutine did not suspend

#: ``asyncio.Task(..., eager_start=True)`` exists (3.12+)
EAGER_TASKS = sys.version_info >= (3, 12)

_current_task = asyncio.current_task
if EAGER_TASKS:  # built in and cheap since 3.12: always ask (the driver is only tested there)
    _current_tasks: Any = True
else:
    #: loop -> the task it runs now: empty while no task runs, as when the protocol calls
    #: handlers. The driver looks at it first, as asking for the running loop costs a getpid()
    #: call before 3.12.
    _current_tasks = asyncio.tasks._current_tasks  # type: ignore[attr-defined]

#: Tasks carrying on suspended handlers, each with its ``on_done``. asyncio keeps only weak
#: references to tasks; this keeps them alive until they finish, and lets a server find its own
#: when it closes (:func:`finish_tasks`): an ``on_done`` with a ``server`` attribute names it.
running_tasks: dict = {}
_forget = running_tasks.pop


def _discard(task: asyncio.Task) -> None:
    _forget(task, None)


def is_coroutine(value: Any) -> bool:
    """True for a coroutine object (also a compiled one); fast for the common types."""
    if value is None:
        return False
    if type(value) is _CoroutineType:
        return True
    return asyncio.iscoroutine(value)


def call(handler: Callable, args: tuple, on_done: OnDone | None = None) -> asyncio.Task | None:
    """Call a sync or async handler with ``args``; ``on_done`` as for :func:`start`.

    A sync handler's return value (or exception) goes to ``on_done`` before ``call`` returns; a
    coroutine it returns is started eagerly; a Future it returns is waited for.
    """
    try:
        result = handler(*args)
    except Exception as exc:  # noqa: BLE001 - reported to on_done
        return call_failed(handler, args, exc, on_done)
    return settle(result, on_done)


def call_failed(
    handler: Callable, args: tuple, exc: Exception, on_done: OnDone | None
) -> asyncio.Task | None:
    """``handler(*args)`` raised ``exc`` (caught in the caller's own frame): if it was called
    with more arguments than it takes, call it again with those it takes, as JavaScript would;
    else ``on_done`` gets ``exc`` (a :class:`~fastsio._arguments.HandlerArgumentsError` when it
    was given too few). See :mod:`fastsio._arguments`."""
    try:
        fitted = _arguments.fit(handler, args, exc)
    except _arguments.HandlerArgumentsError as mismatch:
        _finish(on_done, None, mismatch)
        return None
    if fitted is None:
        _finish(on_done, None, exc)
        return None
    return call(handler, fitted, on_done)


def settle(result: Any, on_done: OnDone | None) -> asyncio.Task | None:
    """The second half of :func:`call`, for a caller that called the handler itself: ``result``
    is what it returned (a value, a coroutine to start eagerly, or a Future to wait for)."""
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


# --------------------------------------------------------------------------- Python >= 3.12


def _start_eager_task(coro: Any, on_done: OnDone | None = None) -> asyncio.Task | None:
    """:func:`start` on ``asyncio.Task(..., eager_start=True)`` (Python >= 3.12)."""
    # loop= is needed: 3.12.1 fails an eager start without it (AttributeError on None.is_running)
    task = asyncio.Task(_run(coro, on_done), loop=_get_running_loop(), eager_start=True)
    if task.done():  # finished in its first step: never scheduled, nothing left to keep
        return None
    running_tasks[task] = on_done
    task.add_done_callback(_discard)
    return task


async def _run(coro: Any, on_done: OnDone | None) -> None:
    """The eager Task's coroutine: the handler, then ``on_done``. Only a cancellation ends the
    Task with an exception, so awaiting it behaves as the driver's Task does."""
    try:
        result = await coro
    except _CancelledError as exc:
        _finish(on_done, None, exc)
        raise
    except Exception as exc:  # noqa: BLE001 - reported to on_done
        _finish(on_done, None, exc)
    else:
        if on_done is not None:
            _finish(on_done, result, None)


# --------------------------------------------------------------------------- Python < 3.12


def _start_driven(coro: Any, on_done: OnDone | None = None) -> asyncio.Task | None:
    """:func:`start` driving the coroutine's first step by hand (any Python; used before 3.12)."""
    ctx = _copy_context()
    caller = _current_task() if _current_tasks else None
    if caller is None:  # the usual case: called from a protocol callback
        yielded = ctx.run(_first_step, coro, on_done)
    else:  # hide the caller's task: a timeout or TaskGroup must not bind to it
        loop = caller.get_loop()
        _leave_task(loop, caller)
        try:
            yielded = ctx.run(_first_step, coro, on_done)
        finally:
            _enter_task(loop, caller)
    if yielded is _DONE:
        return None
    carry_on: Any = _CarryOn(coro, yielded, ctx, on_done)
    task = _get_running_loop().create_task(carry_on)
    running_tasks[task] = on_done
    task.add_done_callback(_discard)
    return task


def _first_step(coro: Any, on_done: OnDone | None) -> Any:
    """Run in the handler's context: the coroutine's first step, and ``on_done`` if that was
    also its last. Returns what the coroutine yielded, or ``_DONE``."""
    try:
        return coro.send(None)
    except StopIteration as stop:
        if on_done is not None:
            _finish(on_done, stop.value, None)
    except (Exception, _CancelledError) as exc:  # noqa: BLE001 - reported to on_done
        _finish(on_done, None, exc)
    return _DONE


class _CarryOn:
    """The coroutine of the Task that carries on a suspended handler: hands the Task what the
    handler yielded in its first step, then passes each ``send``/``throw`` down to it, in its
    context, and calls ``on_done`` at its end. Unlike an ``async def`` wrapper it also delivers a
    cancellation that comes before the Task's first step (``task.cancel()`` right after
    :func:`start`) to the handler, and ``on_done`` hears of it."""

    __slots__ = ("coro", "ctx", "on_done", "pending")

    def __init__(self, coro: Any, yielded: Any, ctx: contextvars.Context, on_done: Any) -> None:
        self.coro = coro
        self.pending = yielded
        self.ctx = ctx
        self.on_done = on_done

    def send(self, value: Any) -> Any:
        pending = self.pending
        if pending is not _DONE:  # the Task's first step: hand up what start()'s step yielded
            self.pending = _DONE
            if pending is not None:
                return pending
            # None (a bare yield: asyncio.sleep(0)) asks for one loop iteration's pause, and this
            # step already comes an iteration later: resume at once rather than pause again
        try:
            return self.ctx.run(self.coro.send, value)
        except StopIteration as stop:
            self._end(stop.value, None)
        except (Exception, _CancelledError) as exc:  # noqa: BLE001 - reported to on_done
            self._end(None, exc)
        raise StopIteration

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self.pending = _DONE
        args = (typ,) if val is None and tb is None else (typ, val, tb)
        try:
            return self.ctx.run(self.coro.throw, *args)
        except StopIteration as stop:
            self._end(stop.value, None)
        except (Exception, _CancelledError) as exc:  # noqa: BLE001 - reported to on_done
            self._end(None, exc)
        raise StopIteration

    def close(self) -> None:
        self.pending = _DONE
        self.coro.close()

    def _end(self, result: Any, exc: BaseException | None) -> None:
        """The handler is over: ``on_done`` in its context; a cancellation goes on to the Task."""
        if self.on_done is not None or exc is not None:
            self.ctx.run(_finish, self.on_done, result, exc)
        if isinstance(exc, _CancelledError):
            raise exc

    def __getattr__(self, name: str) -> Any:  # cr_code, __qualname__ ...: asyncio's Task repr
        return getattr(self.coro, name)


collections.abc.Coroutine.register(_CarryOn)  # what asyncio.Task accepts


#: ``start(coro, on_done=None) -> Task | None``: run ``coro`` until it first suspends, then let the
#: loop carry on with it. ``on_done(result, None)`` or ``on_done(None, exception)`` is called when
#: the coroutine ends: before ``start`` returns if it never suspended, and ``start`` returns None
#: then; else it returns the Task that carries on. ``task.cancel()`` cancels the coroutine:
#: ``on_done`` gets the CancelledError, and awaiting the Task raises it; any other exception goes
#: to ``on_done`` (or is logged when there is none), never into the Task. KeyboardInterrupt and
#: SystemExit propagate.
start = _start_eager_task if EAGER_TASKS else _start_driven


# --------------------------------------------------------------------------- shutting down


def _tasks_of(owner: Any) -> list:
    """The running handler tasks of ``owner``: those whose ``on_done`` names it as its
    ``server`` (tasks of other servers, or of no server, are left alone). Never the calling task
    (a handler may close the server)."""
    current = _current_task()
    return [
        task
        for task, on_done in list(running_tasks.items())
        if task is not current and not task.done() and getattr(on_done, "server", None) is owner
    ]


def describe(task: asyncio.Task) -> str:
    """The handler a task carries on: its qualified name, and the event when known."""
    coro: Any = task.get_coro()
    inner = getattr(coro, "coro", None)  # the driver's _CarryOn
    if inner is None:
        frame = getattr(coro, "cr_frame", None)  # the eager Task's _run(coro, on_done)
        inner = frame.f_locals.get("coro") if frame is not None else None
    name = getattr(inner, "__qualname__", None) or repr(inner if inner is not None else coro)
    event = getattr(running_tasks.get(task), "event", None)
    return f"{name} (event {event!r})" if event is not None else name


async def finish_tasks(owner: Any, timeout: float, log: logging.Logger) -> list:
    """Wait up to ``timeout`` seconds for the running handler tasks of ``owner`` (a Server; see
    :func:`_tasks_of`), also those they start meanwhile; then cancel those still running, log
    them, and give them a second to end. Returns the cancelled tasks."""
    loop = _get_running_loop()
    deadline = loop.time() + timeout
    tasks = _tasks_of(owner)
    while tasks:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait(tasks, timeout=remaining)
        tasks = _tasks_of(owner)
    if not tasks:
        return []
    names = [describe(task) for task in tasks]
    for task in tasks:
        task.cancel()
    log.warning(
        "closing: cancelled %d handler(s) still running after %gs: %s",
        len(tasks),
        timeout,
        ", ".join(names),
    )
    await asyncio.wait(tasks, timeout=1.0)
    return tasks
