"""Engine.IO v4 packets and HTTP long-polling payloads (sans-I/O).

Packet: ``<type digit><data>`` as text, or a raw binary message (WebSocket binary frame, no prefix).
Polling payload: packets joined with ``"\\x1e"``; a binary message is ``"b" + base64(data)``.

Plain typed Python, written to be compiled by Cython unchanged (see fastsio/_speedups).
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Sequence

# absolute, not relative: this file is also compiled as fastsio._speedups.engineio_c
from fastsio.protocol.errors import ProtocolError

__all__ = [
    "CLOSE",
    "MESSAGE",
    "NOOP",
    "OPEN",
    "PING",
    "PONG",
    "SEPARATOR",
    "UPGRADE",
    "decode_packet",
    "decode_payload",
    "encode_packet",
    "encode_payload",
]

OPEN = 0
CLOSE = 1
PING = 2
PONG = 3
MESSAGE = 4
UPGRADE = 5
NOOP = 6

SEPARATOR = "\x1e"

_TYPE_STR = ("0", "1", "2", "3", "4", "5", "6")
_MAX_TYPE = 6


def encode_packet(packet_type: int, data: str | bytes | None = None) -> str | bytes:
    """Encode one packet: ``"<type><data>"`` for text (or no) data; binary data (MESSAGE only) is
    returned unchanged, as a WebSocket binary frame carries it with no prefix."""
    if packet_type < 0 or packet_type > _MAX_TYPE:
        raise ProtocolError(f"unknown Engine.IO packet type {packet_type!r}")
    if data is None:
        return _TYPE_STR[packet_type]
    if isinstance(data, str):
        return _TYPE_STR[packet_type] + data
    if isinstance(data, (bytes, bytearray, memoryview)):
        if packet_type != MESSAGE:
            raise ProtocolError("only MESSAGE packets may carry binary data")
        if type(data) is bytes:
            return data
        return bytes(data)
    raise TypeError(f"Engine.IO packet data must be str, bytes or None, not {type(data).__name__}")


def _b64decode(text: str) -> bytes:
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"invalid base64 in binary Engine.IO packet: {exc}") from None


def decode_packet(raw: str | bytes) -> tuple[int, str | bytes]:
    """Decode one packet. Binary input is a binary MESSAGE; text is ``(type, rest)``; text starting
    with ``"b"`` is a base64-encoded binary MESSAGE."""
    if isinstance(raw, str):
        if not raw:
            raise ProtocolError("empty Engine.IO packet")
        t = ord(raw[0]) - 48
        if 0 <= t <= _MAX_TYPE:
            return t, raw[1:]
        if t == 50:  # "b"
            return MESSAGE, _b64decode(raw[1:])
        raise ProtocolError(f"unknown Engine.IO packet type {raw[0]!r}")
    if type(raw) is bytes:
        return MESSAGE, raw
    if isinstance(raw, (bytearray, memoryview)):
        return MESSAGE, bytes(raw)
    raise TypeError(f"Engine.IO packet must be str or bytes, not {type(raw).__name__}")


def encode_payload(packets: Sequence[str | bytes]) -> str:
    """Join already-encoded packets for a polling response. ``str`` items are encoded packets
    (e.g. ``"4hello"``); ``bytes`` items are binary messages, sent as ``"b" + base64``."""
    n = len(packets)
    if n == 1:
        item = packets[0]
        if isinstance(item, str):
            return item
    parts: list[str] = []
    for item in packets:
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item, (bytes, bytearray, memoryview)):
            parts.append("b" + binascii.b2a_base64(item, newline=False).decode("ascii"))
        else:
            raise TypeError(f"payload items must be str or bytes, not {type(item).__name__}")
    return SEPARATOR.join(parts)


def decode_payload(
    body: bytes | str, max_packets: int | None = None
) -> list[tuple[int, str | bytes]]:
    """Split a polling request body into ``(type, data)`` packets.

    ProtocolError on invalid UTF-8, an empty packet, bad base64, an unknown type, or more than
    ``max_packets`` packets.
    """
    if isinstance(body, str):
        text = body
    else:
        try:
            text = str(body, "utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"Engine.IO payload is not valid UTF-8: {exc}") from None
    if max_packets is not None and max_packets >= 0 and text.count(SEPARATOR) >= max_packets:
        raise ProtocolError(f"Engine.IO payload has more than {max_packets} packets")
    out: list[tuple[int, str | bytes]] = []
    for part in text.split(SEPARATOR):
        if not part:
            raise ProtocolError("empty packet in Engine.IO payload")
        t = ord(part[0]) - 48
        if 0 <= t <= _MAX_TYPE:
            out.append((t, part[1:]))
        elif t == 50:  # "b"
            out.append((MESSAGE, _b64decode(part[1:])))
        else:
            raise ProtocolError(f"unknown Engine.IO packet type {part[0]!r}")
    return out
