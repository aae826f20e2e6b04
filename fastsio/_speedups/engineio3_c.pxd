# Augmenting declarations: fastsio/protocol/engineio3.py compiled as fastsio._speedups.engineio3_c
# (the source is the symlink src/engineio3_c.py). Only C types are added here, for the payload
# loops; the public functions keep their Python signatures, and max_packets stays untyped (None or
# 2**70 behave as in the pure module). Lengths are long long: ten digits overflow 32 bits.
import cython

cdef Py_ssize_t _MAX_TYPE, _MAX_LENGTH_DIGITS

@cython.locals(t=Py_ssize_t)
cdef tuple _decode_text_packet(text)

cdef _check_count(list out, max_packets)

@cython.locals(out=list, n=Py_ssize_t, i=Py_ssize_t, colon=Py_ssize_t, start=Py_ssize_t,
               end=cython.longlong, length=cython.longlong)
cdef list _decode_ascii_payload(str text, max_packets)

@cython.locals(units=bytes, n=Py_ssize_t, out=list, i=Py_ssize_t, end=cython.longlong,
               length=cython.longlong, digits=Py_ssize_t, low=Py_ssize_t, high=Py_ssize_t)
cdef list _decode_utf16_payload(str text, max_packets)

@cython.locals(out=list, n=Py_ssize_t, i=Py_ssize_t, kind=Py_ssize_t, end=cython.longlong,
               length=cython.longlong, digits=Py_ssize_t, b=Py_ssize_t, chunk=bytes)
cdef list _decode_binary_payload(bytes body, max_packets)
