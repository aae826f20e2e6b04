# Augmenting declarations: fastsio/client.py compiled as fastsio._speedups.client_c (the source is
# the symlink src/client_c.py). Only C types are added here; the code is the pure module's. What
# this buys, per message: Client._on_message (the packet dispatch) runs as C on typed attributes,
# and socket_c's Socket.emit reads the client's closed / encode / session as C fields.
#
# Every attribute stays visible from Python (public): the namespace, the recovery code and the
# tests read and write them as they do on the pure class.
import cython

from fastsio._speedups.socket_c cimport Socket

cdef int _CONNECT, _DISCONNECT, _EVENT, _ACK, _CONNECT_ERROR, _BINARY_EVENT, _BINARY_ACK


cdef class Client:
    cdef object __weakref__
    cdef public object server, session, protocol, encode, decoder, _connect_timer
    cdef public dict sockets, _connecting
    cdef public bint closed

    # the socket a packet goes to, typed: its _on_event / _on_ack are C calls
    @cython.locals(socket=Socket)
    cpdef _on_message(self, data)
