"""HttpServer: listens, routes requests to handlers by path prefix, tracks connections."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from functools import partial
from typing import Any

from .._impl import TickWriter, WebSocketConnection, http_protocol
from .access_log import AccessLogged
from .request import Request

# the classes _impl picked: compiled (fastsio._speedups.httpproto_c) or pure (.protocol)
HttpProtocol = http_protocol.HttpProtocol
WorkerHttpProtocol = http_protocol.WorkerHttpProtocol
AdoptedHttpProtocol = http_protocol.AdoptedHttpProtocol

logger = logging.getLogger("fastsio.http")

Handler = Callable[[Request], None]

_TEXT_PLAIN = [("Content-Type", "text/plain; charset=utf-8")]
# Paths whose mount is remembered (HttpServer.route): up to this many, of up to this many
# characters; past that the memory starts over, so clients asking for ever new paths cannot grow
# it (at most ~64 KB).
_ROUTES_CACHED = 256
_ROUTE_CACHED_LENGTH = 200


def not_found(request: Request) -> None:
    request.respond(404, _TEXT_PLAIN, b"Not Found")


def check_timeouts(**timeouts: float | None) -> None:
    """ValueError unless each timeout is positive seconds or None, and the head's is not longer
    than the whole request's (Node refuses that too)."""
    for name, value in timeouts.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive seconds (or None), not {value!r}")
    head, whole = timeouts.get("headers_timeout"), timeouts.get("request_timeout")
    if head is not None and whole is not None and head > whole:
        raise ValueError("headers_timeout must not be longer than request_timeout")


def _limit(now: float, timeout: float | None) -> float:
    """The loop time before which something began has timed out (never, without a timeout)."""
    return float("-inf") if timeout is None else now - timeout


class HttpServer:
    """An HTTP/1.1 + WebSocket server. Handlers are plain callables taking a :class:`Request`;
    they answer it with ``request.respond`` (now or later) or ``request.accept_websocket``.

    ``max_body_size`` bounds a request body (413 past it), ``max_header_size`` the request head
    (431), ``max_message_size`` a WebSocket message (close 1009; default: ``max_body_size``).
    A keep-alive connection idle (no request in progress) for ``keep_alive_timeout`` seconds is
    closed; None disables that. A request whose head is not complete ``headers_timeout`` seconds
    after its first byte, or that is not received whole after ``request_timeout`` seconds, is
    answered 408 and its connection closed (Node's ``headersTimeout`` and ``requestTimeout``,
    with their defaults; None disables either). The time a handler takes to answer (a held
    long-poll) counts for neither. One sweep for the whole server checks all three, every
    quarter of the shortest (at most every 5 seconds), so a timeout fires up to that much late.
    """

    def __init__(
        self,
        max_body_size: int = 1_100_000,
        *,
        max_header_size: int = 65536,
        max_message_size: int | None = None,
        keep_alive_timeout: float | None = 30.0,
        headers_timeout: float | None = 60.0,
        request_timeout: float | None = 300.0,
    ) -> None:
        check_timeouts(
            keep_alive_timeout=keep_alive_timeout,
            headers_timeout=headers_timeout,
            request_timeout=request_timeout,
        )
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.max_message_size = max_body_size if max_message_size is None else max_message_size
        self.keep_alive_timeout = keep_alive_timeout
        self.headers_timeout = headers_timeout
        self.request_timeout = request_timeout
        self.default_handler: Handler = not_found
        # (prefix without trailing slash, that prefix + "/", handler), longest first
        self._mounts: list[tuple[str, str, Handler]] = []
        # path -> (handler, prefix) of a mount, for route(): every Engine.IO request has the
        # same path, which a dict finds at once, where the loop tries every longer mount first
        # (the client files' mounts) with a str.startswith each
        self._routes: dict[str, tuple[Handler, str]] = {}
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
        self._routes = {}

    def route(self, path: str) -> tuple[Handler, str]:
        """The handler for ``path`` and the prefix it was mounted at."""
        found = self._routes.get(path)
        if found is not None:
            return found
        for base, base_slash, handler in self._mounts:
            if path.startswith(base_slash) or path == base:
                found = (handler, base)
                if len(path) <= _ROUTE_CACHED_LENGTH:
                    routes = self._routes
                    if len(routes) >= _ROUTES_CACHED:
                        routes.clear()
                    routes[path] = found
                return found
        return self.default_handler, ""  # not remembered: default_handler may be changed

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
        # route()'s usual answer, a remembered path, looked up here: a call less per request
        found = self._routes.get(request.path)
        handler, request.mount_path = found if found is not None else self.route(request.path)
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
        if self._timeouts():
            self._sweeper = loop.call_later(self._sweep_interval(), self._sweep)
        return server

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called (after :meth:`start`)."""
        if self._closed is None:
            raise RuntimeError("start() the server first")
        await self._closed.wait()

    def _timeouts(self) -> list[float]:
        timeouts = (self.keep_alive_timeout, self.headers_timeout, self.request_timeout)
        return [timeout for timeout in timeouts if timeout is not None]

    def _sweep_interval(self) -> float:
        return max(min(min(self._timeouts()) / 4, 5.0), 0.05)

    def _sweep(self) -> None:
        """Close keep-alive connections idle for longer than keep_alive_timeout, and time out
        requests received too slowly (``HttpProtocol.time_out``). One timer for the whole server
        instead of one per connection or per request."""
        loop = self._loop
        assert loop is not None
        now = loop.time()
        idle_limit = _limit(now, self.keep_alive_timeout)
        head_limit = _limit(now, self.headers_timeout)
        request_limit = _limit(now, self.request_timeout)
        idle, slow = [], []
        for conn in self._connections:
            if not isinstance(conn, HttpProtocol):
                continue
            since = conn.receiving_since
            if since is not None:
                if since < (head_limit if conn._in_head else request_limit):
                    slow.append(conn)
            elif conn.idle_since is not None and conn.idle_since < idle_limit:
                idle.append(conn)
        for conn in idle:
            conn.close()
        for conn in slow:
            conn.time_out()
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
