# The C-level interface of websocket_c.pyx's FrameReader, for modules that cimport it:
# wsconn_c (fastsio/http/websocket.py compiled) calls ``feed`` without a Python call.

cdef class FrameReader:
    cdef object _max_size        # max_message_size as given
    cdef long long _max_size_c   # ... as a C integer, when it is an int (clamped: same comparisons)
    cdef bint _max_size_is_c
    cdef public object require_mask
    cdef bytearray _buf
    cdef int _frag_opcode
    cdef list _frag_parts
    cdef long long _frag_size
    cdef long long _frag_count          # frames of the fragmented message so far
    cdef object _max_fragments          # max_fragments as given (an int, at least 1)
    cdef long long _max_fragments_c     # ... as a C integer (clamped: same comparisons)
    cdef object _frag_decoder
    cdef bint _frag_compressed          # the fragmented message in progress had RSV1 set
    cdef public object extension        # the extension hook (permessage-deflate) or None

    cdef bint _too_big(self, long long length, bint continuation) except -1
    cpdef list feed(self, data)
    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1
    cdef bint _check_rsv(self, int b0, int opcode) except -1
    cdef _start_fragmented(self, int opcode, bytes payload, long long length, bint compressed)
    cdef _decode_fragment(self, bytes payload, bint final)
    cdef _end_fragmented(self)
