# Augmenting declarations: fastsio/socket.py compiled as fastsio._speedups.socket_c (the source is
# the symlink src/socket_c.py). Only C types are added here; the code is the pure module's. What
# this buys, per message: Socket._on_event (the event dispatch) and Socket.emit run as C on typed
# attributes, and emit reads its client's fields as C fields (client_c's Client, cimported).
#
# Every attribute stays visible from Python (public): the namespace, the adapter, the recovery
# code (RecoverableSocket, a Python subclass) and the tests read and write them as on the pure
# class. Methods stay ``def`` (subclasses override them, users call them).
import cython

from fastsio._speedups.client_c cimport Client

cdef int CONNECTING, CONNECTED, DISCONNECTING, DISCONNECTED
cdef Py_ssize_t _MIN_RESERVED_LEN


cdef class Socket:
    cdef object __weakref__
    cdef public object id, nsp, server, adapter, handshake, connected
    cdef object _data    # behind the data property
    cdef public Client client
    cdef public int _state
    cdef public dict _acks, _listeners, _handlers
    cdef public list _any_listeners, _any_outgoing, _packet_middlewares
    cdef public bint _hooked

    # called by client_c's Client for every event / ack (a C call; an override in a Python
    # subclass is still found)
    cpdef _on_event(self, packet, bint hooks=*)
    cpdef _on_ack(self, packet)


# the broadcast targets' sessions (InMemoryAdapter): a socket that is not a Socket is a TypeError
@cython.locals(socket=Socket, sessions=list)
cpdef list sessions_of(sockets)
