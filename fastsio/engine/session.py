"""One Engine.IO v4 session: its transport (polling or WebSocket), the upgrade, the heartbeat.
(``session3.EngineSession3`` overrides what differs in Engine.IO v3.)

Per-connection state lives in ``__slots__`` objects and the heartbeat is two timer handles per session
(no task per connection): the server pings every ``ping_interval``; a missing pong closes the session
``ping_timeout`` later, to the millisecond of the event loop's clock, not at a periodic sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _impl
from ..protocol.errors import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from ..http.request import Request
    from .server import EngineServer

logger = logging.getLogger("fastsio.engine")

# Engine.IO packet type characters, as they appear first in a text packet.
_OPEN, _CLOSE, _PING, _PONG, _MESSAGE, _UPGRADE, _NOOP = "0123456"

# A polling client that stops fetching must not let its buffer grow without bound: past this many
# queued packets the session is closed (the heartbeat would close it soon anyway).
MAX_POLLING_BUFFER = 100_000

# A WebSocket peer that does not read: past this many bytes queued in the kernel-side write buffer
# of the transport, volatile packets are dropped; past MAX_WRITE_BUFFER the session is closed.
WRITABLE_LIMIT = 1 << 20
MAX_WRITE_BUFFER = 64 << 20

UPGRADE_TIMEOUT = 10.0


def _ignore_message(data: str | bytes) -> None:
    pass


def _ignore_close(reason: str) -> None:
    pass


class _WebSocketListener:
    """Receives the frames of the session's active WebSocket and hands them to the session."""

    __slots__ = ("session",)

    def __init__(self, session: EngineSession) -> None:
        self.session = session

    def on_text(self, text: str) -> None:
        session = self.session
        if text[:1] == _MESSAGE and not session.closed:
            # _receive_text and _deliver, inlined for the hot case: a message packet
            try:
                session.on_message(text[1:])
            except Exception:
                logger.exception("session %s: error in message handler", session.sid)
        else:
            session._receive_text(text)

    def on_binary(self, data: bytes) -> None:
        session = self.session
        if not session.closed:
            session._deliver(data)

    def on_close(self, code: int, reason: str) -> None:
        self.session._transport_closed("transport close")


class _ProbeListener:
    """Drives an upgrade: a WebSocket opened with the sid of a polling session.

    Spec (engine.io-protocol v4, "Upgrade"): client sends ``2probe``, server answers ``3probe``,
    the pending GET is released with a noop, client sends ``5``; only then does the WebSocket carry
    data. Until then, everything still flows over polling, so nothing is lost or reordered.
    """

    __slots__ = ("conn", "probed", "session", "timer")

    def __init__(self, session: EngineSession) -> None:
        self.session = session
        self.conn: Any = None
        self.probed = False
        self.timer: Any = None

    def on_text(self, text: str) -> None:
        session = self.session
        if session.closed:
            self.conn.close(1000)
        elif text == "2probe" and not self.probed:
            self.probed = True
            self.conn.send_text("3probe")
            session._release_poll()
        elif text == _UPGRADE and self.probed:
            session._finish_upgrade(self)
        elif text == _NOOP:
            pass
        else:
            self.fail(1002, "unexpected packet during upgrade")

    def on_binary(self, data: bytes) -> None:
        self.fail(1003, "unexpected binary packet during upgrade")

    def on_close(self, code: int, reason: str) -> None:
        self.session._upgrade_abandoned(self)

    def fail(self, code: int, reason: str) -> None:
        self.conn.close(code, reason)
        self.session._upgrade_abandoned(self)


