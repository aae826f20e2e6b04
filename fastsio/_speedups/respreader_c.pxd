# Augmenting declarations: fastsio/redis/_reader.py compiled as fastsio._speedups.respreader_c
# (the source is the symlink src/respreader_c.py). Only C types are added here; the code is the
# pure module's. The read buffer is walked through a `const char *` (p[i] is a C char, p[a:b]
# makes the bytes object), the scanners are C methods that write what they found into C
# attributes, and the filter is a C call: a message nobody wants costs no Python object at all
# (bar the room's str, when its channel is a room channel).
import cython

cdef int _STAR, _DOLLAR, _PLUS, _MINUS, _COLON, _CR, _LF, _ZERO, _ONE, _NINE
cdef Py_ssize_t _MAX_DIGITS, _MAX_INTEGER_DIGITS, _MAX_DEPTH, _MAX_LINE
cdef bytes _MESSAGE, _PMESSAGE, _SMESSAGE, _NO_NAME
cdef int _KIND_MESSAGE, _KIND_PMESSAGE, _KIND_SMESSAGE
cdef Py_ssize_t _INCOMPLETE, _DECLINED


@cython.locals(q="const char *", k=Py_ssize_t)
cdef bint _same(const char *p, Py_ssize_t start, Py_ssize_t length, bytes known) noexcept


cdef class BroadcastFilter:
    cdef public Py_ssize_t prefix_length
    cdef public dict rooms
    cdef public bytes own_prefix
    cdef bytes _room_name
    cdef str _room

    @cython.locals(start=Py_ssize_t, length=Py_ssize_t, room=str, rooms=dict, own=bytes,
                   first=char)
    cdef bint wants(self, const char *buf, Py_ssize_t channel_start, Py_ssize_t channel_end,
                    Py_ssize_t payload_start, Py_ssize_t payload_end)


cdef class SubscribeReader:
    cdef object _hiredis
    cdef bytes _buf
    cdef Py_ssize_t _pos
    cdef list _chunks
    cdef Py_ssize_t _chunks_len
    cdef Py_ssize_t _need
    cdef bint _passthrough
    cdef public dict pattern_filters, channel_filters, shard_filters
    cdef public Py_ssize_t dropped
    cdef bytes _last_pattern, _last_channel
    cdef long long _value
    cdef Py_ssize_t _start, _want
    cdef int _kind
    cdef Py_ssize_t _name_start, _name_len, _channel_start, _channel_len
    cdef Py_ssize_t _payload_start, _payload_len

    @cython.locals(buf=bytes, p="const char *", end=Py_ssize_t, pos=Py_ssize_t,
                   stop=Py_ssize_t, kind=int, channel_start=Py_ssize_t, channel_end=Py_ssize_t,
                   payload_start=Py_ssize_t, payload_end=Py_ssize_t, pattern=bytes,
                   channel=bytes, wanted=BroadcastFilter, pending=Py_ssize_t)
    cpdef gets(self)

    cdef _give_up(self)

    @cython.locals(value="long long", digits=int, c=char)
    cdef Py_ssize_t _number(self, const char *p, Py_ssize_t i, Py_ssize_t end) noexcept

    @cython.locals(k=Py_ssize_t)
    cdef Py_ssize_t _nil(self, const char *p, Py_ssize_t i, Py_ssize_t end) noexcept

    @cython.locals(stop=Py_ssize_t)
    cdef Py_ssize_t _bulk(self, const char *p, Py_ssize_t i, Py_ssize_t end) noexcept

    @cython.locals(limit=Py_ssize_t, c=char)
    cdef Py_ssize_t _line(self, const char *p, Py_ssize_t i, Py_ssize_t end) noexcept

    @cython.locals(start=Py_ssize_t, c=char)
    cdef Py_ssize_t _integer(self, const char *p, Py_ssize_t i, Py_ssize_t end) noexcept

    @cython.locals(count="long long", length="long long", start=Py_ssize_t, kind=int)
    cdef Py_ssize_t _message(self, const char *p, Py_ssize_t pos, Py_ssize_t end) noexcept

    @cython.locals(c=char, count="long long")
    cdef Py_ssize_t _skip(self, const char *p, Py_ssize_t i, Py_ssize_t end, int depth) noexcept
