# Augmenting declarations: fastsio/protocol/socketio.py compiled as fastsio._speedups.socketio_c
# (the source is the symlink src/socketio_c.py). Only C types are added here; the code is the pure
# module's, so the two cannot drift apart. Arguments keep their Python types where a C type would
# change what a wrong argument raises (e.g. encode_packet(7.5) is a ProtocolError in both).
import cython

from fastsio._speedups.json_c cimport FastJson, PacketFields

cdef Py_ssize_t _MAX_ACK_DIGITS, _MAX_ATTACHMENT_DIGITS, _MAX_DEPTH, _MIN_RESERVED_LEN
# the packet types as C constants (the public EVENT, ACK ... stay Python ints for other modules)
cdef Py_ssize_t _CONNECT, _DISCONNECT, _EVENT, _ACK, _CONNECT_ERROR, _BINARY_EVENT, _BINARY_ACK
cdef frozenset _RESERVED
cdef tuple _TYPE_STR, _TYPE_NAMES, _TYPE_INTS
cdef object _OPT_NON_STR_KEYS, _dumps, _loads
cdef FastJson _json


# the fields (type, nsp, data, id, attachments: public objects) are json_c's, whose class has the
# free list that Cython would drop here
cdef class Packet(PacketFields):
    pass


cdef class PacketDecoder:
    cdef public object max_attachments
    cdef Packet _pending
    cdef list _buffers

    @cython.locals(packet=Packet, pending=Packet, buffers=list)
    cpdef feed(self, data)


@cython.locals(t=object)
cdef object _deconstruct(object data, list buffers, Py_ssize_t depth=*)

cdef str _header(object packet_type, object nsp, object ack_id, Py_ssize_t attachments)

cpdef object check_ack_id(object packet_type, object ack_id)

@cython.locals(buffers=list, binary=bint, out=list)
cdef list _encode_slow(object packet_type, object nsp, object data, object ack_id)

@cython.locals(payload=bytes, text=object, kind=Py_ssize_t)
cpdef list encode_packet(packet_type, nsp=*, data=*, ack_id=*)

cdef object _invalid(Py_ssize_t packet_type, str what)

@cython.locals(items=list, name=str)
cdef _check_payload(Py_ssize_t packet_type, object data, bint has_data, object ack_id)

@cython.locals(n=Py_ssize_t, packet_type=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t,
               dash=Py_ssize_t, comma=Py_ssize_t, c=Py_UCS4, digits=str, nsp=str,
               packet=Packet)
cpdef Packet decode_packet(str text, max_attachments=*)

cdef object _placeholder_buffer(dict node, list buffers)

@cython.locals(t=object, tv=object, stack=list, idx=Py_ssize_t)
cdef _reconstruct(object data, list buffers)
