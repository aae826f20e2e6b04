# cython: language_level=3
"""RFC 6455 WebSocket framing, server side: the compiled twin of fastsio/protocol/websocket.py.

Why a hand-written .pyx and not the pure module compiled with an augmenting .pxd (as engineio_c and
socketio_c are): the hot work here is byte-level (unmasking with 8-byte words, reading headers out
of a bytearray, decoding UTF-8 straight from the unmasked bytes) and needs C pointers and C helper
code that plain Python cannot express. Compiled as-is, the pure module parses a masked 120-byte
text frame in ~0.8 us (a big-int XOR per frame, a copy per slice); this module does it in ~0.07 us.

It mirrors the pure module statement for statement where it matters (the order of the checks,
so the same input raises the same WebSocketError with the same close code), and hands the rare
argument types the C path does not take (e.g. a list of ints as data, a float opcode) to the pure
functions themselves, so they behave identically there too. The cold helpers (close frames, the
handshake key) are the pure functions, re-exported. tests/test_speedups.py checks compiled ==
pure on random and corrupted input.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

from fastsio.protocol import websocket as _pure
from fastsio.protocol.errors import WebSocketError
from fastsio.protocol.websocket import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS,
    CLOSE_NORMAL,
    CLOSE_POLICY_VIOLATION,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    GUID,
    MAX_FRAGMENTS,
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    accept_key,
    build_close_frame,
    is_valid_close_code,
    parse_close_payload,
)

__all__ = list(_pure.__all__)

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* data, Py_ssize_t size, const char* errors)

cdef enum:
    _CONT = 0
    _TEXT = 1
    _BINARY = 2
    _PONG = 10
    _MAX_CONTROL_PAYLOAD = 125
    _PROTOCOL_ERROR = 1002
    _INVALID_DATA = 1007
    _POLICY_VIOLATION = 1008
    _MESSAGE_TOO_BIG = 1009
    # text payloads up to this size are unmasked into a stack buffer and decoded from there
    _STACK_BUFFER = 4096

cdef long long _LLONG_MAX = 0x7FFFFFFFFFFFFFFF
cdef long long _LLONG_MIN = -_LLONG_MAX - 1

_Utf8Decoder = _pure._Utf8Decoder
_check_max_fragments = _pure._check_max_fragments


# -- masking ----------------------------------------------------------------------------------

cdef inline void _unmask(unsigned char* dst, const unsigned char* src, Py_ssize_t n,
                         const unsigned char* mask) noexcept nogil:
    """dst[i] = src[i] ^ mask[i % 4], 8 bytes at a time (the compiler vectorizes the loop)."""
    cdef unsigned char key8[8]
    cdef uint64_t key, word
    cdef Py_ssize_t i = 0
    memcpy(key8, mask, 4)
    memcpy(key8 + 4, mask, 4)
    memcpy(&key, key8, 8)
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= key
        memcpy(dst + i, &word, 8)
        i += 8
    while i < n:  # i is a multiple of 8 here, so mask[i & 3] stays in phase
        dst[i] = src[i] ^ mask[i & 3]
        i += 1


cdef inline bint _byte_string(object obj):
    return type(obj) is bytes or type(obj) is bytearray


cdef inline const unsigned char* _view(object obj, Py_buffer* view) except NULL:
    """The bytes of a bytes or bytearray object (see _byte_string). A bytearray is exported into
    ``view`` (give it back with _release): while exported it cannot be resized, so the pointer
    stays valid even if Python code (a finalizer, another thread) runs before we are done."""
    if type(obj) is bytes:
        return <const unsigned char*>PyBytes_AS_STRING(obj)
    PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    return <const unsigned char*>view.buf


cdef inline void _release(object obj, Py_buffer* view) noexcept:
    """Undo _view (nothing to do for bytes, or for the str that _frame also takes)."""
    if type(obj) is bytearray:
        PyBuffer_Release(view)


def apply_mask(data, mask):
    """XOR ``data`` with the 4-byte ``mask`` repeated (masking and unmasking are the same)."""
    cdef Py_buffer data_view, mask_view
    cdef const unsigned char* src
    cdef const unsigned char* key
    cdef Py_ssize_t n
    cdef bytes out
    if not (_byte_string(data) and _byte_string(mask)):
        return _pure.apply_mask(data, mask)  # memoryviews, wrong types: as pure does
    src = _view(data, &data_view)
    try:
        key = _view(mask, &mask_view)
        try:
            if len(mask) != 4:
                return _pure.apply_mask(data, mask)
            n = len(data)
            if n == 0:
                return b""
            out = PyBytes_FromStringAndSize(NULL, n)
            _unmask(<unsigned char*>PyBytes_AS_STRING(out), src, n, key)
            return out
        finally:
            _release(mask, &mask_view)
    finally:
        _release(data, &data_view)


# -- building frames (server side, unmasked) ---------------------------------------------------

cdef bytes _frame(int b0, object payload):
    """One allocation: header (7/16/64-bit length) and payload (bytes, bytearray or str)."""
    cdef Py_buffer view
    cdef const unsigned char* data
    cdef Py_ssize_t n, hlen
    cdef bytes frame
    cdef unsigned char* out
    cdef int k
    if type(payload) is str:
        # the UTF-8 form is cached in the (immutable) str: no copy for ASCII text
        data = <const unsigned char*>PyUnicode_AsUTF8AndSize(payload, &n)
    else:
        data = _view(payload, &view)
        n = len(payload)
    try:
        if n < 126:
            hlen = 2
        elif n < 65536:
            hlen = 4
        else:
            hlen = 10
        frame = PyBytes_FromStringAndSize(NULL, hlen + n)
        out = <unsigned char*>PyBytes_AS_STRING(frame)
        out[0] = <unsigned char>b0
        if hlen == 2:
            out[1] = <unsigned char>n
        elif hlen == 4:
            out[1] = 126
            out[2] = <unsigned char>(n >> 8)
            out[3] = <unsigned char>n
        else:
            out[1] = 127
            for k in range(8):
                out[2 + k] = <unsigned char>((<uint64_t>n) >> (56 - 8 * k))
        if n:
            memcpy(out + hlen, data, n)
    finally:
        _release(payload, &view)
    return frame


def build_frame(opcode, payload, fin=True, rsv1=False):
    """An unmasked (server) frame: header + payload, 7/16/64-bit length as needed. ``rsv1``:
    the payload is compressed (permessage-deflate; data frames only)."""
    cdef long op
    cdef bint final
    cdef Py_ssize_t n
    if type(opcode) is not int or not _byte_string(payload):
        return _pure.build_frame(opcode, payload, fin, rsv1)
    if opcode < 0 or opcode > _PONG:
        raise ValueError(f"unknown opcode {opcode!r}")
    op = opcode
    n = len(payload)
    final = fin
    if op >= 8:
        if n > _MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload is {n} bytes, more than 125")
        if not final:
            raise ValueError("control frames cannot be fragmented")
    elif op > _BINARY:
        raise ValueError(f"unknown opcode {opcode!r}")
    if rsv1:
        if op >= 8:
            raise ValueError("control frames cannot be compressed")
        op |= 0x40
    return _frame((0x80 | op) if final else op, payload)


def build_text_frame(text):
    """A final text frame carrying ``text``."""
    if type(text) is not str:
        return _pure.build_text_frame(text)
    return _frame(0x81, text)


def build_binary_frame(data):
    """A final binary frame carrying ``data``."""
    if not _byte_string(data):
        return _pure.build_binary_frame(data)
    return _frame(0x82, data)


# -- reading frames ----------------------------------------------------------------------------

cdef inline object _text(const unsigned char* data, Py_ssize_t n):
    try:
        return PyUnicode_DecodeUTF8(<const char*>data, n, NULL)
    except UnicodeDecodeError:
        raise WebSocketError(_INVALID_DATA, "text message is not valid UTF-8") from None


cdef inline bytes _payload(const unsigned char* data, Py_ssize_t n, const unsigned char* mask):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    if mask != NULL:
        _unmask(<unsigned char*>PyBytes_AS_STRING(out), data, n, mask)
    elif n:
        memcpy(PyBytes_AS_STRING(out), data, n)
    return out


cdef object _text_payload(const unsigned char* data, Py_ssize_t n, const unsigned char* mask):
    """The str of a final text frame, decoded straight from the unmasked bytes."""
    cdef unsigned char stack[_STACK_BUFFER]
    if mask == NULL:
        return _text(data, n)
    if n <= _STACK_BUFFER:
        _unmask(stack, data, n, mask)
        return _text(stack, n)
    cdef bytes unmasked = _payload(data, n, mask)
    return _text(<const unsigned char*>PyBytes_AS_STRING(unmasked), n)


cdef class FrameReader:
    """Incremental parser of client frames.

    ``feed(bytes)`` returns the complete messages and control frames found so far:
    ``(OP_TEXT, str)``, ``(OP_BINARY, bytes)``, ``(OP_PING | OP_PONG | OP_CLOSE, bytes)``. Control
    frames are returned as they come, also between the fragments of a message. Partial frames are
    kept for the next call. Raises WebSocketError (1002, 1007, 1009, and 1008 for a message of
    more than ``max_fragments`` frames); the reader is not usable after that.

    ``extension``: the one extension hook, as in the pure module (see its docstring): while it
    is set, RSV1 on the first frame of a data message sends every frame of that message through
    ``extension.decode(payload, fin, max_message_size)``.
    """

    # (its attributes are declared in websocket_c.pxd, for wsconn_c to cimport)

    def __init__(
        self, max_message_size=1_000_000, require_mask=True, max_fragments=MAX_FRAGMENTS
    ):
        self.max_message_size = max_message_size
        self.require_mask = require_mask
        self.max_fragments = max_fragments
        # a partial frame kept for the next read; None until there is one (an idle connection
        # holds no buffer), then kept, emptied, for the reads after
        self._buf = None
        self._frag_opcode = 0  # OP_TEXT / OP_BINARY while a fragmented message is in progress
        self._frag_parts = None  # its parts; None between fragmented messages
        self._frag_size = 0
        self._frag_count = 0  # frames of the fragmented message so far
        self._frag_decoder = None
        self._frag_compressed = False  # the fragmented message in progress had RSV1 set
        self.extension = None

    @property
    def max_fragments(self):
        """The most frames one message may have (an integer, at least 1)."""
        return self._max_fragments

    @max_fragments.setter
    def max_fragments(self, value):
        value = _check_max_fragments(value)
        self._max_fragments = value
        # frame counts stay far below 2**63: clamping keeps every comparison's result
        self._max_fragments_c = _LLONG_MAX if value > _LLONG_MAX else value

    @property
    def max_message_size(self):
        return self._max_size

    @max_message_size.setter
    def max_message_size(self, value):
        self._max_size = value
        self._max_size_is_c = type(value) is int
        if self._max_size_is_c:
            # lengths are below 2**63, so clamping keeps every comparison's result
            if value > _LLONG_MAX:
                self._max_size_c = _LLONG_MAX
            elif value < _LLONG_MIN:
                self._max_size_c = _LLONG_MIN
            else:
                self._max_size_c = value

    @property
    def buffered(self):
        """Bytes held for a frame that is not complete yet."""
        return 0 if self._buf is None else PyByteArray_GET_SIZE(self._buf)

    cdef bint _too_big(self, long long length, bint continuation) except -1:
        cdef long long frag_size = self._frag_size if continuation else 0
        if self._max_size_is_c:
            if continuation:
                # frag_size + length > max, without overflow (0 <= frag_size, 0 <= length)
                return frag_size > self._max_size_c or length > self._max_size_c - frag_size
            return length > self._max_size_c
        # anything but an int: Python's comparison, as the pure module does
        if continuation:
            return frag_size + length > self._max_size
        return length > self._max_size

    cpdef list feed(self, data):
        cdef list out = []
        cdef bytearray buf = self._buf
        cdef object src
        cdef Py_buffer view
        cdef const unsigned char* p
        cdef Py_ssize_t n, pos

        if buf is not None and PyByteArray_GET_SIZE(buf):
            buf += data
            self._buf = buf
            src = buf
        elif type(data) is bytes or type(data) is bytearray:
            src = data
        else:
            src = bytes(data)
        p = _view(src, &view)  # a bytearray stays exported (cannot be resized) while we read it
        try:
            n = len(src)
            pos = self._parse(p, n, out)
            if src is not buf and pos < n:
                # buf is None or empty here: keep the partial frame for the next call
                if buf is None:
                    self._buf = PyByteArray_FromStringAndSize(<const char*>p + pos, n - pos)
                else:
                    PyByteArray_Resize(buf, n - pos)
                    memcpy(PyByteArray_AS_STRING(buf), p + pos, n - pos)
        finally:
            _release(src, &view)
        if src is buf and pos:
            del buf[:pos]
        return out

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        """Parse the frames in p[:n] into ``out``; return how many bytes were used."""
        cdef const unsigned char* mask
        cdef Py_ssize_t pos = 0, hlen, end
        cdef int b0, b1, opcode, k
        cdef bint fin, masked, compressed
        cdef long long length
        cdef uint64_t length64
        cdef bytes payload
        while n - pos >= 2:
            b0 = p[pos]
            b1 = p[pos + 1]
            opcode = b0 & 0x0F
            compressed = False
            if b0 & 0x70:
                compressed = self._check_rsv(b0, opcode)
            fin = b0 & 0x80
            masked = b1 & 0x80
            length = b1 & 0x7F
            if opcode >= 8:
                if opcode > _PONG:
                    raise WebSocketError(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if not fin:
                    raise WebSocketError(_PROTOCOL_ERROR, "fragmented control frame")
                if length > _MAX_CONTROL_PAYLOAD:
                    raise WebSocketError(
                        _PROTOCOL_ERROR, "control frame payload longer than 125 bytes"
                    )
            elif opcode == _CONT:
                if not self._frag_opcode:
                    raise WebSocketError(
                        _PROTOCOL_ERROR, "continuation frame without a message to continue"
                    )
                compressed = self._frag_compressed
            elif opcode <= _BINARY:
                if self._frag_opcode:
                    raise WebSocketError(
                        _PROTOCOL_ERROR, "new message while a fragmented one is in progress"
                    )
            else:
                raise WebSocketError(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not masked and self.require_mask:
                raise WebSocketError(_PROTOCOL_ERROR, "client frame is not masked")
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (p[pos + 2] << 8) | p[pos + 3]
                hlen = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length64 = 0
                for k in range(8):
                    length64 = (length64 << 8) | p[pos + 2 + k]
                if length64 >> 63:
                    raise WebSocketError(
                        _PROTOCOL_ERROR, "64-bit payload length with the high bit set"
                    )
                length = <long long>length64
                hlen = 10
            if opcode == _CONT and self._frag_count >= self._max_fragments_c:
                raise WebSocketError(
                    _POLICY_VIOLATION, f"message in more than {self._max_fragments} fragments"
                )
            if opcode < 8 and self._too_big(length, opcode == _CONT):
                raise WebSocketError(
                    _MESSAGE_TOO_BIG, f"message larger than {self._max_size} bytes"
                )
            if masked:
                hlen += 4
            if length > n - pos - hlen:  # (pos + hlen + length > n, without overflow)
                break
            end = pos + hlen + <Py_ssize_t>length
            mask = p + pos + hlen - 4 if masked else NULL

            if opcode == _TEXT and fin and not compressed:
                out.append((OP_TEXT, _text_payload(p + pos + hlen, length, mask)))
                pos = end
                continue
            payload = _payload(p + pos + hlen, length, mask)
            pos = end
            if compressed:
                payload = self.extension.decode(payload, fin, self._max_size)

            if opcode == _TEXT:
                if fin:
                    out.append((OP_TEXT, _text(<const unsigned char*>PyBytes_AS_STRING(payload),
                                               len(payload))))
                else:
                    self._start_fragmented(_TEXT, payload, length, compressed)
            elif opcode == _BINARY:
                if fin:
                    out.append((OP_BINARY, payload))
                else:
                    self._start_fragmented(_BINARY, payload, length, compressed)
            elif opcode == _CONT:
                self._frag_size += length
                self._frag_count += 1
                if self._frag_opcode == _TEXT:
                    part = self._decode_fragment(payload, fin)
                    self._frag_parts.append(part)
                    if fin:
                        out.append((OP_TEXT, "".join(self._frag_parts)))
                        self._end_fragmented()
                else:
                    self._frag_parts.append(payload)
                    if fin:
                        out.append((OP_BINARY, b"".join(self._frag_parts)))
                        self._end_fragmented()
            else:
                out.append((opcode, payload))

        return pos

    cdef bint _check_rsv(self, int b0, int opcode) except -1:
        """Reserved bits are set in a frame's first byte: True when that is a compressed message
        the extension will decode, else WebSocketError 1002."""
        if (b0 & 0x70) != 0x40 or self.extension is None:
            raise WebSocketError(_PROTOCOL_ERROR, "reserved bits set (no extension)")
        if opcode >= 8:
            raise WebSocketError(_PROTOCOL_ERROR, "RSV1 set on a control frame")
        if opcode == _CONT:
            raise WebSocketError(_PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        return True

    cdef _start_fragmented(self, int opcode, bytes payload, long long length, bint compressed):
        # length: the frame's own (wire) length, what max_message_size bounds
        self._frag_opcode = opcode
        self._frag_size = length
        self._frag_compressed = compressed
        self._frag_count = 1
        if opcode == _TEXT:
            self._frag_decoder = _Utf8Decoder()
            self._frag_parts = [self._decode_fragment(payload, False)]
        else:
            self._frag_parts = [payload]

    cdef _decode_fragment(self, bytes payload, bint final):
        # incremental: invalid UTF-8 fails as soon as its fragment arrives
        try:
            return self._frag_decoder.decode(payload, final)
        except UnicodeDecodeError:
            raise WebSocketError(_INVALID_DATA, "text message is not valid UTF-8") from None

    cdef _end_fragmented(self):
        self._frag_opcode = 0
        self._frag_parts = None
        self._frag_size = 0
        self._frag_count = 0
        self._frag_decoder = None
        self._frag_compressed = False
