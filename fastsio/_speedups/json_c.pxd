# What the compiled Socket.IO codec (socketio_c) cimports from json_c: its JSON as C calls.

cdef class FastJson:
    cpdef object loads_at(self, object text, Py_ssize_t start)
    cpdef object dumps_prefixed(self, str prefix, object data)
