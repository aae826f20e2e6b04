"""One HTTP request as the application handlers see it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .. import _impl
from . import shared

if TYPE_CHECKING:  # pragma: no cover
    from .protocol import HttpProtocol
    from .websocket import WebSocketConnection

logger = logging.getLogger("fastsio.http")

Headers = Iterable[tuple[str, str]]


class PreparedHeaders(tuple):
    """Response headers answered again and again (the engine's polling answers): a tuple of
    (name, value) pairs like any headers, whose lines are made once (``lines``), so that the
    native server writes them as they are instead of going through them per answer. Without
    Content-Length (the server adds the body's); immutable, so one object serves every answer."""

    lines: str

    def __new__(cls, pairs: Headers) -> PreparedHeaders:
        self = super().__new__(cls, ((str(name), str(value)) for name, value in pairs))
        if any(name.lower() == "content-length" for name, _ in self):
            raise ValueError("PreparedHeaders take no Content-Length")
        self.lines = "".join(f"{name}: {value}\r\n" for name, value in self)
        return self


class Request:
    """An HTTP request, answered once with :meth:`respond` (now or later) or upgraded to a
    WebSocket with :meth:`accept_websocket`.

    ``closed`` becomes True (and ``on_close`` is called once) if the client goes away before the
    request was answered; ``responded`` is True once it was answered (or upgraded). Both make
    ``respond`` a no-op.
    """

    __slots__ = (
        "_error_headers",
        "_error_status",
        "_keep_alive",
        "_protocol",
        "_query",
        "_stream",
        "body",
        "body_stream",
        "client",
        "closed",
        "headers",
        "http_version",
        "is_websocket",
        "method",
        "mount_path",
        "on_close",
        "path",
        "query_string",
        "responded",
        "secure",
        "url",
    )

    def __init__(
        self,
        protocol: HttpProtocol | None,
        method: str,
        url: str,
        path: str,
        query_string: str,
        headers: dict[str, str],
        client: tuple[str, int],
        secure: bool,
        http_version: str,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.body = b""
        #: the body as it arrives (a fastsio.http.body.BodyStream) when the server's
        #: ``body_streamer`` chose to stream it; ``body`` stays empty then
        self.body_stream: Any = None
        self.client = client
        self.secure = secure
        self.http_version = http_version
        self.is_websocket = False
        self.closed = False
        self.responded = False
        self.on_close: Callable[[], None] | None = None
        # The prefix of the mount that routed this request ("" for the root mount).
        self.mount_path = ""
        self._query: dict[str, str] | None = None
        self._protocol = protocol
        self._keep_alive = keep_alive
        # Set when the HTTP layer answers the request itself (bad WebSocket handshake).
        self._error_status = 0
        self._error_headers: Headers = ()
        # a streamed response in progress: (chunked, keep_alive, head_only)
        self._stream: tuple | None = None

    @property
    def query(self) -> dict[str, str]:
        """The query string as a dict (a repeated key keeps its last value)."""
        query = self._query
        if query is None:
            # parse_query lives with HttpProtocol, to be compiled with it (_impl picks the module)
            query = self._query = _impl.http_protocol.parse_query(self.query_string)
        return query

    def share_strings(self) -> None:
        """Make ``query``'s names (and Engine.IO's values), ``path``, ``http_version``, ``url``
        and ``query_string`` shared strings (``shared.py``): for a request kept as long as a session (its handshake), not
        worth it for the others. (Header names and values are shared as they are parsed.)"""
        # the table's usual hit looked up here: a call to shared.text costs more than the look-up
        known = shared._texts.get
        text = shared.text
        params = shared.SHARED_VALUE_PARAMS
        query = {}
        for name, value in self.query.items():
            if name in params:
                value = known(value) or text(value)
            query[known(name) or text(name)] = value
        self._query = query
        self.path = known(self.path) or text(self.path)
        self.http_version = known(self.http_version) or text(self.http_version)
        if "t" not in query:
            # the same target for every client of a kind (a polling handshake's "t", its
            # cache-buster, makes it unique: not worth a place in the table)
            self.url = known(self.url) or text(self.url)
            self.query_string = known(self.query_string) or text(self.query_string)

    def json(self) -> Any:
        """The body parsed as JSON (orjson); ValueError if it is not JSON."""
        import orjson

        return orjson.loads(self.body)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the connection this request came on."""
        protocol = self._protocol
        return protocol.loop if protocol is not None else asyncio.get_running_loop()

    def client_gone(self) -> None:
        """The client went away before the answer: ``closed`` becomes True and ``on_close`` is
        called, once (an answered or already closed request is left alone)."""
        if self.responded or self.closed:
            return
        self.closed = True
        self._protocol = None
        on_close = self.on_close
        if on_close is not None:
            try:
                on_close()
            except Exception:
                logger.exception("request on_close callback failed")

    def respond(self, status: int, headers: Headers = (), body: bytes = b"") -> None:
        """Send the response. Content-Length and Connection are added here; a no-op once the
        request was answered or the client went away."""
        protocol = self._protocol
        if protocol is None or self.responded or self.closed:
            return
        protocol.send_response(self, status, headers, body)

    reject = respond

    def start_response(self, status: int, headers: Headers = ()) -> None:
        """Begin a response whose body is sent in parts with :meth:`send_body` (an ASGI app's
        streamed answer): the head now, the body then framed by the Content-Length given in
        ``headers``, else chunked. A no-op once answered or when the client is gone."""
        protocol = self._protocol
        if protocol is None or self.responded or self.closed or self._stream is not None:
            return
        protocol.start_stream(self, status, headers)

    def send_body(self, data: bytes, more: bool = False) -> None:
        """A part of the body after :meth:`start_response`; ``more=False`` ends it."""
        protocol = self._protocol
        if protocol is None or self._stream is None or self.responded or self.closed:
            return
        protocol.stream_body(self, data, more)

    def close_connection(self) -> None:
        """Close the connection the request came on (a streamed answer that cannot be
        finished: the client must not take it for whole)."""
        protocol = self._protocol
        if protocol is not None:
            protocol.close()

    def write_buffer_size(self) -> int:
        """Bytes of the answer not yet sent to the client (0 when it is gone)."""
        protocol = self._protocol
        transport = protocol.transport if protocol is not None else None
        return transport.get_write_buffer_size() if transport is not None else 0

    def accept_websocket(
        self, listener: Any, headers: Headers = (), *, max_message_size: int | None = None
    ) -> WebSocketConnection:
        """Answer the handshake with 101 and switch the connection to WebSocket framing.

        ``listener`` gets ``on_text(str)``, ``on_binary(bytes)`` and, exactly once,
        ``on_close(code, reason)``; optionally ``on_drain()`` when a full write buffer drained.
        Raises RuntimeError if this is not a WebSocket handshake (check ``is_websocket``) or the
        request was already answered. If the client is already gone, the returned connection is
        closed and ``listener.on_close(1006, "")`` is called soon.
        """
        if not self.is_websocket:
            raise RuntimeError("not a WebSocket handshake request")
        if self.responded:
            raise RuntimeError("request already answered")
        protocol = self._protocol
        if protocol is None or self.closed:
            # imported here, not per call above: an import statement costs a trip through the
            # import machinery even for a loaded module
            from .._impl import WebSocketConnection

            return WebSocketConnection.closed_connection(listener, self.client)
        return protocol.accept_websocket(self, listener, headers, max_message_size)

    def hand_over(self, send: Callable[[Any, bytes], bool]) -> bool:
        """Give this request's connection to another process instead of answering (several
        workers, see ``http/handover.py``): ``send(sock, data)`` passes on the connection's
        socket (its file descriptor) with ``data``, the bytes to replay there (this request and
        any that followed it), and returns True; the connection is then no longer this
        process's. False, with the request still to be answered here, when ``send`` failed or
        the connection cannot change hands (TLS, a pipelined request not fully read)."""
        protocol = self._protocol
        if protocol is None or self.responded or self.closed:
            return False
        return protocol.hand_over(self, send)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url} from {self.client[0]}:{self.client[1]}>"
