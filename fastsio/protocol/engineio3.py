"""Engine.IO v3 packets and HTTP long-polling payloads (sans-I/O), for socket.io-client 2.x.

Only what differs from v4 (``engineio.py``) lives here; the packet types are the same.

- Packet: ``<type digit><data>`` as text. A binary message is ``b"\\x04" + data`` on a WebSocket
  (the type travels as the first byte, unlike v4) or ``"b4" + base64(data)`` as text when the
  client asked for base64 (``b64=1``).
- Text payload (polling): every packet as ``<length>:<packet>``, where ``length`` counts the UTF-16
  code units of the packet string (JavaScript's ``String.length``): an emoji counts 2.
- Binary payload (XHR2 polling, ``Content-Type: application/octet-stream``): every packet as
  ``<0 = text | 1 = binary><length as decimal digits, one byte each (0-9)><255><bytes>``; a text
  packet is its UTF-8 bytes, a binary one is ``b"\\x04" + data``; ``length`` counts bytes.

See engine.io-protocol v3 and engine.io-parser 2.x (``encodePayload`` / ``encodePayloadAsBinary``).
Plain typed Python, written to be compiled by Cython unchanged, like ``engineio.py``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Sequence

# absolute, not relative: like its siblings, this file may also be compiled as a _speedups twin
from fastsio.protocol.errors import ProtocolError

__all__ = [
    "CLOSE",
    "MESSAGE",
    "NOOP",
    "OPEN",
    "PING",
    "PONG",
    "UPGRADE",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
    "utf16_length",
]

OPEN = 0
CLOSE = 1
PING = 2
PONG = 3
MESSAGE = 4
UPGRADE = 5
NOOP = 6

_TYPE_STR = ("0", "1", "2", "3", "4", "5", "6")
_MAX_TYPE = 6

# A length field longer than this is refused before it is converted (a payload this server accepts
# is far below 10**10 bytes); Node's parser allows 310 digits, which only invites big-int work.
_MAX_LENGTH_DIGITS = 10

_BINARY_MESSAGE_PREFIX = b"\x04"
_DIGITS_TO_BYTES = bytes.maketrans(b"0123456789", bytes(range(10)))


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units (JavaScript's ``String.length``)."""
    if text.isascii():
        return len(text)
    # every code point above U+FFFF is a surrogate pair in UTF-16
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _b64encode(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"invalid base64 in binary Engine.IO packet: {exc}") from None


# ---------------------------------------------------------------------------------------------
# packets


def encode_packet(
    packet_type: int, data: str | bytes | None = None, supports_binary: bool = True
) -> str | bytes:
    """Encode one packet: ``"<type><data>"`` for text (or no) data. Binary data (MESSAGE only)
    becomes ``b"\\x04" + data``, or ``"b4" + base64`` when the client cannot take binary."""
    if packet_type < 0 or packet_type > _MAX_TYPE:
        raise ProtocolError(f"unknown Engine.IO packet type {packet_type!r}")
    if data is None:
        return _TYPE_STR[packet_type]
    if isinstance(data, str):
        return _TYPE_STR[packet_type] + data
    if isinstance(data, (bytes, bytearray, memoryview)):
        if packet_type != MESSAGE:
            raise ProtocolError("only MESSAGE packets may carry binary data")
        if supports_binary:
            return _BINARY_MESSAGE_PREFIX + bytes(data)
        return "b4" + _b64encode(bytes(data))
    raise TypeError(f"Engine.IO packet data must be str, bytes or None, not {type(data).__name__}")


def _decode_text_packet(text: str) -> tuple[int, str | bytes]:
    if not text:
        raise ProtocolError("empty Engine.IO packet")
    t = ord(text[0]) - 48
    if 0 <= t <= _MAX_TYPE:
        return t, text[1:]
    if t == 50:  # "b": base64-encoded binary, "b<type><base64>"
        if text[1:2] != "4":
            raise ProtocolError("a base64 Engine.IO packet must be a MESSAGE ('b4...')")
        return MESSAGE, _b64decode(text[2:])
    raise ProtocolError(f"unknown Engine.IO packet type {text[0]!r}")


