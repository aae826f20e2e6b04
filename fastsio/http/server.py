"""HttpServer: listens, routes requests to handlers by path prefix, tracks connections."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

from .._impl import TickWriter, WebSocketConnection
from .access_log import AccessLogged
from .protocol import AdoptedHttpProtocol, HttpProtocol, WorkerHttpProtocol
from .request import Request

logger = logging.getLogger("fastsio.http")

Handler = Callable[[Request], None]

_TEXT_PLAIN = [("Content-Type", "text/plain; charset=utf-8")]


def not_found(request: Request) -> None:
    request.respond(404, _TEXT_PLAIN, b"Not Found")


class HttpServer:
    """An HTTP/1.1 + WebSocket server. Handlers are plain callables taking a :class:`Request`;
    they answer it with ``request.respond`` (now or later) or ``request.accept_websocket``.

    ``max_body_size`` bounds a request body (413 past it), ``max_header_size`` the request head
    (431), ``max_message_size`` a WebSocket message (close 1009; default: ``max_body_size``).
    A keep-alive connection idle (no request in progress) for ``keep_alive_timeout`` seconds is
    closed; None disables that.
    """

    def __init__(
        self,
        max_body_size: int = 1_100_000,
        *,
        max_header_size: int = 65536,
        max_message_size: int | None = None,
        keep_alive_timeout: float | None = 30.0,
    ) -> None:
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.max_message_size = max_body_size if max_message_size is None else max_message_size
        self.keep_alive_timeout = keep_alive_timeout
        self.default_handler: Handler = not_found
        # (prefix without trailing slash, that prefix + "/", handler), longest first
        self._mounts: list[tuple[str, str, Handler]] = []
        # Open HttpProtocol and WebSocketConnection objects, closed by close().
        self._connections: set[Any] = set()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed: asyncio.Event | None = None
        # Corks WebSocket frames written outside a connection's own data_received (set by start).
        self.tick_writer: TickWriter | None = None
        #: several workers: the ``http/handover.Handover`` that takes requests for other
        #: workers' sessions (set before start(); None in a single process)
        self.handover: Any = None
        #: ``body_streamer(request) -> bool``, asked once a request's head is read: True
        #: dispatches the request at once, its body then read from ``request.body_stream`` as it
        #: arrives and not bounded by ``max_body_size`` (the ASGI bridge's requests); None: every
        #: body is read whole before its request is dispatched
        self.body_streamer: Callable[[Request], bool] | None = None
        #: the bound of a streamed body (413 for a longer Content-Length; a chunked body past it
        #: closes the connection); None: unbounded
        self.max_streamed_body_size: int | None = None
        # connect_accepted_socket() coroutines of connections being adopted -> their sockets
        self._adopting: dict[Any, socket.socket] = {}
        #: the trusted reverse proxies (see trust_proxies), or None
        self.proxies: Any = None
        #: whether answered requests are logged (see log_access)
        self.access_log = False

    # -- routing -------------------------------------------------------------------------------

    def mount(self, prefix: str, handler: Handler) -> None:
        """Route paths equal to ``prefix`` or below it (at a ``/`` boundary) to ``handler``;
        the longest matching prefix wins. ``"/"`` catches everything else."""
        if not prefix.startswith("/"):
            raise ValueError(f"mount prefix must start with '/': {prefix!r}")
        base = prefix.rstrip("/")
        mounts = [m for m in self._mounts if m[0] != base]
        mounts.append((base, base + "/", handler))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        self._mounts = mounts

    def route(self, path: str) -> tuple[Handler, str]:
        """The handler for ``path`` and the prefix it was mounted at."""
        for base, base_slash, handler in self._mounts:
            if path.startswith(base_slash) or path == base:
                return handler, base
        return self.default_handler, ""

    def trust_proxies(self, proxies: Any) -> None:
        """Behind a reverse proxy: requests from one of ``proxies`` (an ``http.proxy.
        TrustedProxies``) get the client's address and scheme in ``request.client`` and
        ``request.secure`` before they are dispatched. None: off."""
        self.proxies = proxies
        self._choose_dispatch()

    def log_access(self, enabled: bool = True) -> None:
        """One line per answered request on the ``fastsio.http.access`` logger (INFO): client,
        request line, status, body size, time taken; a WebSocket upgrade is logged with 101."""
        self.access_log = bool(enabled)
        self._choose_dispatch()

    def _choose_dispatch(self) -> None:
        # the plain method unless a per-request option is on: nothing is looked at per request
        # for options that are off
        if self.proxies is None and not self.access_log:
            self.__dict__.pop("dispatch", None)
        else:
            self.dispatch = self._dispatch_with_options  # type: ignore[method-assign]

    def _dispatch_with_options(self, request: Request) -> None:
        proxies = self.proxies
        if proxies is not None:
            proxies.apply(request)
        if self.access_log and request._protocol is not None:
            # it answers every call a Request makes of its protocol
            request._protocol = AccessLogged(request._protocol)  # type: ignore[assignment]
        HttpServer.dispatch(self, request)

    def dispatch(self, request: Request) -> None:
        handler, request.mount_path = self.route(request.path)
        try:
            handler(request)
        except Exception:
            logger.exception("handler failed for %s %s", request.method, request.url)
            if not request.responded:
                request.respond(500, _TEXT_PLAIN, b"Internal Server Error")

    def adopt(self, sock: socket.socket, replay: bytes) -> None:
        """Serve a connection handed over by another process (``Request.hand_over`` there):
        ``sock`` is its socket, ``replay`` the bytes that process had read from it, parsed here
        before anything else. Closed at once when this server is not running."""
        loop = self._loop
        if loop is None or self._server is None or self._closed is None or self._closed.is_set():
            sock.close()
            return

        def factory() -> HttpProtocol:
            return AdoptedHttpProtocol(self, loop, replay)

        self._step_adoption(loop.connect_accepted_socket(factory, sock), sock)

    def _step_adoption(self, coro: Any, sock: socket.socket, _done: Any = None) -> None:
        # connect_accepted_socket() driven by hand instead of by a Task (one Task and its
        # callbacks less per handed-over connection): it awaits one future, the transport's
        # connection_made, and returns.
        try:
            waiting = coro.send(None)
        except StopIteration:
            self._adopting.pop(coro, None)
            return
        except BaseException as exc:
            self._adopting.pop(coro, None)
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass
            if not isinstance(exc, Exception):
                raise
            logger.warning("could not adopt a handed-over connection: %r", exc)
            return
        self._adopting[coro] = sock
        if waiting is None:  # pragma: no cover - a bare yield: not what the loops do
            self._loop.call_soon(self._step_adoption, coro, sock)  # type: ignore[union-attr]
        else:
            waiting._asyncio_future_blocking = False
            waiting.add_done_callback(partial(self._step_adoption, coro, sock))

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        backlog: int = 1024,
        sock: socket.socket | None = None,
        ssl: Any = None,
    ) -> asyncio.AbstractServer:
        """Listen on ``host:port`` (or an already bound ``sock``) and return the asyncio server;
        ``server.sockets[0].getsockname()`` tells the port when ``port`` was 0."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.tick_writer = TickWriter(loop)

        # several workers: a connection's first bytes are checked for another worker's sid
        protocol_class = HttpProtocol if self.handover is None else WorkerHttpProtocol

        def factory() -> HttpProtocol:
            return protocol_class(self, loop)

        if sock is not None:
            server = await loop.create_server(factory, sock=sock, backlog=backlog, ssl=ssl)
        else:
            server = await loop.create_server(
                factory, host, port, reuse_port=reuse_port or None, backlog=backlog, ssl=ssl
            )
        # Small Engine.IO packets must leave at once, not wait for Nagle. asyncio and uvloop
        # both set TCP_NODELAY on accepted sockets already; setting it on the listener too
        # (inherited by accepted sockets on Linux) keeps that true on any loop.
        for listener in server.sockets:
            if listener.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except (OSError, AttributeError):  # pragma: no cover
                    pass
        self._server = server
        self._closed = asyncio.Event()
        if self.keep_alive_timeout is not None:
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return server

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called (after :meth:`start`)."""
        if self._closed is None:
            raise RuntimeError("start() the server first")
        await self._closed.wait()

    def _sweep_interval(self) -> float:
        return max(min(self.keep_alive_timeout / 4, 5.0), 0.05)  # type: ignore[operator]

    def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than keep_alive_timeout. One timer for
        the whole server instead of one per connection."""
        loop = self._loop
        assert loop is not None and self.keep_alive_timeout is not None
        limit = loop.time() - self.keep_alive_timeout
        idle = [
            conn
            for conn in self._connections
            if isinstance(conn, HttpProtocol)
            and conn.idle_since is not None
            and conn.idle_since < limit
        ]
        for conn in idle:
            conn.close()
        self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)

    async def close(self, timeout: float = 2.0) -> None:
        """Stop listening, close every open connection (WebSockets with 1001, pending requests
        see ``on_close``) and wait up to ``timeout`` seconds for them to be gone."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        server = self._server
        if server is not None:
            server.close()
        if self._closed is not None:
            self._closed.set()
        for coro, sock in list(self._adopting.items()):
            coro.close()  # the transport is closed with it
            sock.close()
        self._adopting.clear()
        for conn in list(self._connections):
            if isinstance(conn, WebSocketConnection):
                conn.close(1001, "server shutting down")
            else:
                conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._connections:
            await asyncio.sleep(0)
        if server is not None:
            await server.wait_closed()
            self._server = None
