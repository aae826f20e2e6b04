"""Socket.IO packets as MessagePack, compatible with the npm package ``socket.io-msgpack-parser``
(sans-I/O).

That parser encodes each packet as *one* binary message, the MessagePack map
``{"type": t, "data": d, "nsp": n, "id": i}`` (``data`` and ``id`` left out when absent), with
notepack.io. Binary values are MessagePack ``bin`` inside the map, so there are no attachments and
no BINARY_EVENT / BINARY_ACK types: its decoder accepts types 0 to 4 only (CONNECT, DISCONNECT,
EVENT, ACK, CONNECT_ERROR), a string ``nsp``, ``data`` as the type requires (an array for EVENT and
ACK; absent or a map for CONNECT; absent for DISCONNECT; a string or a map for CONNECT_ERROR) and an
integer ``id`` or none. This module writes only what that decoder accepts and reads the same.

notepack.io's extension type 0 carries JavaScript values MessagePack has no type for: ``undefined``
(fixext 1), ``Date`` (fixext 8, milliseconds since the epoch) and ``ArrayBuffer`` / typed arrays
(ext 8/16/32, the bytes). Here they become None, an aware ``datetime`` (UTC) and bytes. The
``msgpack`` package does the work; its extension hook cannot see which of those headers carried a
1- or 8-byte value, so input with such a value is decoded again by a small exact reader here.

Socket.IO v2 clients (``allow_eio3``) use the package's 2.x line instead, which differs in two ways:
CONNECT, DISCONNECT and CONNECT_ERROR ("ERROR") travel as JSON *text* (``{"type":0,"nsp":"/"}``),
and BINARY_EVENT / BINARY_ACK types (5, 6) occur (socket.io-client 2.x marks packets holding binary).
EVENT and ACK are the same MessagePack bytes in both lines, so one encoded broadcast serves both:
``MsgpackParser.for_eio3()`` gives the 2.x variant.

Plain typed Python, Cython-friendly like ``socketio.py``; needs ``pip install fastsio[msgpack]``.
"""

from __future__ import annotations

import datetime
import struct
from typing import Any

import msgpack
import orjson

# absolute, not relative: like its siblings, this file may also be compiled as a _speedups twin
from fastsio.protocol.errors import ProtocolError
from fastsio.protocol.socketio import (
    ACK,
    BINARY_ACK,
    BINARY_EVENT,
    CONNECT,
    CONNECT_ERROR,
    DISCONNECT,
    EVENT,
    MAX_ACK_ID,
    RESERVED_EVENTS,
    Packet,
    check_ack_id,
)

__all__ = [
    "MsgpackParser",
    "MsgpackParserV2",
    "PacketDecoder",
    "PacketDecoderV2",
    "decode_packet",
    "decode_packet_v2",
    "encode_packet",
    "encode_packet_v2",
]

_TYPE_NAMES = ("CONNECT", "DISCONNECT", "EVENT", "ACK", "CONNECT_ERROR")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_INT64 = struct.Struct(">q")

#: Nesting depth past which the exact reader refuses input (it recurses, two Python frames per
#: level; the msgpack package's own C limit is 1024). Real packets nest a few levels.
_MAX_DEPTH = 200


# ---------------------------------------------------------------------------------------------
# encoding


def _default(obj: Any) -> Any:
    """Values MessagePack has no type for: ``datetime`` becomes a JavaScript ``Date``."""
    if isinstance(obj, datetime.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=datetime.timezone.utc)
        delta = obj - _EPOCH
        millis = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        return msgpack.ExtType(0, _INT64.pack(millis))
    raise TypeError(f"cannot serialize {type(obj).__name__!r} object")


_packer_options = {"use_bin_type": True, "default": _default}


def _packet_map(packet_type: int, nsp: str, data: Any, ack_id: Any) -> dict:
    if packet_type < 0 or packet_type > 6:
        raise ProtocolError(f"unknown Socket.IO packet type {packet_type!r}")
    if packet_type == BINARY_EVENT:
        packet_type = EVENT
    elif packet_type == BINARY_ACK:
        packet_type = ACK
    if not nsp:
        nsp = "/"
    elif nsp[0] != "/":
        raise ProtocolError(f"namespace must start with '/': {nsp!r}")
    packet: dict = {"type": packet_type}
    if data is not None:
        packet["data"] = data
    packet["nsp"] = nsp
    if ack_id is not None:
        packet["id"] = check_ack_id(packet_type, ack_id)
    return packet


def encode_packet(
    packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None
) -> list[bytes]:
    """Encode a packet as one MessagePack message (a one-element list, like the JSON codec's
    parts). BINARY_EVENT / BINARY_ACK are sent as EVENT / ACK: binary needs no attachments here.
    TypeError for data MessagePack cannot hold; ProtocolError for a bad namespace or ack id."""
    packet = _packet_map(packet_type, nsp, data, ack_id)
    try:
        return [msgpack.packb(packet, **_packer_options)]
    except (OverflowError, ValueError) as exc:
        # an int beyond 64 bits, nesting past msgpack's limit: not serializable, as with JSON
        raise TypeError(f"cannot serialize packet data as MessagePack: {exc}") from None


