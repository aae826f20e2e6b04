"""Socket: one client's connection to one namespace.

Also compiled by Cython, unchanged, as ``fastsio._speedups.socket_c`` with the augmenting
``socket_c.pxd`` (``Socket`` a ``cdef class``: its per-event dispatch and ``emit`` are C code on
typed attributes); ``fastsio._impl`` picks one of the two modules (``_impl.sockets``), and
``fastsio.Socket`` is that module's class. Hence the absolute imports, and no object here whose
identity matters to other modules (``DROP`` lives in fastsio.broadcast, shared by both).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

# absolute, not relative: this file is also compiled as fastsio._speedups.socket_c
from fastsio import _eager, _impl
from fastsio._arguments import HandlerArgumentsError, python_socketio_hint
from fastsio.adapter import is_writable
from fastsio.broadcast import (
    DROP,
    RESERVED_EVENTS,
    BroadcastOperator,
    Rooms,
    ack_value,
    as_rooms,
    check_event_name,
    log_exception,
)
from fastsio.engine.ids import random_id
from fastsio.exceptions import AckTimeoutError, DisconnectedError

if TYPE_CHECKING:  # pragma: no cover
    # (not Client: socket_c.pxd cimports that name as a C type)
    from fastsio.namespace import Namespace
    from fastsio.server import Server

__all__ = ["DROP", "Handshake", "Socket", "SocketEmitter", "sessions_of"]

_EVENT = _impl.socketio.EVENT
_ACK = _impl.socketio.ACK
_DISCONNECT = _impl.socketio.DISCONNECT

#: what ``Socket._data`` holds when the app set ``socket.data = None``
_NONE = object()

# Socket states. ``connected`` is True in CONNECTED and DISCONNECTING (Node sets it to false only
# after the "disconnecting" handlers and leaving the rooms).
CONNECTING, CONNECTED, DISCONNECTING, DISCONNECTED = range(4)

#: names shorter than this are not reserved (a length test before the set look-up)
_MIN_RESERVED_LEN = min(map(len, RESERVED_EVENTS))


def _http_date(now: float) -> str:
    # like JavaScript's `new Date().toString()`: "Tue Nov 25 2025 12:06:00 GMT+0000 (UTC)"
    return time.strftime("%a %b %d %Y %H:%M:%S GMT%z (%Z)", time.localtime(now))


class Handshake:
    """What the client sent when it connected (Node's ``socket.handshake``).

    - ``headers``: the handshake request's headers, lower-case names (``"cookie"``,
      ``"user-agent"``...);
    - ``query``: the connection URL's query string as a dict (socket.io-client's ``query``
      option, plus its own ``EIO`` and ``transport``);
    - ``auth``: the CONNECT packet's payload (socket.io-client's ``auth`` option), ``{}`` when
      none was sent;
    - ``address``: the client's IP address; ``secure``: whether it came over TLS;
    - ``issued``: when it connected, in milliseconds since the epoch; ``time``: the same as a
      date string;
    - ``url``: the request target of the handshake; ``xdomain``: whether it carried an
      ``Origin`` header (a cross-origin browser request).

    ``headers`` and ``query`` are the handshake request's own dicts (shared by the client's
    namespaces: do not change them); ``time`` is derived from ``issued`` when read.
    """

    # _auth: left unset when the client sent none (``auth`` makes the {} when first read)
    __slots__ = ("_auth", "address", "headers", "issued", "query", "secure", "url", "xdomain")

    _FIELDS = ("headers", "query", "auth", "address", "time", "issued", "url", "secure", "xdomain")

    def __init__(self, request: Any, auth: dict | None) -> None:
        headers = getattr(request, "headers", None) or {}
        client = getattr(request, "client", None)
        self.headers: dict = headers
        self.query: dict = getattr(request, "query", None) or {}
        if auth is not None:
            self._auth = auth
        self.address: str = client[0] if client else ""
        self.issued: int = int(time.time() * 1000)
        self.url: str = getattr(request, "url", "") or ""
        self.secure: bool = bool(getattr(request, "secure", False))
        self.xdomain: bool = "origin" in headers

    @property
    def auth(self) -> dict:
        try:
            return self._auth
        except AttributeError:  # none sent: an idle connection holds no empty dict for it
            auth = self._auth = {}
            return auth

    @auth.setter
    def auth(self, value: dict) -> None:
        self._auth = value

    @property
    def time(self) -> str:
        """When the socket connected, like JavaScript's ``new Date().toString()``."""
        return _http_date(self.issued / 1000)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS)
        return f"Handshake({fields})"


