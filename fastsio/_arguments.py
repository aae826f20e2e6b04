"""Fitting what a client sent to a handler's signature, as JavaScript does.

A JavaScript listener ignores arguments it does not declare, and socket.io-client users routinely
send more than a handler takes; Node's server never fails for it. fastsio does the same without
looking at a single message that fits: the handler is called with everything the client sent,
and only when that call fails *at the binding* (a ``TypeError`` raised before the handler's own
frame exists) does :func:`fit` look at the signature, read once per handler at registration
(:func:`remember`) and kept in a weak cache:

- too many arguments: the call is made again with the leading ones the handler takes;
- too few: :class:`HandlerArgumentsError`, which the caller logs with the event and namespace.

So a handler that matches what it is sent costs nothing more; one sent extra arguments pays for a
raised and caught ``TypeError`` per call (about a microsecond).

`register_handler` refuses at registration a ``"connection"`` / ``"disconnect"`` handler that
can never be called (python-socketio's ``connect(sid, environ, auth)``), naming fastsio's way.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable

__all__ = ["HandlerArgumentsError", "fit", "python_socketio_hint", "register_handler", "remember"]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class HandlerArgumentsError(TypeError):
    """A handler was called with fewer arguments than it requires (the client sent too few)."""

    def __init__(self, handler: Callable, required: int, given: int) -> None:
        self.handler_name = _name(handler)
        self.required = required
        self.given = given
        super().__init__(
            f"{self.handler_name}{_signature_text(handler)} needs {required} positional"
            f" argument(s) but was called with {given}"
        )


class _Limits:
    """How many positional arguments a handler requires, and takes at most (None: any)."""

    __slots__ = ("maximum", "required")

    def __init__(self, required: int, maximum: int | None) -> None:
        self.required = required
        self.maximum = maximum


_NO_SIGNATURE = _Limits(0, None)  # builtins without one: nothing to fit
_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _limits_of(handler: Callable) -> _Limits:
    try:
        # the callable's own signature, not a wrapped function's: a decorator taking *args
        # accepts anything itself, and the binding error would then come from inside it
        signature = inspect.signature(handler, follow_wrapped=False)
    except (TypeError, ValueError):
        return _NO_SIGNATURE
    required = 0
    maximum: int | None = 0
    for parameter in signature.parameters.values():
        if parameter.kind in _POSITIONAL:
            maximum = (maximum or 0) + 1
            if parameter.default is parameter.empty:
                required += 1
        elif parameter.kind == parameter.VAR_POSITIONAL:
            maximum = None
            break
    return _Limits(required, maximum)


def limits(handler: Callable) -> _Limits:
    """The handler's limits, from the cache (filled at registration) or read now."""
    try:
        found = _cache.get(handler)
    except TypeError:  # not hashable
        return _limits_of(handler)
    if found is None:
        found = remember(handler)
    return found


def remember(handler: Callable) -> _Limits:
    """Read ``handler``'s signature once (at registration) for :func:`fit`."""
    found = _limits_of(handler)
    try:
        _cache[handler] = found
    except TypeError:  # not weakly referable (a __slots__ object): read again when needed
        pass
    return found


def fit(handler: Callable, args: tuple, exc: BaseException) -> tuple | None:
    """After ``handler(*args)`` raised ``exc``: the arguments to call it with again (the leading
    ones it takes), or None when ``exc`` is not a binding error that dropping arguments cures.
    Raises :class:`HandlerArgumentsError` when the handler requires more than ``args``."""
    if type(exc) is not TypeError:
        return None
    traceback = exc.__traceback__
    if traceback is None or traceback.tb_next is not None:
        return None  # raised inside the handler (its frame is in the traceback), not at the call
    found = limits(handler)
    given = len(args)
    if found.maximum is not None and given > found.maximum:
        return args[: found.maximum]
    if given < found.required:
        raise HandlerArgumentsError(handler, found.required, given) from None
    return None


# -- registration-time checks ------------------------------------------------------------------

#: lifecycle events and the arguments fastsio calls their handlers with
_LIFECYCLE = {
    "connection": ("socket",),
    "disconnecting": ("socket", "reason"),
    "disconnect": ("socket", "reason"),
}


def register_handler(event: str, handler: Callable) -> None:
    """A namespace handler is registered for ``event``: read its signature (:func:`remember`),
    and refuse a lifecycle handler that requires more than it will be given."""
    found = remember(handler)
    given = _LIFECYCLE.get(event)
    if given is None or found.required <= len(given):
        return
    called = f"handler({', '.join(given)})"
    hint = ""
    if event == "connection":
        hint = (
            " python-socketio's connect(sid, environ, auth) is connect(socket) here: the"
            " environ's headers and query are socket.handshake.headers / .query, auth is"
            " socket.handshake.auth, and a refusal is raise fastsio.ConnectionRefused(...)"
            " (or a middleware: @sio.use)."
        )
    raise TypeError(
        f"{_name(handler)}{_signature_text(handler)} requires {found.required} arguments, but a"
        f" {event!r} handler is called {called}.{hint}"
    )


def _name(handler: Callable) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__name__


def _signature_text(handler: Callable) -> str:
    try:
        return str(inspect.signature(handler, follow_wrapped=False))
    except (TypeError, ValueError):
        return "(...)"


def python_socketio_hint(exc: BaseException) -> str:
    """A hint for an exception a python-socketio habit causes in a handler ("" if none)."""
    if isinstance(exc, TypeError) and "can't be used in 'await' expression" in str(exc):
        return (
            " (emit() is not a coroutine in fastsio: it queues the packet and returns at once;"
            " drop the await. To wait for the client's answer: await"
            " socket.timeout(5).emit_with_ack(...))"
        )
    return ""
