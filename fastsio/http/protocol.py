"""The HTTP/1.1 side of a connection: an asyncio.Protocol driven by httptools callbacks.

One request is handled at a time. Requests that arrive while one is pending (pipelining) wait
in a queue, with reading paused, and are answered in order. Handlers never run inside a parser
callback: the parser only queues complete requests, and they are dispatched once ``feed_data``
has returned (so an upgrade request knows the bytes that followed its head).

This file is also compiled by Cython, unchanged, as ``fastsio._speedups.httpproto_c`` with the
augmenting ``fastsio/_speedups/httpproto_c.pxd`` (``HttpProtocol`` becomes a ``cdef class`` with
typed attributes: the parser's callbacks run without a Python frame each). Hence no base class
(a cdef class cannot inherit from ``asyncio.Protocol``; the transport only needs the methods) and
no change of ``__class__`` (WorkerHttpProtocol). ``fastsio._impl`` picks one of the two
(``_impl.http_protocol``); the server takes its classes from there.
"""

from __future__ import annotations

import asyncio
import http
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import httptools

# absolute, not relative: this file is also compiled as fastsio._speedups.httpproto_c
from fastsio import _impl
from fastsio._impl import WebSocketConnection
from fastsio.http import shared
from fastsio.http.body import BodyStream
from fastsio.http.request import PreparedHeaders, Request
from fastsio.http.shared import SHARED_VALUE_HEADERS, header_name, header_value
from fastsio.http.shared import address as shared_address

if TYPE_CHECKING:  # pragma: no cover
    from fastsio.http.server import HttpServer

logger = logging.getLogger("fastsio.http")


def _status_line(status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/1.1 {status} {phrase}\r\n"


STATUS_LINES = {status: _status_line(status) for status in range(100, 600)}
_METHODS = {m.encode(): m for m in ("GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH")}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SWITCHING_PROTOCOLS = (
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: "
)
_TEXT_PLAIN = ("Content-Type", "text/plain; charset=utf-8")
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 15\r\nConnection: close\r\n\r\nRequest Timeout"
)
# Seconds a connection answered 408 is still read (and what comes dropped) before it is closed.
LINGER_AFTER_TIMEOUT = 2.0
# Bodies smaller than this are joined with the head for one write (one send() call).
_JOIN_LIMIT = 65536


def phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def has_token(value: str, token: str) -> bool:
    """Whether a comma-separated header value contains ``token`` (``token`` in lower case)."""
    value = value.lower()
    if value == token:  # the usual single-token header, without the split
        return True
    return any(part.strip() == token for part in value.split(","))


def parse_query(query_string: str) -> dict[str, str]:
    """The query string as a dict (a repeated key keeps its last value, blank values are kept),
    as ``dict(parse_qsl(query_string, keep_blank_values=True))``. Engine.IO queries
    (``EIO=4&transport=websocket&sid=...``) have nothing to unquote: they skip parse_qsl, which
    unquotes every name and value in Python. (Here, not in request.py, to be compiled with the
    connection: ``Request.query`` calls the one ``_impl.http_protocol`` has.)"""
    if "%" in query_string or "+" in query_string:
        return dict(parse_qsl(query_string, keep_blank_values=True))
    query = {}
    for item in query_string.split("&"):
        if item:
            name, _, value = item.partition("=")
            query[name] = value
    return query


# RFC 6455 4.2.1: the key is the base64 of 16 random bytes: 22 characters and "==" padding (what
# base64.b64decode(key, validate=True) accepts as 16 bytes, matched without decoding).
_WEBSOCKET_KEY = re.compile(r"[A-Za-z0-9+/]{22}==")


def _valid_websocket_key(key: str) -> bool:
    return _WEBSOCKET_KEY.fullmatch(key) is not None


# The shared tables (http/shared.py) whose usual hit on_header looks up itself
_HEADER_NAMES = shared._header_names
_HEADER_VALUES = shared._header_values

# Headers a request is replayed without (see HttpProtocol.hand_over): the body is replayed whole,
# with a Content-Length of its own (it may have come chunked), and a 100 Continue was sent already.
_NOT_REPLAYED = ("content-length", "transfer-encoding", "expect")