def _decode_binary_packet(raw: bytes) -> tuple[int, str | bytes]:
    if not raw:
        raise ProtocolError("empty binary Engine.IO packet")
    if raw[0] != MESSAGE:
        raise ProtocolError(f"binary Engine.IO packet of type {raw[0]}, only MESSAGE (4) may be")
    return MESSAGE, bytes(raw[1:])


def decode_packet(raw: str | bytes) -> tuple[int, str | bytes]:
    """Decode one packet: text ``(type, rest)``; ``"b4<base64>"`` and binary ``b"\\x04" + data``
    are binary MESSAGEs ``(4, bytes)``. ProtocolError on anything else."""
    if isinstance(raw, str):
        return _decode_text_packet(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return _decode_binary_packet(bytes(raw))
    raise TypeError(f"Engine.IO packet must be str or bytes, not {type(raw).__name__}")


# ---------------------------------------------------------------------------------------------
# payloads


def _length_prefix(length: int) -> bytes:
    return str(length).encode("ascii").translate(_DIGITS_TO_BYTES)


def _encode_binary_payload(packets: Sequence[str | bytes]) -> bytes:
    out = bytearray()
    for item in packets:
        if isinstance(item, str):
            # engine.io-parser 2.x writes text as utf8.js's non-strict UTF-8 (lone surrogates
            # pass), which "surrogatepass" matches
            body = item.encode("utf-8", "surrogatepass")
            out += b"\x00"
            out += _length_prefix(len(body))
            out += b"\xff"
            out += body
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out += b"\x01"
            out += _length_prefix(len(item) + 1)
            out += b"\xff\x04"
            out += item
        else:
            raise TypeError(f"payload items must be str or bytes, not {type(item).__name__}")
    return bytes(out)


def encode_payload(packets: Sequence[str | bytes], supports_binary: bool = False) -> str | bytes:
    """Join packets for a polling response. ``str`` items are encoded packets (e.g. ``"4hello"``),
    ``bytes`` items binary messages. With ``supports_binary`` and at least one binary message the
    result is a binary payload (bytes, to send as ``application/octet-stream``); otherwise it is a
    text payload, binary messages as ``b4<base64>``."""
    if supports_binary:
        for item in packets:
            if not isinstance(item, str):
                return _encode_binary_payload(packets)
    parts: list[str] = []
    for item in packets:
        if isinstance(item, str):
            parts.append(str(utf16_length(item)))
            parts.append(":")
            parts.append(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            text = "b4" + _b64encode(bytes(item))
            parts.append(str(len(text)))
            parts.append(":")
            parts.append(text)
        else:
            raise TypeError(f"payload items must be str or bytes, not {type(item).__name__}")
    return "".join(parts)


def _check_count(out: list, max_packets: int) -> None:
    if 0 <= max_packets < len(out):
        raise ProtocolError(f"Engine.IO payload has more than {max_packets} packets")


def _decode_ascii_payload(text: str, max_packets: int) -> list[tuple[int, str | bytes]]:
    """A text payload whose characters are all ASCII: one code point is one UTF-16 unit."""
    out: list[tuple[int, str | bytes]] = []
    n = len(text)
    i = 0
    while i < n:
        colon = text.find(":", i, i + _MAX_LENGTH_DIGITS + 1)
        if colon < 0:
            raise ProtocolError("missing or too long length in Engine.IO v3 payload")
        digits = text[i:colon]
        if not digits or not digits.isdigit():
            raise ProtocolError(f"invalid length {digits!r} in Engine.IO v3 payload")
        length = int(digits)
        start = colon + 1
        end = start + length
        if end > n:
            raise ProtocolError("Engine.IO v3 payload ends inside a packet")
        if length:
            out.append(_decode_text_packet(text[start:end]))
            _check_count(out, max_packets)
        i = end
    return out


def _decode_utf16_payload(text: str, max_packets: int) -> list[tuple[int, str | bytes]]:
    """A text payload with non-ASCII characters: the lengths count UTF-16 code units, so the
    payload is walked as UTF-16 (2 bytes per unit); a length that ends inside a surrogate pair
    fails to decode and is a ProtocolError."""
    units = text.encode("utf-16-le", "surrogatepass")
    n = len(units) >> 1
    out: list[tuple[int, str | bytes]] = []
    i = 0
    while i < n:
        length = 0
        digits = 0
        while True:
            if i >= n:
                raise ProtocolError("Engine.IO v3 payload ends inside a length")
            low = units[2 * i]
            high = units[2 * i + 1]
            i += 1
            if high == 0 and low == 58:  # ":"
                break
            if high != 0 or low < 48 or low > 57 or digits >= _MAX_LENGTH_DIGITS:
                raise ProtocolError("invalid length in Engine.IO v3 payload")
            length = length * 10 + (low - 48)
            digits += 1
        if digits == 0:
            raise ProtocolError("empty length in Engine.IO v3 payload")
        end = i + length
        if end > n:
            raise ProtocolError("Engine.IO v3 payload ends inside a packet")
        if length:
            try:
                packet = units[2 * i : 2 * end].decode("utf-16-le")
            except UnicodeDecodeError:
                raise ProtocolError(
                    "an Engine.IO v3 payload length splits a surrogate pair"
                ) from None
            out.append(_decode_text_packet(packet))
            _check_count(out, max_packets)
        i = end
    return out


def _decode_binary_payload(body: bytes, max_packets: int) -> list[tuple[int, str | bytes]]:
    out: list[tuple[int, str | bytes]] = []
    n = len(body)
    i = 0
    while i < n:
        kind = body[i]
        if kind > 1:
            raise ProtocolError(f"invalid packet kind {kind} in binary Engine.IO v3 payload")
        i += 1
        length = 0
        digits = 0
        while True:
            if i >= n:
                raise ProtocolError("binary Engine.IO v3 payload ends inside a length")
            b = body[i]
            i += 1
            if b == 255:
                break
            if b > 9 or digits >= _MAX_LENGTH_DIGITS:
                raise ProtocolError("invalid length in binary Engine.IO v3 payload")
            length = length * 10 + b
            digits += 1
        if digits == 0:
            raise ProtocolError("empty length in binary Engine.IO v3 payload")
        end = i + length
        if end > n:
            raise ProtocolError("binary Engine.IO v3 payload ends inside a packet")
        chunk = body[i:end]
        i = end
        if kind == 0:
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProtocolError(f"Engine.IO v3 text packet is not valid UTF-8: {exc}") from None
            out.append(_decode_text_packet(text))
        else:
            out.append(_decode_binary_packet(chunk))
        _check_count(out, max_packets)
    return out


def decode_payload(
    body: bytes | str, binary: bool = False, max_packets: int = -1
) -> list[tuple[int, str | bytes]]:
    """Split a polling request body into ``(type, data)`` packets.

    ``binary``: the body is a binary (XHR2) payload (the request said
    ``Content-Type: application/octet-stream``). ``max_packets`` (-1: no limit) bounds the count.
    ProtocolError on an empty body, a bad length (not digits, too long, past the end, splitting a
    surrogate pair), invalid UTF-8, bad base64 or an unknown packet type.
    """
    if binary:
        if isinstance(body, str):
            raise TypeError("a binary Engine.IO v3 payload must be bytes")
        if not body:
            raise ProtocolError("empty Engine.IO v3 payload")
        return _decode_binary_payload(bytes(body), max_packets)
    if isinstance(body, str):
        text = str(body)  # exactly a str (a subclass is copied), as the compiled twin types it
    else:
        try:
            text = str(body, "utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"Engine.IO payload is not valid UTF-8: {exc}") from None
    if not text:
        raise ProtocolError("empty Engine.IO v3 payload")
    if text.isascii():
        return _decode_ascii_payload(text, max_packets)
    return _decode_utf16_payload(text, max_packets)
