"""RFC 6455 WebSocket framing, server side (sans-I/O).

``FrameReader`` turns the bytes read from a client into whole messages and control frames;
``build_*`` make unmasked server frames. RSV bits must be zero, except RSV1 on the first frame of a
data message when an extension is set (``FrameReader.extension``: permessage-deflate, see
``fastsio.protocol.deflate``); the extension then decodes every frame of that message.

Plain typed Python, written to be compiled by Cython unchanged (see fastsio/_speedups).
"""

from __future__ import annotations

import codecs
import operator
from binascii import b2a_base64
from struct import Struct

try:
    # CPython's own SHA-1: ~2,000 instructions less per handshake than hashlib's OpenSSL one,
    # whose every new hash object goes through OpenSSL 3's algorithm fetch
    from _sha1 import sha1
except ImportError:  # pragma: no cover - a CPython built without its own hashes
    from hashlib import sha1

from .errors import WebSocketError

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_INVALID_DATA",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_NO_STATUS",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_UNSUPPORTED_DATA",
    "GUID",
    "MAX_FRAGMENTS",
    "OP_BINARY",
    "OP_CLOSE",
    "OP_CONTINUATION",
    "OP_PING",
    "OP_PONG",
    "OP_TEXT",
    "FrameReader",
    "accept_key",
    "apply_mask",
    "build_binary_frame",
    "build_close_frame",
    "build_frame",
    "build_text_frame",
    "is_valid_close_code",
    "parse_close_payload",
]

OP_CONTINUATION = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_MAX_CONTROL_PAYLOAD = 125

#: Default bound on the frames of one message (the first one and its continuations): ws's server
#: default (``maxFragments``, 16384), so no client that Node accepts is refused. A message of more
#: frames is refused with 1008 (policy violation), as ws does. Without a bound, empty continuation
#: frames (which never reach ``max_message_size``) could be sent for ever, each one costing a
#: list entry.
MAX_FRAGMENTS = 16384

_HEADER_16 = Struct("!BBH")
_HEADER_64 = Struct("!BBQ")

# 2-byte headers of final text/binary frames, by payload length (0..125)
_TEXT_HEADERS = tuple([bytes((0x80 | OP_TEXT, i)) for i in range(126)])
_BINARY_HEADERS = tuple([bytes((0x80 | OP_BINARY, i)) for i in range(126)])

_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray | memoryview) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (masking and unmasking are the same)."""
    n = len(data)
    if n == 0:
        return b""
    # one big-int XOR instead of a per-byte loop
    key = int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


def _frame_header(opcode: int, n: int, fin: bool) -> bytes:
    b0 = (0x80 | opcode) if fin else opcode
    if n < 126:
        return bytes((b0, n))
    if n < 65536:
        return _HEADER_16.pack(b0, 126, n)
    return _HEADER_64.pack(b0, 127, n)


def build_frame(
    opcode: int, payload: bytes | bytearray | memoryview, fin: bool = True, rsv1: bool = False
) -> bytes:
    """An unmasked (server) frame: header + payload, 7/16/64-bit length as needed. ``rsv1``:
    the payload is compressed (permessage-deflate; data frames only)."""
    n = len(payload)
    if opcode >= 8:
        if opcode > OP_PONG:
            raise ValueError(f"unknown opcode {opcode!r}")
        if n > _MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload is {n} bytes, more than 125")
        if not fin:
            raise ValueError("control frames cannot be fragmented")
    elif opcode > OP_BINARY or opcode < 0:
        raise ValueError(f"unknown opcode {opcode!r}")
    if rsv1:
        if opcode >= 8:
            raise ValueError("control frames cannot be compressed")
        return _frame_header(0x40 | opcode, n, fin) + payload
    if fin and n < 126:
        if opcode == OP_TEXT:
            return _TEXT_HEADERS[n] + payload
        if opcode == OP_BINARY:
            return _BINARY_HEADERS[n] + payload
    return _frame_header(opcode, n, fin) + payload


def build_text_frame(text: str) -> bytes:
    """A final text frame carrying ``text``."""
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        return _TEXT_HEADERS[n] + payload
    if n < 65536:
        return _HEADER_16.pack(0x81, 126, n) + payload
    return _HEADER_64.pack(0x81, 127, n) + payload


def build_binary_frame(data: bytes | bytearray | memoryview) -> bytes:
    """A final binary frame carrying ``data``."""
    n = len(data)
    if n < 126:
        return _BINARY_HEADERS[n] + data
    if n < 65536:
        return _HEADER_16.pack(0x82, 126, n) + data
    return _HEADER_64.pack(0x82, 127, n) + data


def _truncate_utf8(data: bytes, limit: int) -> bytes:
    if len(data) <= limit:
        return data
    data = data[:limit]
    # drop a partial trailing character (at most 3 continuation bytes)
    return data.decode("utf-8", "ignore").encode("utf-8")


def build_close_frame(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    """A close frame. Code 1005 (no status) sends an empty payload; the reason is cut to fit the
    125-byte control frame limit on a character boundary."""
    if code == CLOSE_NO_STATUS:
        return b"\x88\x00"
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code!r}")
    payload = code.to_bytes(2, "big")
    if reason:
        payload = payload + _truncate_utf8(reason.encode("utf-8"), _MAX_CONTROL_PAYLOAD - 2)
    return bytes((0x88, len(payload))) + payload


def is_valid_close_code(code: int) -> bool:
    """Codes an endpoint may put in a close frame (RFC 6455 7.4 + IANA registry)."""
    if 3000 <= code <= 4999:
        return True
    if 1000 <= code <= 1014:
        return code != 1004 and code != 1005 and code != 1006
    return False


def parse_close_payload(payload: bytes | bytearray | memoryview) -> tuple[int, str]:
    """``(code, reason)`` from a close frame payload; (1005, "") when empty.
    WebSocketError 1002 for a 1-byte payload or a code that may not be sent, 1007 for a reason
    that is not UTF-8."""
    n = len(payload)
    if n == 0:
        return CLOSE_NO_STATUS, ""
    if n == 1:
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    if n == 2:
        return code, ""
    try:
        reason = bytes(payload[2:]).decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError(CLOSE_INVALID_DATA, "close reason is not valid UTF-8") from None
    return code, reason


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key."""
    digest = sha1((key + GUID).encode("ascii")).digest()
    return b2a_base64(digest, newline=False).decode("ascii")


