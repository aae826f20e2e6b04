# Augmenting declarations: fastsio/engine/transports.py compiled as
# fastsio._speedups.engine.transports (the source is the symlink src/engine/transports.py). Only C
# types are added here; the code is the pure module's. What this buys, per message: the
# WebSocket's listener (WebSocketTransport.on_text) runs as C, reading its session's closed and
# on_message as C fields (session.pxd's EngineSession, cimported), instead of a Python frame
# between the connection and the Socket.IO layer.
#
# The other classes (PollingTransport, UpgradeProbe) are compiled as ordinary Python classes.
# WebSocketTransport3 (session3.py) is a Python subclass: its overrides are found as usual.
import cython

# (under another name: the source imports EngineSession for its type hints)
from fastsio._speedups.engine.session cimport EngineSession as Session


cdef class WebSocketTransport:
    cdef public Session session
    cdef public object conn

    # ``str``: a connection hands its listener decoded text, an exact str (a str subclass or
    # anything else is a TypeError here). Typed, the two slices of the text are direct substring
    # calls (~600 instructions per message less than slicing an untyped object).
    cpdef on_text(self, str text)