class _PendingAck:
    """An ack this server waits for: ``on_ack(args)`` when it comes, ``on_fail(exc)`` (optional)
    when the socket disconnects or ``timer`` fires first."""

    __slots__ = ("on_ack", "on_fail", "timer")

    def __init__(self, on_ack: Callable, on_fail: Callable | None, timer: Any) -> None:
        self.on_ack = on_ack
        self.on_fail = on_fail
        self.timer = timer


class _HandlerDone:
    """Completion of one event handler call: logs an exception, or answers the client's ack
    with the handler's return value."""

    __slots__ = ("ack_id", "event", "on_namespace", "socket")

    def __init__(
        self, socket: Socket, event: str, ack_id: int | None, on_namespace: bool = True
    ) -> None:
        self.socket = socket
        self.event = event
        self.ack_id = ack_id
        #: a namespace handler (called with the socket first), not a socket's own listener
        self.on_namespace = on_namespace

    @property
    def server(self) -> Any:
        """Whose handler this is (``_eager.finish_tasks`` asks)."""
        return self.socket.server

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        if exc is not None:
            if not isinstance(exc, asyncio.CancelledError):
                self._log_failure(exc)
            return
        if self.ack_id is not None:
            try:
                self.socket._send_ack(self.ack_id, result)
            except (TypeError, ValueError) as error:  # orjson: not serialisable
                socket = self.socket
                socket.server.logger.error(
                    "the ack value of the handler for event %r cannot be sent (namespace %s,"
                    " socket %s): %s; the client gets no ack",
                    self.event,
                    socket.nsp.name,
                    socket.id,
                    error,
                )

    def _log_failure(self, exc: BaseException) -> None:
        """One line naming the event, namespace and socket, and what the client gets: no ack
        (as in Node and python-socketio); its ack callback times out if it set a timeout."""
        socket = self.socket
        outcome = "" if self.ack_id is None else "; the client's ack is not answered"
        if isinstance(exc, HandlerArgumentsError):
            # no traceback: it would show the dispatch, not the app
            socket.server.logger.error(
                "handler for event %r (namespace %s, socket %s) not called: %s (the client sent"
                " %d argument(s))%s",
                self.event,
                socket.nsp.name,
                socket.id,
                exc,
                exc.given - (1 if self.on_namespace else 0),
                outcome,
            )
            return
        socket.server.logger.error(
            "exception in handler for event %r (namespace %s, socket %s)%s%s",
            self.event,
            socket.nsp.name,
            socket.id,
            outcome,
            python_socketio_hint(exc),
            exc_info=exc,
        )


