"""Server: the public entry point (Node's ``io``): options, namespaces, listen/serve/close."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .adapter import InMemoryAdapter
from .broadcast import BroadcastOperator, Rooms
from . import _impl
from .namespace import Namespace, ParentNamespace
from .parser import encoder_of, resolve_parser

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .engine import EngineServer
    from .http import HttpServer
    from .workers import WorkerInfo

__all__ = ["Server"]

#: The socket.io client bundle files served at ``{path}/<name>`` when ``serve_client`` is set.
CLIENT_FILES = (
    "socket.io.js",
    "socket.io.js.map",
    "socket.io.min.js",
    "socket.io.min.js.map",
    "socket.io.esm.min.js",
    "socket.io.esm.min.js.map",
)
_CLIENT_DIST = os.path.join("node_modules", "socket.io-client", "dist")
#: what the 404 of a missing client bundle (and its one log line) tells the user to do
CLIENT_MISSING = (
    "The socket.io client bundle is not installed, so {url} cannot be served.\n"
    "Install it where the app runs (fastsio looks for {dist} in the current directory, the\n"
    "app's directory and their parents):\n\n"
    "    npm install socket.io-client\n\n"
    'or point Server(serve_client="path/to/socket.io-client/dist") at a copy, or load it\n'
    "from a CDN in the page instead:\n\n"
    '    <script src="https://cdn.socket.io/4.8.1/socket.io.min.js"></script>\n'
)

# A polling POST carries up to max_http_buffer_size bytes of payload plus framing.
_BODY_SLACK = 100_000

#: Seconds ``close()`` waits for polling clients to collect their close packet. A live client
#: has a GET held (answered at once) or sends its next one within a round trip; a client that
#: stopped polling would otherwise hold the close for its whole ping timeout.
CLOSE_PACKET_WAIT = 1.0

NamespaceName = Union[str, "re.Pattern[str]", Callable[[str, dict], Any]]

#: python-socketio's AsyncServer methods that fastsio spells another way (Server.__getattr__)
_PYTHON_SOCKETIO_NAMES = {
    "enter_room": "socket.join(room) in a handler, or sio.in_(sid).sockets_join(room)",
    "leave_room": "socket.leave(room) in a handler, or sio.in_(sid).sockets_leave(room)",
    "close_room": "sio.in_(room).sockets_leave(room)",
    "rooms": "socket.rooms",
    "get_session": "socket.data (a dict kept with the socket)",
    "save_session": "socket.data (a dict kept with the socket)",
    "session": "socket.data (a dict kept with the socket)",
    "call": "await socket.timeout(seconds).emit_with_ack(event, ...)",
    "disconnect": "socket.disconnect(), or sio.in_(sid).disconnect_sockets()",
    "register_namespace": "sio.of(name) and its .on(event) handlers",
    "start_background_task": "asyncio.create_task(coro) (keep a reference to the task)",
    "sleep": "await asyncio.sleep(seconds)",
    "manager": "Server(adapter=...) (see fastsio.redis.create_adapter)",
    "handle_request": "sio.run(host, port) or `fastsio run module:sio`",
    "attach": "sio.run(host, port) or `fastsio run module:sio`",
}

_CALLBACK_HINT = (
    "emit(..., callback=fn) is python-socketio's; in fastsio: emit(..., ack=fn), or"
    " answers = await sio.timeout(5).emit_with_ack(event, ...)"
)


def _refuse_python_socketio(to: Any, room: Any, skip_sid: Any, namespace: Any) -> None:
    """python-socketio's ``emit(..., to=, room=, skip_sid=, namespace=)``: a TypeError naming
    the fastsio spelling."""
    chain = "sio"
    if namespace is not None:
        chain += f".of({namespace!r})"
    target = to if to is not None else room
    if target is not None:
        chain += f".to({target!r})"
    if skip_sid is not None:
        chain += f".except_({skip_sid!r})"
    raise TypeError(
        "emit/send(..., to=, room=, skip_sid=, namespace=) are python-socketio's; in fastsio:"
        f" {chain}.emit(event, ...) (a socket id is a room; in a handler, socket.emit(...) answers"
        " the sender and socket.broadcast.emit(...) reaches everyone else)"
    )


class Server:
    """A Socket.IO v5 server (Engine.IO v4 over HTTP long-polling and WebSocket).

    ::

        sio = fastsio.Server(cors_allowed_origins="*")

        @sio.on("connection")
        def connected(socket): ...

        @sio.on("chat message")
        def chat(socket, msg):
            sio.emit("chat message", msg)

        sio.run("127.0.0.1", 3000)

    ``on``/``use``/``emit``/``to``/... act on the main namespace ``"/"``; ``of(name)`` gives
    any other (a regex or a ``fn(name, auth) -> bool`` gives a dynamic parent namespace).
    ``ping_interval``, ``ping_timeout`` and ``connect_timeout`` are in seconds.
    ``serve_client``: serve the socket.io client bundle at ``{path}/socket.io.js``,
    ``{path}/socket.io.min.js`` etc., as Node does by default. True (the default) looks for
    ``node_modules/socket.io-client/dist`` in the current directory, the directory of the
    ``__main__`` script and their parents; when it is nowhere, those paths answer 404 with
    how to install it (logged once). A directory serves the bundle from there; False turns it
    off. ``static_files``: a directory served at ``/``. ``root_path``: the path prefix a
    reverse proxy strips (given to a wrapped ASGI app as ``root_path``).
    ``allow_eio3``: also accept socket.io-client 2.x (Engine.IO v3, Socket.IO protocol v4), as
    Node's ``allowEIO3``; off by default (those clients get "Unsupported protocol version").
    ``parser``: ``"json"`` (default), ``"msgpack"`` (the npm ``socket.io-msgpack-parser``) or a
    parser object (see :mod:`fastsio.parser`).
    ``connection_state_recovery``: True (or a dict: ``max_disconnection_duration`` seconds,
    default 120; ``skip_middlewares``, default True; ``max_packets`` logged, default 100,000)
    lets a client that lost its connection come back as the same socket with what it missed
    (Node's ``connectionStateRecovery``; see :mod:`fastsio.recovery`).
    ``cleanup_empty_child_namespaces``: remove a dynamic namespace's child (and close its
    adapter) once its last socket has left, as Node's option of that name; off by default, as in
    Node. ``max_namespaces_per_client``: how many namespaces one connection may join (or be
    joining) at once; past it the CONNECT is answered with a CONNECT_ERROR (None: no bound).
    ``max_buffered_bytes``: a WebSocket client that stops reading is disconnected ("transport
    error", logged) once this many bytes wait to be sent to it (Node has no bound); keep it above
    the largest message you send. ``shutdown_timeout``: seconds ``close()`` waits for handlers
    still running (after the clients are disconnected) before it cancels them.
    ``per_message_deflate``: WebSocket compression (RFC 7692), Node's ``perMessageDeflate``: off
    by default as in Node; True, or a dict of ``fastsio.protocol.deflate.PerMessageDeflate``'s
    settings (``threshold`` 1024 bytes, ``level``, ``mem_level``, ``server_max_window_bits``,
    ``client_max_window_bits``, ``client_no_context_takeover``). A broadcast is deflated once
    for all its targets. ``http_compression``: gzip/deflate of long-polling responses of at
    least ``threshold`` bytes (1024) when the client accepts it, Node's ``httpCompression``: on
    by default; False, or a dict (``threshold``, ``level``). ``compress(False)`` on a socket or
    an operator sends the next emit uncompressed.
    ``cookie``: the answer to a polling handshake sets a cookie holding the session id, for a
    cookie-based sticky load balancer (Node's ``cookie`` option): off by default as in Node;
    True (``io=<sid>; Path=/; HttpOnly; SameSite=Lax``) or a dict (``name``, ``path``,
    ``httponly``, ``samesite``, ``secure``, ``domain``, ``max_age``, ``expires``,
    ``partitioned``, ``priority``). ``sio.engine`` is the Engine.IO server (Node's
    ``io.engine``): ``on("connection_error" | "initial_headers" | "headers" | "connection")``,
    ``generate_id``, ``clients_count``.
    ``trusted_proxies``: behind a reverse proxy, the addresses or networks (CIDR; ``"*"``: any
    peer) of the proxies whose forwarding headers are believed: a request from one of them gets
    the client's address and scheme (``socket.handshake.address`` / ``.secure``, what
    ``allow_request`` sees) from ``X-Forwarded-For`` / ``X-Forwarded-Proto``, read from the right
    past every trusted hop; ``proxy_headers="forwarded"`` reads RFC 7239's ``Forwarded``
    instead (only the one the proxies write is read: a client could forge the other). See
    :mod:`fastsio.http.proxy`.
    ``access_log``: log one line per answered HTTP request (client, request line, status, size,
    time) on the ``fastsio.http.access`` logger at INFO level (``fastsio run --access-log``).
    What is logged otherwise: see the README's "Logging".
    ``headers_timeout`` / ``request_timeout``: seconds an HTTP request may take to arrive, its
    head / the whole of it, counted from its first byte; past them the client gets 408 and the
    connection is closed (Node's http server's options of those names, with their defaults 60
    and 300; None: no bound). A slow client (slowloris) cannot hold a connection open with a
    head that never ends. A held long-poll does not count: only receiving the request does.
    """

    def __init__(
        self,
        *,
        path: str = "/socket.io",
        cors_allowed_origins: Any = None,
        cors_credentials: bool = True,
        ping_interval: float = 25,
        ping_timeout: float = 20,
        max_http_buffer_size: int = 1_000_000,
        transports: Iterable[str] = ("polling", "websocket"),
        allow_upgrades: bool = True,
        allow_request: Callable[[Any], Any] | None = None,
        connect_timeout: float | None = 45,
        serve_client: bool | str | os.PathLike = True,
        static_files: None | str | os.PathLike = None,
        adapter: Callable[[Namespace], Any] = InMemoryAdapter,
        logger: logging.Logger | None = None,
        allow_eio3: bool = False,
        parser: Any = "json",
        connection_state_recovery: bool | dict = False,
        cleanup_empty_child_namespaces: bool = False,
        max_namespaces_per_client: int | None = 100,
        max_buffered_bytes: int = 4 * 1024 * 1024,
        shutdown_timeout: float = 5.0,
        per_message_deflate: bool | dict = False,
        http_compression: bool | dict = True,
        root_path: str = "",
        cookie: bool | dict = False,
        trusted_proxies: Iterable[str] | str | None = None,
        proxy_headers: str = "x-forwarded",
        access_log: bool = False,
        headers_timeout: float | None = 60,
        request_timeout: float | None = 300,
    ) -> None:
        self.path = "/" + path.strip("/")
        self.cors_allowed_origins = cors_allowed_origins
        self.cors_credentials = cors_credentials
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.max_http_buffer_size = max_http_buffer_size
        self.transports = tuple(transports)
        if not self.transports or not set(self.transports) <= {"polling", "websocket"}:
            raise ValueError(f"transports must be 'polling' and/or 'websocket', not {transports!r}")
        self.allow_upgrades = allow_upgrades
        self.allow_request = allow_request
        self.connect_timeout = connect_timeout
        self.serve_client = serve_client
        self.static_files = static_files
        self.root_path = "/" + root_path.strip("/") if root_path.strip("/") else ""
        # @route handlers by exact path (fastsio.http.routes)
        self._routes: dict = {}
        #: the ASGI app served on every path that is not Socket.IO's, a route or a static file
        #: (set by fastsio.ASGIApp when the native server runs it: ``fastsio run module:app``)
        self.other_asgi_app: Any = None
        self._asgi_bridge: Any = None
        from .recovery import SessionAwareAdapter, recovery_options

        #: None, or the options of connection state recovery (see fastsio.recovery)
        self.connection_state_recovery = recovery_options(connection_state_recovery)
        if self.connection_state_recovery is not None and adapter is InMemoryAdapter:
            adapter = SessionAwareAdapter  # the packet log and the saved sessions, as Node
        self.adapter_class = adapter
        self.logger = logger if logger is not None else logging.getLogger("fastsio")
        self.allow_eio3 = bool(allow_eio3)
        self.cleanup_empty_child_namespaces = bool(cleanup_empty_child_namespaces)
        if max_namespaces_per_client is not None and max_namespaces_per_client < 1:
            raise ValueError("max_namespaces_per_client must be at least 1 (or None)")
        self.max_namespaces_per_client = max_namespaces_per_client
        if max_buffered_bytes <= 0:
            raise ValueError("max_buffered_bytes must be positive")
        self.max_buffered_bytes = int(max_buffered_bytes)
        if shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must be >= 0 (seconds)")
        self.shutdown_timeout = float(shutdown_timeout)
        from .http.server import check_timeouts

        check_timeouts(headers_timeout=headers_timeout, request_timeout=request_timeout)
        self.headers_timeout = headers_timeout
        self.request_timeout = request_timeout
        from .http.compression import http_compression_options
        from .protocol.deflate import deflate_options

        #: permessage-deflate settings (None: off; the broadcast fan-out reads it) and the HTTP
        #: compression of polling responses (None: off)
        self.per_message_deflate = deflate_options(per_message_deflate)
        self.http_compression = http_compression_options(http_compression)
        #: the sid cookie of the polling handshake's answer (Node's ``cookie``), as given
        self.cookie = cookie
        #: one line per HTTP request answered, on the fastsio.http.access logger (INFO)
        self.access_log = bool(access_log)
        #: the reverse proxies whose forwarding headers are believed (None: the peer is the
        #: client); see fastsio.http.proxy
        self.trusted_proxies: Any = None
        if trusted_proxies is not None:
            from .http.proxy import TrustedProxies

            self.trusted_proxies = TrustedProxies(trusted_proxies, proxy_headers)
        #: the packet parser (server-wide, as in Node) and its (type, nsp, data, id) encoder;
        #: Socket.IO v2 clients get its ``for_eio3()`` variant where it has one
        self.parser = resolve_parser(parser)
        self.encode_packet: Callable[..., list] = encoder_of(self.parser)
        for_eio3 = getattr(self.parser, "for_eio3", None)
        self._parser3 = for_eio3() if for_eio3 is not None else self.parser
        self._encode3: Callable[..., list] = (
            encoder_of(self._parser3) if self._parser3 is not self.parser else self.encode_packet
        )

        from .engine import EngineServer

        #: the Engine.IO server (Node's ``io.engine``): its hooks (``on("connection_error")``,
        #: ``on("headers")``..., ``generate_id``) may be set before start(), which gives it the
        #: options above; ``clients_count`` and ``sessions`` while running
        self.engine: EngineServer = EngineServer(**self._engine_options())
        #: the HttpServer, while started
        self.http: HttpServer | None = None
        #: the port listened on (set by start(); useful with port 0)
        self.port: int | None = None
        #: this process's place among ``--workers`` processes (a fastsio.workers.WorkerInfo), or
        #: None in a single process; set by the supervisor before start()
        self.worker: WorkerInfo | None = None

        # ack ids: one counter for the whole server, so that one broadcast packet can carry the
        # same id to every socket (of several namespaces, for a dynamic parent)
        self.next_ack_id: Callable[[], int] = itertools.count().__next__
        self._namespaces: dict = {}
        self._parents: dict = {}
        self._parent_list: list = []
        self._clients: set = set()
        self._listener: Any = None
        self._stopped: asyncio.Event | None = None
        # set while close() runs: a second close() waits for the same end
        self._closing: asyncio.Future | None = None
        # every namespace's adapter, in creation order: initialised by start(), closed by close()
        self._adapters: list = []
        self._adapters_running = False
        self._adapter_tasks: set = set()
        # adapters of removed child namespaces being closed (cleanup_empty_child_namespaces)
        self._cleanup_tasks: set = set()
        self._namespace_listeners: list = []
        self._services: list = []
        #: the main namespace "/"
        self.main_namespace: Namespace = self.of("/")

    def __repr__(self) -> str:
        where = f" port={self.port}" if self.port is not None else ""
        return f"<fastsio.Server path={self.path}{where} clients={len(self._clients)}>"

    def __getattr__(self, name: str) -> Any:
        # only for names not found otherwise: python-socketio's, answered with fastsio's way
        hint = _PYTHON_SOCKETIO_NAMES.get(name)
        if hint is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        raise AttributeError(f"Server.{name} is python-socketio's; in fastsio: {hint}")

    # -- namespaces ------------------------------------------------------------------------------

    def of(self, name: NamespaceName) -> Namespace:
        """The namespace ``name`` (created on first use). A compiled regex or a function
        ``fn(name, auth) -> bool`` (or an awaitable bool) gives a parent namespace: its
        handlers and middleware apply to every namespace it accepts, created on first connect."""
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            nsp = self._namespaces.get(name)
            if nsp is None:
                nsp = self._namespaces[name] = Namespace(self, name)
                self._namespace_created(nsp)
            return nsp
        if isinstance(name, re.Pattern) or callable(name):
            parent = self._parents.get(name)
            if parent is None:
                parent = ParentNamespace(self, name, len(self._parent_list))
                self._parents[name] = parent
                self._parent_list.append(parent)
            return parent
        raise TypeError(f"namespace must be a str, a compiled regex or a function, not {name!r}")

    @property
    def namespaces(self) -> dict:
        """The namespaces by name (dynamic children included, parents not)."""
        return dict(self._namespaces)

    def _add_child_namespace(self, parent: ParentNamespace, name: str) -> Namespace:
        child = parent._create_child(name)
        self._namespaces[name] = child
        self._namespace_created(child)
        return child

    def instrument(
        self,
        *,
        auth: dict | None,
        mode: str = "development",
        namespace: str = "/admin",
        server_id: str | None = None,
        read_only: bool = False,
    ) -> Any:
        """Serve the official Socket.IO Admin UI's protocol (Node's ``instrument(io, ...)``).

        ``auth``: ``{"username": ..., "password": ...}`` where the password is a bcrypt hash (as
        Node requires; ``pip install 'fastsio[admin]'``) or, for development, plain; None lets
        anyone in. ``mode="production"`` reports only the stats, not every event. See
        :mod:`fastsio.admin`."""
        from .admin import instrument

        return instrument(
            self,
            auth=auth,
            mode=mode,
            namespace=namespace,
            server_id=server_id,
            read_only=read_only,
        )

    def on_new_namespace(self, listener: Callable[[Namespace], None]) -> Callable:
        """Call ``listener(nsp)`` for every namespace created from now on, dynamic children
        included (Node's ``io.on("new_namespace")``)."""
        self._namespace_listeners.append(listener)
        return listener

    def _namespace_created(self, nsp: Namespace) -> None:
        for listener in tuple(self._namespace_listeners):
            listener(nsp)

    def add_service(self, service: Any) -> None:
        """Run ``service.start()`` when the server has started (now, if it runs) and
        ``service.stop()`` when it closes: timers and the like of an extension (the Admin UI's
        instrumentation)."""
        self._services.append(service)
        if self.http is not None:
            service.start()

    # -- the main namespace's API ----------------------------------------------------------------

    @property
    def sockets(self) -> dict:
        """The sockets connected to the main namespace, by id."""
        return self.main_namespace.sockets

    def on(self, event: str, handler: Callable | None = None, *, namespace: Any = None) -> Any:
        """Register a handler on the main namespace (see Namespace.on); decorator or call.
        Other namespaces: ``sio.of("/chat").on(...)`` (python-socketio's ``namespace=``
        raises a TypeError saying so)."""
        if namespace is not None:
            raise TypeError(
                f"Server.on(..., namespace={namespace!r}) is python-socketio's; in fastsio:"
                f" sio.of({namespace!r}).on(event)"
            )
        return self.main_namespace.on(event, handler)

    def event(self, handler: Callable) -> Callable:
        """Register ``handler`` for the event named after the function, on the main
        namespace (``@sio.event def chat(socket, msg)`` handles ``"chat"``)."""
        return self.main_namespace.event(handler)

    def off(self, event: str, handler: Callable | None = None) -> None:
        """Remove ``handler`` (or every handler) of ``event`` on the main namespace."""
        self.main_namespace.off(event, handler)

    def use(self, middleware: Callable | None = None) -> Any:
        """Add a middleware to the main namespace (see Namespace.use); decorator or call."""
        return self.main_namespace.use(middleware)

    def use_packets(self, middleware: Callable | None = None) -> Any:
        """Add a packet middleware to the main namespace (see Namespace.use_packets)."""
        return self.main_namespace.use_packets(middleware)

    def emit(
        self,
        event: str,
        *args: Any,
        ack: Callable | None = None,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: Any = None,
        callback: Any = None,
    ) -> bool:
        """Send an event to every socket of the main namespace (``sio.to(room).emit(...)``,
        ``sio.of(name).emit(...)``... for others). ``to``, ``room``, ``skip_sid``,
        ``namespace`` and ``callback`` are python-socketio's: they raise a TypeError that names
        fastsio's way."""
        if to is not None or room is not None or skip_sid is not None or namespace is not None:
            _refuse_python_socketio(to, room, skip_sid, namespace)
        if callback is not None:
            raise TypeError(_CALLBACK_HINT)
        return self.main_namespace.emit(event, *args, ack=ack)

    def send(
        self,
        *args: Any,
        ack: Callable | None = None,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: Any = None,
        callback: Any = None,
    ) -> bool:
        """``emit("message", *args)`` to every socket of the main namespace (Node's ``send``)."""
        if to is not None or room is not None or skip_sid is not None or namespace is not None:
            _refuse_python_socketio(to, room, skip_sid, namespace)
        if callback is not None:
            raise TypeError(_CALLBACK_HINT)
        return self.main_namespace.send(*args, ack=ack)

    write = send

    async def emit_with_ack(self, event: str, *args: Any) -> list:
        """Send an event to every socket of the main namespace and wait for their answers:
        a list, one per client (``AckTimeoutError`` with ``responses`` after ``timeout(s)``)."""
        return await self.main_namespace.emit_with_ack(event, *args)

    def to(self, rooms: Rooms) -> BroadcastOperator:
        """A broadcast operator reaching the sockets in ``rooms`` (a name or several);
        ``to`` and ``in_`` are the same, and chain: ``to("a").to("b")`` reaches both rooms."""
        return self.main_namespace.to(rooms)

    in_ = to

    def except_(self, rooms: Rooms) -> BroadcastOperator:
        """A broadcast operator reaching every socket except those in ``rooms``."""
        return self.main_namespace.except_(rooms)

    @property
    def volatile(self) -> BroadcastOperator:
        """A broadcast operator whose packets may be dropped for clients not ready to
        receive them (Node's ``volatile``)."""
        return self.main_namespace.volatile

    @property
    def local(self) -> BroadcastOperator:
        """A broadcast operator that reaches this server's sockets only, not those of the
        other servers of a cluster (Redis, ``--workers``)."""
        return self.main_namespace.local

    def timeout(self, seconds: float) -> BroadcastOperator:
        """A broadcast operator whose acknowledgements are awaited at most ``seconds``
        (``emit(..., ack=fn)`` / ``emit_with_ack``)."""
        return self.main_namespace.timeout(seconds)

    def compress(self, compress: bool = True) -> BroadcastOperator:
        """A broadcast operator that sends its packets compressed (``True``, the default)
        or not (``False``), where compression is on."""
        return self.main_namespace.compress(compress)

    def sockets_join(self, rooms: Rooms) -> None:
        """Make every socket of the main namespace join ``rooms`` (on every server of
        a cluster); ``sio.in_(room).sockets_join(...)`` for a subset."""
        self.main_namespace.sockets_join(rooms)

    def sockets_leave(self, rooms: Rooms) -> None:
        """Make every socket of the main namespace leave ``rooms`` (on every server)."""
        self.main_namespace.sockets_leave(rooms)

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect every socket of the main namespace (on every server);
        ``close=True`` also closes their connections."""
        self.main_namespace.disconnect_sockets(close)

    async def fetch_sockets(self) -> list:
        """The sockets of the main namespace, with those of the other servers of a
        cluster as ``RemoteSocket``s (``id``, ``rooms``, ``data``, ``emit``, ``join``...)."""
        return await self.main_namespace.fetch_sockets()

    def on_server_event(self, event: str, handler: Callable | None = None) -> Any:
        """Handle ``event`` sent by another server (see Namespace.on_server_event)."""
        return self.main_namespace.on_server_event(event, handler)

    def server_side_emit(self, event: str, *args: Any) -> bool:
        """Send ``event`` to every other server of the cluster (Node's ``io.serverSideEmit``)."""
        return self.main_namespace.server_side_emit(event, *args)

    async def server_side_emit_with_ack(
        self, event: str, *args: Any, timeout: float | None = None
    ) -> list:
        """``server_side_emit`` and wait for one answer per other server (Node's
        ``io.serverSideEmitWithAck``)."""
        return await self.main_namespace.server_side_emit_with_ack(event, *args, timeout=timeout)

    # -- adapters --------------------------------------------------------------------------------

    def use_adapter(self, factory: Callable[[Namespace], Any]) -> None:
        """Give every namespace an adapter made by ``factory`` (as ``Server(adapter=...)``);
        only before the server starts."""
        if self._adapters_running:
            raise RuntimeError("use_adapter() must be called before the server starts")
        self.adapter_class = factory
        self._adapters = []
        for nsp in self._namespaces.values():
            nsp.adapter = nsp._create_adapter()
            self._adapters.append(nsp.adapter)
        for parent in self._parent_list:
            self._adapters.append(parent.adapter)

    def _adapter_created(self, adapter: Any) -> None:
        """A namespace made its adapter: initialised with the others at start(), or now (in the
        background) if the server already runs."""
        self._adapters.append(adapter)
        if self._adapters_running:
            task = asyncio.ensure_future(self._init_adapter(adapter))
            self._adapter_tasks.add(task)
            task.add_done_callback(self._adapter_tasks.discard)

    async def _init_adapter(self, adapter: Any) -> None:
        try:
            await adapter.init()
        except Exception:
            self.logger.exception("the adapter of namespace %s failed to start", adapter.nsp.name)

    async def _start_adapters(self) -> None:
        self._adapters_running = True
        for adapter in list(self._adapters):
            await adapter.init()

    async def _close_adapters(self) -> None:
        self._adapters_running = False
        for task in list(self._adapter_tasks):
            task.cancel()
        for adapter in reversed(self._adapters):
            try:
                await adapter.close()
            except Exception:
                self.logger.exception(
                    "the adapter of namespace %s failed to close", adapter.nsp.name
                )

    # -- the engine side -------------------------------------------------------------------------

    def handle_engine_session(self, session: Any) -> Client:
        """Take a new Engine.IO session (the EngineServer's ``on_connection``)."""
        client = _impl.clients.Client(self, session)
        self._clients.add(client)
        if client.protocol == 3:
            # Socket.IO v2 clients are connected to "/" without asking (Node's allowEIO3 does so)
            client._connect("/", {})
        return client

    def _client_directory(self) -> str | None:
        """Where the client bundle is: a directory, "" when searched for and not found, None
        when ``serve_client`` is off."""
        serve = self.serve_client
        if serve is False or serve is None:
            return None
        if serve is True:
            return find_client_bundle() or ""
        directory = os.fspath(serve)
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"serve_client: no such directory: {directory!r}")
        return directory

    def _engine_options(self) -> dict:
        # read at start(): an app may change the options in between (sio.allow_eio3 = True)
        return {
            "path": self.path,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "max_http_buffer_size": self.max_http_buffer_size,
            "transports": self.transports,
            "allow_upgrades": self.allow_upgrades,
            "cors_allowed_origins": self.cors_allowed_origins,
            "cors_credentials": self.cors_credentials,
            "allow_request": self.allow_request,
            "on_connection": self.handle_engine_session,
            "allow_eio3": self.allow_eio3,
            "per_message_deflate": self.per_message_deflate,
            "http_compression": self.http_compression,
            "cookie": self.cookie,
        }

    # -- plain HTTP routes -----------------------------------------------------------------------

    def route(
        self, path: str, handler: Callable | None = None, *, methods: Iterable[str] = ("GET",)
    ) -> Any:
        """Serve ``path`` (an exact path) with ``handler(request)``, a plain function or an
        ``async def``, without a web framework: a health check, a login that issues a token::

            @sio.route("/health")
            def health(request):
                return {"status": "ok", "clients": len(sio.sockets)}

            @sio.route("/login", methods=["POST"])
            async def login(request):
                user = request.json()            # the body; request.query, request.headers...
                return fastsio.Response({"error": "bad password"}, status=401)

        The return value is the answer: ``str`` (text/plain, text/html when it starts with
        ``<``), ``bytes``, a ``dict``/``list`` (JSON), a ``pathlib.Path`` (the file), None (204)
        or a :class:`fastsio.Response` (status, headers, content type). ``GET`` routes answer
        ``HEAD`` too; another method gets 405. An exception is logged and answered 500. Routes
        are served by the native server and by :class:`fastsio.ASGIApp`; a route wins over
        ``static_files`` and the wrapped ASGI app, Socket.IO's ``path`` wins over a route.
        """
        from .http.routes import Route

        if not path.startswith("/"):
            raise ValueError(f"a route's path must start with '/': {path!r}")

        def register(function: Callable) -> Callable:
            self._routes[path] = Route(path, function, methods)
            return function

        return register if handler is None else register(handler)

    def build_http(self, fallback: Callable | None = None) -> tuple[Any, Any]:
        """The EngineServer and the HttpServer with everything mounted (the engine at ``path``,
        the client bundle, the routes, the static files, then ``fallback`` or 404), not
        listening yet. ``start()`` listens with them; fastsio.ASGIApp routes ASGI requests
        through them."""
        from .http import HttpServer, StaticFile, StaticFiles
        from .http.routes import Router
        from .http.server import not_found

        client_directory = self._client_directory()
        engine = self.engine
        engine.configure(**self._engine_options())
        http = HttpServer(
            max_body_size=self.max_http_buffer_size + _BODY_SLACK,
            headers_timeout=self.headers_timeout,
            request_timeout=self.request_timeout,
        )
        if self.trusted_proxies is not None:
            http.trust_proxies(self.trusted_proxies)
        if self.access_log:
            http.log_access()
        # the longest prefix wins, so the client files are found before the engine's path
        http.mount(self.path + "/", engine.handle_request)
        if client_directory:
            for name in CLIENT_FILES:
                file_path = os.path.join(client_directory, name)
                if os.path.isfile(file_path):
                    http.mount(f"{self.path}/{name}", StaticFile(file_path))
        elif client_directory == "":
            missing = MissingClient(self.logger)
            for name in CLIENT_FILES:
                http.mount(f"{self.path}/{name}", missing)
        if fallback is None:
            fallback = not_found
        if self.static_files is not None:
            fallback = StaticFiles(os.fspath(self.static_files), fallback=fallback)
        http.mount("/", Router(self._routes, fallback) if self._routes else fallback)
        return engine, http

    # -- running ---------------------------------------------------------------------------------

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        sock: socket.socket | None = None,
        ssl: Any = None,
    ) -> Any:
        """Listen on ``host:port`` (or on ``sock``, a bound socket) and return once listening
        (the asyncio server). The bound port is stored in ``self.port`` (useful with
        ``port=0``). ``ssl``: serve HTTPS/WSS, with an ``ssl.SSLContext``, a certificate file
        (PEM, the key included) or a ``(certfile, keyfile)`` pair (see
        :func:`fastsio.ssl_context`); ``socket.handshake.secure`` is then True."""
        if self.http is not None:
            raise RuntimeError("the server is already started")
        ssl = ssl_context(ssl)
        bridge = self._asgi_bridge
        engine, http = self.build_http(bridge.handle if bridge is not None else None)
        if bridge is not None:
            http.body_streamer = bridge.streams_body
            http.max_streamed_body_size = bridge.max_body_size
        handover = None
        worker = self.worker
        if worker is not None and worker.count > 1:
            # sids name their worker; a request for another worker's session is handed over to
            # it (the engine closes the hand-over in close())
            from .engine.ids import owner_prefix
            from .http.handover import Handover

            handover = Handover(
                http,
                worker.index,
                worker.count,
                worker.handover_path,
                self.path + "/",
                engine.sid_owner,
                owner_prefix(worker.index, worker.count),
            )
            engine.use_workers(worker.index, worker.count, handover)
            http.handover = handover
        self._stopped = asyncio.Event()
        try:
            await self._start_adapters()
            if handover is not None:
                handover.start()
            if bridge is not None:
                await bridge.startup()
            listener = await http.start(host, port, sock=sock, ssl=ssl)
        except BaseException:
            if handover is not None:
                handover.close()
            if bridge is not None:
                await bridge.shutdown()
            await self._close_adapters()
            raise
        self.http = http
        self._listener = listener
        self.port = listener.sockets[0].getsockname()[1]
        for service in tuple(self._services):
            service.start()
        return listener

    async def start_without_listening(self) -> Any:
        """Start everything but the listening socket and return the HttpServer whose
        ``dispatch(request)`` serves requests that came some other way (fastsio.ASGIApp under
        an ASGI server)."""
        if self.http is not None:
            raise RuntimeError("the server is already started")
        _engine, http = self.build_http()
        self._stopped = asyncio.Event()
        await self._start_adapters()
        self.http = http
        for service in tuple(self._services):
            service.start()
        return http

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        sock: socket.socket | None = None,
        ssl: Any = None,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        """Start, then wait until the server is closed (``close()``, or the task is cancelled:
        it closes then). ``ssl`` as for :meth:`start`; ``on_listening(port)`` is called once
        the port is bound."""
        await self.start(host, port, sock=sock, ssl=ssl)
        if on_listening is not None:
            on_listening(self.port)
        stopped = self._stopped
        assert stopped is not None
        try:
            await stopped.wait()
        finally:
            await self.close()

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        workers: int | str = 1,
        sock: socket.socket | None = None,
        ssl: Any = None,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        """Serve until interrupted (Ctrl-C or SIGTERM close cleanly), on uvloop when it is
        installed. Blocks. ``workers``: that many processes on the one port (0 or "auto": one
        per core), sharing rooms and broadcasts (see :mod:`fastsio.workers`). ``ssl``: HTTPS
        and WSS, as for :meth:`start`. ``on_listening(port)`` is called once the port is bound
        (an ``OSError`` such as "address already in use" is raised before)."""
        if workers != 1:
            if ssl is not None:
                raise ValueError("ssl= with several workers is not supported yet")
            from .workers import run_workers

            status = run_workers(self, host, port, workers)
            if status:
                raise SystemExit(status)
            return
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency where it exists
            uvloop = None  # type: ignore[assignment]
        main = self._run_main(host, port, sock, ssl, on_listening)
        try:
            if sys.version_info >= (3, 11):
                loop_factory = uvloop.new_event_loop if uvloop is not None else None
                with asyncio.Runner(loop_factory=loop_factory) as runner:
                    runner.run(main)
            else:  # pragma: no cover - depends on the Python version
                if uvloop is not None:
                    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
                asyncio.run(main)
        except KeyboardInterrupt:
            pass

    async def _run_main(
        self,
        host: str,
        port: int,
        sock: socket.socket | None = None,
        ssl: Any = None,
        on_listening: Callable[[int], None] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGTERM, self._request_stop)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
            pass  # not on this platform / not the main thread
        await self.serve(host, port, sock=sock, ssl=ssl, on_listening=on_listening)

    def _request_stop(self) -> None:
        if self._stopped is not None:
            self._stopped.set()

    def close(self, callback: Callable[[], Any] | None = None) -> Any:
        """Close the server, as Node's ``io.close(cb)``; ``await sio.close()``, or
        ``sio.close(callback)`` from sync code on the loop (``callback()`` is called when done;
        the Task doing it is returned).

        Every socket is disconnected ("server shutting down") and every client told: a WebSocket
        gets its close frame, a polling client collects its close packet (new handshakes are
        refused meanwhile; at most ``CLOSE_PACKET_WAIT`` seconds, or ``shutdown_timeout`` if
        less).
        Then every HTTP connection is closed and the port released; the handlers still running
        get up to ``shutdown_timeout`` seconds to finish before they are cancelled (and logged);
        the adapters close last. Returns when all of that is done; a second call made meanwhile
        waits for the same end."""
        if callback is None:
            return self._close()
        task = asyncio.ensure_future(self._close())
        task.add_done_callback(lambda done: self._closed_callback(callback, done))
        return task

    def _closed_callback(self, callback: Callable[[], Any], task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("closing the server failed", exc_info=task.exception())
        try:
            callback()
        except Exception:
            self.logger.exception("error in the close() callback")

    async def _close(self) -> None:
        from . import _eager

        closing = self._closing
        if closing is not None:
            await asyncio.shield(closing)
            return
        closing = self._closing = asyncio.get_running_loop().create_future()
        try:
            for service in tuple(self._services):
                service.stop()
            for client in list(self._clients):
                client._on_close("server shutting down")
                client.session.close("server shutting down")
            self._clients.clear()
            http = self.http
            self.http = self._listener = None
            await self.engine.close(min(CLOSE_PACKET_WAIT, self.shutdown_timeout))
            if http is not None:
                await http.close()
            if self._asgi_bridge is not None and http is not None:
                await self._asgi_bridge.shutdown()
            await _eager.finish_tasks(self, self.shutdown_timeout, self.logger)
            if self._cleanup_tasks:  # removed namespaces' adapters (each task logs its failure)
                await asyncio.gather(*self._cleanup_tasks, return_exceptions=True)
            await self._close_adapters()
        finally:
            self._closing = None
            closing.set_result(None)
            if self._stopped is not None:
                self._stopped.set()


def find_client_bundle(start: Path | None = None) -> str | None:
    """The directory of the socket.io client bundle (``node_modules/socket.io-client/dist``
    holding ``socket.io.js``) in ``start`` (default: the current directory), the directory of
    the ``__main__`` script, or one of their parents; None when there is none."""
    places = [start or Path.cwd()]
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        places.append(Path(main_file).resolve().parent)
    seen = set()
    for place in places:
        for directory in (place, *place.parents):
            if directory in seen:
                break
            seen.add(directory)
            candidate = directory / _CLIENT_DIST
            if (candidate / "socket.io.js").is_file():
                return str(candidate)
    return None


class MissingClient:
    """The HTTP handler at ``{path}/socket.io.js`` when the client bundle is not installed:
    404 with how to get it, and the same logged once."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.logged = False

    def __call__(self, request: Any) -> None:
        message = CLIENT_MISSING.format(url=request.path, dist=_CLIENT_DIST)
        if not self.logged:
            self.logged = True
            self.logger.warning(
                "%s answered 404: the socket.io client bundle is not installed; run `npm install"
                " socket.io-client` where the app runs (%s is looked for in the current and the"
                " app's directory and their parents), or set Server(serve_client=DIR), or load"
                " the client from https://cdn.socket.io",
                request.path,
                _CLIENT_DIST,
            )
        request.respond(404, [("Content-Type", "text/plain; charset=utf-8")], message.encode())


def ssl_context(ssl: Any) -> Any:
    """An ``ssl.SSLContext`` for serving from what ``ssl=`` was given: a context (returned as
    is), a PEM file holding the certificate chain and its key, or a ``(certfile, keyfile)``
    pair; None stays None."""
    if ssl is None:
        return None
    import ssl as ssl_module

    if isinstance(ssl, ssl_module.SSLContext):
        return ssl
    if isinstance(ssl, (str, os.PathLike)):
        certfile, keyfile = ssl, None
    elif isinstance(ssl, tuple) and len(ssl) == 2:
        certfile, keyfile = ssl
    else:
        raise TypeError(
            f"ssl must be an ssl.SSLContext, a certificate file or a (certfile, keyfile) pair,"
            f" not {type(ssl).__name__}"
        )
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context
