"""Namespace: handlers, middleware, connected sockets, broadcast operators."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _eager, _impl
from ._arguments import python_socketio_hint, register_handler
from .adapter import EMPTY_OPTIONS, Adapter
from .broadcast import BroadcastOperator, Rooms, as_rooms, check_event_name
from .exceptions import ConnectionRefused
from .socket import CONNECTING, DISCONNECTED, Socket

#: what Client._connecting holds for a namespace while its session is being restored (the
#: client's own placeholder for a pending check: a DISCONNECT or a close then just drops it)
_RESTORING = None

if TYPE_CHECKING:  # pragma: no cover
    from .server import Server

__all__ = ["Namespace", "ParentNamespace"]

_EVENT = _impl.socketio.EVENT


class Namespace:
    """A namespace (``"/"``, ``"/admin"``, ...): its handlers, middleware and sockets.

    Handlers registered with ``on`` are called ``handler(socket, *args)`` for client events (their
    return value answers the client's ack), ``handler(socket)`` for ``"connection"`` and
    ``handler(socket, reason)`` for ``"disconnecting"``/``"disconnect"``. They may be sync or
    async. Broadcasting: ``emit``, ``to``/``in_``, ``except_``, ``volatile``, ``local``,
    ``timeout`` as on :class:`~fastsio.broadcast.BroadcastOperator`.
    """

    def __init__(self, server: Server, name: str, parent: ParentNamespace | None = None) -> None:
        self.server: Server = server
        self.name = name
        self.parent = parent
        #: connected sockets by id
        self.sockets: dict = {}
        #: the connected sockets with outgoing catch-all listeners (``socket.on_any_outgoing``):
        #: the only ones a broadcast has to tell (InMemoryAdapter.broadcast)
        self._outgoing_sockets: set = set()
        # connection attempts whose middleware has not finished (a child namespace is not removed
        # while one is running: it would connect to a namespace that is gone)
        self._pending = 0
        if parent is not None:
            # a dynamic namespace's child shares its parent's handlers and middleware, so those
            # registered later apply to children already created too
            self._handlers: dict = parent._handlers
            self._middlewares: list = parent._middlewares
            self._packet_middlewares: list = parent._packet_middlewares
        else:
            self._handlers = {}
            self._middlewares = []
            self._packet_middlewares = []
        #: handlers of the events other servers send (``server_side_emit``), by name
        self._server_handlers: dict = parent._server_handlers if parent is not None else {}
        #: the server-wide ack id counter (one broadcast packet carries one id to every target)
        self.next_ack_id: Callable[[], int] = server.next_ack_id
        self.adapter = self._create_adapter()
        server._adapter_created(self.adapter)

    def _create_adapter(self) -> Any:
        return self.server.adapter_class(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} sockets={len(self.sockets)}>"

    # -- handlers and middleware -----------------------------------------------------------------

    def on(self, event: str, handler: Callable | None = None) -> Any:
        """Register a handler for ``event`` (``"connect"`` is ``"connection"``); usable as a
        decorator (``@nsp.on("chat")``) or called (``nsp.on("chat", fn)``)."""
        if handler is None:
            return lambda fn: self.on(event, fn)
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        if event == "connect":
            event = "connection"
        # the signature is read once, here: for the lifecycle events' check, and for fitting
        # the client's arguments to it when they do not match (see fastsio._arguments)
        register_handler(event, handler)
        self._handlers.setdefault(event, []).append(handler)
        return handler

    def event(self, handler: Callable) -> Callable:
        """Decorator registering ``handler`` for the event named like the function."""
        return self.on(handler.__name__, handler)

    def off(self, event: str, handler: Callable | None = None) -> None:
        """Remove ``handler`` (or all handlers) for ``event``."""
        if event == "connect":
            event = "connection"
        handlers = self._handlers.get(event)
        if not handlers:
            return
        # a new list, not an in-place change: a dispatch may be iterating over the old one
        remaining = [] if handler is None else [fn for fn in handlers if fn is not handler]
        if remaining:
            self._handlers[event] = remaining
        else:
            del self._handlers[event]

    def use(self, middleware: Callable | None = None) -> Any:
        """Add a middleware, run for every connection attempt, in order: ``middleware(socket)``,
        sync or async. Raising :class:`~fastsio.ConnectionRefused` (or any exception) refuses
        the connection with a CONNECT_ERROR. Usable as a decorator."""
        if middleware is None:
            return lambda fn: self.use(fn)
        if not callable(middleware):
            raise TypeError(f"middleware must be callable, not {type(middleware).__name__}")
        self._middlewares.append(middleware)
        return middleware

    def use_packets(self, middleware: Callable | None = None) -> Any:
        """Add a packet middleware for every socket of the namespace, those connected already
        too: ``middleware(socket, event, args)``, run for every event from a client before the
        socket's own (``Socket.use``), with the same return values and errors. Usable as a
        decorator."""
        if middleware is None:
            return lambda fn: self.use_packets(fn)
        if not callable(middleware):
            raise TypeError(f"middleware must be callable, not {type(middleware).__name__}")
        self._packet_middlewares.append(middleware)
        for socket in self._connected_sockets():
            socket._update_hooked()
        return middleware

    def _connected_sockets(self) -> list:
        return list(self.sockets.values())

    # -- broadcasting ----------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        """Send an event to every socket of the namespace (see BroadcastOperator.emit)."""
        if ack is not None:
            return BroadcastOperator(self).emit(event, *args, ack=ack)
        check_event_name(event)
        self.adapter.broadcast(
            _impl.socketio.Packet(_EVENT, self.name, [event, *args]), EMPTY_OPTIONS
        )
        return True

    def send(self, *args: Any, ack: Callable | None = None) -> bool:
        """``emit("message", *args)``."""
        return self.emit("message", *args, ack=ack)

    write = send

    async def emit_with_ack(self, event: str, *args: Any) -> list:
        """Send an event to every socket of the namespace and wait for their answers:
        a list, one per client (``AckTimeoutError`` with ``responses`` after ``timeout(s)``)."""
        return await BroadcastOperator(self).emit_with_ack(event, *args)

    def to(self, rooms: Rooms) -> BroadcastOperator:
        """A broadcast operator reaching the sockets in ``rooms`` (a name or several);
        ``to`` and ``in_`` are the same, and chain: ``to("a").to("b")`` reaches both rooms."""
        return BroadcastOperator(self, rooms=as_rooms(rooms))

    in_ = to

    def except_(self, rooms: Rooms) -> BroadcastOperator:
        """A broadcast operator reaching every socket except those in ``rooms``."""
        return BroadcastOperator(self, except_rooms=as_rooms(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """A broadcast operator whose packets may be dropped for clients not ready to
        receive them (Node's ``volatile``)."""
        return BroadcastOperator(self, volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast operator that reaches this server's sockets only, not those of the
        other servers of a cluster (Redis, ``--workers``)."""
        return BroadcastOperator(self, local=True)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast operator whose acknowledgements are awaited at most ``seconds``
        (``emit(..., ack=fn)`` / ``emit_with_ack``)."""
        return BroadcastOperator(self, timeout=seconds)

    def compress(self, compress: bool = True) -> BroadcastOperator:
        """A broadcast operator that sends its packets compressed (``True``, the default)
        or not (``False``), where compression is on."""
        return BroadcastOperator(self, compress=bool(compress))

    def sockets_join(self, rooms: Rooms) -> None:
        """Make every socket of the namespace join ``rooms``."""
        BroadcastOperator(self).sockets_join(rooms)

    def sockets_leave(self, rooms: Rooms) -> None:
        """Make every socket of the namespace leave ``rooms``."""
        BroadcastOperator(self).sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the namespace (``close``: their sessions too)."""
        BroadcastOperator(self).disconnect_sockets(close)

    async def fetch_sockets(self) -> list:
        """Every socket of the namespace."""
        return await BroadcastOperator(self).fetch_sockets()

    # -- events between servers (Node's serverSideEmit) -------------------------------------------

    def on_server_event(self, event: str, handler: Callable | None = None) -> Any:
        """Register ``handler(*args)`` for ``event`` sent by another server of the cluster with
        ``server_side_emit``; its return value (or awaited result) is the answer an
        ``server_side_emit_with_ack`` receives. Usable as a decorator."""
        if handler is None:
            return lambda fn: self.on_server_event(event, fn)
        if not callable(handler):
            raise TypeError(f"handler must be callable, not {type(handler).__name__}")
        self._server_handlers.setdefault(event, []).append(handler)
        return handler

    def server_side_emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` to this namespace on every other server of the cluster (their
        ``on_server_event`` handlers); a no-op on one process."""
        check_event_name(event)
        self.adapter.server_side_emit(event, list(args))
        return True

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list:
        """``server_side_emit`` and wait for every other server's answer: a list, one per server.
        Raises AckTimeoutError (with the answers that came) after ``timeout`` seconds (the
        adapter's request timeout when None)."""
        check_event_name(event)
        future = asyncio.get_running_loop().create_future()

        def done(err: BaseException | None, responses: list) -> None:
            if not future.done():
                if err is not None:
                    future.set_exception(err)
                else:
                    future.set_result(responses)

        self.adapter.server_side_emit(event, list(args), done, timeout)
        return await future

    def handle_server_event(self, event: str, args: list, ack: Callable | None = None) -> None:
        """An event another server sent (adapters call this): run its handlers; the first
        handler's result goes to ``ack(result)``. Events with no handler are answered None."""
        handlers = self._server_handlers.get(event)
        if not handlers:
            self.server.logger.debug("no handler for server-side event %r", event)
            if ack is not None:
                ack(None)
            return
        for handler in handlers:
            _eager.call(handler, tuple(args), _ServerEventDone(self, event, ack))
            ack = None  # the first handler answers

    # -- connecting ------------------------------------------------------------------------------

    def _add(self, client: Any, auth: dict | None) -> None:
        """A client asks to connect: run the middleware, then connect (or refuse)."""
        recovery = self.server.connection_state_recovery
        if recovery is not None:
            self._add_recoverable(client, auth, recovery)
            return
        socket = _impl.sockets.Socket(self, client, auth)
        client._connecting[self.name] = socket
        self._pending += 1
        self._run_middlewares(socket, 0)

    def _add_recoverable(self, client: Any, auth: dict | None, recovery: dict) -> None:
        """``_add`` with connection state recovery on: a client that sends the ``pid`` and
        ``offset`` of a saved session gets that socket back (see fastsio.recovery). The adapter's
        ``restore_session`` may answer at once or later (an awaitable: Redis, the other workers);
        meanwhile the namespace counts as being joined, as while a middleware runs."""
        pid = offset = None
        if isinstance(auth, dict):
            pid, offset = auth.get("pid"), auth.get("offset")
        restore = getattr(self.adapter, "restore_session", None)
        if type(pid) is not str or type(offset) is not str or restore is None:
            self._connect_recoverable(client, auth, recovery, None)
            return
        name = self.name
        client._connecting[name] = _RESTORING
        self._pending += 1

        def done(session: Any, exc: BaseException | None) -> None:
            if exc is not None:
                if isinstance(exc, asyncio.CancelledError):
                    self._settled()
                    return
                self.server.logger.warning("restoring session %s failed: %s", pid, exc)
                session = None
            if client.closed or client._connecting.get(name, 0) is not _RESTORING:
                # the client left (or gave up on the namespace) meanwhile: the session is kept
                if session is not None:
                    session.pop("missed_packets", None)
                    self.adapter.persist_session(session)
                self._settled()
                return
            del client._connecting[name]
            self._pending -= 1
            self._connect_recoverable(client, auth, recovery, session)

        done.server = self.server  # type: ignore[attr-defined]  # whose task (_eager.finish_tasks)
        _eager.call(restore, (pid, offset), done)

    def _connect_recoverable(
        self, client: Any, auth: dict | None, recovery: dict, session: dict | None
    ) -> None:
        from .recovery import RecoverableSocket

        socket = RecoverableSocket(self, client, auth, session)
        client._connecting[self.name] = socket
        self._pending += 1
        if session is not None and recovery["skip_middlewares"]:
            self._do_connect(socket)
        else:
            self._run_middlewares(socket, 0)

    def _run_middlewares(self, socket: Socket, index: int) -> None:
        middlewares = self._middlewares
        if index >= len(middlewares):
            self._do_connect(socket)
            return

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is not None:
                self._refuse(socket, exc)
            elif socket._state == CONNECTING and not socket.client.closed:
                self._run_middlewares(socket, index + 1)
            else:
                self._abandon(socket)
                self._settled()

        done.server = self.server  # type: ignore[attr-defined]  # whose task (_eager.finish_tasks)
        _eager.call(middlewares[index], (socket,), done)

    def _abandon(self, socket: Socket) -> None:
        connecting = socket.client._connecting
        if connecting.get(self.name) is socket:
            del connecting[self.name]

    def _refuse(self, socket: Socket, exc: BaseException) -> None:
        self._abandon(socket)
        try:
            if socket._state != CONNECTING or socket.client.closed:
                return
            socket._state = DISCONNECTED  # it never connected
            self.adapter.del_all(socket.id)  # rooms the middleware may have joined
            socket._fail_acks()
            if isinstance(exc, asyncio.CancelledError):
                return
            if isinstance(exc, ConnectionRefused):
                payload = exc.error_payload()
                self.server.logger.info(
                    "connection to namespace %s refused by a middleware: socket=%s address=%s"
                    " message=%r",
                    self.name,
                    socket.id,
                    socket.handshake.address,
                    payload.get("message"),
                )
            else:
                self.server.logger.error(
                    "middleware of namespace %s refused a connection", self.name, exc_info=exc
                )
                payload = {"message": str(exc) or type(exc).__name__}
            socket.client._send_connect_error(self.name, payload)
        finally:
            self._settled()

    def _do_connect(self, socket: Socket) -> None:
        client = socket.client
        self._abandon(socket)
        self._pending -= 1
        if socket._state != CONNECTING or client.closed:
            self._check_empty()
            return
        self.sockets[socket.id] = socket
        if socket._any_outgoing:  # added by a connection middleware
            self._outgoing_sockets.add(socket)
        socket._update_hooked()
        socket._on_connect()
        client._on_connected(socket)
        for handler in tuple(self._handlers.get("connection", ())):
            _eager.call(handler, (socket,), _ConnectionHandlerDone(socket))

    def _remove(self, socket: Socket) -> None:
        if self.sockets.get(socket.id) is socket:
            del self.sockets[socket.id]
            self._outgoing_sockets.discard(socket)
            if self.parent is not None:
                self._check_empty()

    def _settled(self) -> None:
        """A connection attempt ended without a socket (refused, or the client left)."""
        self._pending -= 1
        self._check_empty()

    def _check_empty(self) -> None:
        # a dynamic namespace's child with no socket and no connection attempt left: removed
        # when the server's cleanup_empty_child_namespaces is on
        if not self.sockets and not self._pending and self.parent is not None:
            self.parent._child_emptied(self)


class _ConnectionHandlerDone:
    """A "connection" handler raised: logged; ConnectionRefused disconnects the socket (what
    python-socketio users expect of a connect handler that refuses)."""

    __slots__ = ("socket",)

    def __init__(self, socket: Socket) -> None:
        self.socket = socket

    @property
    def server(self) -> Any:
        """Whose handler this is (``_eager.finish_tasks`` asks)."""
        return self.socket.server

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return
        socket = self.socket
        if isinstance(exc, ConnectionRefused):
            socket.server.logger.info(
                "connection handler refused socket %s (%s): disconnecting it", socket.id, exc
            )
            socket.disconnect()
            return
        socket.server.logger.error(
            "exception in connection handler (namespace %s, socket %s)%s",
            socket.nsp.name,
            socket.id,
            python_socketio_hint(exc),
            exc_info=exc,
        )


class _ServerEventDone:
    """Completion of a server-side event handler: its result answers the sender's ack."""

    __slots__ = ("ack", "event", "nsp")

    def __init__(self, nsp: Namespace, event: str, ack: Callable | None) -> None:
        self.nsp = nsp
        self.event = event
        self.ack = ack

    @property
    def server(self) -> Any:
        """Whose handler this is (``_eager.finish_tasks`` asks)."""
        return self.nsp.server

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            self.nsp.server.logger.error(
                "exception in server-side event handler %r (namespace %s)",
                self.event,
                self.nsp.name,
                exc_info=exc,
            )
            result = None
        if self.ack is not None:
            self.ack(result)


class ParentNamespace(Namespace):
    """The namespaces whose names a regex or a function accepts (Node's ParentNamespace).

    Handlers and middleware registered here apply to every child namespace, created on its first
    connection; ``emit`` and the other broadcasts reach all children. ``children`` holds them in
    creation order (a dict used as an ordered set, as Node's ``Set``). With the server's
    ``cleanup_empty_child_namespaces``, a child is removed (and its adapter closed) once its last
    socket has left and no connection attempt to it is running.
    """

    def __init__(self, server: Server, matcher: Any, index: int) -> None:
        self.matcher = matcher
        self.children: dict = {}
        super().__init__(server, f"/_{index}")

    def _create_adapter(self) -> Any:
        return _ParentAdapter(self)

    def matches(self, name: str, auth: dict) -> Any:
        """True (or an awaitable of it) if ``name`` belongs to this parent."""
        matcher = self.matcher
        search = getattr(matcher, "search", None)
        if search is not None:
            return search(name) is not None
        return matcher(name, auth)

    def _connected_sockets(self) -> list:
        return [socket for child in tuple(self.children) for socket in child.sockets.values()]

    def _create_child(self, name: str) -> Namespace:
        child = Namespace(self.server, name, parent=self)
        self.children[child] = None
        return child

    def _child_emptied(self, child: Namespace) -> None:
        """``child`` has no socket and no connection attempt left: remove it if the server says
        so (Node's ``cleanupEmptyChildNamespaces``). Not while the server closes: it closes every
        adapter itself."""
        server = self.server
        if not server.cleanup_empty_child_namespaces or server._closing:
            return
        if self.children.pop(child, _ABSENT) is _ABSENT:
            return  # removed already
        if server._namespaces.get(child.name) is child:
            del server._namespaces[child.name]
        adapter = child.adapter
        try:
            server._adapters.remove(adapter)  # (a list: children leave mostly oldest first)
        except ValueError:
            pass
        server.logger.debug("closing empty child namespace %s", child.name)
        try:
            task = asyncio.get_running_loop().create_task(_close_adapter(server, adapter))
        except RuntimeError:  # no running loop (a test driving the server by hand)
            return
        tasks = server._cleanup_tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _add(self, client: Any, auth: dict | None) -> None:  # pragma: no cover - guard
        raise RuntimeError("clients connect to the children of a ParentNamespace")


_ABSENT = object()


async def _close_adapter(server: Any, adapter: Any) -> None:
    """Close the adapter of a removed child namespace (in the background; the server keeps the
    task, and ``Server.close()`` waits for it)."""
    try:
        await adapter.close()
    except Exception:
        server.logger.exception(
            "the adapter of the removed namespace %s failed to close", adapter.nsp.name
        )


class _ParentAdapter(Adapter):
    """The adapter of a ParentNamespace: every operation goes to each child's adapter."""

    def __init__(self, parent: ParentNamespace) -> None:
        self.nsp = parent

    async def server_count(self) -> int:
        # each child's broadcast_with_ack reports once per server: expect that many reports
        return sum([await child.adapter.server_count() for child in list(self.nsp.children)])

    def server_side_emit(
        self, event: str, args: list, ack: Any = None, timeout: float | None = None
    ) -> None:
        raise TypeError("server_side_emit goes through a namespace, not a dynamic parent")

    def broadcast(self, packet: Any, opts: Any) -> None:
        for child in tuple(self.nsp.children):
            child.adapter.broadcast(packet, opts)

    def broadcast_with_ack(
        self, packet: Any, opts: Any, client_count_callback: Any, ack: Any, ack_failed: Any = None
    ) -> None:
        if packet.id is None:
            packet.id = self.nsp.next_ack_id()
        for child in tuple(self.nsp.children):
            child.adapter.broadcast_with_ack(packet, opts, client_count_callback, ack, ack_failed)

    def cancel_acks(self, ack_id: int) -> None:
        for child in tuple(self.nsp.children):
            child.adapter.cancel_acks(ack_id)

    def sockets(self, rooms: Any = ()) -> set:
        out: set = set()
        for child in tuple(self.nsp.children):
            out |= child.adapter.sockets(rooms)
        return out

    def socket_rooms(self, sid: str) -> None:
        return None

    async def fetch_sockets(self, opts: Any) -> list:
        out: list = []
        for child in list(self.nsp.children):
            out.extend(await child.adapter.fetch_sockets(opts))
        return out

    def add_sockets(self, opts: Any, rooms: Any) -> None:
        for child in tuple(self.nsp.children):
            child.adapter.add_sockets(opts, rooms)

    def del_sockets(self, opts: Any, rooms: Any) -> None:
        for child in tuple(self.nsp.children):
            child.adapter.del_sockets(opts, rooms)

    def disconnect_sockets(self, opts: Any, close: bool = False) -> None:
        for child in list(self.nsp.children):
            child.adapter.disconnect_sockets(opts, close)
