"""Socket.IO packet parsers: ``Server(parser=...)`` picks how packets are written on the wire.

- ``"json"`` (default): socket.io-parser's text format, binary attachments as separate messages.
- ``"msgpack"``: one MessagePack message per packet, for clients that use the npm package
  ``socket.io-msgpack-parser`` (``pip install fastsio[msgpack]``).
- any object with the interface below (Node's ``parser`` option takes the same shape)::

      class MyParser:
          def encode(self, packet) -> list[str | bytes]: ...
              # packet has .type, .nsp, .data, .id; one element per Engine.IO message (str: text,
              # bytes: binary), in order
          def decoder(self):
              # a new decoder per connection, with feed(data: str | bytes) -> Packet | None
              # (None while a packet waits for more messages), raising ProtocolError (or
              # ValueError / TypeError) on bad input, and optionally reset()
          # optional, for speed: encode_packet(type, nsp, data, ack_id) -> list[str | bytes]
          # optional: for_eio3() -> the parser object for Socket.IO v2 clients (allow_eio3), which
          # must encode EVENT and ACK exactly as this one (a broadcast is encoded once for all)

The parser is server-wide, as in Node: every client of a server uses it, so a broadcast is encoded
once for all its targets (``InMemoryAdapter.broadcast``). Socket.IO v2 clients (``allow_eio3``)
use the same encodings; only their CONNECT / CONNECT_ERROR packets differ, which
``fastsio.client.Client`` handles whatever the parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _impl

__all__ = ["JsonParser", "resolve_parser"]


class JsonParser:
    """The default parser (socket.io-parser v4 / protocol v5, compatible with v4 clients)."""

    name = "json"

    def __init__(self) -> None:
        # the codec function itself, not a method: the emit hot path calls it directly
        self.encode_packet = _impl.socketio.encode_packet

    def encode(self, packet: Any) -> list:
        return _impl.socketio.encode_packet(packet.type, packet.nsp, packet.data, packet.id)

    def decoder(self) -> Any:
        return _impl.socketio.PacketDecoder()


def _msgpack_parser() -> Any:
    try:
        msgpack_module = getattr(_impl, "msgpack_parser", None)
        if msgpack_module is None:
            from .protocol import msgpack_parser as msgpack_module
    except ImportError as exc:  # the msgpack package is an optional dependency
        raise ImportError(
            f'parser="msgpack" needs the msgpack package: pip install "fastsio[msgpack]" ({exc})'
        ) from exc
    return msgpack_module.MsgpackParser()


def resolve_parser(parser: Any) -> Any:
    """``"json"`` / None, ``"msgpack"`` or a parser object -> the parser object."""
    if parser is None or parser == "json":
        return JsonParser()
    if parser == "msgpack":
        return _msgpack_parser()
    if isinstance(parser, str):
        raise ValueError(  # noqa: TRY004 - a bad value of the right type
            f'unknown parser {parser!r}: use "json", "msgpack" or a parser object'
        )
    if not callable(getattr(parser, "encode", None)) or not callable(
        getattr(parser, "decoder", None)
    ):
        raise TypeError("a parser object needs encode(packet) and decoder() methods")
    return parser


def encoder_of(parser: Any) -> Callable[..., list]:
    """The ``(type, nsp, data, ack_id) -> parts`` function for ``parser``."""
    fast = getattr(parser, "encode_packet", None)
    if callable(fast):
        return fast
    encode = parser.encode
    packet_class = _impl.socketio.Packet

    def encode_packet(packet_type: int, nsp: str = "/", data: Any = None, ack_id: Any = None):
        return encode(packet_class(packet_type, nsp, data, ack_id))

    return encode_packet
