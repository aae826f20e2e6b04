"""The client's own connections: HTTP/1.1 requests (httptools parses the responses) and client-side
WebSocket (RFC 6455: masked frames out, fastsio's FrameReader, compiled when built, reads the
server's unmasked frames), each an asyncio Protocol on a TCP or TLS connection.

No third-party HTTP client: the Engine.IO client needs a keep-alive GET, a POST and a WebSocket
upgrade, nothing more, and the codecs it reuses are fastsio's own.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl as _ssl
from struct import Struct
from typing import Any
from urllib.parse import quote, urlsplit

import httptools

from .. import _impl
from ..protocol.errors import WebSocketError

__all__ = [
    "HttpConnection",
    "TransportError",
    "Url",
    "WebSocketClient",
    "connect_http",
    "connect_websocket",
]

_websocket = _impl.websocket
_apply_mask = _websocket.apply_mask
_accept_key = _websocket.accept_key
_parse_close_payload = _websocket.parse_close_payload
OP_TEXT = _websocket.OP_TEXT
OP_BINARY = _websocket.OP_BINARY
OP_CLOSE = _websocket.OP_CLOSE
OP_PING = _websocket.OP_PING
OP_PONG = _websocket.OP_PONG

_HEAD16 = Struct("!BBH")
_HEAD64 = Struct("!BBQ")
# masked headers of final frames by payload length (0..125)
_TEXT_HEADS = tuple(bytes((0x81, 0x80 | n)) for n in range(126))
_BINARY_HEADS = tuple(bytes((0x82, 0x80 | n)) for n in range(126))


class TransportError(ConnectionError):
    """A connection could not be made or broke: ``description`` says why (the cause)."""

    def __init__(self, message: str, description: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.description = description


class Url:
    """A parsed server URL: scheme, host, port, the path (the namespace for Socket.IO) and query."""

    __slots__ = ("host", "host_header", "path", "port", "query", "secure")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else "http://" + url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https", "ws", "wss"):
            raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
        self.secure = scheme in ("https", "wss")
        if not parts.hostname:
            raise ValueError(f"no host in URL {url!r}")
        self.host = parts.hostname
        default_port = 443 if self.secure else 80
        self.port = parts.port or default_port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self.path = parts.path or "/"
        self.query = parts.query

    def base(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host_header}"


def ssl_context(url: Url, ssl: Any) -> Any:
    """The SSLContext for ``url``: None for plain http; ``ssl`` itself when it is a context;
    ``False`` disables verification (self-signed servers); None / True: the default context."""
    if not url.secure:
        return None
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    context = _ssl.create_default_context()
    if ssl is False:
        context.check_hostname = False
        context.verify_mode = _ssl.CERT_NONE
    return context


def _set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):  # pragma: no cover - not TCP
            pass


async def _connect(protocol_factory: Any, url: Url, ssl: Any) -> Any:
    loop = asyncio.get_running_loop()
    context = ssl_context(url, ssl)
    try:
        _, protocol = await loop.create_connection(
            protocol_factory,
            url.host,
            url.port,
            ssl=context,
            server_hostname=url.host if context is not None else None,
        )
    except (OSError, _ssl.SSLError) as exc:
        raise TransportError(f"could not connect to {url.base()}: {exc}", exc) from exc
    return protocol


def header_lines(headers: dict | None) -> str:
    if not headers:
        return ""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items())


def query_string(params: dict) -> str:
    return "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in params.items())


# ------------------------------------------------------------------------------------- HTTP/1.1


class HttpResponse:
    __slots__ = ("body", "cookies", "headers", "status")

    def __init__(self, status: int, headers: dict, body: bytes, cookies: list) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        #: the Set-Cookie values
        self.cookies = cookies


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time (long-polling uses two: the held
    GET and the POSTs)."""

    def __init__(self, url: Url) -> None:
        self.url = url
        self.transport: Any = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future | None = None
        self._headers: dict = {}
        self._cookies: list = []
        self._body: list = []

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        _set_nodelay(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"bad HTTP response from {self.url.base()}: {exc}", exc))
            self.close()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(TransportError(f"connection to {self.url.base()} closed", exc))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._headers = {}
        self._cookies = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        self._headers[key] = value.decode("latin-1")
        if key == "set-cookie":
            self._cookies.append(self._headers[key])

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        self._waiter = None
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result(
                HttpResponse(
                    self._parser.get_status_code(),
                    self._headers,
                    b"".join(self._body),
                    self._cookies,
                )
            )

    # --

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def request(
        self, method: str, target: str, headers: str = "", body: bytes = b""
    ) -> HttpResponse:
        if self.closed or self._waiter is not None:
            raise TransportError(f"connection to {self.url.base()} not usable")
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.url.host_header}\r\n{headers}"
        if method == "POST":
            head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(head.encode("latin-1") + b"\r\n" + body)
        return await waiter


