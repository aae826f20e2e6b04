"""The two transports of an Engine.IO v4 session, and the listener that drives an upgrade.
(``session3`` subclasses both transports for Engine.IO v3.)

A transport moves packets between the wire and its session, and knows nothing of heartbeats or
of the layer above. Its contract with the session (docs/architecture.md, "engine/"):

- both: ``name``; ``send(packet)`` (an encoded text packet as ``str``, or a binary message as
  ``bytes``); ``close(on_closed)`` for a close from the server side (what is queued leaves first,
  then the client is told; ``on_closed()`` once that is done) and ``abort()`` for any other end
  (nothing more is sent; a held GET gets the close packet);
- they report to the session through its transport-facing methods: ``deliver(data)`` (a
  message), ``receive_control(packet_type, data)`` (a ping, pong, noop...) and ``abort(reason)``
  (the client closed the transport, a parse error, a transport error).

The session keeps the WebSocket connection of a ``WebSocketTransport`` (``transport.conn``) and
writes message frames to it directly, and reads ``held`` / ``queue`` of a ``PollingTransport``:
that is one Python call per message less than going through the transport.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastsio import _impl
from fastsio.engine.constants import (
    BAD_REQUEST,
    CLOSE,
    CLOSE_PACKET,
    CONTENT_TYPE_HEADERS,
    MESSAGE,
    MESSAGE_PREFIX,
    NOOP_PACKET,
    PING_PROBE,
    PONG_PROBE,
    TEXT_HTML,
    TEXT_PACKET_TYPES,
    TEXT_PLAIN,
    UPGRADE_PACKET,
)
from fastsio.protocol.errors import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from fastsio.engine.session import EngineSession
    from fastsio.http.request import Request

logger = logging.getLogger("fastsio.engine")


def log_oversize(session: EngineSession) -> None:
    """A WebSocket closed with 1009: a message over max_http_buffer_size (inflated)."""
    logger.warning(
        "session %s: WebSocket message over max_http_buffer_size (%d bytes); closed with 1009",
        session.sid,
        session.server.max_http_buffer_size,
    )


# A polling client that stops fetching must not let its queue grow without bound: past this many
# queued packets the session ends (the heartbeat would end it soon anyway).
MAX_POLLING_BUFFER = 100_000

# A WebSocket opened for an upgrade must complete it (probe, then the upgrade packet) this soon.
UPGRADE_TIMEOUT = 10.0

# A POST of more packets than this is delivered in slices of this many, one slice per loop turn,
# so that one client's huge POST (60,000 acked events in 840 KB held the loop for ~0.4 s) does
# not make every other client wait for the whole of it. ~256 small events take ~2 ms.
PACKETS_PER_SLICE = 256

_OK_HEADERS = CONTENT_TYPE_HEADERS[TEXT_HTML]


class PollingTransport:
    """HTTP long-polling: GETs are held until there is something to send, POSTs bring packets.

    Packets queued in the same loop tick leave together, in one answer to the held GET. An
    answer is compressed as the server's ``http_compression`` says (see
    ``fastsio.http.compression``) unless every packet in it was sent with ``compress=False``
    (Node's rule).
    """

    name = "polling"

    __slots__ = (
        "_delivering",
        "_flush_handle",
        "_linger_handle",
        "_on_closed",
        "_plain",
        "held",
        "loop",
        "paused",
        "queue",
        "server",
        "session",
    )

    def __init__(self, session: EngineSession) -> None:
        self.session = session
        self.server = session.server
        self.loop = session.loop
        #: the GET being held (answered as soon as there is something to send)
        self.held: Request | None = None
        #: encoded packets (str) and binary messages (bytes) waiting for a GET
        self.queue: list[str | bytes] = []
        #: the client is upgrading: GETs are answered at once (with a noop when nothing waits)
        self.paused = False
        self._flush_handle: Any = None
        self._on_closed: Any = None  # set while a close packet is owed to the next GET
        self._linger_handle: Any = None
        self._plain = 0  # packets in the queue sent with compress=False
        self._delivering: Any = None  # the next slice of a large POST (a loop handle)

    # -- sending ------------------------------------------------------------------------------

    def send(self, packet: str | bytes, compress: bool = True) -> None:
        queue = self.queue
        queue.append(packet)
        if not compress:
            self._plain += 1
        if len(queue) > MAX_POLLING_BUFFER:
            logger.warning("session %s: polling buffer overflow, closing", self.session.sid)
            self.session.abort("transport error")
            return
        if self._flush_handle is None and self.held is not None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        request = self.held
        if request is None or not self.queue:
            return
        self.held = None
        packets = self.queue
        self.queue = []
        self.respond(request, packets, self._take_compress(packets))

    def _take_compress(self, packets: list) -> bool:
        # the queue is being sent: may its answer be compressed (not if all were compress=False)
        plain = self._plain
        if not plain:
            return True
        self._plain = 0
        return plain < len(packets)

    def respond(self, request: Request, packets: list, compress: bool = True) -> None:
        """Answer a GET with these packets (encoded packets as str, binary messages as bytes)."""
        request.on_close = None
        body = _impl.engineio.encode_payload(packets).encode()
        self.respond_body(request, TEXT_PLAIN, body, compress, len(packets))

    def respond_body(
        self,
        request: Request,
        content_type: str,
        body: bytes,
        compress: bool = True,
        count: int = 1,
    ) -> None:
        """Answer a GET with a payload's bytes (``count`` packets), HTTP-compressed as the
        server's option says."""
        server = self.server
        headers = None
        if server.cors_allowed_origins is None and not server._extra_headers:
            # server.response_headers's usual answer, taken here: two calls less per answer
            headers = CONTENT_TYPE_HEADERS.get(content_type)
        if headers is None:
            headers = server.response_headers(request, content_type, self.session.sid)
        http_compression = server.http_compression
        if http_compression is not None and compress and len(body) >= http_compression.threshold:
            headers = list(headers)  # encode adds its own
            body = http_compression.encode(request, headers, body)
        request.respond(200, headers, body)
        meter = server.meter
        if meter is not None:
            meter.bytes_out += len(body)
            meter.packets_out += count

    # -- requests ---------------------------------------------------------------------------------

    def handle_get(self, request: Request) -> None:
        """Answer with what is queued, or hold the request until something is."""
        if self.held is not None:
            # Spec: one GET at a time; a second one is an error that ends the session (Node:
            # "overlap from client", a transport error; the held GET gets the close packet).
            self.server.respond_error(request, 400, BAD_REQUEST)
            self.session.abort("transport error")
            return
        if self.queue:
            packets = self.queue
            self.queue = []
            self.respond(request, packets, self._take_compress(packets))
            return
        if self._on_closed is not None:
            # closed from the server side: the client collects the close packet, and that ends it
            self.respond(request, [CLOSE_PACKET])
            self._finish_close()
            return
        if self.paused:
            self.respond(request, [NOOP_PACKET])
            return
        self.held = request
        request.on_close = self._get_aborted

    def _get_aborted(self) -> None:
        # The client went away with a GET held (tab closed): that ends the session, with the
        # reason Node's engine.io gives ("poll connection closed prematurely" is an error).
        self.held = None
        self.session.abort("transport error")

    def handle_post(self, request: Request) -> None:
        """Packets from the client; answered with ``ok``, or an error that ends the session."""
        server = self.server
        session = self.session
        if len(request.body) > server.max_http_buffer_size:
            logger.warning(
                "session %s: polling POST of %d bytes is over max_http_buffer_size (%d);"
                " closing the session",
                session.sid,
                len(request.body),
                server.max_http_buffer_size,
            )
            server.respond_error(request, 413, BAD_REQUEST, "Payload too large")
            session.abort("transport error")
            return
        if self._delivering is not None:
            # a POST while the last one is still delivered, which a client does not do (it
            # waits for "ok"); Node: "data request overlap", a transport error
            logger.info("session %s: POST while another is being delivered", session.sid)
            server.respond_error(request, 400, BAD_REQUEST)
            session.abort("transport error")
            return
        try:
            packets = self.decode(request)
        except ProtocolError as exc:
            logger.info("session %s: bad polling payload: %s", session.sid, exc)
            server.respond_error(request, 400, BAD_REQUEST)
            session.abort("parse error")
            return
        meter = server.meter
        if meter is not None:
            meter.bytes_in += len(request.body)
            meter.packets_in += len(packets)
        if len(packets) <= PACKETS_PER_SLICE:
            self._answer_post(request)
            self._deliver(packets)
            return
        # Sliced. "ok" once the last slice is delivered: the client sends its next POST (or
        # completes an upgrade) only then, so nothing it sends overtakes the rest of this one.
        self._deliver_slices(request, packets, 0)

    def _answer_post(self, request: Request) -> None:
        server = self.server
        if server.cors_allowed_origins is None and not server._extra_headers:
            headers = _OK_HEADERS  # as in respond_body
        else:
            headers = server.response_headers(request, TEXT_HTML, self.session.sid)
        request.respond(200, headers, b"ok")

    def _deliver(self, packets: list) -> None:
        session = self.session
        for packet_type, data in packets:
            if session.closed:
                if packet_type == CLOSE:
                    self._finish_close()  # closed from our side, and the client knows it now
                continue
            if packet_type == MESSAGE:
                session.deliver(data)
            elif packet_type == CLOSE:
                self._client_closed()
            else:
                session.receive_control(packet_type, data)

    def _deliver_slices(self, request: Request, packets: list, start: int) -> None:
        self._delivering = None
        end = start + PACKETS_PER_SLICE
        self._deliver(packets[start:end])
        if end < len(packets):
            if not self.session.closed:
                self._delivering = self.loop.call_soon(self._deliver_slices, request, packets, end)
                return
            self._deliver(packets[end:])  # closed: only the client's close packet is looked for
        self._answer_post(request)  # a no-op if the client has gone

    def decode(self, request: Request) -> list:
        """The packets of a POST body, as (packet type, data); ProtocolError if malformed."""
        return _impl.engineio.decode_payload(request.body)

    def _client_closed(self) -> None:
        # As Node: the client closes the transport, so its held GET is released with a noop (it
        # waits for no close packet), and the session ends at once.
        request = self.held
        if request is not None:
            self.held = None
            self.respond(request, [NOOP_PACKET])
        self.session.abort("transport close")

    # -- upgrade ----------------------------------------------------------------------------------

    def pause(self) -> None:
        """The client is moving to a WebSocket: release the held GET (what is queued, or a
        noop) and hold no more GETs."""
        self.paused = True
        request = self.held
        if request is None:
            return
        if self.queue:
            self._flush()
        else:
            self.held = None
            self.respond(request, [NOOP_PACKET])

    def resume(self) -> None:
        """The upgrade failed: polling goes on."""
        self.paused = False

    def stop(self) -> list:
        """The upgrade is complete: a held GET gets a noop, and what was queued is handed over
        (to be sent on the new transport, in order)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        request = self.held
        if request is not None:
            self.held = None
            self.respond(request, [NOOP_PACKET])
        packets = self.queue
        self.queue = []
        self._plain = 0
        return packets

    # -- closing ----------------------------------------------------------------------------------

    def close(self, on_closed: Any) -> None:
        """Closed from the server side. What is queued (e.g. Socket.IO DISCONNECT packets) leaves
        first and the close packet in a later answer, as Node does: socket.io-client handles
        decoded packets on the next tick, so a close packet in the same payload would overtake
        a DISCONNECT and the client would report "transport close" and reconnect.
        ``on_closed()`` is called once the close packet is answered to a GET, or after
        ``ping_timeout`` if the client never comes for it."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        request = self.held
        if request is not None:
            if not self.queue:
                self.held = None
                self.respond(request, [CLOSE_PACKET])
                on_closed()
                return
            self._flush()
        self._on_closed = on_closed
        self._linger_handle = self.loop.call_later(self.server.ping_timeout, self._finish_close)

    def _finish_close(self) -> None:
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None
        on_closed = self._on_closed
        self._on_closed = None
        if on_closed is not None:
            on_closed()

    def abort(self) -> None:
        """The session ended otherwise (the client, a parse error, a ping timeout, a transport
        error): nothing more is sent; a held GET gets the close packet (as Node)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.queue = []
        request = self.held
        if request is not None:
            self.held = None
            self.respond(request, [CLOSE_PACKET])


class WebSocketTransport:
    """The session's WebSocket: the listener of its connection (``conn``).

    Message packets are handed to ``session.on_message`` here, inline: no call between the
    connection and the layer above.
    """

    name = "websocket"

    __slots__ = ("conn", "session")

    def __init__(self, session: EngineSession, request: Request, conn: Any = None) -> None:
        """Accept ``request`` as a WebSocket, or take over ``conn`` (an upgrade's probe)."""
        self.session = session
        if conn is None:
            conn = session.server.accept_websocket(request, self)
        else:
            conn.listener = self
        self.conn = conn

    # -- the connection's listener ----------------------------------------------------------------

    def on_text(self, text: str) -> None:
        session = self.session
        if text[:1] == MESSAGE_PREFIX and not session.closed:
            # session.deliver, inlined for the hot case: a message packet
            try:
                session.on_message(text[1:])
            except Exception:
                logger.exception("session %s: error in message handler", session.sid)
        elif not session.closed:
            self.receive(text)

    def receive(self, text: str) -> None:
        """A text packet other than a message."""
        session = self.session
        packet_type = TEXT_PACKET_TYPES.get(text[:1])
        if packet_type is None:
            logger.info("session %s: unexpected packet %r on websocket", session.sid, text[:20])
            session.abort("parse error")
        elif packet_type == CLOSE:
            # Node's engine.io ignores a close packet on a WebSocket (the session ends when the
            # connection does); the protocol's test suite expects the session to end: it does.
            session.abort("transport close")
        else:
            session.receive_control(packet_type, text[1:])

    def on_binary(self, data: bytes) -> None:
        session = self.session
        if not session.closed:
            session.deliver(data)

    def on_close(self, code: int, reason: str) -> None:
        if code == 1009:
            log_oversize(self.session)
        self.session.abort("transport close")

    # -- the session's side -----------------------------------------------------------------------

    def send(self, packet: str | bytes) -> None:
        if type(packet) is str:
            self.conn.send_text(packet)
        else:
            self.conn.send_binary(packet)

    def close(self, on_closed: Any) -> None:
        self.conn.close(1000)
        on_closed()

    def abort(self) -> None:
        self.conn.close(1000)


class UpgradeProbe:
    """The listener of a WebSocket opened with the sid of a polling session, until the upgrade
    completes (then the session hands the connection to a ``WebSocketTransport``).

    Spec (engine.io-protocol v4, "Upgrade"): the client sends ``2probe``, the server answers
    ``3probe`` and releases the held GET with a noop, the client sends ``5``; only then does the
    WebSocket carry data. Until then everything still flows over polling, so nothing is lost or
    reordered. It reports to the session: ``upgrade_probed(probe)``, ``upgrade(probe)``,
    ``upgrade_failed(probe)``.
    """

    #: the transport being probed (Node's "upgrading" event gets it)
    name = "websocket"

    __slots__ = ("conn", "probed", "request", "session", "timer")

    def __init__(self, session: EngineSession, request: Request) -> None:
        self.session = session
        self.request = request
        self.probed = False
        self.conn = session.server.accept_websocket(request, self)
        self.timer = session.loop.call_later(UPGRADE_TIMEOUT, self.fail, 1002, "upgrade timeout")

    def on_text(self, text: str) -> None:
        session = self.session
        if session.closed:
            self.conn.close(1000)
        elif text == PING_PROBE and not self.probed:
            self.probed = True
            self.conn.send_text(PONG_PROBE)
            session.upgrade_probed(self)
        elif text == UPGRADE_PACKET and self.probed:
            self.timer.cancel()
            session.upgrade(self)
        elif text == NOOP_PACKET:
            pass
        else:
            self.fail(1002, "unexpected packet during upgrade")

    def on_binary(self, data: bytes) -> None:
        self.fail(1003, "unexpected binary packet during upgrade")

    def on_close(self, code: int, reason: str) -> None:
        if code == 1009:
            log_oversize(self.session)
        self.timer.cancel()
        self.session.upgrade_failed(self)

    def fail(self, code: int, reason: str) -> None:
        self.conn.close(code, reason)
        self.timer.cancel()
        self.session.upgrade_failed(self)

    def cancel(self) -> None:
        """The session ended during the upgrade."""
        self.timer.cancel()
        self.conn.close(1000)
