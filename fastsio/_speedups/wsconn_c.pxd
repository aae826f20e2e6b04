# Augmenting declarations: fastsio/http/websocket.py compiled as fastsio._speedups.wsconn_c (the
# source is the symlink src/wsconn_c.py). Only C types are added here; the code is the pure
# module's. What this buys, per message: data_received -> FrameReader.feed -> _handle, and
# send_* -> _write -> TickWriter.add / _flush, are C calls on typed attributes instead of Python
# calls and attribute lookups.
#
# Visible from Python (the pure class's interface, used by the http and engine layers and the
# tests): the public attributes below, every def in the source, and the cpdef methods (_write is
# called by HttpProtocol.accept_websocket, _notify_closed and _abort are loop callbacks, _flush by
# TickWriter). The cdef methods are internal to the connection.
import cython

from fastsio._speedups.websocket_c cimport FrameReader

cdef int OPEN, CLOSING, CLOSED
cdef int OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG
cdef Py_ssize_t _MAX_CLOSE_REASON
cdef dict _USUAL_CLOSES
cdef object _build_frame, _build_text_frame, _build_close_frame, _parse_close_payload

cdef class WebSocketConnection


cdef class WireMeter:
    cdef public long long bytes_in, bytes_out, packets_in, packets_out


cdef class TickWriter:
    cdef object _loop
    cdef list _pending
    cdef bint _scheduled

    cpdef add(self, WebSocketConnection conn)

    @cython.locals(pending=list, conn=WebSocketConnection)
    cpdef flush(self)


cdef class WebSocketConnection:
    cdef public object transport, client, loop, listener, close_timeout
    # permessage-deflate's shared compressor (read by the broadcast fan-out) and this
    # connection's inflater, or None
    cdef public object deflater, inflater
    cdef public bint writing_paused
    # the Admin UI's traffic counters (None: not counted; one test per read and per write)
    cdef public WireMeter meter
    # bytes that came with the handshake, set by HttpProtocol.accept_websocket
    cdef public object _pending
    cdef object _server
    cdef TickWriter _tick_writer
    cdef list _out
    cdef bint _receiving
    cdef FrameReader _reader    # the compiled one: _impl only picks this class with websocket_c
    cdef int _state
    cdef object _close_code
    cdef object _close_reason
    cdef bint _notified
    cdef object _timer

    @cython.locals(out=list, tick_writer=TickWriter)
    cpdef _write(self, frame)

    @cython.locals(out=list)
    cpdef _flush(self)

    @cython.locals(opcode=int)
    cdef _handle(self, list messages)

    cdef _peer_closed(self, payload)
    cdef _fail(self, code, reason)
    cdef _close_transport(self)
    cpdef _abort(self)
    cdef _record_close(self, code, reason)
    cpdef _notify_closed(self)