class Socket:
    """A client connected to one namespace.

    ``id`` is random per namespace connection (not the Engine.IO session id); ``rooms`` always
    contains it. ``data`` is free for the application.
    """

    __slots__ = (
        "__weakref__",
        "_acks",
        "_any_listeners",
        "_any_outgoing",
        "_data",  # None until ``data`` is first read (most sockets never use it)
        "_handlers",
        "_hooked",
        "_listeners",
        "_packet_middlewares",
        "_state",
        "adapter",
        "client",
        "connected",
        "handshake",
        "id",
        "nsp",
        "server",
    )

    #: recovery (Server(connection_state_recovery=...)): the private session id sent with the
    #: CONNECT answer, and whether this socket is one that came back (see fastsio.recovery)
    pid: str | None = None
    recovered: bool = False

    def __init__(self, nsp: Namespace, client: Any, auth: dict | None) -> None:
        eio3 = client.protocol == 3
        # a Socket.IO v2 client derives its socket id from the Engine.IO sid: keep them equal
        self.id: str = client._eio3_socket_id(nsp.name) if eio3 else random_id()
        self.nsp: Namespace = nsp
        self.server: Server = nsp.server
        self.client: Any = client  # a fastsio.client.Client
        self.adapter: Any = nsp.adapter
        # the namespace's handlers by event (the dict itself, which the namespace keeps for good:
        # one lookup fewer per event)
        self._handlers: dict = nsp._handlers
        self.handshake = Handshake(client.session.request, auth)
        if eio3 and auth:
            # a v2 client's namespace query ("/admin?token=x"): in handshake.query too, the
            # request's own values first, as socket.io 2.x servers did
            self.handshake.query = {**auth, **self.handshake.query}
        self._data: Any = None  # see ``data``
        self.connected = False
        self._state = CONNECTING
        self._acks: dict | None = None
        self._listeners: dict | None = None
        self._any_listeners: list | None = None
        self._any_outgoing: list | None = None
        self._packet_middlewares: list | None = None
        # True when an incoming event has more to go through than its handlers: catch-all
        # listeners or packet middleware (own or the namespace's). One test on the hot path.
        self._hooked = False

    def __repr__(self) -> str:
        return f"<Socket {self.id} nsp={self.nsp.name} connected={self.connected}>"

    @property
    def data(self) -> Any:
        """Free for the application: a dict unless set to something else."""
        data = self._data
        if data is None:  # not used yet: an idle socket holds no empty dict for it
            data = self._data = {}
        elif data is _NONE:
            return None
        return data

    @data.setter
    def data(self, value: Any) -> None:
        # None in _data means "never set" (not an unset slot: the compiled class's C attribute
        # cannot be unset, it starts as None), so a None the app sets is kept as _NONE
        self._data = _NONE if value is None else value

    # -- what it is connected through ----------------------------------------------------------

    @property
    def conn(self) -> Any:
        """The Engine.IO session under this socket."""
        return self.client.session

    @property
    def request(self) -> Any:
        """The HTTP request that opened the Engine.IO session."""
        return self.client.session.request

    @property
    def rooms(self) -> set:
        """The rooms this socket is in (a copy)."""
        return set(self.adapter.socket_rooms(self.id) or ())

    @property
    def disconnected(self) -> bool:
        return not self.connected

    # -- emitting to this client -----------------------------------------------------------------

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        """Send an event to this client; returns at once. ``ack(*args)`` is called with the
        client's acknowledgement, if it sends one."""
        if type(event) is not str or (len(event) >= _MIN_RESERVED_LEN and event in RESERVED_EVENTS):
            check_event_name(event)  # raises
        if ack is None and self._state < DISCONNECTED and self._any_outgoing is None:
            # _emit's common case, inlined: one of the hottest paths (every reply)
            client = self.client
            if not client.closed:
                # one argument, the usual: a list of two made at once
                data = [event, args[0]] if len(args) == 1 else [event, *args]
                parts = client.encode(_EVENT, self.nsp.name, data, None)
                session = client.session
                session.send(parts[0])
                if len(parts) > 1:
                    for attachment in parts[1:]:
                        session.send(attachment)
            return True
        return self._emit([event, *args], ack, None, False)

    def send(self, *args: Any, ack: Callable | None = None) -> bool:
        """``emit("message", *args)``."""
        return self._emit(["message", *args], ack, None, False)

    write = send

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the client's acknowledgement: its argument (None for none, a tuple
        for several). Raises AckTimeoutError after ``timeout`` seconds, DisconnectedError if the
        socket disconnects first."""
        check_event_name(event)
        return await self._emit_with_ack([event, *args], timeout, False)

    def _emit(
        self,
        data: list,
        ack: Callable | None,
        timeout: float | None,
        volatile: bool,
        compress: bool = True,
    ) -> bool:
        if self._state >= DISCONNECTED:
            return False
        if self._any_outgoing:
            self._notify_outgoing(data)
        session = self.client.session
        if volatile and not is_writable(session):
            return True
        ack_id = None
        if ack is not None:
            ack_id = self.nsp.next_ack_id()
            if timeout is None:
                self.expect_ack(ack_id, _CallbackAck(ack, self.server).on_ack)
            else:
                with_error = _CallbackAck(ack, self.server, with_error=True)
                self.expect_ack(ack_id, with_error.on_ack, with_error.on_fail, timeout)
        client = self.client
        if compress:
            client._send(client.encode(_EVENT, self.nsp.name, data, ack_id))
        else:
            _send_uncompressed(client, client.encode(_EVENT, self.nsp.name, data, ack_id))
        return True

    async def _emit_with_ack(
        self, data: list, timeout: float | None, volatile: bool, compress: bool = True
    ) -> Any:
        if self._state >= DISCONNECTED:
            raise DisconnectedError()
        if self._any_outgoing:
            self._notify_outgoing(data)
        future = asyncio.get_running_loop().create_future()

        def on_ack(args: list) -> None:
            if not future.done():
                future.set_result(ack_value(args))

        def on_fail(exc: BaseException) -> None:
            if not future.done():
                future.set_exception(exc)

        ack_id = self.nsp.next_ack_id()
        self.expect_ack(ack_id, on_ack, on_fail, timeout)
        client = self.client
        if not volatile or is_writable(client.session):
            parts = client.encode(_EVENT, self.nsp.name, data, ack_id)
            if compress:
                client._send(parts)
            else:
                _send_uncompressed(client, parts)
        try:
            return await future
        finally:
            self.cancel_ack(ack_id)

    # -- acks ------------------------------------------------------------------------------------

    def expect_ack(
        self,
        ack_id: int,
        on_ack: Callable[[list], None],
        on_fail: Callable[[BaseException], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        timer = None
        if timeout is not None:
            timer = asyncio.get_running_loop().call_later(timeout, self._ack_timed_out, ack_id)
        if self._acks is None:
            self._acks = {}
        self._acks[ack_id] = _PendingAck(on_ack, on_fail, timer)

    def cancel_ack(self, ack_id: int) -> None:
        acks = self._acks
        if acks:
            pending = acks.pop(ack_id, None)
            if pending is not None and pending.timer is not None:
                pending.timer.cancel()

    def _ack_timed_out(self, ack_id: int) -> None:
        acks = self._acks
        pending = acks.pop(ack_id, None) if acks else None
        if pending is not None and pending.on_fail is not None:
            pending.on_fail(AckTimeoutError())

    def _on_ack(self, packet: Any) -> None:
        acks = self._acks
        pending = acks.pop(packet.id, None) if acks else None
        if pending is None:
            return  # unknown, late (timed out) or repeated ack: ignored, as Node does
        if pending.timer is not None:
            pending.timer.cancel()
        try:
            pending.on_ack(packet.data)
        except Exception:
            self.server.logger.exception("exception in ack callback")

    def _fail_acks(self) -> None:
        acks = self._acks
        if not acks:
            return
        self._acks = None
        for pending in acks.values():
            if pending.timer is not None:
                pending.timer.cancel()
            if pending.on_fail is not None:
                try:
                    pending.on_fail(DisconnectedError())
                except Exception:
                    self.server.logger.exception("exception in ack callback")

    def _send_ack(self, ack_id: int, result: Any) -> None:
        if self._state >= DISCONNECTED:
            return
        if result is None:
            args: Any = []
        elif type(result) is tuple:
            args = list(result)
        else:
            args = [result]
        client = self.client
        client._send(client.encode(_ACK, self.nsp.name, args, ack_id))

    # -- events from this client -----------------------------------------------------------------

    def _on_event(self, packet: Any, hooks: bool = True) -> None:
        data = packet.data
        event = data[0]
        # (names shorter than every reserved one, most, skip the set look-up: it would hash a
        # freshly decoded name)
        if (type(event) is not str or len(event) >= _MIN_RESERVED_LEN) and event in RESERVED_EVENTS:
            return  # "connection" (the others the decoder refuses): not the client's to send
        ack_id = packet.id
        if self._hooked and hooks:
            # catch-all listeners or packet middleware: they run first, then come back here
            _IncomingEvent(self, event, data[1:], ack_id).start()
            return
        handlers = self._handlers.get(event)
        if handlers:
            for handler in handlers:
                # _eager.call, inlined: the usual sync handler that returns None to a client
                # that wants no ack costs no completion object and no further call
                try:
                    if len(data) == 2:  # one argument, the usual: no argument list or tuple made
                        result = handler(self, data[1])
                    else:
                        result = handler(self, *data[1:])
                except Exception as exc:  # noqa: BLE001 - fitted or logged by _HandlerDone
                    _eager.call_failed(
                        handler, (self, *data[1:]), exc, _HandlerDone(self, event, ack_id)
                    )
                else:
                    if result is not None or ack_id is not None:
                        _eager.settle(result, _HandlerDone(self, event, ack_id))
                ack_id = None  # the first handler answers the ack
        listeners = self._listeners.get(event) if self._listeners else None
        if listeners:
            for listener in self._take_listeners(event, listeners):
                _eager.call(listener, tuple(data[1:]), _HandlerDone(self, event, ack_id, False))
                ack_id = None

    def _take_listeners(self, event: str, listeners: list) -> list:
        """The functions to call for ``event``; ``once`` ones are removed here."""
        if not any(once for _, once in listeners):
            return [fn for fn, _ in listeners]
        keep = [(fn, once) for fn, once in listeners if not once]
        if keep:
            self._listeners[event] = keep  # type: ignore[index]
        else:
            del self._listeners[event]  # type: ignore[union-attr]
        return [fn for fn, _ in listeners]

    # -- per-socket listeners (Node's socket.on) -------------------------------------------------

    def on(self, event: str, handler: Callable | None = None) -> Any:
        """Call ``handler(*args)`` for ``event`` from this client (also ``"disconnect"`` and
        ``"disconnecting"``, with the reason). Its return value answers the client's ack when no
        namespace-level handler did. Usable as a decorator."""
        if handler is None:
            return lambda fn: self.on(event, fn)
        self._add_listener(event, handler, False)
        return handler

    def once(self, event: str, handler: Callable | None = None) -> Any:
        """``on``, for the next occurrence only."""
        if handler is None:
            return lambda fn: self.once(event, fn)
        self._add_listener(event, handler, True)
        return handler

    def off(self, event: str | None = None, handler: Callable | None = None) -> Socket:
        """Remove ``handler`` for ``event``; all of ``event``'s without ``handler``; all without
        arguments."""
        listeners = self._listeners
        if not listeners:
            return self
        if event is None:
            self._listeners = None
        elif handler is None:
            listeners.pop(event, None)
        elif event in listeners:
            keep = [(fn, once) for fn, once in listeners[event] if fn is not handler]
            if keep:
                listeners[event] = keep
            else:
                del listeners[event]
        return self

    remove_listener = off

    def on_any(self, handler: Callable) -> Callable:
        """Call ``handler(event, *args)`` for every event from this client, before the packet
        middleware and the event's own handlers (Node's ``socket.onAny``). Usable as a
        decorator."""
        self._any_listeners = _added(self._any_listeners, handler, False)
        self._update_hooked()
        return handler

    def prepend_any(self, handler: Callable) -> Callable:
        """``on_any``, called before the catch-all listeners added so far."""
        self._any_listeners = _added(self._any_listeners, handler, True)
        self._update_hooked()
        return handler

    def off_any(self, handler: Callable | None = None) -> Socket:
        """Remove ``handler`` (its first registration, as Node) from the catch-all listeners;
        all of them without an argument."""
        self._any_listeners = _removed(self._any_listeners, handler)
        self._update_hooked()
        return self

    def listeners_any(self) -> list:
        """The catch-all listeners, in calling order (a copy)."""
        return list(self._any_listeners or ())

    def on_any_outgoing(self, handler: Callable) -> Callable:
        """Call ``handler(event, *args)`` for every event sent to this client: its own emits
        and every broadcast that reaches it (Node's ``socket.onAnyOutgoing``), not the acks.
        Called as the packet leaves, before the next one; an exception is logged. Usable as a
        decorator."""
        self._set_outgoing(_added(self._any_outgoing, handler, False))
        return handler

    def prepend_any_outgoing(self, handler: Callable) -> Callable:
        """``on_any_outgoing``, called before the outgoing listeners added so far."""
        self._set_outgoing(_added(self._any_outgoing, handler, True))
        return handler

    def off_any_outgoing(self, handler: Callable | None = None) -> Socket:
        """Remove ``handler`` (its first registration) from the outgoing listeners; all of
        them without an argument."""
        self._set_outgoing(_removed(self._any_outgoing, handler))
        return self

    def listeners_any_outgoing(self) -> list:
        """The outgoing catch-all listeners, in calling order (a copy)."""
        return list(self._any_outgoing or ())

    # -- per-packet middleware (Node's socket.use) -----------------------------------------------

    def use(self, middleware: Callable) -> Callable:
        """Run ``middleware(event, args)`` for every event from this client, after the
        namespace's packet middleware (``Namespace.use_packets``) and before its handlers,
        sync or async (Node's ``socket.use``). ``args`` is the list of the event's arguments.
        It returns None to let the event go on (``args`` possibly changed in place), a new list
        or tuple of arguments, or ``fastsio.DROP`` to drop the event silently; an exception
        drops it too and goes to the socket's ``"error"`` handlers (``socket.on("error", fn)``:
        ``fn(exc)``; ``nsp.on("error", fn)``: ``fn(socket, exc)``), logged when there is none.
        Usable as a decorator."""
        self._packet_middlewares = _added(self._packet_middlewares, middleware, False)
        self._update_hooked()
        return middleware

    def _update_hooked(self) -> None:
        self._hooked = bool(
            self._any_listeners or self._packet_middlewares or self.nsp._packet_middlewares
        )

    def _on_error(self, exc: BaseException) -> None:
        """A packet middleware raised: the ``"error"`` handlers (Node's ``next(err)``)."""
        listeners = self._listeners
        if not self.nsp._handlers.get("error") and not (listeners and listeners.get("error")):
            self.server.logger.error(
                "packet middleware of namespace %s stopped an event of socket %s (and no "
                '"error" handler is registered)',
                self.nsp.name,
                self.id,
                exc_info=exc,
            )
            return
        self._fire("error", exc)

    def _set_outgoing(self, listeners: list | None) -> None:
        # None when empty: Socket.emit's fast path asks only ``is None``. The namespace keeps
        # the connected sockets that have some, so a broadcast asks only them (see
        # InMemoryAdapter.broadcast): the others pay nothing.
        self._any_outgoing = listeners
        watched = self.nsp._outgoing_sockets
        if listeners is None:
            watched.discard(self)
        elif self.nsp.sockets.get(self.id) is self:
            watched.add(self)

    def _notify_outgoing(self, data: list) -> None:
        """The outgoing listeners, for an event sent to this client (``data``: [event, *args])."""
        args = tuple(data)
        for listener in tuple(self._any_outgoing or ()):
            _eager.call(listener, args, _HandlerDone(self, data[0], None, False))

    def _add_listener(self, event: str, handler: Callable, once: bool) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if self._listeners is None:
            self._listeners = {}
        self._listeners.setdefault(event, []).append((handler, once))

    def _fire(self, event: str, reason: Any) -> None:
        """Lifecycle handlers ("disconnecting", "disconnect", "error"): namespace ones, then
        this socket's own."""
        for handler in self.nsp._handlers.get(event, ()):
            _eager.call(handler, (self, reason), _HandlerDone(self, event, None))
        listeners = self._listeners.get(event) if self._listeners else None
        if listeners:
            for listener in self._take_listeners(event, listeners):
                _eager.call(listener, (reason,), _HandlerDone(self, event, None, False))

    # -- rooms -----------------------------------------------------------------------------------

    def join(self, rooms: Rooms) -> None:
        """Join a room or several (an iterable of names)."""
        self.adapter.add_all(self.id, as_rooms(rooms))

    def leave(self, room: str) -> None:
        """Leave a room."""
        self.adapter.delete(self.id, room)

    def leave_all(self) -> None:
        """Leave every room but the one named by this socket's id (so ``sio.to(socket.id)``
        still reaches it: ``socket.rooms`` always holds ``socket.id``)."""
        own = self.adapter.socket_rooms(self.id)
        if own:
            for room in [room for room in own if room != self.id]:
                self.adapter.delete(self.id, room)

    # -- broadcasting from this socket (the sender is left out) ---------------------------------

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.nsp, except_rooms=frozenset((self.id,)))

    def to(self, rooms: Rooms) -> BroadcastOperator:
        """Emit to ``rooms``, leaving this socket out."""
        return self._operator().to(rooms)

    in_ = to

    def except_(self, rooms: Rooms) -> BroadcastOperator:
        """Emit to everyone but ``rooms`` and this socket."""
        return self._operator().except_(rooms)

    @property
    def broadcast(self) -> BroadcastOperator:
        """Emit to everyone in the namespace but this socket."""
        return self._operator()

    # -- flags for the next emit -----------------------------------------------------------------

    @property
    def volatile(self) -> SocketEmitter:
        """The next emit may be dropped if the client is not ready to receive it."""
        return SocketEmitter(self, None, True)

    def timeout(self, seconds: float) -> SocketEmitter:
        """The next emit's ack callback gets ``(err, *args)``; ``err`` is an AckTimeoutError if
        no ack came within ``seconds``, else None."""
        return SocketEmitter(self, seconds, False)

    def compress(self, compress: bool = True) -> SocketEmitter:
        """``compress(False)``: the next emit is sent uncompressed (permessage-deflate and HTTP
        compression), as Node's ``socket.compress(false)``; True (the default): as the server's
        options say."""
        return SocketEmitter(self, None, False, bool(compress))

    # -- connecting and disconnecting ------------------------------------------------------------

    def _on_connect(self) -> None:
        self._state = CONNECTED
        self.connected = True
        self.adapter.add_all(self.id, (self.id,))
        self.client._send_connect(self)

    def disconnect(self, close: bool = False) -> Socket:
        """Disconnect from this namespace (the client is told; reason "server namespace
        disconnect"). ``close=True`` closes the whole Engine.IO session."""
        if self._state != CONNECTED:
            return self
        if close:
            self.client._disconnect_all()
        else:
            client = self.client
            client._send(client.encode(_DISCONNECT, self.nsp.name, None, None))
            self._on_close("server namespace disconnect")
        return self

    def _on_close(self, reason: str) -> None:
        state = self._state
        if state != CONNECTED:
            if state == CONNECTING:
                # middleware still running: it will not connect; forget rooms joined meanwhile
                self._state = DISCONNECTED
                self.adapter.del_all(self.id)
                self._fail_acks()
            return
        self._state = DISCONNECTING
        self._fire("disconnecting", reason)
        self.adapter.del_all(self.id)
        self.nsp._remove(self)
        self.client._remove(self)
        self.connected = False
        self._state = DISCONNECTED
        self._fail_acks()
        self._fire("disconnect", reason)


def sessions_of(sockets: list) -> list:
    """The Engine.IO session of each socket: a broadcast's targets (InMemoryAdapter). Compiled,
    two C field reads per socket; the adapter's own loop would read them as properties of the
    compiled classes (generic attribute look-ups)."""
    sessions = []
    for socket in sockets:
        sessions.append(socket.client.session)
    return sessions


def _added(listeners: list | None, handler: Callable, first: bool) -> list:
    """A new list of catch-all listeners with ``handler`` (a new list: a dispatch may be
    iterating over the old one)."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    listeners = listeners or []
    return [handler, *listeners] if first else [*listeners, handler]


def _removed(listeners: list | None, handler: Callable | None) -> list | None:
    """The catch-all listeners without the first ``handler`` (all without one); None when no
    listener is left."""
    if handler is None or not listeners:
        return None
    listeners = list(listeners)
    for i, fn in enumerate(listeners):
        if fn is handler:
            del listeners[i]
            break
    return listeners or None


class _IncomingEvent:
    """One event from the client on its way through the catch-all listeners and the packet
    middleware (Node's ``onevent`` and ``run``), then to its handlers. Its ``data`` and ``id``
    make it a packet for ``Socket._on_event`` when it gets there. The completion callback of
    each middleware."""

    __slots__ = ("ack_id", "args", "event", "index", "middlewares", "socket")

    def __init__(self, socket: Socket, event: str, args: list, ack_id: int | None) -> None:
        self.socket = socket
        self.event = event
        self.args = args
        self.ack_id = ack_id
        self.index = 0
        # as they are now (Node copies its list too): the namespace's first, then the socket's
        self.middlewares = [(fn, True) for fn in socket.nsp._packet_middlewares]
        self.middlewares += [(fn, False) for fn in socket._packet_middlewares or ()]

    @property
    def server(self) -> Any:
        """Whose middleware this is (``_eager.finish_tasks`` asks)."""
        return self.socket.server

    @property
    def data(self) -> list:
        return [self.event, *self.args]

    @property
    def id(self) -> int | None:
        return self.ack_id

    def start(self) -> None:
        socket = self.socket
        event = self.event
        listeners = socket._any_listeners
        if listeners:  # before the middleware, as Node: they see dropped events too
            data = (event, *self.args)
            for listener in tuple(listeners):
                _eager.call(listener, data, _HandlerDone(socket, event, None, False))
        self._next()

    def _next(self) -> None:
        socket = self.socket
        index = self.index
        if index == len(self.middlewares):
            if socket.connected:  # not if it disconnected while a middleware waited
                socket._on_event(self, False)
            return
        self.index = index + 1
        middleware, with_socket = self.middlewares[index]
        if with_socket:
            _eager.call(middleware, (socket, self.event, self.args), self)
        else:
            _eager.call(middleware, (self.event, self.args), self)

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        if exc is None and result is not None and result is not DROP:
            if type(result) in (list, tuple):
                self.args = list(result)
            else:
                exc = TypeError(
                    "a packet middleware returns None, a list or tuple of arguments or "
                    f"fastsio.DROP, not {type(result).__name__}"
                )
        if exc is not None:
            if not isinstance(exc, asyncio.CancelledError):
                self.socket._on_error(exc)
        elif result is not DROP:
            self._next()


class _CallbackAck:
    """Ack callback of ``emit(..., ack=cb)``: ``cb(*args)``; with a timeout ``cb(None, *args)``
    or ``cb(err)``. Also the completion callback of ``cb`` (an exception is logged), naming the
    server whose ``close()`` waits for it when it is async."""

    __slots__ = ("callback", "server", "with_error")

    def __init__(self, callback: Callable, server: Any, with_error: bool = False) -> None:
        self.callback = callback
        self.server = server
        self.with_error = with_error

    def on_ack(self, args: list) -> None:
        if self.with_error:
            _eager.call(self.callback, (None, *args), self)
        else:
            _eager.call(self.callback, tuple(args), self)

    def on_fail(self, exc: BaseException) -> None:
        _eager.call(self.callback, (exc,), self)

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        log_exception(result, exc)


def _send_uncompressed(client: Any, parts: list) -> None:
    """``client._send(parts)`` for ``compress(False)``: never compressed."""
    if client.closed:
        return
    session = client.session
    for part in parts:
        session.send(part, False)


class SocketEmitter:
    """``socket.timeout(s)`` / ``socket.volatile`` / ``socket.compress(b)``: flags for the next
    emit to one socket."""

    __slots__ = ("_compress", "_socket", "_timeout", "_volatile")

    def __init__(
        self, socket: Socket, timeout: float | None, volatile: bool, compress: bool = True
    ) -> None:
        self._socket = socket
        self._timeout = timeout
        self._volatile = volatile
        self._compress = compress

    def timeout(self, seconds: float) -> SocketEmitter:
        return SocketEmitter(self._socket, seconds, self._volatile, self._compress)

    @property
    def volatile(self) -> SocketEmitter:
        return SocketEmitter(self._socket, self._timeout, True, self._compress)

    def compress(self, compress: bool = True) -> SocketEmitter:
        return SocketEmitter(self._socket, self._timeout, self._volatile, bool(compress))

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        check_event_name(event)
        return self._socket._emit(
            [event, *args], ack, self._timeout, self._volatile, self._compress
        )

    def send(self, *args: Any, ack: Callable | None = None) -> bool:
        return self._socket._emit(
            ["message", *args], ack, self._timeout, self._volatile, self._compress
        )

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        check_event_name(event)
        if timeout is None:
            timeout = self._timeout
        return await self._socket._emit_with_ack(
            [event, *args], timeout, self._volatile, self._compress
        )

    # broadcasting with these flags, the sender left out
    def _operator(self) -> BroadcastOperator:
        socket = self._socket
        return BroadcastOperator(
            socket.nsp,
            except_rooms=frozenset((socket.id,)),
            volatile=self._volatile,
            timeout=self._timeout,
            compress=self._compress,
        )

    def to(self, rooms: Rooms) -> BroadcastOperator:
        return self._operator().to(rooms)

    in_ = to

    def except_(self, rooms: Rooms) -> BroadcastOperator:
        return self._operator().except_(rooms)

    @property
    def broadcast(self) -> BroadcastOperator:
        return self._operator()
