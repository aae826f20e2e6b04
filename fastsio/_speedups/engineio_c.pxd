# Augmenting declarations: fastsio/protocol/engineio.py compiled as fastsio._speedups.engineio_c
# (the source is the symlink src/engineio_c.py). Only C types are added here; the code is the pure
# module's, so the two cannot drift apart. Arguments keep their Python types where a C type would
# change what a wrong argument raises (e.g. encode_packet(7.5) is a ProtocolError in both).
import cython

cdef tuple _TYPE_STR
cdef Py_ssize_t _MAX_TYPE


cpdef encode_packet(packet_type, data=*)

cdef bytes _b64decode(str text)

@cython.locals(t=Py_ssize_t)
cpdef tuple decode_packet(raw)

@cython.locals(n=Py_ssize_t, parts=list)
cpdef encode_payload(packets)

@cython.locals(out=list, part=str, t=Py_ssize_t)
cpdef list decode_payload(body, max_packets=*)
