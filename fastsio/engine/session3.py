"""An Engine.IO v3 session (socket.io-client 2.x), accepted when ``allow_eio3`` is on, and its
transports.

They are the v4 classes with the v3 differences overridden, so the v4 path pays nothing for it:

- Heartbeat: the *client* pings every ``pingInterval``; the server answers each ping with a pong
  (same data) and closes the session when no ping came for ``pingInterval + pingTimeout`` (one
  timer handle, re-armed per ping, as Node's engine.io does for v3).
- Polling payloads are length-prefixed (``fastsio.protocol.engineio3``): text, or binary (XHR2,
  ``application/octet-stream``) when the client did not ask for base64 (``b64=1``) and a binary
  message is queued. Node's socket.io-client 2.x always asks for base64 (its XMLHttpRequest has no
  ``responseType``); browsers take the binary payload.
- On a WebSocket a binary message carries its packet type as the first byte (``\\x04``); with
  ``b64=1`` it travels as the text ``b4<base64>``.
"""

from __future__ import annotations

import binascii
import logging
from typing import TYPE_CHECKING, Any

from .. import _impl
from ..protocol.errors import ProtocolError
from .constants import (
    MESSAGE,
    MESSAGE_PREFIX,
    NOOP,
    OCTET_STREAM,
    PING,
    PONG_PACKET,
    TEXT_PLAIN,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..http.request import Request

logger = logging.getLogger("fastsio.engine")

engineio3 = _impl.engineio3  # the v3 codec, compiled or pure (picked by fastsio._impl)
# the v4 classes, compiled or pure (picked by fastsio._impl): the v3 ones subclass those in use
EngineSession = _impl.engine_session.EngineSession
_ping_timed_out = _impl.engine_session._ping_timed_out
PollingTransport = _impl.engine_transports.PollingTransport
WebSocketTransport = _impl.engine_transports.WebSocketTransport

_BINARY_PREFIX = b"\x04"  # the message type as the first byte of a binary frame
_BASE64_PREFIX = "b"  # a base64 binary packet: "b4<base64>"


def _wants_base64(request: Any) -> bool:
    # engine.io-client sends b64=1 (any non-empty value counts, as in Node's `!!req._query.b64`)
    return bool(request.query.get("b64"))


class PollingTransport3(PollingTransport):
    """Polling with v3 payloads: length-prefixed, binary (XHR2) unless the client asked for base64."""

    __slots__ = ("binary",)

    def __init__(self, session: EngineSession) -> None:
        super().__init__(session)
        self.binary = not _wants_base64(session.request)

    def respond(self, request: Request, packets: list, compress: bool = True) -> None:
        body = engineio3.encode_payload(packets, self.binary)
        request.on_close = None
        if type(body) is str:
            self.respond_body(request, TEXT_PLAIN, body.encode(), compress, len(packets))
        else:
            self.respond_body(request, OCTET_STREAM, body, compress, len(packets))

    def decode(self, request: Request) -> list:
        binary = request.headers.get("content-type", "").startswith(OCTET_STREAM)
        return engineio3.decode_payload(request.body, binary)


class WebSocketTransport3(WebSocketTransport):
    """A v3 WebSocket: binary messages carry the type byte, or travel as base64 text (``b64=1``
    on the request that opened the WebSocket)."""

    __slots__ = ("base64",)

    def __init__(self, session: EngineSession, request: Request, conn: Any = None) -> None:
        self.base64 = _wants_base64(request)
        super().__init__(session, request, conn)

    def receive(self, text: str) -> None:
        if text[:1] != _BASE64_PREFIX:
            super().receive(text)
            return
        session = self.session
        try:
            _, data = engineio3.decode_packet(text)
        except (ProtocolError, binascii.Error) as exc:
            logger.info("session %s: bad base64 packet on websocket: %s", session.sid, exc)
            session.abort("parse error")
            return
        session.deliver(data)

    def on_binary(self, data: bytes) -> None:
        session = self.session
        if session.closed:
            return
        if data[:1] != _BINARY_PREFIX:
            logger.info("session %s: binary packet without the message type byte", session.sid)
            session.abort("parse error")
            return
        session.deliver(data[1:])

    def send(self, packet: str | bytes) -> None:
        conn = self.conn
        if type(packet) is str:
            conn.send_text(packet)
        elif self.base64:
            conn.send_text(engineio3.encode_packet(MESSAGE, packet, False))
        else:
            conn.send_binary(_BINARY_PREFIX + packet)


class EngineSession3(EngineSession):
    """An Engine.IO v3 connection (see the module docstring for what differs from v4)."""

    protocol = 3
    polling_class = PollingTransport3
    websocket_class = WebSocketTransport3

    __slots__ = ("_ws_base64",)

    def __init__(self, server: Any, sid: str, request: Request, loop: Any) -> None:
        super().__init__(server, sid, request, loop)
        self._ws_base64 = False  # the WebSocket transport's base64 flag, for send()

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: str | bytes, compress: bool = True) -> None:
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            # WebSocketTransport3.send, inlined: no extra call per message
            if type(data) is str:
                ws.send_text(MESSAGE_PREFIX + data, compress)
            elif self._ws_base64:
                ws.send_text(engineio3.encode_packet(MESSAGE, data, False), compress)
            else:
                ws.send_binary(_BINARY_PREFIX + data, compress)
            if ws.writing_paused:
                self._check_backpressure(ws)
        else:
            self._polling.send(MESSAGE_PREFIX + data if type(data) is str else data, compress)

    def send_prepared(self, packet: str | bytes, frame: bytes) -> None:
        # A text packet's frame is the same in v3 and v4; a binary one lacks the v3 type byte.
        if type(packet) is not str:
            self.send(packet)
        else:
            super().send_prepared(packet, frame)

    def _use_websocket(self, websocket: Any) -> None:
        super()._use_websocket(websocket)
        self._ws_base64 = websocket.base64

    # -- packets from the client --------------------------------------------------------------------

    def receive_control(self, packet_type: int, data: Any) -> None:
        self._control_seen(packet_type, data)
        if packet_type == PING:
            self._on_ping(data)
        elif packet_type != NOOP:
            # a pong included: in v3 the server never pings ("invalid heartbeat direction")
            logger.info("session %s: unexpected packet type %d", self.sid, packet_type)
            self.abort("parse error")

    # -- heartbeat: the client pings ----------------------------------------------------------------

    def start_heartbeat(self) -> None:
        server = self.server
        self._pong_handle = self._call_later(
            server.ping_interval + server.ping_timeout, _ping_timed_out
        )

    def _on_ping(self, data: Any) -> None:
        if type(data) is not str:
            data = ""
        self.transport.send(PONG_PACKET + data)
        handle = self._pong_handle
        if handle is not None:
            handle.cancel()
        server = self.server
        self._pong_handle = self._call_later(
            server.ping_interval + server.ping_timeout, _ping_timed_out
        )