class EngineSession:
    """An Engine.IO connection, whichever transport carries it.

    The layer above sets ``on_message(data)`` and ``on_close(reason)`` and sends with ``send()``.
    """

    #: Engine.IO protocol revision (EngineSession3 says 3)
    protocol = 4
    _listener_class: Any = _WebSocketListener

    __slots__ = (
        "__weakref__",
        "_flush_handle",
        "_ping_handle",
        "_poll_buffer",
        "_poll_request",
        "_pong_handle",
        "_probe",
        "_ws",
        "_ws_listener",
        "closed",
        "loop",
        "on_close",
        "on_message",
        "request",
        "server",
        "sid",
        "transport_name",
    )

    def __init__(self, server: EngineServer, sid: str, request: Request, loop: Any) -> None:
        self.server = server
        self.sid = sid
        self.request = request
        self.transport_name = "polling"
        self.on_message: Callable[[str | bytes], None] = _ignore_message
        self.on_close: Callable[[str], None] = _ignore_close
        self.closed = False
        self.loop = loop
        self._ws: Any = None
        self._ws_listener: _WebSocketListener | None = None
        self._probe: _ProbeListener | None = None
        self._poll_request: Request | None = None
        self._poll_buffer: list[str | bytes] = []
        self._flush_handle: Any = None
        self._ping_handle: Any = None
        self._pong_handle: Any = None

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: str | bytes) -> None:
        """Send one message (text or binary). Returns at once; the bytes are queued."""
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            if type(data) is str:
                ws.send_text(_MESSAGE + data)
            else:
                ws.send_binary(data)
            if ws.writing_paused:
                self._check_backpressure(ws)
        else:
            self._queue_polling(_MESSAGE + data if type(data) is str else data)

    def send_prepared(self, packet: str | bytes, frame: bytes) -> None:
        """Broadcast fan-out: ``packet`` is the encoded Engine.IO packet ("4..." or raw binary) and
        ``frame`` the same packet as a WebSocket frame, both built once for all targets."""
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            ws.send_frame(frame)
            if ws.writing_paused:
                self._check_backpressure(ws)
        else:
            self._queue_polling(packet)

    @property
    def writable(self) -> bool:
        """False while a packet would only pile up (volatile packets are dropped then)."""
        if self.closed:
            return False
        ws = self._ws
        if ws is not None:
            return ws.write_buffer_size() < WRITABLE_LIMIT
        return self._poll_request is not None and self._probe is None

    def write_buffer_size(self) -> int:
        ws = self._ws
        if ws is not None:
            return ws.write_buffer_size()
        return len(self._poll_buffer)

    def _check_backpressure(self, ws: Any) -> None:
        # Called once writing_paused is set (the transport's high-water mark signal, a flag the
        # callers read: asking for the buffer size on every send cost 12% of the echo profile).
        if ws.write_buffer_size() > MAX_WRITE_BUFFER:
            logger.warning("session %s: peer does not read, closing", self.sid)
            self._close("transport error", notify_peer=False)
            ws.close(1008, "write buffer overflow")

    def _send_control(self, text: str) -> None:
        ws = self._ws
        if ws is not None:
            ws.send_text(text)
        else:
            self._queue_polling(text)

    def _queue_polling(self, packet: str | bytes) -> None:
        buffer = self._poll_buffer
        buffer.append(packet)
        if len(buffer) > MAX_POLLING_BUFFER:
            logger.warning("session %s: polling buffer overflow, closing", self.sid)
            self._close("transport error", notify_peer=False)
            return
        # Packets queued in the same loop tick leave together in one response.
        if self._flush_handle is None and self._poll_request is not None:
            self._flush_handle = self.loop.call_soon(self._flush_polling)

    def _flush_polling(self) -> None:
        self._flush_handle = None
        request = self._poll_request
        if request is None or not self._poll_buffer:
            return
        self._poll_request = None
        packets = self._poll_buffer
        self._poll_buffer = []
        self._respond_packets(request, packets)

    def _respond_packets(self, request: Request, packets: list) -> None:
        """Answer a GET with these packets (encoded packets as str, binary messages as bytes)."""
        self._respond_poll(request, _impl.engineio.encode_payload(packets))

    def _respond_poll(self, request: Request, body: str) -> None:
        request.on_close = None
        request.respond(200, self.server._polling_headers(request), body.encode())

    # -- polling requests -----------------------------------------------------------------------

    def handle_poll(self, request: Request) -> None:
        """A GET: answer with what is queued, or hold the request until something is."""
        if self._poll_request is not None:
            # Spec: one pending GET per session; a second one is an error that closes it.
            self.server._send_error(request, 400, 3, "Bad request")
            self._close("transport error", notify_peer=False)
            return
        if self._poll_buffer:
            packets = self._poll_buffer
            self._poll_buffer = []
            self._respond_packets(request, packets)
            return
        if self.closed:
            self._respond_packets(request, [_CLOSE])
            self.server._forget(self)
            return
        if self._probe is not None and self._probe.probed:
            # Upgrading: the client is pausing polling; do not hold its GET.
            self._respond_packets(request, [_NOOP])
            return
        self._poll_request = request
        request.on_close = self._poll_aborted

    def _poll_aborted(self) -> None:
        # The client went away with a GET pending (tab closed): that ends the session, with the
        # reason Node's engine.io gives ("poll connection closed prematurely" is an error).
        self._poll_request = None
        self._transport_closed("transport error")

    def handle_post(self, request: Request) -> None:
        """A POST: one or more packets from the client; answered with ``ok``."""
        server = self.server
        if len(request.body) > server.max_http_buffer_size:
            server._send_error(request, 413, 3, "Payload too large")
            self._close("transport error", notify_peer=False)
            return
        try:
            packets = self._decode_post(request)
        except ProtocolError as exc:
            logger.info("session %s: bad polling payload: %s", self.sid, exc)
            server._send_error(request, 400, 3, "Bad request")
            self._close("parse error", notify_peer=False)
            return
        request.respond(200, server._post_headers(request), b"ok")
        for packet_type, data in packets:
            if self.closed:
                return
            if packet_type == 4:
                self._deliver(data)
            else:
                self._on_control_packet(packet_type, data)

    def _decode_post(self, request: Request) -> list:
        return _impl.engineio.decode_payload(request.body)

    def _on_control_packet(self, packet_type: int, data: Any) -> None:
        """A packet other than MESSAGE from a polling POST."""
        if packet_type == 3:
            self._on_pong()
        elif packet_type == 1:
            self._client_closed_polling()
        elif packet_type != 6:
            logger.info("session %s: unexpected packet type %d on polling", self.sid, packet_type)
            self._close("parse error", notify_peer=False)

    def _client_closed_polling(self) -> None:
        # As Node: the client closed the transport, so a held GET is released with a noop, and
        # the session ends at once.
        request = self._poll_request
        if request is not None:
            self._poll_request = None
            self._respond_packets(request, [_NOOP])
        self._transport_closed("transport close")

    def _release_poll(self) -> None:
        """Answer a held GET with what is queued, or with a noop (the upgrade needs it freed)."""
        request = self._poll_request
        if request is None:
            return
        if self._poll_buffer:
            self._flush_polling()
        else:
            self._poll_request = None
            self._respond_packets(request, [_NOOP])

    # -- WebSocket ------------------------------------------------------------------------------

    def open_websocket(self, request: Request) -> None:
        """The session is opened directly over WebSocket (no polling first)."""
        listener = self._listener_class(self)
        self._ws_listener = listener
        self._ws = self.server._accept_websocket(request, listener)
        self.transport_name = "websocket"

    def _use_websocket(self, conn: Any) -> None:
        listener = self._listener_class(self)
        conn.listener = listener
        self._ws_listener = listener
        self._ws = conn
        self.transport_name = "websocket"

    def start_upgrade(self, request: Request) -> bool:
        """A WebSocket request carrying this session's sid: begin the probe. False if refused."""
        if self._ws is not None or self._probe is not None or self.closed:
            return False
        probe = _ProbeListener(self)
        probe.conn = self.server._accept_websocket(request, probe)
        probe.timer = self.loop.call_later(UPGRADE_TIMEOUT, probe.fail, 1002, "upgrade timeout")
        self._probe = probe
        return True

    def _finish_upgrade(self, probe: _ProbeListener) -> None:
        probe.timer.cancel()
        self._probe = None
        self._use_websocket(probe.conn)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        request = self._poll_request
        if request is not None:
            self._poll_request = None
            self._respond_packets(request, [_NOOP])
        # What was queued for polling leaves over the WebSocket, in order.
        packets = self._poll_buffer
        self._poll_buffer = []
        self._write_queued(self._ws, packets)

    def _write_queued(self, ws: Any, packets: list) -> None:
        for packet in packets:
            if type(packet) is str:
                ws.send_text(packet)
            else:
                ws.send_binary(packet)

    def _upgrade_abandoned(self, probe: _ProbeListener) -> None:
        if self._probe is probe:
            probe.timer.cancel()
            self._probe = None

    def _receive_text(self, text: str) -> None:
        if self.closed:
            return
        # Inline decode of the Engine.IO packet type: the message case is the hot one.
        kind = text[:1]
        if kind == _MESSAGE:
            self._deliver(text[1:])
        elif kind == _PONG:
            self._on_pong()
        elif kind == _CLOSE:
            self._transport_closed("transport close")
        elif kind == _NOOP:
            pass
        else:
            logger.info("session %s: unexpected packet %r on websocket", self.sid, text[:20])
            self._close("parse error", notify_peer=False)

    def _deliver(self, data: str | bytes) -> None:
        try:
            self.on_message(data)
        except Exception:
            logger.exception("session %s: error in message handler", self.sid)

    # -- heartbeat ------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        self._ping_handle = self.loop.call_later(self.server.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping_handle = None
        if self.closed:
            return
        self._send_control(_PING)
        self._pong_handle = self.loop.call_later(self.server.ping_timeout, self._ping_timed_out)

    def _on_pong(self) -> None:
        handle = self._pong_handle
        if handle is None:
            return  # a pong nobody asked for: ignore, as Node does
        handle.cancel()
        self._pong_handle = None
        self._ping_handle = self.loop.call_later(self.server.ping_interval, self._send_ping)

    def _ping_timed_out(self) -> None:
        self._pong_handle = None
        self._close("ping timeout", notify_peer=False)

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = "forced close") -> None:
        """Close from the server side: the client is told (close packet) and the session ends."""
        self._close(reason, notify_peer=True)

    def _transport_closed(self, reason: str) -> None:
        self._close(reason, notify_peer=False)

    # Node's rule: only a close from the server side (close()) keeps a polling session until the
    # client has collected the close packet. A close packet from the client, a parse error, a
    # transport error or a ping timeout end the session at once (notify_peer=False): a held GET
    # is released and the sid is forgotten, so the next request with it is "Session ID unknown".

    def _close(self, reason: str, notify_peer: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for handle in (self._ping_handle, self._pong_handle, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = self._flush_handle = None
        probe = self._probe
        if probe is not None:
            self._probe = None
            probe.timer.cancel()
            probe.conn.close(1000)
        self._end_transport(notify_peer)
        try:
            self.on_close(reason)
        except Exception:
            logger.exception("session %s: error in close handler", self.sid)

    def _end_transport(self, notify_peer: bool) -> None:
        ws = self._ws
        if ws is not None:
            ws.close(1000)
            self.server._forget(self)
            return
        request = self._poll_request
        if not notify_peer:
            self._poll_buffer = []
            if request is not None:
                self._poll_request = None
                request.on_close = None
                self._respond_packets(request, [_CLOSE])
            self.server._forget(self)
            return
        # Tell the polling client: what is queued (e.g. Socket.IO DISCONNECT packets) leaves
        # first, and the close packet in a later response, as Node does. socket.io-client handles
        # decoded packets on the next tick, so a close packet in the same payload would overtake
        # a DISCONNECT and the client would report "transport close" and reconnect.
        if request is not None:
            if self._poll_buffer:
                self._flush_polling()
            else:
                self._poll_request = None
                self._respond_packets(request, [_CLOSE])
                self.server._forget(self)
                return
        self.loop.call_later(self.server.ping_timeout, self.server._forget, self)
