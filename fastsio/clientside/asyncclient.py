"""``fastsio.AsyncClient``: a Socket.IO v5 client with socket.io-client's API and behaviour, in
Python spelling.

Node's ``io(url, opts)`` returns a Socket (one namespace) on a Manager (the Engine.IO connection,
reconnection); here ``AsyncClient(url, ...)`` is the Socket of the URL's namespace and owns the
Manager (``client.io``); ``client.of("/admin")`` is another namespace's Socket on the same
connection. The codecs are fastsio's own (compiled when built), through ``fastsio._impl``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

from ..exceptions import AckTimeoutError, DisconnectedError, FastSIOError
from ..parser import encoder_of, resolve_parser
from ..protocol.errors import ProtocolError
from ._transport import TransportError, Url
from .engine import EIO3_MESSAGE, EngineClient

__all__ = ["AsyncClient", "Backoff", "ClientSocket", "ConnectError", "Manager"]

logger = logging.getLogger("fastsio.client")

CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)

#: events a client may not emit (socket.io-client throws for them too)
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)

#: disconnect reasons after which the Manager does not reconnect by itself
_NO_RECONNECT = ("io server disconnect", "io client disconnect", "forced close")


class ConnectError(FastSIOError, ConnectionError):
    """A connection (or a namespace) could not be established.

    ``message`` and ``data`` are those of the server's refusal (Node's ``next(err)`` with
    ``err.data``; fastsio's ``ConnectionRefused(message, data=...)``), as socket.io-client's
    ``connect_error`` gives them. For a transport failure (server unreachable, TLS error, a
    refused handshake) ``message`` says what failed and ``description`` holds the cause."""

    def __init__(self, message: str, data: Any = None, description: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        self.description = description


def _connect_error(exc: BaseException) -> ConnectError:
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, TransportError):
        return ConnectError(exc.message, description=exc.description)
    if isinstance(exc, asyncio.TimeoutError):
        return ConnectError("timeout", description=exc)
    return ConnectError(str(exc) or type(exc).__name__, description=exc)


class Backoff:
    """socket.io-client's exponential backoff with jitter (seconds here): attempt n waits
    ``min(delay * 2**n, delay_max)`` randomised by +-``jitter`` of itself."""

    def __init__(
        self, delay: float = 1.0, delay_max: float = 5.0, jitter: float = 0.5, factor: float = 2
    ) -> None:
        self.delay = delay
        self.delay_max = delay_max
        self.jitter = jitter if 0 < jitter <= 1 else 0
        self.factor = factor
        self.attempts = 0

    def duration(self) -> float:
        ms = self.delay * 1000 * self.factor ** min(self.attempts, 64)
        self.attempts += 1
        if self.jitter:
            rand = random.random()
            deviation = math.floor(rand * self.jitter * ms)
            ms = ms - deviation if (math.floor(rand * 10) & 1) == 0 else ms + deviation
        return int(min(ms, self.delay_max * 1000)) / 1000

    def reset(self) -> None:
        self.attempts = 0


# ------------------------------------------------------------------------------------ handlers


class _Emitter:
    """Named handlers (several per event, in order), as an EventEmitter."""

    def _init_handlers(self) -> None:
        self._handlers: dict[str, list] = {}

    def on(self, event: str, handler: Callable | None = None) -> Any:
        """Register ``handler`` for ``event``; without a handler, a decorator."""

        def register(handler: Callable) -> Callable:
            self._handlers.setdefault(event, []).append(handler)
            return handler

        return register if handler is None else register(handler)

    def once(self, event: str, handler: Callable | None = None) -> Any:
        """``on``, for the next ``event`` only."""

        def register(handler: Callable) -> Callable:
            def wrapper(*args: Any) -> Any:
                self.off(event, wrapper)
                return handler(*args)

            wrapper.__wrapped__ = handler  # type: ignore[attr-defined]
            self._handlers.setdefault(event, []).append(wrapper)
            return handler

        return register if handler is None else register(handler)

    def off(self, event: str | None = None, handler: Callable | None = None) -> None:
        """Remove ``handler`` from ``event``; every handler of ``event`` without one; every
        handler without arguments."""
        if event is None:
            self._handlers.clear()
            return
        if handler is None:
            self._handlers.pop(event, None)
            return
        handlers = self._handlers.get(event)
        if handlers:
            for i, h in enumerate(handlers):
                if h is handler or getattr(h, "__wrapped__", None) is handler:
                    del handlers[i]
                    break
            if not handlers:
                del self._handlers[event]

    def listeners(self, event: str) -> list:
        return list(self._handlers.get(event, ()))

    def _emit_reserved(self, event: str, *args: Any) -> None:
        handlers = self._handlers.get(event)
        if handlers:
            for handler in tuple(handlers):
                self._run(handler, args)

    def _run(self, handler: Callable, args: Any) -> Any:
        """Call a handler; an async one runs in a task. Exceptions are logged."""
        try:
            result = handler(*args)
        except Exception:
            logger.exception("exception in handler %r", handler)
            return None
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(result)
            _tasks.add(task)
            task.add_done_callback(_task_done)
            return None
        return result


_tasks: set = set()


def _task_done(task: asyncio.Task) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        logger.error("exception in handler", exc_info=(type(exc), exc, exc.__traceback__))


def _ack_args(result: Any) -> list:
    if result is None:
        return []
    if type(result) is tuple:
        return list(result)
    return [result]


def _ack_value(args: list) -> Any:
    if not args:
        return None
    if len(args) == 1:
        return args[0]
    return tuple(args)


class _PendingAck:
    __slots__ = ("callback", "future", "timer", "with_error")

    def __init__(
        self, callback: Callable | None, future: asyncio.Future | None, with_error: bool
    ) -> None:
        self.callback = callback
        self.future = future
        self.with_error = with_error
        self.timer: Any = None

    def on_ack(self, args: list) -> None:
        if self.timer is not None:
            self.timer.cancel()
        future = self.future
        if future is not None:
            if not future.done():
                future.set_result(_ack_value(args))
            return
        if self.with_error:
            _run_callback(self.callback, (None, *args))
        else:
            _run_callback(self.callback, args)

    def on_fail(self, exc: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        future = self.future
        if future is not None:
            if not future.done():
                future.set_exception(exc)
            return
        if self.with_error:  # a plain callback is dropped, as socket.io-client does
            _run_callback(self.callback, (exc,))


def _run_callback(callback: Any, args: Any) -> None:
    try:
        result = callback(*args)
    except Exception:
        logger.exception("exception in ack callback")
        return
    if asyncio.iscoroutine(result):
        task = asyncio.get_running_loop().create_task(result)
        _tasks.add(task)
        task.add_done_callback(_task_done)


# -------------------------------------------------------------------------------------- Socket


class ClientSocket(_Emitter):
    """One namespace of a connection: socket.io-client's ``Socket``.

    ``on(event)`` handlers are called ``handler(*args)`` (sync or ``async def``); when the server
    asked for an acknowledgement, the first handler's return value is it (a tuple for several
    arguments). Reserved events: ``"connect"`` ``()``, ``"connect_error"`` ``(ConnectError)``,
    ``"disconnect"`` ``(reason)``.
    """

    def __init__(self, manager: Manager, nsp: str, auth: Any = None) -> None:
        self._init_handlers()
        #: the Manager: the connection under this socket, shared by its namespaces (Node's
        #: ``socket.io``); its events: ``client.io.on("reconnect", ...)``
        self.io = manager
        #: the namespace's name, e.g. ``"/"`` or ``"/admin"``
        self.nsp = nsp
        #: the ``auth`` payload sent with each CONNECT (a dict, or a callable returning one)
        self.auth = auth
        #: the socket's id given by the server while connected (per namespace), else None
        self.id: str | None = None
        #: True between "connect" and "disconnect"
        self.connected = False
        #: True when the last connection restored the previous session (connection state
        #: recovery on the server): same id, missed events delivered
        self.recovered = False
        #: wants to be connected (it reconnects with the Manager)
        self.active = False
        self.send_buffer: list = []  # (data, ack_id) emitted while not connected
        self.receive_buffer: list = []
        self._any: list = []
        self._any_outgoing: list = []
        self._acks: dict[int, _PendingAck] = {}
        self._ack_id = 0
        self._pid: str | None = None
        self._last_offset: str | None = None
        self._waiter: asyncio.Future | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "active" if self.active else "inactive"
        return f"<{type(self).__name__} {self.nsp} id={self.id} {state}>"

    @property
    def sid(self) -> str | None:
        """``id`` (python-socketio's name)."""
        return self.id

    @property
    def disconnected(self) -> bool:
        """``not connected``."""
        return not self.connected

    # -- catch-all listeners

    def on_any(self, handler: Callable) -> Callable:
        """``handler(event, *args)`` for every event received (Node's ``onAny``)."""
        self._any.append(handler)
        return handler

    def prepend_any(self, handler: Callable) -> Callable:
        """``on_any``, called before the catch-all listeners already added (Node's
        ``prependAny``)."""
        self._any.insert(0, handler)
        return handler

    def off_any(self, handler: Callable | None = None) -> None:
        """Remove a catch-all listener (every one without ``handler``; Node's ``offAny``)."""
        if handler is None:
            self._any.clear()
        elif handler in self._any:
            self._any.remove(handler)

    def on_any_outgoing(self, handler: Callable) -> Callable:
        """``handler(event, *args)`` for every event sent (Node's ``onAnyOutgoing``)."""
        self._any_outgoing.append(handler)
        return handler

    def off_any_outgoing(self, handler: Callable | None = None) -> None:
        """Remove an outgoing catch-all listener (every one without ``handler``)."""
        if handler is None:
            self._any_outgoing.clear()
        elif handler in self._any_outgoing:
            self._any_outgoing.remove(handler)

    # -- emitting

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> ClientSocket:
        """Send an event; returns at once (not a coroutine). While not connected it waits in
        ``send_buffer`` and leaves on (re)connection. ``ack(*args)`` is called with the server's
        acknowledgement."""
        if ack is None and self.connected and not self._any_outgoing:
            if type(event) is not str or event in RESERVED_EVENTS:
                _check_event(event)
            manager = self.io
            parts = manager.encode(EVENT, self.nsp, [event, *args], None)
            engine = manager.engine
            engine.send(parts[0])
            if len(parts) > 1:
                for part in parts[1:]:
                    engine.send(part)
            return self
        _check_event(event)
        self._emit([event, *args], ack, None, False)
        return self

    def send(self, *args: Any, ack: Callable | None = None) -> ClientSocket:
        """``emit("message", *args)``."""
        self._emit(["message", *args], ack, None, False)
        return self

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the server's acknowledgement: its argument (None for none, a tuple
        for several). ``fastsio.AckTimeoutError`` after ``timeout`` seconds (default: the client's
        ``ack_timeout``, None: no limit); ``fastsio.DisconnectedError`` if the socket disconnects
        before the packet was sent or answered."""
        _check_event(event)
        return await self._emit_with_ack([event, *args], timeout, False)

    call = emit_with_ack

    def timeout(self, seconds: float) -> _SocketEmitter:
        """The next emit waits at most ``seconds`` for its ack: ``emit_with_ack`` raises
        AckTimeoutError; an ``ack`` callback gets ``(err, *args)`` (``err`` None or an
        AckTimeoutError)."""
        return _SocketEmitter(self, seconds, False)

    @property
    def volatile(self) -> _SocketEmitter:
        """The next emit is dropped if it cannot be sent now (not connected, or the transport
        not writable) instead of waiting in the send buffer."""
        return _SocketEmitter(self, None, True)

    def compress(self, compress: bool = True) -> ClientSocket:
        """Accepted for compatibility; per-message compression is not used."""
        return self

    def _register_ack(self, pending: _PendingAck, timeout: float | None) -> int:
        ack_id = self._ack_id
        self._ack_id += 1
        self._acks[ack_id] = pending
        if timeout is not None:
            pending.timer = asyncio.get_running_loop().call_later(
                timeout, self._ack_timed_out, ack_id
            )
        return ack_id

    def _ack_timed_out(self, ack_id: int) -> None:
        pending = self._acks.pop(ack_id, None)
        if pending is None:
            return
        pending.timer = None
        # a packet still in the send buffer is not sent any more (as socket.io-client)
        self.send_buffer = [p for p in self.send_buffer if p[1] != ack_id]
        pending.on_fail(AckTimeoutError())

    def _emit(
        self, data: list, ack: Callable | None, timeout: float | None, volatile: bool
    ) -> None:
        if timeout is None:
            timeout = self.io.ack_timeout if ack is not None else None
        ack_id = None
        if ack is not None:
            ack_id = self._register_ack(_PendingAck(ack, None, timeout is not None), timeout)
        self._send_or_buffer(data, ack_id, volatile)

    async def _emit_with_ack(self, data: list, timeout: float | None, volatile: bool) -> Any:
        if timeout is None:
            timeout = self.io.ack_timeout
        future = asyncio.get_running_loop().create_future()
        ack_id = self._register_ack(_PendingAck(None, future, True), timeout)
        self._send_or_buffer(data, ack_id, volatile)
        try:
            return await future
        finally:
            pending = self._acks.pop(ack_id, None)
            if pending is not None and pending.timer is not None:
                pending.timer.cancel()

    def _send_or_buffer(self, data: list, ack_id: int | None, volatile: bool) -> None:
        engine = self.io.engine
        if volatile and not (self.connected and engine is not None and engine.writable):
            return  # dropped
        if self.connected:
            self._send_event(data, ack_id)
        else:
            self.send_buffer.append((data, ack_id))

    def _send_event(self, data: list, ack_id: int | None) -> None:
        if self._any_outgoing:
            for handler in tuple(self._any_outgoing):
                self._run(handler, data)
        manager = self.io
        for part in manager.encode(EVENT, self.nsp, data, ack_id):
            manager.engine.send(part)

    def _send_packet(self, packet_type: int, data: Any = None, ack_id: int | None = None) -> None:
        manager = self.io
        engine = manager.engine
        if engine is None:
            return
        for part in manager.encode(packet_type, self.nsp, data, ack_id):
            engine.send(part)

    # -- connecting

    def connect(self) -> asyncio.Future:
        """Connect this namespace (opening the connection if needed); returns at once. The
        returned future (await it, or not) is done once connected, or raises ConnectError."""
        if self.connected:
            future = asyncio.get_running_loop().create_future()
            future.set_result(None)
            return future
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            waiter.add_done_callback(_retrieve)
        if not self.active:
            self.active = True
            manager = self.io
            if manager.state == "open":
                self._on_open()
            elif manager.state == "closed" and not manager.reconnecting:
                manager.open()
        return waiter

    open = connect

    def _on_open(self) -> None:
        """The connection is open: send CONNECT (with the recovery fields when the server gave a
        pid, as socket.io-client 4.6+)."""
        auth = self.auth
        if callable(auth):
            try:
                auth = auth()
            except Exception as exc:  # noqa: BLE001 - reported as the connect error
                self._on_connect_error(ConnectError(f"auth callable failed: {exc!r}"))
                return
            if asyncio.iscoroutine(auth) or isinstance(auth, asyncio.Future):
                task = asyncio.get_running_loop().create_task(self._send_connect_later(auth))
                _tasks.add(task)
                task.add_done_callback(_task_done)
                return
        self._send_connect(auth)

    async def _send_connect_later(self, awaitable: Any) -> None:
        try:
            auth = await awaitable
        except Exception as exc:  # noqa: BLE001 - reported as the connect error
            self._on_connect_error(ConnectError(f"auth callable failed: {exc!r}"))
            return
        if self.active and self.io.state == "open":
            self._send_connect(auth)

    def _send_connect(self, auth: Any) -> None:
        if auth is not None and not isinstance(auth, dict):
            raise TypeError(f"auth must be a dict (or a callable returning one), not {auth!r}")
        if self._pid is not None:
            data = {"pid": self._pid, "offset": self._last_offset}
            if auth:
                data.update(auth)
        else:
            data = auth or None
        self._send_packet(CONNECT, data)

    def _on_connected(self, data: Any) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            # socket.io 2.x servers answer "40" with no sid (protocol v4)
            self.io._fatal(ConnectError(EIO3_MESSAGE, description=data))
            return
        pid = data.get("pid")
        self.id = data["sid"]
        self.recovered = bool(pid) and pid == self._pid
        self._pid = pid if isinstance(pid, str) else None
        if self._pid is None:
            self._last_offset = None
        self.connected = True
        # what came before the CONNECT answer, then what was emitted while disconnected
        received = self.receive_buffer
        self.receive_buffer = []
        for data_, ack_id in received:
            self._dispatch(data_, ack_id)
        buffered = self.send_buffer
        self.send_buffer = []
        for data_, ack_id in buffered:
            if not self.connected:
                self.send_buffer.append((data_, ack_id))
                continue
            self._send_event(data_, ack_id)
        self._emit_reserved("connect")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_connect_error(self, err: ConnectError) -> None:
        """The server refused this namespace: the socket stops (no reconnection for it)."""
        self._destroy()
        self._emit_reserved("connect_error", err)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)

    def _on_error(self, err: ConnectError, final: bool) -> None:
        """The connection failed to open (``final``: no more attempts)."""
        if not self.connected:
            self._emit_reserved("connect_error", err)
        if final:
            self._give_up(err)

    def _give_up(self, err: ConnectError) -> None:
        self.active = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)

    # -- receiving

    def _on_packet(self, packet: Any) -> None:
        t = packet.type
        if t == EVENT or t == BINARY_EVENT:
            if self.connected:
                self._dispatch(packet.data, packet.id)
            else:
                self.receive_buffer.append((packet.data, packet.id))
        elif t == ACK or t == BINARY_ACK:
            pending = self._acks.pop(packet.id, None)
            if pending is not None:
                pending.on_ack(packet.data)
        elif t == CONNECT:
            self._on_connected(packet.data)
        elif t == CONNECT_ERROR:
            data = packet.data
            if isinstance(data, dict):
                err = ConnectError(str(data.get("message", "")), data.get("data"))
            else:
                err = ConnectError(str(data))
            self._on_connect_error(err)
        elif t == DISCONNECT:
            self._destroy()
            self._on_close("io server disconnect", None)

    def _dispatch(self, data: list, ack_id: int | None) -> None:
        event = data[0]
        args = data[1:]
        handlers = self._handlers.get(event)
        if handlers:
            if ack_id is None:
                if len(handlers) == 1:
                    try:
                        result = handlers[0](*args)
                    except Exception:
                        logger.exception("exception in handler of %r", event)
                        result = None
                    if result is not None and asyncio.iscoroutine(result):
                        task = asyncio.get_running_loop().create_task(result)
                        _tasks.add(task)
                        task.add_done_callback(_task_done)
                else:
                    for handler in tuple(handlers):
                        self._run(handler, args)
            else:
                self._dispatch_with_ack(handlers, event, args, ack_id)
        if self._any:
            for handler in tuple(self._any):
                self._run(handler, data)
        if self._pid is not None and args and type(args[-1]) is str:
            self._last_offset = args[-1]

    def _dispatch_with_ack(self, handlers: list, event: str, args: list, ack_id: int) -> None:
        first = handlers[0]
        for handler in tuple(handlers[1:]):
            self._run(handler, args)
        try:
            result = first(*args)
        except Exception:
            logger.exception("exception in handler of %r", event)
            return
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(self._ack_later(result, ack_id))
            _tasks.add(task)
            task.add_done_callback(_task_done)
        else:
            self._send_ack(ack_id, result)

    async def _ack_later(self, coro: Any, ack_id: int) -> None:
        self._send_ack(ack_id, await coro)

    def _send_ack(self, ack_id: int, result: Any) -> None:
        if self.connected:
            self._send_packet(ACK, _ack_args(result), ack_id)

    # -- disconnecting

    def _destroy(self) -> None:
        """Stop following the Manager (no reconnection for this socket)."""
        if self.active:
            self.active = False
            self.io._destroy(self)

    def _on_close(self, reason: str, description: Any) -> None:
        was_connected = self.connected
        self.connected = False
        self.id = None
        if was_connected:
            self._emit_reserved("disconnect", reason)
        self._clear_acks()
        if not self.active:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectError(f"disconnected ({reason})"))

    def _clear_acks(self) -> None:
        buffered = {ack_id for _, ack_id in self.send_buffer if ack_id is not None}
        for ack_id in [i for i in self._acks if i not in buffered]:
            pending = self._acks.pop(ack_id)
            pending.on_fail(DisconnectedError("socket has been disconnected"))

    def disconnect(self) -> asyncio.Future:
        """Leave this namespace (the server sees "client namespace disconnect"); the connection
        closes when no namespace uses it any more. Returns a future done once that close is
        complete (await it, or not)."""
        if self.connected:
            self._send_packet(DISCONNECT)
        was_active = self.active
        self._destroy()
        if self.connected:
            self._on_close("io client disconnect", None)
        elif was_active:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectError("disconnected (io client disconnect)"))
        return self.io._closed_future()

    close = disconnect


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _check_event(event: Any) -> None:
    if type(event) is not str:
        raise TypeError(f"event name must be a str, not {type(event).__name__}")
    if event in RESERVED_EVENTS:
        raise ValueError(f"{event!r} is a reserved event name")


class _SocketEmitter:
    """``socket.timeout(s)`` / ``socket.volatile``: flags for the next emit."""

    __slots__ = ("_socket", "_timeout", "_volatile")

    def __init__(self, socket: ClientSocket, timeout: float | None, volatile: bool) -> None:
        self._socket = socket
        self._timeout = timeout
        self._volatile = volatile

    def timeout(self, seconds: float) -> _SocketEmitter:
        return _SocketEmitter(self._socket, seconds, self._volatile)

    @property
    def volatile(self) -> _SocketEmitter:
        return _SocketEmitter(self._socket, self._timeout, True)

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> ClientSocket:
        _check_event(event)
        self._socket._emit([event, *args], ack, self._timeout, self._volatile)
        return self._socket

    def send(self, *args: Any, ack: Callable | None = None) -> ClientSocket:
        self._socket._emit(["message", *args], ack, self._timeout, self._volatile)
        return self._socket

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        _check_event(event)
        return await self._socket._emit_with_ack(
            [event, *args], self._timeout if timeout is None else timeout, self._volatile
        )


# ------------------------------------------------------------------------------------- Manager


class Manager(_Emitter):
    """The connection under the namespaces (socket.io-client's ``Manager``): opens the Engine.IO
    session, routes packets to the namespaces, reconnects with backoff.

    Events (``client.io.on(...)``): ``"open"``, ``"close"`` ``(reason)``, ``"error"``
    ``(ConnectError)``, ``"ping"``, ``"upgrade"`` ``(transport name)``, ``"reconnect_attempt"``
    ``(attempt)``, ``"reconnect"`` ``(attempt)``, ``"reconnect_error"`` ``(ConnectError)``,
    ``"reconnect_failed"``."""

    def __init__(
        self,
        url: Url,
        *,
        path: str,
        query: dict,
        headers: dict | None,
        transports: tuple,
        upgrade: bool,
        parser: Any,
        reconnection: bool,
        reconnection_attempts: float,
        reconnection_delay: float,
        reconnection_delay_max: float,
        randomization_factor: float,
        timeout: float | None,
        ack_timeout: float | None,
        ssl: Any,
        max_message_size: int,
    ) -> None:
        self._init_handlers()
        self.url = url
        self.path = path
        self.query = query
        self.headers = headers
        self.transports = transports
        self.upgrade = upgrade
        self.parser = resolve_parser(parser)
        self.encode = encoder_of(self.parser)
        self.reconnection = reconnection
        self.reconnection_attempts = reconnection_attempts
        self.backoff = Backoff(reconnection_delay, reconnection_delay_max, randomization_factor)
        self.timeout = timeout
        self.ack_timeout = ack_timeout
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.state = "closed"  # "opening", "open"
        self.engine: EngineClient | None = None
        self.nsps: dict[str, ClientSocket] = {}
        self.reconnecting = False
        self.skip_reconnect = False
        #: the first open of connect(retry=False): a failure ends there
        self.retry_first = True
        self._decoder: Any = None
        self._reconnect_timer: Any = None
        self._open_task: asyncio.Task | None = None
        self._done: asyncio.Future | None = None  # closed for good (wait())
        self._closing: asyncio.Future | None = None  # the engine's close, under way

    @property
    def reconnection_delay(self) -> float:
        return self.backoff.delay

    @property
    def reconnection_delay_max(self) -> float:
        return self.backoff.delay_max

    @property
    def randomization_factor(self) -> float:
        return self.backoff.jitter

    # -- opening

    def open(self) -> None:
        """Open the connection (if not open or opening); active sockets connect once it is."""
        if self.state != "closed":
            return
        self.state = "opening"
        self.skip_reconnect = False
        self._done_future()
        self._open_task = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        engine = EngineClient(
            self,
            self.url,
            self.path,
            self.query,
            self.headers,
            self.transports,
            self.upgrade,
            self.ssl,
            self.max_message_size,
        )
        self.engine = engine
        try:
            if self.timeout is not None:
                await asyncio.wait_for(engine.open(), self.timeout)
            else:
                await engine.open()
        except (asyncio.CancelledError, Exception) as exc:
            if self.engine is engine:
                self.engine = None
            if self.state == "opening":
                self.state = "closed"
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, asyncio.TimeoutError):
                exc = ConnectError(f"timeout: no connection to {self.url.base()}", description=exc)
            self._open_failed(_connect_error(exc))
            return
        if self.engine is not engine or self.state != "opening":
            engine.close()
            return
        self.state = "open"
        self._decoder = self.parser.decoder()
        reconnected = self.reconnecting
        attempt = self.backoff.attempts
        self.reconnecting = False
        self.backoff.reset()
        self._emit_reserved("open")
        if reconnected:
            self._emit_reserved("reconnect", attempt)
        for socket in tuple(self.nsps.values()):
            if socket.active and self.state == "open":
                socket._on_open()
        if self.engine is engine:
            engine.start()

    def _open_failed(self, err: ConnectError) -> None:
        retry = (
            self.reconnection
            and not self.skip_reconnect
            and (self.reconnecting or self.retry_first)
            # the server will not change its protocol between attempts
            and err.message != EIO3_MESSAGE
        )
        self._emit_reserved("error", err)
        if self.reconnecting:
            self._emit_reserved("reconnect_error", err)
        for socket in tuple(self.nsps.values()):
            if socket.active:
                socket._on_error(err, not retry)
        self.reconnecting = False
        if retry:
            self._reconnect()
        else:
            self.backoff.reset()
            self._finish()

    def _fatal(self, err: ConnectError) -> None:
        """A protocol the client cannot speak: every socket fails, no reconnection."""
        self.skip_reconnect = True
        for socket in tuple(self.nsps.values()):
            if socket.active:
                socket._on_error(err, True)
        self._close_engine()
        self._finish()

    # -- reconnection

    def _reconnect(self) -> None:
        if self.reconnecting or self.skip_reconnect:
            return
        if self.backoff.attempts >= self.reconnection_attempts:
            self.backoff.reset()
            self._emit_reserved("reconnect_failed")
            self.reconnecting = False
            err = ConnectError("reconnection failed")
            for socket in tuple(self.nsps.values()):
                if socket.active:
                    socket._give_up(err)
            self._finish()
            return
        delay = self.backoff.duration()
        self.reconnecting = True
        self._reconnect_timer = asyncio.get_running_loop().call_later(delay, self._attempt)

    def _attempt(self) -> None:
        self._reconnect_timer = None
        if self.skip_reconnect:
            return
        self._emit_reserved("reconnect_attempt", self.backoff.attempts)
        if self.skip_reconnect or self.state != "closed":
            return
        self.state = "opening"
        self._open_task = asyncio.get_running_loop().create_task(self._open())

    # -- the engine's listener

    def on_engine_message(self, data: str | bytes) -> None:
        try:
            packet = self._decoder.feed(data)
        except (ProtocolError, ValueError, TypeError) as exc:
            logger.warning("bad packet from the server (%s): closing", exc)
            engine = self.engine
            if engine is not None:
                engine._on_close("parse error", exc)
            return
        if packet is None:
            return
        socket = self.nsps.get(packet.nsp)
        if socket is not None:
            socket._on_packet(packet)
        elif packet.type != CONNECT_ERROR:
            logger.debug("packet for unknown namespace %r", packet.nsp)

    def on_engine_ping(self) -> None:
        if self._handlers:
            self._emit_reserved("ping")

    def on_engine_upgrade(self, name: str) -> None:
        if self._handlers:
            self._emit_reserved("upgrade", name)

    def on_engine_close(self, reason: str, description: Any) -> None:
        if self.engine is None:
            return
        self.engine = None
        self._decoder = None
        was_open = self.state == "open"
        self.state = "closed"
        self.backoff.reset()
        if was_open:
            self._emit_reserved("close", reason)
        for socket in tuple(self.nsps.values()):
            if socket.active:  # a socket being destroyed tells its own reason
                socket._on_close(reason, description)
        if (
            self.reconnection
            and not self.skip_reconnect
            and reason not in _NO_RECONNECT
            and any(s.active for s in self.nsps.values())
        ):
            self._reconnect()
            return
        self._finish()

    # -- closing

    def _destroy(self, socket: ClientSocket) -> None:
        """A socket stopped: close the connection once none is active."""
        for other in self.nsps.values():
            if other.active:
                return
        self._close()

    def _close(self) -> None:
        self.skip_reconnect = True
        self.reconnecting = False
        if self._reconnect_timer is not None:
            self._reconnect_timer.cancel()
            self._reconnect_timer = None
        if self.state == "opening" and self._open_task is not None:
            self._open_task.cancel()
            self.state = "closed"
        self._close_engine()
        self._finish()

    def _close_engine(self) -> None:
        engine = self.engine
        if engine is not None:
            self._closing = engine.close()  # calls on_engine_close("forced close")

    def _done_future(self) -> asyncio.Future:
        done = self._done
        if done is None or done.done():
            done = self._done = asyncio.get_running_loop().create_future()
        return done

    def _finish(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _closed_future(self) -> asyncio.Future:
        """Done once the connection is closed (its last bytes sent)."""
        closing = self._closing
        if closing is not None and not closing.done():
            return closing
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def socket(self, nsp: str, auth: Any = None) -> ClientSocket:
        """The socket of namespace ``nsp`` (created on first use)."""
        if not nsp.startswith("/"):
            nsp = "/" + nsp
        socket = self.nsps.get(nsp)
        if socket is None:
            socket = self.nsps[nsp] = ClientSocket(self, nsp, auth)
        elif auth is not None:
            socket.auth = auth
        return socket


# ------------------------------------------------------------------------------------- client


class AsyncClient(ClientSocket):
    """A Socket.IO client on asyncio: Node's ``io(url, opts)``.

    ::

        client = fastsio.AsyncClient("http://localhost:3000", auth={"token": "abc"})

        @client.on("chat message")
        def message(msg):
            print(msg)

        await client.connect()
        client.emit("chat message", "hello")
        answer = await client.emit_with_ack("question", timeout=5)
        admin = client.of("/admin")         # another namespace, same connection
        await client.disconnect()

    Options, as socket.io-client's (times in seconds): ``path`` ("/socket.io"), ``transports``
    (("polling", "websocket"): start on the first, upgrade to WebSocket when the server offers
    it; ``upgrade=False`` stays on the first), ``auth`` (a dict, or a callable returning one,
    maybe async: called on every connection), ``query`` (added to the URL's query string),
    ``headers`` (extra HTTP headers of every request), ``namespaces`` (more namespaces to connect
    in ``connect()``), ``parser`` ("json", "msgpack" or a parser object, as the server's),
    ``reconnection`` (True), ``reconnection_attempts`` (inf), ``reconnection_delay`` (1),
    ``reconnection_delay_max`` (5), ``randomization_factor`` (0.5), ``timeout`` (20: opening
    the connection, and ``connect()``'s wait for the namespaces), ``ack_timeout`` (None: the
    default of ``emit_with_ack``), ``ssl`` (an ``ssl.SSLContext``; ``False`` accepts any
    certificate; for https/wss URLs).
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        auth: Any = None,
        path: str = "/socket.io",
        transports: Iterable[str] = ("polling", "websocket"),
        namespaces: Iterable[str] | None = None,
        headers: dict | None = None,
        query: dict | None = None,
        parser: Any = "json",
        upgrade: bool = True,
        reconnection: bool = True,
        reconnection_attempts: float = math.inf,
        reconnection_delay: float = 1.0,
        reconnection_delay_max: float = 5.0,
        randomization_factor: float = 0.5,
        timeout: float | None = 20.0,
        ack_timeout: float | None = None,
        ssl: Any = None,
        max_message_size: int = 100_000_000,
    ) -> None:
        parsed = Url(url)
        transports = tuple(transports)
        if not transports or not set(transports) <= {"polling", "websocket"}:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {transports!r}")
        query_params = {}
        if parsed.query:
            from urllib.parse import parse_qsl

            query_params.update(parse_qsl(parsed.query, keep_blank_values=True))
        if query:
            query_params.update({str(k): str(v) for k, v in query.items()})
        manager = Manager(
            parsed,
            path="/" + path.strip("/") + "/",
            query=query_params,
            headers=headers,
            transports=transports,
            upgrade=upgrade,
            parser=parser,
            reconnection=reconnection,
            reconnection_attempts=reconnection_attempts,
            reconnection_delay=reconnection_delay,
            reconnection_delay_max=reconnection_delay_max,
            randomization_factor=randomization_factor,
            timeout=timeout,
            ack_timeout=ack_timeout,
            ssl=ssl,
            max_message_size=max_message_size,
        )
        nsp = parsed.path if parsed.path.startswith("/") else "/" + parsed.path
        if len(nsp) > 1:
            nsp = nsp.rstrip("/") or "/"
        super().__init__(manager, nsp, auth)
        manager.nsps[nsp] = self
        self.url = url
        self.namespaces = tuple(namespaces or ())

    @property
    def transport(self) -> str | None:
        """ "polling" or "websocket" while connected, else None."""
        engine = self.io.engine
        return engine.transport_name if engine is not None else None

    def of(self, nsp: str, auth: Any = None) -> ClientSocket:
        """The socket of another namespace on this connection (Node's ``manager.socket(nsp)``);
        connected at once when the client is (or is being) connected, else by ``connect()``."""
        socket = self.io.socket(nsp, auth)
        if socket is not self and self.io.state != "closed" and not socket.active:
            socket.connect()
        return socket

    async def connect(  # type: ignore[override]
        self, *, retry: bool = False, timeout: float | None = None
    ) -> None:
        """Connect the URL's namespace and ``namespaces``; returns once all are connected.

        Raises ConnectError when the server refuses one (its ``message`` / ``data``), when the
        connection cannot be made (``retry=False``, the default: at the first failure; with
        ``retry=True`` after ``reconnection_attempts``), or after ``timeout`` seconds (default:
        the client's ``timeout``). Once connected, a lost connection is re-established by
        itself (``reconnection``)."""
        manager = self.io
        manager.retry_first = retry
        sockets = [self, *(manager.socket(n) for n in self.namespaces if n != self.nsp)]
        waiters = [ClientSocket.connect(socket) for socket in sockets]
        if timeout is None and not retry:
            timeout = manager.timeout
        try:
            if timeout is None:
                await asyncio.gather(*waiters)
            else:
                await asyncio.wait_for(asyncio.gather(*waiters), timeout)
        except asyncio.TimeoutError:
            self.disconnect()
            raise ConnectError(
                f"timeout: not connected to {manager.url.base()} within {timeout} s"
            ) from None
        except ConnectError:
            if manager.state == "open" and not all(s.connected for s in sockets):
                for socket in sockets:
                    socket.disconnect()
            raise

    def disconnect(self) -> asyncio.Future:  # type: ignore[override]
        """Disconnect every namespace and close the connection (no reconnection). Returns a
        future done once the connection is closed (await it, or not)."""
        manager = self.io
        for socket in tuple(manager.nsps.values()):
            ClientSocket.disconnect(socket)
        manager._close()
        return manager._closed_future()

    close = disconnect

    async def wait(self) -> None:
        """Wait until the client stops for good: ``disconnect()``, the server's disconnect, a
        refused connection or reconnection given up."""
        manager = self.io
        done = manager._done
        if done is None:
            return
        await done

    async def __aenter__(self) -> AsyncClient:  # noqa: PYI034
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()
