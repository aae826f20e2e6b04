"""One Engine.IO v4 session: the layer above's handle on a connection, whichever transport carries
it (``transports.py``), the upgrade, the heartbeat and the closing rules.
(``session3.EngineSession3`` overrides what differs in Engine.IO v3.)

Per-connection state lives in ``__slots__`` objects and the heartbeat is one timer per session at a
time (no task per connection), queued with the other sessions' on the server's timer queues
(``timers.py``): the server pings every ``ping_interval``; a missing pong closes the session
``ping_timeout`` later, to the millisecond of the event loop's clock, not at a periodic sweep.

Closing follows Node's engine.io: only a close from the server side (``close()``) keeps a polling
session until the client has collected the close packet. A close packet from the client, a parse
error, a transport error or a ping timeout end the session at once (``abort()``): a held GET is
released and the sid is forgotten, so the next request with it is "Session ID unknown".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from fastsio.engine.constants import MESSAGE_PREFIX, NOOP, PING_PACKET, PONG

# Relative on purpose: compiled, this module is fastsio._speedups.engine.session, and its
# transports are the compiled ones beside it (fastsio/_speedups/README.md); the other imports are
# absolute for the same reason.
from .transports import PollingTransport, UpgradeProbe, WebSocketTransport

if TYPE_CHECKING:  # pragma: no cover
    from fastsio.engine.server import EngineServer
    from fastsio.http.request import Request

logger = logging.getLogger("fastsio.engine")

# A WebSocket peer that does not read: past this many bytes waiting in the transport's write
# buffer, volatile packets are dropped; past the session's max_buffered_bytes (the server's
# option, MAX_BUFFERED_BYTES by default) the session is closed.
WRITABLE_LIMIT = 1 << 20
#: Default of ``max_buffered_bytes``: 4 MiB. Node and ws have no bound (a client that stops
#: reading makes the server buffer without end); this is 4 times the default largest message
#: (``max_http_buffer_size``), so one large message does not trip it, and 100 stalled clients
#: hold at most ~400 MB.
MAX_BUFFERED_BYTES = 4 << 20


#: the events of ``EngineSession.on``
SESSION_EVENTS = ("packet", "upgrading", "upgrade", "close")
#: Engine.IO packet types by number, as Node names them
PACKET_NAMES = ("open", "close", "ping", "pong", "message", "upgrade", "noop")


class EnginePacket(NamedTuple):
    """A packet from the client, as the ``"packet"`` listeners get it (Node's ``{type, data}``)."""

    type: str
    data: Any


class _PacketTap:
    """``on_message`` of a session with "packet" listeners: tells them, then the layer above."""

    __slots__ = ("inner", "session")

    def __init__(self, session: EngineSession, inner: Callable[[str | bytes], None]) -> None:
        self.session = session
        self.inner = inner

    def __call__(self, data: str | bytes) -> None:
        self.session._emit("packet", EnginePacket("message", data))
        self.inner(data)


# the heartbeat's timer callbacks: functions of the session, so that one queue serves all
# sessions (and a subclass's override is the one called)
def _send_ping(session: EngineSession) -> None:
    session._send_ping()


def _ping_timed_out(session: EngineSession) -> None:
    session._ping_timed_out()


def _ignore_message(data: str | bytes) -> None:
    pass


def _ignore_close(reason: str) -> None:
    pass


class EngineSession:
    """An Engine.IO connection, whichever transport carries it.

    The layer above sets ``on_message(data)`` and ``on_close(reason)`` and sends with ``send()``.
    The server opens it (``open``) and hands it its requests (``handle_poll``, ``handle_post``,
    ``start_upgrade``); its transports report to it (``deliver``, ``receive_control``,
    ``abort``, and the ``upgrade_*`` methods for the probe).
    """

    #: Engine.IO protocol revision (EngineSession3 says 3)
    protocol = 4
    #: the transport classes of this revision
    polling_class: Any = PollingTransport
    websocket_class: Any = WebSocketTransport

    __slots__ = (
        "__weakref__",
        "_listeners",
        "_ping_handle",
        "_polling",
        "_pong_handle",
        "_probe",
        "_ws",
        "closed",
        "deflater",
        "loop",
        "max_buffered_bytes",
        "on_close",
        "on_message",
        "request",
        "server",
        "sid",
        "transport",
        "transport_name",
        "upgraded",
    )

    def __init__(self, server: EngineServer, sid: str, request: Request, loop: Any) -> None:
        self.server = server
        self.sid = sid
        self.request = request
        self.loop = loop
        self.transport_name = "polling"
        #: the transport carrying the session (set by ``open``, replaced by an upgrade)
        self.transport: Any = None
        self.on_message: Callable[[str | bytes], None] = _ignore_message
        self.on_close: Callable[[str], None] = _ignore_close
        self.closed = False
        #: a WebSocket client with more bytes than this waiting to be sent is disconnected
        #: ("transport error"); from the server's option, and may be changed per session
        self.max_buffered_bytes: int = server.max_buffered_bytes
        self._ws: Any = None  # the WebSocket connection of the transport, if it is a WebSocket
        #: the permessage-deflate compressor of that WebSocket (shared by every connection that
        #: agreed on the same parameters), or None: the broadcast fan-out groups targets by it
        #: to deflate a broadcast once per group
        self.deflater: Any = None
        self._polling: PollingTransport | None = None  # the transport, while it is polling
        self._probe: UpgradeProbe | None = None
        self._ping_handle: Any = None
        self._pong_handle: Any = None
        #: True once the session moved from polling to a WebSocket (Node's ``upgraded``)
        self.upgraded = False
        # the app's listeners (``on``), by event; None until there is one
        self._listeners: dict | None = None

    def open(self, transport: str, open_packet: str) -> None:
        """Answer the handshake request with the open packet, on ``transport`` ("polling" or
        "websocket"), and start the heartbeat."""
        if transport == "websocket":
            websocket = self.websocket_class(self, self.request)
            self._use_websocket(websocket)
            websocket.send(open_packet)
        else:
            polling = self.polling_class(self)
            self._polling = polling
            self.transport = polling
            polling.respond(self.request, [open_packet])
        self.start_heartbeat()

    # -- for the app (Node's socket.conn) -------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id (``sid``), as Node's ``conn.id``."""
        return self.sid

    @property
    def upgrading(self) -> bool:
        """True while a WebSocket upgrade is being probed."""
        return self._probe is not None

    @property
    def remote_address(self) -> str:
        """The client's address, from the handshake request."""
        client = getattr(self.request, "client", None)
        return client[0] if client else ""

    def on(self, event: str, listener: Callable | None = None) -> Any:
        """Call ``listener`` on ``event`` (decorator or call), as Node's ``socket.conn.on``:
        ``"packet"``: ``listener(packet)`` for every packet from the client (an
        :class:`EnginePacket`: ``type`` "message", "ping", "pong", "noop"..., ``data``);
        ``"upgrading"`` / ``"upgrade"``: ``listener(transport)`` when the client probes the
        WebSocket / has moved to it; ``"close"``: ``listener(reason)`` when the session ends.
        A session with no "packet" listener pays nothing per message."""
        if event not in SESSION_EVENTS:
            raise ValueError(f"unknown session event {event!r}; one of {', '.join(SESSION_EVENTS)}")
        if listener is None:
            return lambda function: self.on(event, function)
        listeners = self._listeners
        if listeners is None:
            listeners = self._listeners = {}
        if event == "packet" and "packet" not in listeners:
            # messages reach the layer above through on_message, inlined on the WebSocket's
            # hot path: a session that is watched gets a wrapper there, the others nothing
            self.on_message = _PacketTap(self, self.on_message)
        listeners.setdefault(event, []).append(listener)
        return listener

    def off(self, event: str, listener: Callable | None = None) -> None:
        """Remove ``listener`` from ``event`` (every listener of it when None)."""
        listeners = (self._listeners or {}).get(event)
        if not listeners:
            return
        if listener is None:
            listeners.clear()
        elif listener in listeners:
            listeners.remove(listener)

    def _emit(self, event: str, *args: Any) -> None:
        listeners = self._listeners
        if listeners is None:
            return
        for listener in tuple(listeners.get(event, ())):
            try:
                listener(*args)
            except Exception:
                logger.exception("session %s: error in %r listener", self.sid, event)

    def _control_seen(self, packet_type: int, data: Any) -> None:
        # a control packet from the client, for the "packet" listeners (not a hot path)
        if self._listeners is not None:
            self._emit("packet", EnginePacket(PACKET_NAMES[packet_type], data))

    # -- sending ------------------------------------------------------------------------------

    def send(self, data: str | bytes, compress: bool = True) -> None:
        """Send one message (text or binary). Returns at once; the bytes are queued.
        ``compress=False``: never compressed (permessage-deflate, HTTP compression); else as
        the server's options say."""
        if self.closed:
            return
        ws = self._ws
        if ws is not None:
            if type(data) is str:
                ws.send_text(MESSAGE_PREFIX + data, compress)
            else:
                ws.send_binary(data, compress)
            if ws.writing_paused:
                self._check_backpressure(ws)
        else:
            self._polling.send(MESSAGE_PREFIX + data if type(data) is str else data, compress)

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
            self._polling.send(packet)

    @property
    def writable(self) -> bool:
        """False while a packet would only pile up (volatile packets are dropped then)."""
        if self.closed:
            return False
        ws = self._ws
        if ws is not None:
            return ws.write_buffer_size() < WRITABLE_LIMIT
        return self._polling.held is not None and self._probe is None

    def write_buffer_size(self) -> int:
        ws = self._ws
        if ws is not None:
            return ws.write_buffer_size()
        return len(self._polling.queue)

    def _check_backpressure(self, ws: Any) -> None:
        # Called once writing_paused is set (the transport's high-water mark signal, a flag the
        # callers read: asking for the buffer size on every send cost 12% of the echo profile).
        size = ws.write_buffer_size()
        if size > self.max_buffered_bytes:
            logger.warning(
                "session %s: closed, the client does not read: %d bytes waiting to be sent, more "
                "than max_buffered_bytes (%d)",
                self.sid,
                size,
                self.max_buffered_bytes,
            )
            ws.close(1008, "write buffer overflow")
            self.abort("transport error")

    # -- requests from the server -------------------------------------------------------------

    def handle_poll(self, request: Request) -> None:
        """A GET for this polling session."""
        self._polling.handle_get(request)

    def handle_post(self, request: Request) -> None:
        """A POST for this polling session."""
        self._polling.handle_post(request)

    def start_upgrade(self, request: Request) -> bool:
        """A WebSocket request carrying this session's sid: begin the probe. False if refused."""
        if self._ws is not None or self._probe is not None or self.closed:
            return False
        self._probe = UpgradeProbe(self, request)
        return True

    # -- from the transports ------------------------------------------------------------------

    def deliver(self, data: str | bytes) -> None:
        """A message from the client, for the layer above."""
        try:
            self.on_message(data)
        except Exception:
            logger.exception("session %s: error in message handler", self.sid)

    def receive_control(self, packet_type: int, data: Any) -> None:
        """A packet from the client other than a message or a close."""
        self._control_seen(packet_type, data)
        if packet_type == PONG:
            self._on_pong()
        elif packet_type != NOOP:
            logger.info("session %s: unexpected packet type %d", self.sid, packet_type)
            self.abort("parse error")

    def upgrade_probed(self, probe: UpgradeProbe) -> None:
        """The client got its probe answer and pauses polling: free its GET."""
        if self._probe is probe:
            self._polling.pause()
            self._emit("upgrading", probe)

    def upgrade(self, probe: UpgradeProbe) -> None:
        """The client completed the upgrade: the probe's WebSocket carries the session now."""
        if self._probe is not probe:
            return
        self._probe = None
        queued = self._polling.stop()
        self._polling = None
        websocket = self.websocket_class(self, probe.request, probe.conn)
        self._use_websocket(websocket)
        self.upgraded = True
        # What was queued for polling leaves over the WebSocket, in order.
        for packet in queued:
            websocket.send(packet)
        self._emit("upgrade", websocket)

    def upgrade_failed(self, probe: UpgradeProbe) -> None:
        if self._probe is probe:
            self._probe = None
            self._polling.resume()

    def _use_websocket(self, websocket: WebSocketTransport) -> None:
        self.transport = websocket
        self._ws = conn = websocket.conn
        self.deflater = conn.deflater
        self.transport_name = "websocket"

    # -- heartbeat ------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        self._ping_handle = self._call_later(self.server.ping_interval, _send_ping)

    def _call_later(self, delay: float, fire: Callable[[Any], None]) -> Any:
        # the server's timer queues, not a loop handle each (see timers.py)
        return self.server.timers.call_later(self.loop, delay, fire, self)

    def _send_ping(self) -> None:
        self._ping_handle = None
        if self.closed:
            return
        self.transport.send(PING_PACKET)
        self._pong_handle = self._call_later(self.server.ping_timeout, _ping_timed_out)

    def _on_pong(self) -> None:
        handle = self._pong_handle
        if handle is None:
            return  # a pong nobody asked for: ignore, as Node does
        handle.cancel()
        self._pong_handle = None
        self._ping_handle = self._call_later(self.server.ping_interval, _send_ping)

    def _ping_timed_out(self) -> None:
        self._pong_handle = None
        self.abort("ping timeout")

    # -- closing --------------------------------------------------------------------------------

    def close(self, reason: str = "forced close") -> None:
        """Close from the server side: what is queued leaves first, then the client is told (a
        close packet on polling, kept until the client collects it; a close frame on a
        WebSocket)."""
        if self.closed:
            return
        self._stop()
        self.transport.close(self._forget)
        self._notify_close(reason)

    def abort(self, reason: str) -> None:
        """End the session at once, for any reason other than a close from the server side: the
        transport sends nothing more (a held GET gets the close packet) and the sid is forgotten."""
        if self.closed:
            return
        self._stop()
        self.transport.abort()
        self._forget()
        self._notify_close(reason)

    def _stop(self) -> None:
        self.closed = True
        for handle in (self._ping_handle, self._pong_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = None
        probe = self._probe
        if probe is not None:
            self._probe = None
            probe.cancel()

    def _forget(self) -> None:
        self.server.remove_session(self)

    def _notify_close(self, reason: str) -> None:
        logger.info(
            "connection closed: sid=%s address=%s transport=%s reason=%r",
            self.sid,
            self.request.client[0],
            self.transport_name,
            reason,
        )
        try:
            self.on_close(reason)
        except Exception:
            logger.exception("session %s: error in close handler", self.sid)
        if self._listeners is not None:
            self._emit("close", reason)