async def connect_http(url: Url, ssl: Any) -> HttpConnection:
    return await _connect(lambda: HttpConnection(url), url, ssl)


# ------------------------------------------------------------------------------------- WebSocket


class _MaskPool:
    """Random 4-byte masks, 1024 at a time from os.urandom (as ws's random pool): one system
    call per 1024 frames instead of one per frame."""

    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data = os.urandom(4096)
        self.pos = 0

    def take(self) -> bytes:
        pos = self.pos
        if pos >= 4096:
            self.data = os.urandom(4096)
            pos = 0
        self.pos = pos + 4
        return self.data[pos : pos + 4]


_masks = _MaskPool()


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """A final client frame (masked, as RFC 6455 requires of clients)."""
    mask = _masks.take()
    n = len(payload)
    if n < 126:
        if opcode == OP_TEXT:
            head = _TEXT_HEADS[n]
        elif opcode == OP_BINARY:
            head = _BINARY_HEADS[n]
        else:
            head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = _HEAD16.pack(0x80 | opcode, 0xFE, n)
    else:
        head = _HEAD64.pack(0x80 | opcode, 0xFF, n)
    if n == 0:
        return head + mask
    return head + mask + _apply_mask(payload, mask)


class WebSocketClient(asyncio.Protocol):
    """A client WebSocket connection. ``listener`` gets ``on_ws_text(str)``, ``on_ws_binary(bytes)``
    and ``on_ws_close(code, reason)`` (once) after the handshake; messages that arrive before a
    listener is set are kept and handed over by :meth:`set_listener`.

    Frames written while the connection handles a read leave in one write at the end of it; frames
    written from anywhere else leave together at the end of the loop tick."""

    def __init__(self, url: Url, target: str, headers: str, max_message_size: int) -> None:
        self.url = url
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self._request = (
            f"GET {target} HTTP/1.1\r\nHost: {url.host_header}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
        ).encode("latin-1")
        self.reader = _websocket.FrameReader(max_message_size, require_mask=False)
        self.transport: Any = None
        self.handshake: asyncio.Future = asyncio.get_running_loop().create_future()
        self.listener: Any = None
        self.pending: list = []  # messages before a listener
        self.closed = False  # on_ws_close has been (or is being) called
        self.writing_paused = False
        self._head = bytearray()
        self._open = False
        self._out: list = []
        self._in_read = False
        self._flush_handle: Any = None
        self._close_sent = False
        self._close_timer: Any = None
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        _set_nodelay(transport)
        transport.write(self._request)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False

    def data_received(self, data: bytes) -> None:
        if self._open:
            self._feed(data)
            return
        head = self._head
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > 65536:
                self._handshake_failed("WebSocket handshake response too large")
            return
        try:
            self._check_handshake(bytes(head[:end]).decode("latin-1"), head[end + 4 :])
        except TransportError as exc:
            self._handshake_failed(exc)
            return
        rest = bytes(head[end + 4 :])
        self._head = bytearray()
        self._open = True
        if not self.handshake.done():
            self.handshake.set_result(None)
        if rest:
            self._feed(rest)

    def _check_handshake(self, text: str, rest: bytearray) -> None:
        lines = text.split("\r\n")
        status_line = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        try:
            status = int(status_line[1])
        except (IndexError, ValueError):
            raise TransportError(f"bad WebSocket handshake response: {lines[0]!r}") from None
        if status != 101:
            body = bytes(rest).decode("utf-8", "replace")
            raise TransportError(
                f"WebSocket handshake refused by {self.url.base()}: HTTP {status}",
                {"status": status, "body": body},
            )
        if headers.get("upgrade", "").lower() != "websocket":
            raise TransportError("WebSocket handshake response without Upgrade: websocket")
        if headers.get("sec-websocket-accept") != _accept_key(self.key):
            raise TransportError("WebSocket handshake response with a wrong Sec-WebSocket-Accept")

    def _handshake_failed(self, exc: Any) -> None:
        if not isinstance(exc, TransportError):
            exc = TransportError(str(exc))
        if not self.handshake.done():
            self.handshake.set_exception(exc)
        self.closed = True
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self.handshake.done():
            self.handshake.set_exception(
                TransportError(f"connection to {self.url.base()} closed during the handshake", exc)
            )
        self._closed(1006, "")

    # -- reading

    def _feed(self, data: bytes) -> None:
        self._in_read = True
        try:
            try:
                messages = self.reader.feed(data)
            except WebSocketError as exc:
                self.close(exc.close_code, str(exc))
                self._closed(exc.close_code, str(exc))
                return
            for opcode, payload in messages:
                if opcode == OP_TEXT:
                    if self.listener is not None:
                        self.listener.on_ws_text(payload)
                    else:
                        self.pending.append(payload)
                elif opcode == OP_BINARY:
                    if self.listener is not None:
                        self.listener.on_ws_binary(payload)
                    else:
                        self.pending.append(payload)
                elif opcode == OP_PING:
                    self._write(masked_frame(OP_PONG, payload))
                elif opcode == OP_CLOSE:
                    try:
                        code, reason = _parse_close_payload(payload)
                    except WebSocketError as exc:
                        code, reason = exc.close_code, str(exc)
                    if not self._close_sent:
                        self._close_sent = True
                        self._write(masked_frame(OP_CLOSE, payload[:2]))
                    self._flush()
                    if self.transport is not None:
                        self.transport.close()
                    self._closed(code, reason)
                    return
        finally:
            self._in_read = False
            if self._out:
                self._flush()

    def set_listener(self, listener: Any) -> None:
        """Hand every message so far, and the next ones, to ``listener``."""
        self.listener = listener
        pending = self.pending
        self.pending = []
        for payload in pending:
            if self.closed and listener is None:
                break
            if type(payload) is str:
                listener.on_ws_text(payload)
            else:
                listener.on_ws_binary(payload)

    def _closed(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        listener = self.listener
        if listener is not None:
            listener.on_ws_close(code, reason)

    # -- writing

    def _write(self, frame: bytes) -> None:
        self._out.append(frame)
        if not self._in_read and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        out = self._out
        if not out:
            return
        self._out = []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(out) == 1:
            transport.write(out[0])
        else:
            transport.write(b"".join(out))

    def send_text(self, text: str) -> None:
        if self._close_sent:
            return
        payload = text.encode("utf-8")
        n = len(payload)
        mask = _masks.take()
        if n < 126:
            frame = _TEXT_HEADS[n] + mask + _apply_mask(payload, mask)
        else:
            frame = masked_frame(OP_TEXT, payload)
        self._out.append(frame)
        if not self._in_read and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def send_binary(self, data: bytes) -> None:
        if self._close_sent:
            return
        self._write(masked_frame(OP_BINARY, bytes(data)))

    @property
    def writable(self) -> bool:
        return not self.writing_paused and not self._close_sent

    def close(self, code: int = 1000, reason: str = "", timeout: float = 1.0) -> None:
        """Send a close frame (after what is queued) and close the TCP connection once the server
        answers it, or after ``timeout`` seconds."""
        if self.transport is None:
            return
        if not self._close_sent and not self.closed:
            self._close_sent = True
            payload = code.to_bytes(2, "big") + reason.encode("utf-8")[:123]
            self._out.append(masked_frame(OP_CLOSE, payload))
            self._flush()
            if self._close_timer is None:
                self._close_timer = self._loop.call_later(timeout, self.abort)
        elif self.closed:
            self.transport.close()

    def abort(self) -> None:
        """Close the TCP connection now."""
        self._close_timer = None
        if self.transport is not None:
            self.transport.close()


async def connect_websocket(
    url: Url, target: str, headers: str, ssl: Any, max_message_size: int
) -> WebSocketClient:
    """Open a WebSocket (TCP/TLS connection + upgrade handshake); TransportError when it fails."""
    protocol: WebSocketClient = await _connect(
        lambda: WebSocketClient(url, target, headers, max_message_size), url, ssl
    )
    try:
        await protocol.handshake
    except BaseException:
        protocol.abort()
        raise
    return protocol
