# What the compiled Socket.IO codec (socketio_c) cimports from json_c: its JSON as C calls, and
# its Packet's fields.

cdef class FastJson:
    cpdef object flat_array_at(self, object text, Py_ssize_t start)
    cpdef object dumps_prefixed(self, str prefix, object data)


# the fields of socketio_c's Packet (its subclass), for the free list (json_c.pyx says why)
cdef class PacketFields:
    cdef public object type, nsp, data, id, attachments