def _decode_text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebSocketError(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None


def _check_max_fragments(value: object) -> int:
    value = operator.index(value)  # TypeError for anything but an integer
    if value < 1:
        raise ValueError(f"max_fragments must be at least 1, not {value}")
    return value


class FrameReader:
    """Incremental parser of client frames.

    ``feed(bytes)`` returns the complete messages and control frames found so far:
    ``(OP_TEXT, str)``, ``(OP_BINARY, bytes)``, ``(OP_PING | OP_PONG | OP_CLOSE, bytes)``. Control
    frames are returned as they come, also between the fragments of a message. Partial frames are
    kept for the next call. Raises WebSocketError (1002, 1007, 1009, and 1008 for a message of
    more than ``max_fragments`` frames); the reader is not usable after that.

    ``extension`` (None by default) is the one extension hook: an object with
    ``decode(payload: bytes, fin: bool, max_size) -> bytes``. While it is set, the first frame of
    a text or binary message may have RSV1 set (never a continuation or a control frame: 1002;
    RSV2 and RSV3: always 1002); each frame of such a message, the continuations included, goes
    through ``extension.decode(payload, fin, max_message_size)`` once unmasked, and what it
    returns is the frame's data from then on (UTF-8 is checked on it). ``max_message_size`` still
    bounds the frames' own lengths; the extension bounds what it returns (permessage-deflate:
    1009 past ``max_size`` inflated bytes per message).
    """

    __slots__ = (
        "_buf",
        "_frag_compressed",
        "_frag_count",
        "_frag_decoder",
        "_frag_opcode",
        "_frag_parts",
        "_frag_size",
        "_max_fragments",
        "extension",
        "max_message_size",
        "require_mask",
    )

    def __init__(
        self,
        max_message_size: int = 1_000_000,
        require_mask: bool = True,
        max_fragments: int = MAX_FRAGMENTS,
    ) -> None:
        self.max_message_size = max_message_size
        self.require_mask = require_mask
        self.max_fragments = max_fragments
        # a partial frame kept for the next read; None until there is one (an idle connection
        # holds no buffer), then kept, emptied, for the reads after
        self._buf: bytearray | None = None
        self._frag_opcode = 0  # OP_TEXT / OP_BINARY while a fragmented message is in progress
        self._frag_parts: list | None = None  # its parts; None between fragmented messages
        self._frag_size = 0
        self._frag_count = 0  # frames of the fragmented message so far
        self._frag_decoder = None
        self._frag_compressed = False  # the fragmented message in progress had RSV1 set
        self.extension = None

    @property
    def max_fragments(self) -> int:
        """The most frames one message may have (an integer, at least 1)."""
        return self._max_fragments

    @max_fragments.setter
    def max_fragments(self, value: int) -> None:
        self._max_fragments = _check_max_fragments(value)

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        buf = self._buf
        return 0 if buf is None else len(buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[int, str | bytes]]:
        out: list[tuple[int, str | bytes]] = []
        buf = self._buf
        if buf:
            buf += data
            src = buf
        elif type(data) is bytes or type(data) is bytearray:
            src = data
        else:
            src = bytes(data)
        n = len(src)
        pos = 0
        max_size = self.max_message_size
        while n - pos >= 2:
            b0 = src[pos]
            b1 = src[pos + 1]
            opcode = b0 & 0x0F
            compressed = False
            if b0 & 0x70:
                compressed = self._check_rsv(b0, opcode)
            fin = b0 & 0x80
            masked = b1 & 0x80
            length = b1 & 0x7F
            if opcode >= 8:
                if opcode > OP_PONG:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
                if not fin:
                    raise WebSocketError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
                if length > _MAX_CONTROL_PAYLOAD:
                    raise WebSocketError(
                        CLOSE_PROTOCOL_ERROR, "control frame payload longer than 125 bytes"
                    )
            elif opcode == OP_CONTINUATION:
                if not self._frag_opcode:
                    raise WebSocketError(
                        CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue"
                    )
                compressed = self._frag_compressed
            elif opcode <= OP_BINARY:
                if self._frag_opcode:
                    raise WebSocketError(
                        CLOSE_PROTOCOL_ERROR, "new message while a fragmented one is in progress"
                    )
            else:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
            if not masked and self.require_mask:
                raise WebSocketError(CLOSE_PROTOCOL_ERROR, "client frame is not masked")
            hlen = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (src[pos + 2] << 8) | src[pos + 3]
                hlen = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(src[pos + 2 : pos + 10], "big")
                if length >> 63:
                    raise WebSocketError(
                        CLOSE_PROTOCOL_ERROR, "64-bit payload length with the high bit set"
                    )
                hlen = 10
            if opcode < 8:
                if opcode == OP_CONTINUATION:
                    if self._frag_count >= self._max_fragments:
                        raise WebSocketError(
                            CLOSE_POLICY_VIOLATION,
                            f"message in more than {self._max_fragments} fragments",
                        )
                    if self._frag_size + length > max_size:
                        raise WebSocketError(
                            CLOSE_MESSAGE_TOO_BIG, f"message larger than {max_size} bytes"
                        )
                elif length > max_size:
                    raise WebSocketError(
                        CLOSE_MESSAGE_TOO_BIG, f"message larger than {max_size} bytes"
                    )
            if masked:
                hlen += 4
            end = pos + hlen + length
            if end > n:
                break
            if masked:
                payload = apply_mask(src[pos + hlen : end], src[pos + hlen - 4 : pos + hlen])
            else:
                payload = bytes(src[pos + hlen : end])
            pos = end
            if compressed:
                payload = self.extension.decode(payload, bool(fin), max_size)

            if opcode == OP_TEXT:
                if fin:
                    out.append((OP_TEXT, _decode_text(payload)))
                else:
                    self._start_fragmented(OP_TEXT, payload, length, compressed)
            elif opcode == OP_BINARY:
                if fin:
                    out.append((OP_BINARY, payload))
                else:
                    self._start_fragmented(OP_BINARY, payload, length, compressed)
            elif opcode == OP_CONTINUATION:
                self._frag_size += length
                self._frag_count += 1
                if self._frag_opcode == OP_TEXT:
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

        if src is buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            if buf is None:
                self._buf = bytearray(memoryview(src)[pos:])
            else:
                buf += memoryview(src)[pos:]
        return out

    def _check_rsv(self, b0: int, opcode: int) -> bool:
        """Reserved bits are set in a frame's first byte: True when that is a compressed message
        the extension will decode, else WebSocketError 1002."""
        if (b0 & 0x70) != 0x40 or self.extension is None:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension)")
        if opcode >= 8:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a control frame")
        if opcode == OP_CONTINUATION:
            raise WebSocketError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a continuation frame")
        return True

    def _start_fragmented(self, opcode: int, payload: bytes, length: int, compressed: bool) -> None:
        # length: the frame's own (wire) length, what max_message_size bounds
        self._frag_opcode = opcode
        self._frag_size = length
        self._frag_compressed = compressed
        self._frag_count = 1
        if opcode == OP_TEXT:
            self._frag_decoder = _Utf8Decoder()
            self._frag_parts = [self._decode_fragment(payload, False)]
        else:
            self._frag_parts = [payload]

    def _decode_fragment(self, payload: bytes, final: bool) -> str:
        # incremental: invalid UTF-8 fails as soon as its fragment arrives
        try:
            return self._frag_decoder.decode(payload, final)
        except UnicodeDecodeError:
            raise WebSocketError(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None

    def _end_fragmented(self) -> None:
        self._frag_opcode = 0
        self._frag_parts = None
        self._frag_size = 0
        self._frag_count = 0
        self._frag_decoder = None
        self._frag_compressed = False
