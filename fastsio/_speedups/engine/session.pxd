# Augmenting declarations: fastsio/engine/session.py compiled as fastsio._speedups.engine.session
# (the source is the symlink src/engine/session.py). Only C types are added here; the code is the
# pure module's. What this buys, per message: EngineSession.send runs as C on C fields (one Python
# frame less for every message sent), and the compiled WebSocketTransport (transports.pxd) reads
# the session's closed / on_message as C fields.
#
# Every attribute stays visible from Python (public): EngineSession3 and the packet-logging
# sessions (Python subclasses), the Socket.IO layer, the admin code and the tests read and set them
# as on the pure class. Methods stay ``def``: their callers are Python-level, and subclasses
# override them.

cdef class EngineSession:
    cdef object __weakref__
    cdef public object _listeners, _ping_handle, _polling, _pong_handle, _probe
    # the WebSocket connection: wsconn_c's, or the ASGI one (fastsio.asgi), so not typed
    cdef public object _ws
    cdef public object deflater, loop, max_buffered_bytes, on_close, on_message, request, server
    cdef public object sid, transport, transport_name
    cdef public bint closed, upgraded
