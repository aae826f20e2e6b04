"""The WebSocket side of a connection, after the 101: frames in, listener callbacks out.

The HTTP protocol hands the transport over with ``transport.set_protocol(conn)``; from then on
this object gets ``data_received``. Framing is done by the sans-I/O codec in
``fastsio.protocol.websocket`` (or its compiled twin, picked by ``fastsio._impl``).

This file is also compiled by Cython, unchanged, as ``fastsio._speedups.wsconn_c`` with the
augmenting ``fastsio/_speedups/wsconn_c.pxd`` (both classes become ``cdef class``es with typed
attributes; the compiled connection calls the compiled FrameReader's ``feed`` directly).
``fastsio._impl`` picks one of the two; import the classes from there (``fastsio.http`` does).
Hence: plain Python that Cython compiles as is, no base class (a cdef class cannot inherit from
``asyncio.Protocol``; the transport only needs the methods), and no class attributes meant to be
changed (an extension type's cannot be): ``close_timeout`` is per connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

# absolute, not relative: this file is also compiled as fastsio._speedups.wsconn_c
from fastsio import _impl
from fastsio.protocol.errors import ProtocolError
from fastsio.protocol.websocket import MAX_FRAGMENTS

if TYPE_CHECKING:  # pragma: no cover
    from fastsio.http.server import HttpServer

logger = logging.getLogger("fastsio.http")

OPEN, CLOSING, CLOSED = 0, 1, 2

# RFC 6455 opcodes (the codec uses the same numbers; local names save a module lookup per frame).
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10

# The frame builders of the codec _impl picked when this module was imported (it picks once, at
# its own import). Bound here because looking them up through _impl on every frame sent cost
# ~700 instructions per echo message, more than building a small frame.
_build_frame = _impl.websocket.build_frame
_build_text_frame = _impl.websocket.build_text_frame
_build_close_frame = _impl.websocket.build_close_frame
_parse_close_payload = _impl.websocket.parse_close_payload

# RFC 6455 5.5: a control frame payload is at most 125 bytes, 2 of them the close code.
_MAX_CLOSE_REASON = 123

# The peer's usual close frames (1000 normal, 1001 going away; no reason): their payload ->
# (code, our answer), what parse_close_payload and build_close_frame give, without the calls.
_USUAL_CLOSES = {
    b"\x03\xe8": (1000, b"\x88\x02\x03\xe8"),
    b"\x03\xe9": (1001, b"\x88\x02\x03\xe9"),
}

#: Default for ``WebSocketConnection.close_timeout``: seconds to wait for the peer's close frame
#: (or for our last bytes to leave) before the TCP connection is aborted.
CLOSE_TIMEOUT = 1.0


def _truncate_reason(reason: str) -> str:
    raw = reason.encode("utf-8")
    if len(raw) <= _MAX_CLOSE_REASON:
        return reason
    return raw[:_MAX_CLOSE_REASON].decode("utf-8", "ignore")


class WireMeter:
    """Bytes and messages that went through the WebSocket connections given it (their ``meter``),
    summed: what the Admin UI's dashboard charts (``sio.instrument()``). Counted once per read
    (``data_received``: its bytes, the messages in them) and once per write (``_flush``: the
    bytes given to the transport, the frames in them), on the wire: frame headers included,
    compressed as sent. A connection without a meter (the default) counts nothing."""

    __slots__ = ("bytes_in", "bytes_out", "packets_in", "packets_out")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.packets_in = 0
        self.packets_out = 0


class TickWriter:
    """Gathers the frames written to many connections during one loop tick and sends each
    connection's share with one ``transport.write`` when the tick's callbacks are done.

    Why: a broadcast handler that runs W times in one tick (W broadcast requests in one read)
    would otherwise make W system calls per target; with this it makes one. One writer per
    HttpServer (so per event loop); a connection with no server writes at once.
    """

    __slots__ = ("_loop", "_pending", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: list[WebSocketConnection] = []
        self._scheduled = False

    def add(self, conn: WebSocketConnection) -> None:
        self._pending.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending = self._pending
        self._pending = []
        for conn in pending:
            conn._flush()


class WebSocketConnection:
    """One accepted WebSocket (an asyncio protocol). Sends are synchronous and no-ops once the
    connection is closing; ``listener.on_close(code, reason)`` is called exactly once, when the TCP
    connection is gone, whichever side ended it (1006 if no close frame was seen).

    Frames are corked: those written while this connection handles its own incoming data leave
    in one ``send()`` at the end of ``data_received``; those written from elsewhere (another
    connection's handler, a timer) leave at the end of the loop tick through the server's
    :class:`TickWriter`. Echo with 10 messages in flight per client answers a whole read with one
    system call instead of ten.

    ``close_timeout`` (default :data:`CLOSE_TIMEOUT`) is how many seconds the closing handshake
    may take before the TCP connection is aborted; set it on the connection.

    A message larger than ``max_message_size`` bytes closes the connection with 1009, one of more
    than ``max_fragments`` frames (default ws's 16384, see
    :data:`fastsio.protocol.websocket.MAX_FRAGMENTS`) with 1008.

    permessage-deflate (``use_deflate(agreement)``, right after the handshake): the frame reader
    inflates compressed messages (a message inflating past ``max_message_size`` is 1009), and
    ``send_text`` / ``send_binary`` compress messages from the agreement's threshold on with the
    shared ``deflater`` (None when not agreed), unless called with ``compress=False``.
    """

    __slots__ = (
        "_close_code",
        "_close_reason",
        "_notified",
        "_out",
        "_pending",
        "_reader",
        "_receiving",
        "_server",
        "_state",
        "_tick_writer",
        "_timer",
        "client",
        "close_timeout",
        "deflater",
        "inflater",
        "listener",
        "loop",
        "meter",
        "transport",
        "writing_paused",
    )

    def __init__(
        self,
        transport: asyncio.Transport | None,
        listener: Any,
        max_message_size: int = 1_000_000,
        *,
        client: tuple[str, int] = ("", 0),
        server: HttpServer | None = None,
        max_fragments: int = MAX_FRAGMENTS,
    ) -> None:
        self.transport = transport
        self.client = client
        # the server's loop, when there is one: get_running_loop() costs a getpid() call
        loop = server._loop if server is not None else None
        self.loop = loop if loop is not None else asyncio.get_running_loop()
        self.writing_paused = False
        self.close_timeout = CLOSE_TIMEOUT
        #: the compressor of permessage-deflate (shared by the connections that agreed on the
        #: same parameters), or None when it was not agreed
        self.deflater: Any = None
        #: the connection's permessage-deflate inflater (its FrameReader's extension), or None
        self.inflater: Any = None
        #: a WireMeter counting this connection's traffic, or None (not counted)
        self.meter: WireMeter | None = None
        self._server = server
        self._tick_writer: TickWriter | None = server.tick_writer if server is not None else None
        self._out: list[bytes] | None = None  # corked frames, not yet given to the transport
        self._receiving = False
        self._reader = _impl.websocket.FrameReader(max_message_size, True, max_fragments)
        self._state = OPEN if transport is not None else CLOSED
        self._close_code: int | None = None
        self._close_reason = ""
        self._notified = False
        self._timer: asyncio.TimerHandle | None = None
        # Bytes that arrived right after the handshake, fed on the next loop turn so the
        # listener never hears from us before accept_websocket() has returned.
        self._pending: bytes | None = None
        # The object told about messages and the close; may be replaced at any time (the engine
        # swaps the upgrade probe's listener for the session's).
        self.listener = listener
        if transport is None:
            # the client left before the handshake was accepted: on_close(1006) soon
            self._close_code = 1006
            self.loop.call_soon(self._notify_closed)

    @classmethod
    def closed_connection(cls, listener: Any, client: tuple[str, int]) -> WebSocketConnection:
        """A connection whose client left before the handshake was accepted."""
        return cls(None, listener, client=client)

    # -- sending -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once a close frame was sent or received, or the connection is gone."""
        return self._state != OPEN

    def use_deflate(self, agreement: Any) -> None:
        """Compress with permessage-deflate as agreed in the handshake (an
        ``fastsio.protocol.deflate.Agreement``): call it before the first frame is read."""
        self.deflater = agreement.deflater
        self.inflater = agreement.inflater()
        self._reader.extension = self.inflater

    def send_text(self, text: str, compress: bool = True) -> None:
        if self._state == OPEN:
            deflater = self.deflater
            if deflater is not None and compress:
                frame = deflater.text_frame(text)
                if frame is not None:
                    self._write(frame)
                    return
            self._write(_build_text_frame(text))

    def send_binary(self, data: bytes, compress: bool = True) -> None:
        if self._state == OPEN:
            deflater = self.deflater
            if deflater is not None and compress:
                frame = deflater.binary_frame(data)
                if frame is not None:
                    self._write(frame)
                    return
            self._write(_build_frame(OP_BINARY, data))

    def send_frame(self, frame: bytes) -> None:
        """Write a prebuilt frame (the same bytes for every target of a broadcast)."""
        if self._state == OPEN:
            self._write(frame)

    def send_ping(self, payload: bytes = b"") -> None:
        if self._state == OPEN:
            self._write(_build_frame(OP_PING, payload))

    def _write(self, frame: bytes) -> None:
        out = self._out
        if out is not None:
            out.append(frame)
            return
        self._out = [frame]
        if not self._receiving:
            tick_writer = self._tick_writer
            if tick_writer is None:
                self._flush()
            else:
                tick_writer.add(self)

    def _flush(self) -> None:
        out = self._out
        if out is None:
            return
        self._out = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        transport.write(data)
        if self.meter is not None:
            self.meter.bytes_out += len(data)
            self.meter.packets_out += len(out)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake: send a close frame, then drop the TCP connection when
        the peer answers or after ``close_timeout`` seconds. A no-op if already closing."""
        if self._state != OPEN:
            return
        reason = _truncate_reason(reason)
        frame = _build_close_frame(code, reason)  # ValueError for a bad code
        self._record_close(code, reason)
        self._state = CLOSING
        self._write(frame)
        self._flush()
        self._timer = self.loop.call_later(self.close_timeout, self._abort)

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake."""
        self._state = CLOSED
        if self.transport is not None:
            self.transport.abort()

    def write_buffer_size(self) -> int:
        """Bytes written but not yet sent: corked frames plus the transport's buffer."""
        transport = self.transport
        if transport is None:
            return 0
        corked = sum(map(len, self._out)) if self._out is not None else 0
        return corked + transport.get_write_buffer_size()

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # set_protocol() does not call it; the transport is given to __init__
        pass

    def data_received(self, data: bytes) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            data = pending + data
        if self._state == CLOSED:
            return
        try:
            messages = self._reader.feed(data)
        except ProtocolError as exc:
            self._fail(getattr(exc, "close_code", 1002), str(exc))
            return
        if self.meter is not None:
            self.meter.bytes_in += len(data)
            self.meter.packets_in += len(messages)
        if messages:
            self._receiving = True
            try:
                self._handle(messages)
            finally:
                self._receiving = False
                self._flush()

    def eof_received(self) -> bool | None:
        # The peer half-closed without a close frame: nothing more will come, close our side.
        return None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._state = CLOSED
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        server = self._server
        if server is not None:
            server._connections.discard(self)
        self._notify_closed()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        on_drain = getattr(self.listener, "on_drain", None)
        if on_drain is not None and self._state == OPEN:
            try:
                on_drain()
            except Exception:
                logger.exception("WebSocket listener on_drain failed")

    # -- internals -----------------------------------------------------------------------------

    def _feed_pending(self) -> None:
        if self._pending is not None:
            self.data_received(b"")

    def _handle(self, messages: list) -> None:
        try:
            for opcode, payload in messages:
                if opcode == OP_TEXT:
                    if self._state == OPEN:
                        self.listener.on_text(payload)
                elif opcode == OP_BINARY:
                    if self._state == OPEN:
                        self.listener.on_binary(payload)
                elif opcode == OP_PING:
                    if self._state == OPEN:
                        self._write(_build_frame(OP_PONG, payload))
                elif opcode == OP_CLOSE:
                    self._peer_closed(payload)
                    return
                if self._state == CLOSED:
                    return
        except Exception:
            logger.exception("WebSocket listener failed")
            self._fail(1011, "internal error")

    def _peer_closed(self, payload: bytes) -> None:
        usual = _USUAL_CLOSES.get(payload) if type(payload) is bytes else None
        if usual is not None:
            code, answer = usual
            reason = ""
        else:
            try:
                code, reason = _parse_close_payload(payload)
            except ProtocolError as exc:
                self._fail(getattr(exc, "close_code", 1002), str(exc))
                return
            answer = None
        if self._state == OPEN:
            # RFC 6455 5.5.1: answer with a close frame, echoing the status code. 1005 means
            # "no code was sent"; it must not appear on the wire, so the echo is empty then.
            self._record_close(code, reason)
            if answer is None:
                answer = (
                    _build_frame(OP_CLOSE, b"") if code == 1005 else _build_close_frame(code, "")
                )
            self._write(answer)
        self._flush()
        self._state = CLOSED
        self._close_transport()

    def _fail(self, code: int, reason: str) -> None:
        if self._state == CLOSED:
            return
        self._record_close(code, reason)
        if self._state == OPEN:
            self._write(_build_close_frame(code, ""))
        self._flush()
        self._state = CLOSED
        self._close_transport()

    def _close_transport(self) -> None:
        # close() lets the last frames leave first; the timer aborts a peer that never reads.
        # With nothing left in the buffer the transport is gone at once: no timer (one timer
        # made and cancelled per connection was measurable on the connection rate).
        transport = self.transport
        transport.close()
        if self._timer is None and transport.get_write_buffer_size():
            self._timer = self.loop.call_later(self.close_timeout, self._abort)

    def _abort(self) -> None:
        self._timer = None
        self.abort()

    def _record_close(self, code: int, reason: str) -> None:
        if self._close_code is None:
            self._close_code = code
            self._close_reason = reason

    def _notify_closed(self) -> None:
        if self._notified:
            return
        self._notified = True
        code = self._close_code if self._close_code is not None else 1006
        try:
            self.listener.on_close(code, self._close_reason)
        except Exception:
            logger.exception("WebSocket listener on_close failed")

    def __repr__(self) -> str:
        state = ("open", "closing", "closed")[self._state]
        return f"<WebSocketConnection {self.client[0]}:{self.client[1]} {state}>"