def encode_packet_v2(
    packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None
) -> list[str | bytes]:
    """``encode_packet`` for socket.io-msgpack-parser 2.x (Socket.IO v2 clients): CONNECT,
    DISCONNECT and CONNECT_ERROR as JSON text, the rest as MessagePack (the same bytes)."""
    if packet_type == CONNECT or packet_type == DISCONNECT or packet_type == CONNECT_ERROR:
        packet = _packet_map(packet_type, nsp, data, ack_id)
        return [str(orjson.dumps(packet), "utf-8")]
    return encode_packet(packet_type, nsp, data, ack_id)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# decoding


class _Ambiguous(Exception):
    """An extension-0 value of 1 or 8 bytes: undefined or Date, or an ArrayBuffer that long."""


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0:
        if len(data) == 1 or len(data) == 8:
            raise _Ambiguous()
        return bytes(data)
    # another application's extension: [type, bytes], as notepack.io decodes it
    return [code, bytes(data)]


def _date(millis: int) -> datetime.datetime:
    try:
        return _EPOCH + datetime.timedelta(milliseconds=millis)
    except OverflowError:
        raise ProtocolError(f"Date out of range: {millis} ms") from None


class _ExactReader:
    """A complete MessagePack reader for the rare input that ``_ext_hook`` cannot decide: it sees
    the headers, so fixext 1 / fixext 8 of type 0 are undefined / Date and ext 8/16/32 of type 0
    are bytes, as in notepack.io."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        start = self.pos
        end = start + n
        if end > len(self.data):
            raise ProtocolError("MessagePack input ends early")
        self.pos = end
        return self.data[start:end]

    def unsigned(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def signed(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big", signed=True)

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"MessagePack string is not valid UTF-8: {exc}") from None

    def ext(self, n: int, fixed: bool) -> Any:
        code = self.signed(1)
        data = self.take(n)
        if code != 0:
            return [code, data]
        if fixed and n == 1:
            return None  # undefined
        if fixed and n == 8:
            return _date(int.from_bytes(data, "big", signed=True))
        return data

    def array(self, n: int, depth: int) -> list:
        if n > len(self.data) - self.pos:
            raise ProtocolError("MessagePack array longer than its input")
        out: list = []
        for _ in range(n):
            out.append(self.read(depth + 1))
        return out

    def map(self, n: int, depth: int) -> dict:
        if n > len(self.data) - self.pos:
            raise ProtocolError("MessagePack map longer than its input")
        out: dict = {}
        for _ in range(n):
            key = self.read(depth + 1)
            if type(key) is not str and type(key) is not bytes:
                # what the msgpack package allows (strict_map_key): hashable, as JS keys are
                raise ProtocolError(f"MessagePack map key of type {type(key).__name__}")
            out[key] = self.read(depth + 1)
        return out

    def read(self, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            raise ProtocolError("MessagePack input nested too deeply")
        b = self.unsigned(1)
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if b <= 0xBF:
            return self.text(b & 0x1F)
        if b == 0xC0:
            return None
        if b == 0xC2:
            return False
        if b == 0xC3:
            return True
        if 0xC4 <= b <= 0xC6:
            return self.take(self.unsigned(1 << (b - 0xC4)))
        if 0xC7 <= b <= 0xC9:
            return self.ext(self.unsigned(1 << (b - 0xC7)), False)
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if 0xCC <= b <= 0xCF:
            return self.unsigned(1 << (b - 0xCC))
        if 0xD0 <= b <= 0xD3:
            return self.signed(1 << (b - 0xD0))
        if 0xD4 <= b <= 0xD8:
            return self.ext(1 << (b - 0xD4), True)
        if 0xD9 <= b <= 0xDB:
            return self.text(self.unsigned(1 << (b - 0xD9)))
        if b == 0xDC or b == 0xDD:
            return self.array(self.unsigned(2 if b == 0xDC else 4), depth)
        if b == 0xDE or b == 0xDF:
            return self.map(self.unsigned(2 if b == 0xDE else 4), depth)
        raise ProtocolError(f"invalid MessagePack type byte 0x{b:02x}")


def _unpack(raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, ext_hook=_ext_hook)
    except _Ambiguous:
        pass
    except (ValueError, msgpack.UnpackException) as exc:  # incl. UnicodeDecodeError, ExtraData
        raise ProtocolError(f"invalid MessagePack packet: {exc or type(exc).__name__}") from None
    reader = _ExactReader(raw)
    value = reader.read()
    if reader.pos != len(raw):
        raise ProtocolError("invalid MessagePack packet: extra data after the value")
    return value


def _invalid(packet_type: int, what: str) -> ProtocolError:
    return ProtocolError(f"invalid {_TYPE_NAMES[packet_type]} packet: {what}")


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, str):
        raise ProtocolError("a MessagePack Socket.IO packet must be a binary message, not text")
    if type(raw) is not bytes:
        if not isinstance(raw, (bytearray, memoryview)):
            raise TypeError(f"packet must be bytes, not {type(raw).__name__}")
        raw = bytes(raw)
    return raw


def decode_packet(raw: bytes) -> Packet:
    """Decode one MessagePack packet. ProtocolError on anything socket.io-msgpack-parser's decoder
    refuses, and on what fastsio's JSON decoder refuses too (an EVENT without a string name, a
    reserved event name, an ack id out of range or on a packet that takes none)."""
    return _check_packet(_unpack(_as_bytes(raw)), False)


def decode_packet_v2(raw: str | bytes) -> Packet:
    """Decode one packet of socket.io-msgpack-parser 2.x: JSON text or MessagePack; types 5 and 6
    (socket.io-client 2.x marks packets with binary so) are taken as EVENT and ACK."""
    if isinstance(raw, str):
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"invalid JSON Socket.IO packet: {exc}") from None
    else:
        obj = _unpack(_as_bytes(raw))
    return _check_packet(obj, True)


def _check_packet(obj: Any, legacy: bool) -> Packet:
    if type(obj) is not dict:
        raise ProtocolError("a MessagePack Socket.IO packet must be a map")
    packet_type = obj.get("type")
    if type(packet_type) is not int or packet_type < CONNECT or packet_type > BINARY_ACK:
        raise ProtocolError(f"invalid Socket.IO packet type {packet_type!r}")
    if packet_type > CONNECT_ERROR:
        if not legacy:  # socket.io-msgpack-parser 3.x has no binary types
            raise ProtocolError(f"invalid Socket.IO packet type {packet_type!r}")
        packet_type = EVENT if packet_type == BINARY_EVENT else ACK
    nsp = obj.get("nsp")
    if type(nsp) is not str:
        raise _invalid(packet_type, "namespace must be a string")
    data = obj.get("data")
    ack_id = obj.get("id")
    if ack_id is not None and (type(ack_id) is not int or ack_id < 0 or ack_id > MAX_ACK_ID):
        raise _invalid(packet_type, f"invalid ack id {ack_id!r}")
    if packet_type == EVENT:
        if type(data) is not list or not data:
            raise _invalid(packet_type, "payload must be a non-empty array")
        name = data[0]
        if type(name) is not str:
            raise _invalid(packet_type, "event name must be a string")
        if name in RESERVED_EVENTS:
            raise _invalid(packet_type, f"{name!r} is a reserved event name")
    elif packet_type == ACK:
        if type(data) is not list:
            raise _invalid(packet_type, "payload must be an array")
        if ack_id is None:
            raise _invalid(packet_type, "missing ack id")
    else:
        if ack_id is not None:
            raise _invalid(packet_type, "unexpected ack id")
        if packet_type == CONNECT:
            if data is not None and type(data) is not dict:
                raise _invalid(packet_type, "payload must be a map")
        elif packet_type == DISCONNECT:
            if data is not None:
                raise _invalid(packet_type, "unexpected payload")
        elif type(data) is not dict and type(data) is not str:
            raise _invalid(packet_type, "payload must be a map or a string")
    return Packet(packet_type, nsp, data, ack_id)


class PacketDecoder:
    """Per-connection decoder with the JSON codec's interface: ``feed(bytes)`` -> Packet. Every
    packet is complete in one message, so ``feed`` never returns None."""

    __slots__ = ()

    @property
    def pending(self) -> bool:
        return False

    def reset(self) -> None:
        pass

    def feed(self, data: str | bytes) -> Packet | None:
        return decode_packet(data)  # type: ignore[arg-type]


class PacketDecoderV2(PacketDecoder):
    """``PacketDecoder`` for socket.io-msgpack-parser 2.x (JSON text or MessagePack)."""

    __slots__ = ()

    def feed(self, data: str | bytes) -> Packet | None:
        return decode_packet_v2(data)


class MsgpackParserV2:
    """The msgpack parser for Socket.IO v2 clients (socket.io-msgpack-parser 2.x)."""

    name = "msgpack"

    @staticmethod
    def encode_packet(
        packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None
    ) -> list[str | bytes]:
        return encode_packet_v2(packet_type, nsp, data, ack_id)

    def encode(self, packet: Any) -> list[str | bytes]:
        return encode_packet_v2(packet.type, packet.nsp, packet.data, packet.id)

    def decoder(self) -> PacketDecoderV2:
        return PacketDecoderV2()


class MsgpackParser:
    """``Server(parser="msgpack")``: for clients using ``socket.io-msgpack-parser``."""

    name = "msgpack"

    def for_eio3(self) -> MsgpackParserV2:
        """The variant for Socket.IO v2 clients (EVENT / ACK encoded the same)."""
        return MsgpackParserV2()

    @staticmethod
    def encode_packet(
        packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None
    ) -> list[bytes]:
        return encode_packet(packet_type, nsp, data, ack_id)

    def encode(self, packet: Any) -> list[bytes]:
        return encode_packet(packet.type, packet.nsp, packet.data, packet.id)

    def decoder(self) -> PacketDecoder:
        return PacketDecoder()
