"""Socket.IO v5 packets (sans-I/O).

Text format: ``<type>[<attachments>-][<nsp>,][<ack id>][<json>]``. Binary attachments are replaced
in the JSON by ``{"_placeholder":true,"num":N}`` and travel as separate (binary) Engine.IO messages
after the text packet. JSON is read and written with orjson.

Plain typed Python, written to be compiled by Cython unchanged (see fastsio/_speedups).
"""

from __future__ import annotations

from typing import Any

import orjson

# absolute, not relative: this file is also compiled as fastsio._speedups.socketio_c
from fastsio.protocol.errors import ProtocolError

__all__ = [
    "ACK",
    "BINARY_ACK",
    "BINARY_EVENT",
    "CONNECT",
    "CONNECT_ERROR",
    "DEFAULT_MAX_ATTACHMENTS",
    "DISCONNECT",
    "EVENT",
    "MAX_ACK_ID",
    "RESERVED_EVENTS",
    "Packet",
    "PacketDecoder",
    "decode_packet",
    "encode_packet",
]

CONNECT = 0
DISCONNECT = 1
EVENT = 2
ACK = 3
CONNECT_ERROR = 4
BINARY_EVENT = 5
BINARY_ACK = 6

#: Event names a client may not emit (socket.io-parser rejects them as well): they would be
#: mistaken for the server's own lifecycle events.
RESERVED_EVENTS = frozenset(
    ("connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener")
)

#: Largest ack id accepted (JavaScript's Number.MAX_SAFE_INTEGER).
MAX_ACK_ID = 2**53 - 1
_MAX_ACK_DIGITS = 16

#: Default bound on the attachment count of one binary packet.
DEFAULT_MAX_ATTACHMENTS = 1000
_MAX_ATTACHMENT_DIGITS = 10

_TYPE_STR = ("0", "1", "2", "3", "4", "5", "6")
_TYPE_NAMES = (
    "CONNECT",
    "DISCONNECT",
    "EVENT",
    "ACK",
    "CONNECT_ERROR",
    "BINARY_EVENT",
    "BINARY_ACK",
)

# The same numbers and set under private names, for the code below: the compiled build makes them
# C constants (socketio_c.pxd), while the public names above stay Python objects for other modules.
_CONNECT, _DISCONNECT, _EVENT, _ACK, _CONNECT_ERROR, _BINARY_EVENT, _BINARY_ACK = range(7)
# the packet types as Python ints, for a decoded Packet: compiled, an index instead of a new int
_TYPE_INTS = tuple(range(7))
_RESERVED = RESERVED_EVENTS
# Event names shorter than every reserved one (most) skip the set look-up, which would hash a
# freshly decoded name.
_MIN_RESERVED_LEN = min(map(len, RESERVED_EVENTS))

_OPT_NON_STR_KEYS = orjson.OPT_NON_STR_KEYS
_dumps = orjson.dumps
_loads = orjson.loads

# Fast paths for small flat events in front of orjson: a fastsio._speedups.json_c.FastJson, put
# here by _use_fast_json in the compiled build only (which types it, so that its methods are C
# calls); None in the pure build: orjson alone.
_json = None


def _use_fast_json(json: Any) -> None:
    """Called by fastsio._impl for the compiled codec only. ``json.flat_array_at(text, start)`` is
    ``orjson.loads(text[start:])`` for a flat array it reads whole, or None when the orjson path
    must be taken; ``json.dumps_prefixed(prefix, data)`` is ``prefix + orjson.dumps(data).decode()``
    or None when the orjson path must be taken."""
    global _json
    _json = json