def replay_bytes(request: Request) -> bytes:
    """``request`` as bytes that an HttpProtocol parses back into the same request: the request
    line and target as received, the headers as parsed (lower-case names, repeats joined),
    the whole body with its length."""
    headers = request.headers
    parts = [f"{request.method} {request.url} HTTP/{request.http_version}\r\n"]
    for name, value in headers.items():
        if name not in _NOT_REPLAYED:
            parts.append(f"{name}: {value}\r\n")
    body = request.body
    if body or "content-length" in headers or "transfer-encoding" in headers:
        parts.append(f"content-length: {len(body)}\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("latin-1") + body


class HttpProtocol:
    __slots__ = (
        "_body",
        "_body_size",
        "_body_stream",
        "_closing",
        "_current",
        "_dispatching",
        "_error_status",
        "_head_received",
        "_head_start",
        "_header_size",
        "_headers",
        "_in_head",
        "_parser_done",
        "_queue",
        "_reading_paused",
        "_request",
        "_upgrade_tail",
        "_url",
        "client",
        "idle_since",
        "loop",
        "parser",
        "receiving_since",
        "secure",
        "server",
        "transport",
    )

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.transport: Any = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] = ("", 0)
        self.secure = False
        # loop.time() since when the connection has had no request in progress (None: busy).
        self.idle_since: float | None = loop.time()
        # loop.time() when the first byte of the request being received arrived (None: no request
        # half-received); the server's sweep times the head and the whole request out from it.
        # Set once per request, never per byte: a head trickling in does not push it back.
        self.receiving_since: float | None = None
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        # the request whose body is streamed to its handler (HttpServer.body_streamer), if any
        self._body_stream: Request | None = None
        self._header_size = 0
        self._head_received = 0
        # the read being parsed when it began with a new request (see _http_version), else None
        self._head_start: bytes | None = None
        self._in_head = False
        self._request: Request | None = None
        self._error_status = 0
        self._current: Request | None = None
        self._queue: deque[Request] = deque()
        self._dispatching = False
        self._reading_paused = False
        self._closing = False
        self._parser_done = False
        self._upgrade_tail: bytes | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server._connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            # the address shared: a WebSocket's request keeps it for the session's lifetime
            self.client = (shared_address(peer[0]), peer[1])
        self.secure = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._parser_done:
            tail = self._upgrade_tail
            if tail is not None:
                # Bytes after an upgrade request's head (the client should wait for the 101);
                # kept for the WebSocket, within reason.
                tail += data
                if len(tail) > self.server.max_header_size:
                    self._upgrade_tail = None
                    self.close()
                else:
                    self._upgrade_tail = tail
            return
        # a read that starts a request starts with its request line (see _http_version)
        new_request = self.receiving_since is None and type(data) is bytes
        self._head_start = data if new_request else None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._parser_done = True
            self._upgrade_tail = data[exc.args[0] :]
        except httptools.HttpParserError as exc:
            status = self._error_status or 400
            logger.debug("bad request from %s: %s -> %d", self.client, exc, status)
            self._fail(status)
        else:
            if self._in_head:
                # httptools buffers a header until it is complete; bound what a client can
                # make us hold for a head that never ends.
                self._head_received += len(data)
                if self._head_received > self.server.max_header_size:
                    self._fail(431)
        if self._current is None and self._queue:
            self._dispatch()
        if self._queue and not self._reading_paused and not self._closing:
            self._reading_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        pass  # the answers are small, or written whole (a static file)

    def resume_writing(self) -> None:
        pass

    def eof_received(self) -> bool | None:
        # The client half-closed: treat it as gone (a held long-poll will never be read).
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closing = True
        self.server._connections.discard(self)
        self._abandon()
        self._upgrade_tail = None
        self.parser = None

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # a request starts: headers_timeout / request_timeout count from here, not keep-alive
        self.receiving_since = self.loop.time()
        self.idle_since = None
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._header_size = 0
        self._head_received = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_size += len(url)
        if self._header_size > self.server.max_header_size:
            self._error_status = 431
            raise ValueError("request head too large")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value)
        if self._header_size > self.server.max_header_size:
            self._error_status = 431
            raise ValueError("request head too large")
        # The shared tables' usual hit is looked up here: compiled, a call to header_name or
        # header_value costs more than the look-up itself.
        key = _HEADER_NAMES.get(name)
        if key is None:
            key = header_name(name)
        if key in SHARED_VALUE_HEADERS:
            text = _HEADER_VALUES.get(value) or header_value(key, value)
        else:
            text = value.decode("latin-1")
        headers = self._headers
        previous = headers.get(key)
        headers[key] = text if previous is None else previous + ", " + text

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self.parser
        headers = self._headers
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii", "replace")
        raw_url = self._url
        http_version = self._http_version(raw_method, raw_url)
        url = raw_url.decode("latin-1")
        if url[:1] == "/":
            path, _, query_string = url.partition("?")
        else:  # absolute-form ("http://host/path?q") or "*"
            try:
                parsed = httptools.parse_url(raw_url)
                path = (parsed.path or b"/").decode("latin-1")
                query_string = (parsed.query or b"").decode("latin-1")
            except httptools.HttpParserInvalidURLError:
                path, query_string = url, ""
        if "%" in path:
            path = unquote(path)
        upgrade = parser.should_upgrade()
        # An upgrade request stops the parser: whatever the answer, the connection ends after.
        keep_alive = parser.should_keep_alive() and not upgrade
        request = Request(
            self,
            method,
            url,
            path,
            query_string,
            headers,
            self.client,
            self.secure,
            http_version,
            keep_alive,
        )
        self._request = request
        streamer = self.server.body_streamer
        streamed = streamer is not None and not upgrade and streamer(request)

        length = headers.get("content-length")
        if length is not None:
            limit = self.server.max_streamed_body_size if streamed else self.server.max_body_size
            try:
                too_big = limit is not None and int(length) > limit
            except ValueError:
                self._error_status = 400
                raise
            if too_big:
                self._error_status = 413
                raise ValueError("request body too large")

        if upgrade and has_token(headers.get("upgrade", ""), "websocket"):
            self._check_websocket(request)
        elif (
            "expect" in headers
            and headers["expect"].lower() == "100-continue"
            and http_version == "1.1"
            and self._current is None
            and not self._queue
        ):
            self.transport.write(_CONTINUE)
        if streamed:
            # dispatched now (after feed_data), its body read by the handler as it comes
            request.body_stream = BodyStream(self.transport, self.loop)
            self._body_stream = request
            self._queue.append(request)

    def on_body(self, body: bytes) -> None:
        streamed = self._body_stream
        if streamed is not None:
            stream = streamed.body_stream
            limit = self.server.max_streamed_body_size
            if limit is not None and stream.size + len(body) > limit:  # type: ignore[union-attr]
                # a chunked body past the bound: the handler sees the client leave
                self.close()
                return
            stream.feed(body)  # type: ignore[union-attr]
            return
        self._body_size += len(body)
        if self._body_size > self.server.max_body_size:
            self._error_status = 413
            raise ValueError("request body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.receiving_since = None
        request = self._request
        if request is None:
            return
        self._request = None
        if request is self._body_stream:
            self._body_stream = None
            request.body_stream.end()  # type: ignore[union-attr]
            return
        body = self._body
        if body:
            # b"".join of one item returns that item: no copy in the common one-chunk case.
            request.body = b"".join(body)
            self._body = []
        self._queue.append(request)

    def _http_version(self, method: bytes, url: bytes) -> str:
        """The HTTP version of the request whose head was just parsed: "1.1" read off its request
        line when the read began with it, else the parser's (whose get_http_version formats two
        ints: ~2,300 instructions, a few percent of a request)."""
        data = self._head_start
        self._head_start = None  # only the read's first request starts it
        if data is not None:
            # The parser accepted "METHOD SP target SP version CRLF" (neither holds a space or a
            # CRLF). Before a line that empty lines precede, the slice cannot match: it holds the
            # space before the version, or lies within the line before its CRLF.
            start = len(method) + len(url) + 2
            if data[start : start + 10] == b"HTTP/1.1\r\n":
                return "1.1"
        return self.parser.get_http_version()

    # -- handling ------------------------------------------------------------------------------

    def _check_websocket(self, request: Request) -> None:
        """Mark a valid RFC 6455 handshake; a broken one is answered here (400/426)."""
        headers = request.headers
        if (
            request.method != "GET"
            or request.http_version != "1.1"
            or not _valid_websocket_key(headers.get("sec-websocket-key", ""))
        ):
            request._error_status = 400
        elif headers.get("sec-websocket-version", "").strip() != "13":
            request._error_status = 426
            request._error_headers = (("Sec-WebSocket-Version", "13"),)
        else:
            request.is_websocket = True

    def _stop_parsing(self) -> None:
        self._parser_done = True
        self._upgrade_tail = None
        self._request = None
        self._in_head = False
        self.receiving_since = None

    def _fail(self, status: int) -> None:
        """Stop parsing; answer ``status`` after the requests already queued, then close."""
        self._stop_parsing()
        request = Request(self, "", "", "", "", {}, self.client, self.secure, "1.1", False)
        request._error_status = status
        self._queue.append(request)

    def _dispatch(self) -> None:
        if self._dispatching:
            return  # the loop below picks up the next request
        self._dispatching = True
        queue = self._queue
        try:
            while self._current is None and queue and not self._closing:
                request = queue.popleft()
                self._current = request
                self.idle_since = None
                if request._error_status:
                    status = request._error_status
                    headers = [_TEXT_PLAIN, *request._error_headers]
                    request.respond(status, headers, phrase(status).encode())
                else:
                    self.server.dispatch(request)
        finally:
            self._dispatching = False
        if self._reading_paused and not queue and not self._closing:
            self._reading_paused = False
            self.transport.resume_reading()

    def send_response(
        self, request: Request, status: int, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
        parts = [STATUS_LINES.get(status) or _status_line(status)]
        length = None
        if type(headers) is PreparedHeaders:
            parts.append(headers.lines)  # made once, without Content-Length
        else:
            for name, value in headers:
                if len(name) == 14 and name.lower() == "content-length":
                    length = value  # ours wins, except for HEAD (what GET would send)
                    continue
                parts.append(f"{name}: {value}\r\n")
        head_only = request.method == "HEAD"
        if status in (204, 304) or status < 200:
            # RFC 9110 8.6: no Content-Length (and no body) on 1xx/204; 304 has no body either.
            body = b""
        elif head_only and length is not None:
            parts.append(f"Content-Length: {length}\r\n")
        else:
            parts.append(f"Content-Length: {len(body)}\r\n")
        keep_alive = request._keep_alive and not self._closing
        if not keep_alive:
            parts.append("Connection: close\r\n\r\n")
        elif request.http_version == "1.0":
            parts.append("Connection: keep-alive\r\n\r\n")
        else:
            parts.append("\r\n")
        data = "".join(parts).encode("latin-1")
        # Whatever can fail (a header that is not latin-1) has failed by now, before the request
        # is marked answered: the dispatcher can still answer 500.
        request.responded = True
        request._protocol = None
        transport = self.transport
        if body and not head_only:
            if len(body) < _JOIN_LIMIT:
                transport.write(data + body)
            else:
                transport.write(data)
                transport.write(body)
        else:
            transport.write(data)
        # _response_done, inlined: this is every long-polling answer's path (a call costs ~2%
        # of a request's instructions)
        if self._current is request:
            self._current = None
        if request is self._body_stream:
            request.body_stream.discard()  # type: ignore[union-attr]
        if not keep_alive:
            self.close()
            return
        if self._queue:
            self._dispatch()
        if self._current is None and not self._queue and self.receiving_since is None:
            self.idle_since = self.loop.time()

    def _response_done(self, request: Request, keep_alive: bool) -> None:
        """The end of an answer: the next request, or the close."""
        if self._current is request:
            self._current = None
        if request is self._body_stream:  # answered before its whole body came: not read
            request.body_stream.discard()  # type: ignore[union-attr]
        if not keep_alive:
            self.close()
            return
        if self._queue:
            self._dispatch()
        if self._current is None and not self._queue and self.receiving_since is None:
            self.idle_since = self.loop.time()

    def start_stream(
        self, request: Request, status: int, headers: Iterable[tuple[str, str]]
    ) -> None:
        """Send the head of a response whose body follows in parts (``stream_body``): with
        the Content-Length given in ``headers``, else chunked (HTTP/1.1) or up to the close of
        the connection (HTTP/1.0)."""
        parts = [STATUS_LINES.get(status) or _status_line(status)]
        has_length = False
        for name, value in headers:
            if name.lower() in ("transfer-encoding", "connection"):
                continue  # the framing is this layer's
            has_length = has_length or name.lower() == "content-length"
            parts.append(f"{name}: {value}\r\n")
        head_only = request.method == "HEAD" or status in (204, 304) or status < 200
        chunked = not head_only and not has_length and request.http_version != "1.0"
        keep_alive = (
            request._keep_alive and not self._closing and (head_only or has_length or chunked)
        )
        if chunked:
            parts.append("Transfer-Encoding: chunked\r\n")
        if not keep_alive:
            parts.append("Connection: close\r\n")
        elif request.http_version == "1.0":
            parts.append("Connection: keep-alive\r\n")
        parts.append("\r\n")
        data = "".join(parts).encode("latin-1")
        request._stream = (chunked, keep_alive, head_only)
        self.transport.write(data)

    def stream_body(self, request: Request, data: bytes, more: bool) -> None:
        """A part of a streamed response's body; ``more=False`` ends the response."""
        chunked, keep_alive, head_only = request._stream  # type: ignore[misc]
        transport = self.transport
        if data and not head_only:
            if chunked:
                transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                transport.write(data)
        if more:
            return
        if chunked:
            transport.write(b"0\r\n\r\n")
        request.responded = True
        request._protocol = None
        self._response_done(request, keep_alive)

    def time_out(self) -> None:
        """The request being received took longer than the server's ``headers_timeout`` (head)
        or ``request_timeout`` (whole request): answer 408 and close, as Node's http server
        does. Behind requests still being answered, the 408 waits its turn."""
        logger.debug(
            "request from %s timed out (%s)", self.client, "head" if self._in_head else "body"
        )
        if self._body_stream is not None:
            # a body streamed to its handler, not all of it come: the handler sees the client
            # leave, as when the body passes its bound
            self.close()
            return
        if self._current is not None or self._queue:
            self._fail(408)
            return
        self._stop_parsing()
        self._closing = True  # from here on, what the client still sends is dropped
        transport = self.transport
        transport.write(_REQUEST_TIMEOUT)
        if transport.can_write_eof():
            # Closing now, with the client's bytes unread, would send a reset that can destroy
            # the 408 before the client reads it: end our side, read and drop a while, then close.
            transport.write_eof()
            self.loop.call_later(LINGER_AFTER_TIMEOUT, self.close)
        else:  # TLS
            self.close()

    def accept_websocket(
        self,
        request: Request,
        listener: Any,
        headers: Iterable[tuple[str, str]],
        max_message_size: int | None,
    ) -> WebSocketConnection:
        parts = [
            _SWITCHING_PROTOCOLS,
            _impl.websocket.accept_key(request.headers["sec-websocket-key"]),
            "\r\n",
        ]
        for name, value in headers:
            parts.append(f"{name}: {value}\r\n")
        parts.append("\r\n")
        data = "".join(parts).encode("latin-1")
        server = self.server
        transport = self.transport
        conn = WebSocketConnection(
            transport,
            listener,
            server.max_message_size if max_message_size is None else max_message_size,
            client=request.client,
            server=server,
        )
        request.responded = True
        request._protocol = None
        self._current = None
        self._closing = True  # this object is done with the transport
        server._connections.discard(self)
        server._connections.add(conn)
        # Corked like any frame: the 101 and the first frames the handler sends at once (the
        # Engine.IO open packet) leave in one send() at the end of the tick, not two.
        conn._write(data)
        transport.set_protocol(conn)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        tail = self._upgrade_tail
        self._upgrade_tail = None
        self.parser = None
        if tail:
            conn._pending = tail
            self.loop.call_soon(conn._feed_pending)
        return conn

    def hand_over(self, request: Request, send: Callable[[Any, bytes], bool]) -> bool:
        """Give this connection, with ``request`` (the one being handled) and whatever followed
        it, to another process: ``send(sock, data)`` passes on the socket's file descriptor and
        ``data``, the bytes to replay there (see ``http/handover.py``), and returns True; this
        object then forgets the connection without closing it for the peer. False, with nothing
        changed, when ``send`` fails or the connection cannot be handed over: TLS, a pipelined
        request not fully read yet or not parseable."""
        if (
            request is not self._current
            or self._closing
            or self.secure
            or self._in_head
            or self._request is not None
        ):
            return False
        tail = b""
        if self._parser_done:
            tail = self._upgrade_tail  # type: ignore[assignment]
            if tail is None:  # stopped by a parse error
                return False
        parts = [replay_bytes(request)]
        for queued in self._queue:  # pipelined requests, already read
            if not queued.method:  # the parse error marker (_fail)
                return False
            parts.append(replay_bytes(queued))
        parts.append(tail)
        sock = self.transport.get_extra_info("socket")
        if sock is None or not send(sock, b"".join(parts)):
            return False
        request.responded = True
        request._protocol = None
        self._current = None
        self.detach()
        return True

    def detach(self) -> None:
        """Forget the connection without ending it for the peer: its descriptor went to another
        process (``hand_over``). Requests still queued are dropped unanswered; closing this
        process's descriptor (``abort``: no shutdown) leaves the connection to the other one."""
        queue = self._queue
        while queue:
            queued = queue.popleft()
            queued.responded = True
            queued._protocol = None
        self._closing = True
        self._upgrade_tail = None
        self.server._connections.discard(self)
        self.transport.abort()

    def close(self) -> None:
        """Close the connection; a request still waiting for its answer sees ``on_close``."""
        if self.transport is None:
            return
        self._closing = True
        self._abandon()
        self.transport.close()

    def _abandon(self) -> None:
        streamed = self._body_stream
        if streamed is not None:
            self._body_stream = None
            streamed.body_stream.end(gone=True)  # type: ignore[union-attr]
        queue = self._queue
        while queue:
            request = queue.popleft()
            request.closed = True
            request._protocol = None
        request = self._current
        self._current = None
        if request is not None:
            request.client_gone()


class WorkerHttpProtocol(HttpProtocol):
    """The HttpProtocol of a connection accepted by one of several workers, until its first
    bytes arrive: when they start a request for another worker's session, the connection goes to
    that worker before anything is parsed, with those bytes (``HttpServer.handover``'s
    ``hand_over_connection``); otherwise a plain HttpProtocol takes it over. Requests after the first
    one of a connection are checked by the engine instead (``Request.hand_over``)."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:
        # HttpProtocol's, but the peer's address (a system call) only once the connection stays
        self.transport = transport
        self.server._connections.add(self)
        self.secure = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        handover = self.server.handover
        if (
            handover is not None
            and not self.secure
            and not self._closing
            and handover.hand_over_connection(self, data)
        ):
            return
        # A plain HttpProtocol takes the connection over, nothing parsed yet. A new object, not
        # a change of __class__: the compiled HttpProtocol is a static type, which refuses that.
        if self._closing:
            return
        plain = HttpProtocol(self.server, self.loop)
        self.server._connections.discard(self)
        plain.connection_made(transport)
        transport.set_protocol(plain)
        plain.data_received(data)


class AdoptedHttpProtocol(HttpProtocol):
    """The HttpProtocol of a connection handed over by another process (``hand_over`` there,
    ``HttpServer.adopt`` here): before anything read from the socket, it parses ``replay``, the
    bytes that process had read."""

    __slots__ = ("_replay",)

    def __init__(self, server: HttpServer, loop: asyncio.AbstractEventLoop, replay: bytes) -> None:
        super().__init__(server, loop)
        self._replay = replay

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        replay = self._replay
        self._replay = b""
        if replay:
            # Reading starts once connection_made has returned: nothing overtakes the replay.
            self.data_received(replay)
            if self._reading_paused and not self._closing:
                # uvloop starts reading after connection_made whatever pause_reading said here
                self.loop.call_soon(self._keep_paused)

    def _keep_paused(self) -> None:
        if self._reading_paused and not self._closing:
            self.transport.pause_reading()
