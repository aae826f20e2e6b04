"""ASGI, both ways: :class:`ASGIApp` serves Socket.IO under any ASGI server (uvicorn,
hypercorn...) beside a wrapped ASGI app (FastAPI, Starlette...), and the same object given to
``fastsio run`` has fastsio's own server serve Socket.IO natively and bridge every other path to
the wrapped app (:class:`~fastsio.asgi_bridge.NativeBridge`).

Under an ASGI server the Engine.IO layer is the same one the native server runs: each ASGI
request becomes a :class:`~fastsio.http.Request` whose answer (``respond``) or WebSocket
(``accept_websocket``) goes out through ASGI messages (:class:`AsgiExchange`,
:class:`AsgiWebSocket`). permessage-deflate is the ASGI server's business there (fastsio's own is
not offered), and ``--workers`` is the native server's only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .http.request import Request
from .protocol.websocket import OP_BINARY, OP_TEXT

logger = logging.getLogger("fastsio.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIAppType = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT_PLAIN = [(b"content-type", b"text/plain; charset=utf-8")]
# an AsgiWebSocket reports writing_paused past this many bytes waiting for the ASGI server (the
# engine then checks max_buffered_bytes, as with a native connection's transport)
_WRITE_HIGH_WATER = 64 * 1024


class ASGIApp:
    """An ASGI application serving ``sio`` (a :class:`fastsio.Server`) at its ``path``, its
    ``@sio.route`` routes and ``static_files``, and passing every other request to
    ``other_asgi_app`` (FastAPI, Starlette, Django's ASGI app...), lifespan events included::

        app = FastAPI(lifespan=...)
        sio = fastsio.Server(cors_allowed_origins="*")
        asgi_app = fastsio.ASGIApp(sio, app)

    then either ``uvicorn module:asgi_app`` (any ASGI server; Socket.IO over polling and over
    the server's WebSockets) or ``fastsio run module:asgi_app``: fastsio's own server then
    serves Socket.IO natively, at full speed, and every other path (HTTP and the app's own
    WebSocket routes) goes to the wrapped app through an ASGI bridge, on the same port.

    ``static_files``: a directory served at ``/`` (files found there win over the wrapped
    app); ``socketio_path``: where Socket.IO is served (default: ``sio.path``, ``/socket.io``).
    Under ``fastsio run`` only: ``max_body_size`` bounds a request body passed to the app (413
    past it; None: no bound; bodies stream to the app as they arrive), and an app that has not
    begun its answer after ``response_timeout`` seconds is cancelled and answered 500.
    The wrapped app's lifespan runs as under any ASGI server; the Socket.IO server is started
    before the app's startup and closed after its shutdown (``sio.close()``: the clients are
    disconnected with "server shutting down"). Without a wrapped app, requests that are not
    Socket.IO's answer 404.
    """

    def __init__(
        self,
        sio: Any,
        other_asgi_app: ASGIAppType | None = None,
        static_files: str | os.PathLike | None = None,
        socketio_path: str | None = None,
        *,
        max_body_size: int | None = 100 * 1024 * 1024,
        response_timeout: float = 60.0,
    ) -> None:
        self.sio = sio
        self.other_asgi_app = other_asgi_app
        self.max_body_size = max_body_size
        self.response_timeout = response_timeout
        if static_files is not None:
            sio.static_files = static_files
        if socketio_path is not None:
            sio.path = "/" + socketio_path.strip("/")
        self._http: Any = None
        self._starting: asyncio.Future | None = None

    # -- fastsio run module:asgi_app ----------------------------------------------------------

    def native(self) -> Any:
        """The Server, set for fastsio's own server to pass what is not Socket.IO's to the
        wrapped app (``fastsio run`` calls this)."""
        from .asgi_bridge import NativeBridge

        sio = self.sio
        if self.other_asgi_app is not None:
            sio._asgi_bridge = NativeBridge(
                self.other_asgi_app, sio, self.response_timeout, self.max_body_size
            )
        return sio

    # -- under an ASGI server -------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            if self.other_asgi_app is not None:
                await self.other_asgi_app(scope, receive, send)
            return
        await self._ensure_started()  # a server run without lifespan events
        if not self._ours(scope) and self.other_asgi_app is not None:
            await self.other_asgi_app(scope, receive, send)
        elif kind == "http":
            await self._serve_http(scope, receive, send)
        else:
            await self._serve_websocket(scope, receive, send)

    def _ours(self, scope: Scope) -> bool:
        kind = scope["type"]
        return served_by_fastsio(self.sio, scope_path(scope), scope.get("method", "GET"), kind)

    async def _ensure_started(self) -> None:
        if self._http is not None:
            return
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        self._http = await self.sio.start_without_listening()

    async def _stop(self) -> None:
        if self._starting is not None:
            try:
                await self._starting
            except Exception:  # noqa: BLE001 - reported to whoever awaited the start
                logger.debug("closing after a failed start")
        self._starting = None
        self._http = None
        await self.sio.close()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.other_asgi_app is None:
            await self._own_lifespan(receive, send)
            return

        async def receive_around_app() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._ensure_started()  # before the app's startup: it may emit
            return message

        async def send_around_app(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self._stop()  # after the app's shutdown
            await send(message)

        await self.other_asgi_app(scope, receive_around_app, send_around_app)

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._ensure_started()
                except Exception as exc:
                    logger.exception("fastsio could not start")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        http = self._http
        body = await read_body(receive, http.max_body_size)
        if body is None:
            await send_plain(send, 413, b"Payload Too Large")
            return
        loop = asyncio.get_running_loop()
        exchange = AsgiExchange(loop, send)
        request = request_from_scope(exchange, scope, body)
        http.dispatch(request)
        if not exchange.answered.done():
            # a held long-polling GET: wait for its answer, or for the client to leave
            disconnect = loop.create_task(receive())
            await asyncio.wait({exchange.answered, disconnect}, return_when="FIRST_COMPLETED")
            if not exchange.answered.done():
                exchange.client_gone(request)
                return
            disconnect.cancel()
        status, headers, content = exchange.response
        await send_response(send, scope["method"], status, headers, content)

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        loop = asyncio.get_running_loop()
        exchange = AsgiExchange(loop, send)
        request = request_from_scope(exchange, scope, b"")
        self._http.dispatch(request)
        await exchange.answered
        answer = exchange.response
        if isinstance(answer, AsgiWebSocket):
            await answer.run(receive)
        else:  # the handshake was refused (bad sid, transport, origin...)
            await refuse_websocket(scope, send, *answer)


# -- the Request <-> ASGI glue -----------------------------------------------------------------


def served_by_fastsio(sio: Any, path: str, method: str, kind: str = "http") -> bool:
    """Whether fastsio answers a request itself (Socket.IO's path, a route, a static file that
    exists) rather than the wrapped ASGI app."""
    if path == sio.path or path.startswith(sio.path + "/"):
        return True
    if kind != "http":
        return False
    if path in sio._routes:
        return True
    if sio.static_files is not None and method in ("GET", "HEAD"):
        from .http.static import StaticFiles

        full = StaticFiles(os.fspath(sio.static_files)).resolve(path)
        return full is not None and os.path.exists(full)
    return False


def scope_path(scope: Scope) -> str:
    """The request's path below the ``root_path`` the ASGI server was given."""
    path = scope["path"]
    root = scope.get("root_path") or ""
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def scope_headers(scope: Scope) -> dict[str, str]:
    """ASGI headers as the native server gives them: lower-case names, repeats joined."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        previous = headers.get(name)
        headers[name] = value if previous is None else previous + ", " + value
    return headers


def request_from_scope(exchange: AsgiExchange, scope: Scope, body: bytes) -> Request:
    headers = scope_headers(scope)
    is_websocket = scope["type"] == "websocket"
    if is_websocket:
        headers.pop("sec-websocket-extensions", None)  # compression is the ASGI server's
    query_string = scope.get("query_string", b"").decode("latin-1")
    path = scope_path(scope)
    url = path + ("?" + query_string if query_string else "")
    client = tuple(scope.get("client") or ("", 0))
    request = Request(
        exchange,  # type: ignore[arg-type]
        scope.get("method", "GET"),
        url,
        path,
        query_string,
        headers,
        (str(client[0]), int(client[1])),
        scope.get("scheme") in ("https", "wss"),
        scope.get("http_version", "1.1"),
        True,
    )
    request.body = body
    request.is_websocket = is_websocket
    return request


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; None past ``limit`` bytes (413)."""
    parts = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""  # http.disconnect: nobody will read the answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def encode_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def send_plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _TEXT_PLAIN})
    await send({"type": "http.response.body", "body": body})


async def send_response(send: Send, method: str, status: int, headers: Any, body: bytes) -> None:
    """A whole answer, framed as the native server frames it (Content-Length added; no body
    for HEAD, 1xx, 204 and 304)."""
    encoded = [
        pair
        for pair in encode_headers(headers)
        if pair[0] not in (b"content-length", b"connection")
    ]
    if status in (204, 304) or status < 200:
        body = b""
    elif method == "HEAD":
        given = next((v for n, v in encode_headers(headers) if n == b"content-length"), None)
        encoded.append((b"content-length", given or str(len(body)).encode()))
        body = b""
    else:
        encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def refuse_websocket(
    scope: Scope, send: Send, status: int, headers: Any, body: bytes
) -> None:
    """The engine's HTTP answer to a refused WebSocket handshake, as an HTTP response where the
    server supports it (the ``websocket.http.response`` extension), else a close (403)."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        encoded = encode_headers(headers)
        encoded.append((b"content-length", str(len(body)).encode()))
        await send({"type": "websocket.http.response.start", "status": status, "headers": encoded})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class AsgiExchange:
    """What a :class:`Request` answers through under an ASGI server (in place of the native
    HttpProtocol): ``respond`` and ``accept_websocket`` land here; ``answered`` is done then."""

    __slots__ = ("answered", "loop", "response", "send")

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self.loop = loop
        self.send = send
        self.answered: asyncio.Future = loop.create_future()
        self.response: Any = None

    def send_response(self, request: Request, status: int, headers: Any, body: Any) -> None:
        request.responded = True
        request._protocol = None
        if isinstance(body, str):
            body = body.encode()
        self.response = (status, list(headers), bytes(body))
        if not self.answered.done():
            self.answered.set_result(None)

    def accept_websocket(
        self, request: Request, listener: Any, headers: Any, max_message_size: int | None
    ) -> AsgiWebSocket:
        request.responded = True
        request._protocol = None
        conn = AsgiWebSocket(self.send, listener, self.loop, max_message_size or 1_000_000)
        self.response = conn
        if not self.answered.done():
            self.answered.set_result(None)
        return conn

    def hand_over(self, request: Request, send: Any) -> bool:
        return False  # several workers are the native server's

    def client_gone(self, request: Request) -> None:
        request.client_gone()


class AsgiWebSocket:
    """The native WebSocketConnection's interface (``send_text``, ``send_binary``,
    ``send_frame``, ``close``, ``write_buffer_size``, ``writing_paused``, ``listener``) over an
    ASGI websocket: messages are queued and sent in order by one writer task; ``run(receive)``
    accepts the connection and reads until it ends, then tells the listener ``on_close`` once.
    """

    __slots__ = (
        "_buffered",
        "_close",
        "_outbox",
        "_send",
        "_wakeup",
        "closed",
        "deflater",
        "inflater",
        "listener",
        "loop",
        "max_message_size",
        "writing_paused",
    )

    def __init__(
        self, send: Send, listener: Any, loop: asyncio.AbstractEventLoop, max_message_size: int
    ) -> None:
        self._send = send
        self.listener = listener
        self.loop = loop
        self.max_message_size = max_message_size
        self.deflater = None  # compression is the ASGI server's, not the broadcast's
        self.inflater = None
        self.writing_paused = False
        self.closed = False
        self._outbox: deque[Message] = deque()
        self._buffered = 0
        self._close: tuple[int, str] | None = None
        self._wakeup: asyncio.Future | None = None

    # -- sending (any time, from the loop's thread) ---------------------------------------------

    def send_text(self, text: str, compress: bool = True) -> None:
        self._queue({"type": "websocket.send", "text": text}, len(text))

    def send_binary(self, data: bytes, compress: bool = True) -> None:
        self._queue({"type": "websocket.send", "bytes": bytes(data)}, len(data))

    def send_frame(self, frame: bytes) -> None:
        """A prebuilt frame (a broadcast's): its message is sent, ASGI frames it again."""
        opcode, payload = unframe(frame)
        if opcode == OP_TEXT:
            self.send_text(payload.decode())
        elif opcode == OP_BINARY:
            self.send_binary(payload)

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed or self._close is not None:
            return
        self._close = (code, reason)
        self._wake()

    def write_buffer_size(self) -> int:
        return self._buffered

    def _queue(self, message: Message, size: int) -> None:
        if self.closed or self._close is not None:
            return
        self._outbox.append(message)
        self._buffered += size
        if self._buffered > _WRITE_HIGH_WATER:
            self.writing_paused = True
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    # -- the connection's life --------------------------------------------------------------------

    async def run(self, receive: Receive) -> None:
        """Accept, then read messages until the connection ends: the client's close, or the
        ``websocket.disconnect`` the ASGI server gives once our close went out (as ASGI says it
        does for a close from either side)."""
        code = 1006
        writer = self.loop.create_task(self._write_loop())
        try:
            await self._send({"type": "websocket.accept"})
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", 1005)
                    break
                self._deliver(message)
        except Exception as exc:  # noqa: BLE001 - the ASGI server's send/receive failed: gone
            logger.debug("websocket ended: %r", exc)
        finally:
            self.closed = True
            writer.cancel()
            self._outbox.clear()
            self._notify_closed(code)

    def _deliver(self, message: Message) -> None:
        text = message.get("text")
        data = message.get("bytes") if text is None else None
        size = len(text) if text is not None else len(data or b"")
        if size > self.max_message_size:
            self.close(1009, "message too big")
            return
        if self._close is not None:
            return  # closing: the client's late messages are not delivered
        listener = self.listener
        if text is not None:
            listener.on_text(text)
        elif data is not None:
            listener.on_binary(data)

    async def _write_loop(self) -> None:
        try:
            await self._write_all()
        except Exception as exc:  # noqa: BLE001 - the client is gone; receive() says so too
            logger.debug("websocket send failed: %r", exc)

    async def _write_all(self) -> None:
        outbox = self._outbox
        while True:
            while outbox:
                message = outbox.popleft()
                self._buffered -= len(message.get("text") or message.get("bytes") or "")
                await self._send(message)
            if self._buffered <= _WRITE_HIGH_WATER // 2:
                self.writing_paused = False
            if self._close is not None:
                code, reason = self._close
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
                return
            self._wakeup = self.loop.create_future()
            await self._wakeup
            self._wakeup = None

    def _notify_closed(self, code: int) -> None:
        try:
            self.listener.on_close(code, "")
        except Exception:
            logger.exception("websocket listener's on_close failed")


def unframe(frame: bytes) -> tuple[int, bytes]:
    """The opcode and payload of an unmasked, unfragmented frame the server built."""
    opcode = frame[0] & 0x0F
    length = frame[1] & 0x7F
    offset = 2
    if length == 126:
        offset = 4
    elif length == 127:
        offset = 10
    return opcode, frame[offset:]
