"""An Engine.IO v3 session (socket.io-client 2.x), accepted when ``allow_eio3`` is on.

It is an EngineSession with the v3 differences overridden, so the v4 path pays nothing for it:

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
from .session import _MESSAGE, EngineSession, _WebSocketListener

if TYPE_CHECKING:  # pragma: no cover
    from ..http.request import Request

logger = logging.getLogger("fastsio.engine")

engineio3 = _impl.engineio3  # the v3 codec, compiled or pure (picked by fastsio._impl)

_PING, _PONG, _CLOSE, _NOOP = "2", "3", "1", "6"
_BINARY_PREFIX = b"\x04"


def _wants_base64(request: Any) -> bool:
    # engine.io-client sends b64=1 (any non-empty value counts, as in Node's `!!req._query.b64`)
    return bool(request.query.get("b64"))


class _WebSocketListener3(_WebSocketListener):
    __slots__ = ()

    def on_binary(self, data: bytes) -> None:
        session = self.session
        if not session.closed:
            session._receive_binary(data)


class EngineSession3(EngineSession):
    """An Engine.IO v3 connection (see the module docstring for what differs from v4)."""

    protocol = 3
    _listener_class = _WebSocketListener3

    __slots__ = ("_polling_binary", "_ws_base64")

    def __init__(self, server: Any, sid: str, request: Request, loop: Any) -> None:
        super().__init__(server, sid, request, loop)
        base64 = _wants_base64(request)
        self._polling_binary = not base64
        self._ws_base64 = base64

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            if type(data) is str:
                ws.send_text(_MESSAGE + data)
            elif self._ws_base64:
                ws.send_text(engineio3.encode_packet(4, data, False))
            else:
                ws.send_binary(_BINARY_PREFIX + data)
            if ws.writing_paused:
                self._check_backpressure(ws)
        else:
            self._queue_polling(_MESSAGE + data if type(data) is str else data)

    def send_prepared(self, packet: str | bytes, frame: bytes) -> None:
        # A text packet's frame is the same in v3 and v4; a binary one lacks the v3 type byte.
        if type(packet) is not str:
            self.send(packet)
        else:
            super().send_prepared(packet, frame)

    def _write_queued(self, ws: Any, packets: list) -> None:
        for packet in packets:
            if type(packet) is str:
                ws.send_text(packet)
            elif self._ws_base64:
                ws.send_text(engineio3.encode_packet(4, packet, False))
            else:
                ws.send_binary(_BINARY_PREFIX + packet)

    # -- polling ----------------------------------------------------------------------------------

    def _respond_packets(self, request: Request, packets: list) -> None:
        body = engineio3.encode_payload(packets, self._polling_binary)
        request.on_close = None
        server = self.server
        if type(body) is str:
            request.respond(200, server._polling_headers(request), body.encode())
        else:
            request.respond(200, server._binary_polling_headers(request), body)

    def _decode_post(self, request: Request) -> list:
        content_type = request.headers.get("content-type", "")
        binary = content_type.startswith("application/octet-stream")
        return engineio3.decode_payload(request.body, binary)

    def _on_control_packet(self, packet_type: int, data: Any) -> None:
        if packet_type == 2:
            self._on_ping(data)
        elif packet_type == 1:
            self._client_closed_polling()
        elif packet_type != 6:
            # a pong included: in v3 the server never pings ("invalid heartbeat direction")
            logger.info("session %s: unexpected packet type %d on polling", self.sid, packet_type)
            self._close("parse error", notify_peer=False)

    # -- WebSocket --------------------------------------------------------------------------------

    def start_upgrade(self, request: Request) -> bool:
        started = super().start_upgrade(request)
        if started:
            self._ws_base64 = _wants_base64(request)
        return started

    def _receive_text(self, text: str) -> None:
        if self.closed:
            return
        kind = text[:1]
        if kind == _MESSAGE:
            self._deliver(text[1:])
        elif kind == _PING:
            self._on_ping(text[1:])
        elif kind == _CLOSE:
            self._transport_closed("transport close")
        elif kind == _NOOP:
            pass
        elif kind == "b":
            try:
                _, data = engineio3.decode_packet(text)
            except (ProtocolError, binascii.Error) as exc:
                logger.info("session %s: bad base64 packet on websocket: %s", self.sid, exc)
                self._close("parse error", notify_peer=False)
                return
            self._deliver(data)
        else:
            logger.info("session %s: unexpected packet %r on websocket", self.sid, text[:20])
            self._close("parse error", notify_peer=False)

    def _receive_binary(self, data: bytes) -> None:
        if data[:1] != _BINARY_PREFIX:
            logger.info("session %s: binary packet without the message type byte", self.sid)
            self._close("parse error", notify_peer=False)
            return
        self._deliver(data[1:])

    # -- heartbeat: the client pings ----------------------------------------------------------------

    def start_heartbeat(self) -> None:
        server = self.server
        self._pong_handle = self.loop.call_later(
            server.ping_interval + server.ping_timeout, self._ping_timed_out
        )

    def _on_ping(self, data: Any) -> None:
        if type(data) is not str:
            data = ""
        self._send_control(_PONG + data)
        handle = self._pong_handle
        if handle is not None:
            handle.cancel()
        server = self.server
        self._pong_handle = self.loop.call_later(
            server.ping_interval + server.ping_timeout, self._ping_timed_out
        )