class Packet:
    """One decoded Socket.IO packet.

    ``attachments`` is the announced attachment count of a BINARY_EVENT/BINARY_ACK (0 otherwise).
    ``id`` is the ack id or None.
    """

    __slots__ = ("attachments", "data", "id", "nsp", "type")

    def __init__(
        self,
        type: int,
        nsp: str = "/",
        data: Any = None,
        id: int | None = None,
        attachments: int = 0,
    ) -> None:
        self.type = type
        self.nsp = nsp
        self.data = data
        self.id = id
        self.attachments = attachments

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Packet):
            return NotImplemented
        return (
            self.type == other.type
            and self.nsp == other.nsp
            and self.id == other.id
            and self.attachments == other.attachments
            and self.data == other.data
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        t = self.type
        name = _TYPE_NAMES[t] if 0 <= t <= 6 else str(t)
        return (
            f"Packet({name}, nsp={self.nsp!r}, data={self.data!r}, id={self.id!r}, "
            f"attachments={self.attachments!r})"
        )


# ---------------------------------------------------------------------------------------------
# encoding


#: Nesting depth past which ``_deconstruct`` gives up: orjson cannot serialize data nested more
#: than 254 levels anyway. The explicit bound (not Python's recursion limit) keeps the compiled
#: twin, whose C recursion has no such limit, from overflowing the C stack on deep or cyclic data,
#: and makes both raise the same TypeError.
_MAX_DEPTH = 512


def _deconstruct(data: Any, buffers: list, depth: int = 0) -> Any:
    """A copy of ``data`` with every bytes-like object replaced by a placeholder (appended to
    ``buffers``). Lists, tuples and dicts are walked; anything else is returned as is."""
    t = type(data)
    if t is bytes:
        buffers.append(data)
        return {"_placeholder": True, "num": len(buffers) - 1}
    if t is str or t is int or t is float or t is bool or data is None:
        return data
    if depth >= _MAX_DEPTH:
        raise TypeError(f"data nested more than {_MAX_DEPTH} levels deep cannot be serialized")
    if isinstance(data, (list, tuple)):
        out = []
        for item in data:
            out.append(_deconstruct(item, buffers, depth + 1))
        return out
    if isinstance(data, dict):
        d = {}
        for key, value in data.items():
            d[key] = _deconstruct(value, buffers, depth + 1)
        return d
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    return data


# ``ack_id`` is annotated ``Any`` on the encoding side on purpose: Cython turns an ``int``
# annotation into a silent int() coercion (1.5 -> 1, True -> 1); the explicit check below keeps
# the pure and compiled behaviour identical.
def _header(packet_type: int, nsp: str, ack_id: Any, attachments: int) -> str:
    head = _TYPE_STR[packet_type]
    if attachments >= 0:
        head = head + str(attachments) + "-"
    if nsp and nsp != "/":
        if nsp[0] != "/":
            raise ProtocolError(f"namespace must start with '/': {nsp!r}")
        head = head + nsp + ","
    if ack_id is not None:
        head = head + str(check_ack_id(packet_type, ack_id))
    return head


def check_ack_id(packet_type: Any, ack_id: Any) -> int:
    """``ack_id`` (not None) as a plain int, checked for a packet of ``packet_type`` to send:
    TypeError if it is not an int, ProtocolError out of [0, 2**53 - 1] or on a packet type that
    carries none. Shared with the msgpack parser."""
    if type(ack_id) is not int:
        # int subclasses (bool) become a plain int; anything else is a TypeError
        if not isinstance(ack_id, int):
            raise TypeError(f"ack id must be an int, not {type(ack_id).__name__}")
        ack_id = int(ack_id)
    if ack_id < 0 or ack_id > MAX_ACK_ID:
        raise ProtocolError(f"ack id must be in [0, 2**53 - 1], not {ack_id!r}")
    if packet_type == _CONNECT or packet_type == _DISCONNECT or packet_type == _CONNECT_ERROR:
        raise ProtocolError(f"{_TYPE_NAMES[packet_type]} packets carry no ack id")
    return ack_id


def _encode_slow(packet_type: int, nsp: str, data: Any, ack_id: Any) -> list:
    """Binary attachments, binary packet types, non-str dict keys: the less common cases."""
    buffers: list = []
    stripped = _deconstruct(data, buffers)
    binary = packet_type == _BINARY_EVENT or packet_type == _BINARY_ACK
    if buffers:
        if packet_type == _EVENT:
            packet_type = _BINARY_EVENT
        elif packet_type == _ACK:
            packet_type = _BINARY_ACK
        elif not binary:
            raise ProtocolError(
                "binary data is only allowed in EVENT and ACK packets, not in "
                + _TYPE_NAMES[packet_type]
            )
        binary = True
    # raises TypeError for data orjson cannot serialize
    payload = str(_dumps(stripped, option=_OPT_NON_STR_KEYS), "utf-8")
    out: list = [_header(packet_type, nsp, ack_id, len(buffers) if binary else -1) + payload]
    out.extend(buffers)
    return out


def encode_packet(
    packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None
) -> list[str | bytes]:
    """Encode a packet. Element 0 is the text packet; binary attachments (bytes found anywhere in
    ``data``) follow as the remaining elements, and EVENT/ACK become BINARY_EVENT/BINARY_ACK.

    ``ack_id`` is None or an int in [0, 2**53 - 1] (ProtocolError outside, TypeError if not an
    int). ``data`` must be serializable by orjson once bytes are taken out (TypeError otherwise).
    """
    # The common case first: a packet without attachments (packet types 0-4, an exact int) for
    # the default namespace, without an ack id, written whole by json_c (the compiled build).
    if (
        _json is not None
        and type(packet_type) is int
        and 0 <= packet_type < 5
        and ack_id is None
        and data is not None
        and (nsp == "/" or not nsp)
    ):
        kind = packet_type  # compiled: a C int, which indexes the tuple directly
        text = _json.dumps_prefixed(_TYPE_STR[kind], data)
        if text is not None:
            return [text]
    if packet_type < 0 or packet_type > 6:
        raise ProtocolError(f"unknown Socket.IO packet type {packet_type!r}")
    if data is None:
        if packet_type == _BINARY_EVENT or packet_type == _BINARY_ACK:
            return [_header(packet_type, nsp, ack_id, 0)]
        return [_header(packet_type, nsp, ack_id, -1)]
    if packet_type == _BINARY_EVENT or packet_type == _BINARY_ACK:
        return _encode_slow(packet_type, nsp, data, ack_id)
    try:
        payload = _dumps(data)
    except TypeError:
        # orjson refuses bytes (and non-str keys): find and strip the attachments
        return _encode_slow(packet_type, nsp, data, ack_id)
    if ack_id is None and (nsp == "/" or not nsp):
        return [_TYPE_STR[packet_type] + payload.decode()]
    return [_header(packet_type, nsp, ack_id, -1) + payload.decode()]


# ---------------------------------------------------------------------------------------------
# decoding


def _invalid(packet_type: int, what: str) -> ProtocolError:
    return ProtocolError(f"invalid {_TYPE_NAMES[packet_type]} packet: {what}")


def _check_payload(packet_type: int, data: Any, has_data: bool, ack_id: int | None) -> None:
    if packet_type == _EVENT or packet_type == _BINARY_EVENT:
        if not has_data:
            raise _invalid(packet_type, "missing payload")
        if type(data) is not list:
            raise _invalid(packet_type, "payload must be a non-empty array")
        items = data  # compiled: a list local, so that the tests below are C operations
        if not items:
            raise _invalid(packet_type, "payload must be a non-empty array")
        if type(items[0]) is not str:
            raise _invalid(packet_type, "event name must be a string")
        name = items[0]  # compiled: a str local (checked above)
        if len(name) >= _MIN_RESERVED_LEN and name in _RESERVED:
            raise _invalid(packet_type, f"{name!r} is a reserved event name")
    elif packet_type == _ACK or packet_type == _BINARY_ACK:
        if type(data) is not list:
            raise _invalid(packet_type, "payload must be an array")
        if ack_id is None:
            raise _invalid(packet_type, "missing ack id")
    else:
        if ack_id is not None:
            raise _invalid(packet_type, "unexpected ack id")
        if packet_type == _CONNECT:
            if has_data and type(data) is not dict:
                raise _invalid(packet_type, "payload must be an object")
        elif packet_type == _DISCONNECT:
            if has_data:
                raise _invalid(packet_type, "unexpected payload")
        else:  # CONNECT_ERROR
            if type(data) is not dict and type(data) is not str:
                raise _invalid(packet_type, "payload must be an object or a string")


def decode_packet(text: str, max_attachments: int = DEFAULT_MAX_ATTACHMENTS) -> Packet:
    """Decode a text packet. BINARY_EVENT/BINARY_ACK keep their placeholders (``PacketDecoder``
    reassembles them). ProtocolError on anything the protocol does not allow."""
    n = len(text)
    if n == 0:
        raise ProtocolError("empty Socket.IO packet")
    packet_type = ord(text[0]) - 48
    if packet_type < 0 or packet_type > 6:
        raise ProtocolError(f"unknown Socket.IO packet type {text[0]!r}")
    i = 1
    attachments = 0
    if packet_type == _BINARY_EVENT or packet_type == _BINARY_ACK:
        dash = text.find("-", 1, 2 + _MAX_ATTACHMENT_DIGITS)
        if dash < 0:
            raise _invalid(packet_type, "missing or too long attachment count")
        digits = text[1:dash]
        if not digits or not (digits.isascii() and digits.isdigit()):
            raise _invalid(packet_type, f"illegal attachment count {digits!r}")
        attachments = int(digits)
        if attachments > max_attachments:
            raise _invalid(
                packet_type, f"{attachments} attachments, more than the {max_attachments} allowed"
            )
        i = dash + 1
    nsp = "/"
    if i < n and text[i] == "/":
        comma = text.find(",", i)
        if comma < 0:
            nsp = text[i:]
            i = n
        else:
            nsp = text[i:comma]
            i = comma + 1
    ack_id = None
    j = i
    while j < n:
        c = text[j]
        if c < "0" or c > "9":
            break
        j += 1
    if j > i:
        if j - i > _MAX_ACK_DIGITS:
            raise ProtocolError("ack id too long in Socket.IO packet")
        ack_id = int(text[i:j])
        if ack_id > MAX_ACK_ID:
            raise ProtocolError(f"ack id {ack_id} out of range in Socket.IO packet")
        i = j
    if i < n:
        # compiled: json_c reads a flat array of plain values itself (None for anything else)
        data = None if _json is None else _json.flat_array_at(text, i)
        if data is None:
            try:
                data = _loads(text[i:])
            except ValueError as exc:  # orjson.JSONDecodeError
                raise _invalid(packet_type, f"bad JSON payload ({exc})") from None
        _check_payload(packet_type, data, True, ack_id)
    else:
        data = None
        _check_payload(packet_type, None, False, ack_id)
    # __new__ and five stores rather than Packet(...): no __init__ call with its argument
    # parsing (compiled, a direct tp_new and C stores): 120 -> 95 ns pure, less compiled
    packet = Packet.__new__(Packet)
    packet.type = _TYPE_INTS[packet_type]
    packet.nsp = nsp
    packet.data = data
    packet.id = ack_id
    packet.attachments = attachments
    return packet


def _placeholder_buffer(node: dict, buffers: list) -> Any:
    num = node.get("num")
    if type(num) is not int or num < 0 or num >= len(buffers):
        raise ProtocolError(f"illegal attachment placeholder {node!r}")
    return buffers[num]


def _reconstruct(data: Any, buffers: list) -> None:
    """Replace placeholders in decoded JSON (lists and dicts only) in place, iteratively."""
    t = type(data)
    if t is not list and t is not dict:
        return
    stack = [data]
    while stack:
        node = stack.pop()
        if type(node) is list:
            for idx in range(len(node)):
                value = node[idx]
                tv = type(value)
                if tv is dict:
                    if value.get("_placeholder") is True:
                        node[idx] = _placeholder_buffer(value, buffers)
                    else:
                        stack.append(value)
                elif tv is list:
                    stack.append(value)
        else:
            for key, value in node.items():
                tv = type(value)
                if tv is dict:
                    if value.get("_placeholder") is True:
                        node[key] = _placeholder_buffer(value, buffers)
                    else:
                        stack.append(value)
                elif tv is list:
                    stack.append(value)


class PacketDecoder:
    """Per-connection decoder: text packets in, Packets out; reassembles binary packets.

    ``feed(str)`` returns the Packet, or None when it announces attachments; ``feed(bytes)`` takes
    the next attachment and returns the reconstructed Packet (type still BINARY_EVENT/BINARY_ACK)
    once the last one has arrived.
    """

    __slots__ = ("_buffers", "_pending", "max_attachments")

    def __init__(self, max_attachments: int = DEFAULT_MAX_ATTACHMENTS) -> None:
        self.max_attachments = max_attachments
        self._pending: Packet | None = None
        # the attachments of the pending packet; None between binary packets (most connections
        # never get one, and each holds its decoder for its lifetime)
        self._buffers: list | None = None

    @property
    def pending(self) -> bool:
        """True while a binary packet waits for attachments."""
        return self._pending is not None

    def reset(self) -> None:
        """Drop a partially received binary packet."""
        self._pending = None
        self._buffers = None

    def feed(self, data: str | bytes) -> Packet | None:
        if isinstance(data, str):
            if self._pending is not None:
                raise ProtocolError("got a text packet while waiting for binary attachments")
            packet = decode_packet(data, self.max_attachments)
            t = packet.type
            if t == _BINARY_EVENT or t == _BINARY_ACK:
                if packet.attachments > 0:
                    self._pending = packet
                    self._buffers = []
                    return None
                _reconstruct(packet.data, [])
            return packet
        pending = self._pending
        if pending is None:
            raise ProtocolError("got binary data while no binary packet was pending")
        if type(data) is not bytes:
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(f"attachments must be bytes, not {type(data).__name__}")
        buffers = self._buffers
        buffers.append(data)
        if len(buffers) < pending.attachments:
            return None
        self._pending = None
        self._buffers = None
        _reconstruct(pending.data, buffers)
        return pending
