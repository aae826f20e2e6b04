"""RFC 7692 permessage-deflate, server side (sans-I/O): negotiation, inflating, deflating.

Three pieces, used by the HTTP layer (``fastsio.http.compression``) and the broadcast fan-out:

- :class:`PerMessageDeflate`: the server's settings (``Server(per_message_deflate=...)``), and
  ``negotiate(header)``, which reads a client's ``Sec-WebSocket-Extensions`` offers and answers
  the first acceptable one with an :class:`Agreement` (or None: no compression on that
  connection). An offer with an unknown, repeated or invalid parameter is declined (the next
  offer is tried), as RFC 7692 section 5 asks; the handshake itself never fails because of the
  extension header.
- :class:`Inflater`: the FrameReader's extension hook for one connection (``reader.extension``):
  ``decode(payload, fin, max_size)`` inflates each frame of a message whose first frame had RSV1
  set, keeping the client's LZ77 window across messages unless ``client_no_context_takeover``
  was agreed, and stops a decompression bomb at ``max_size`` *inflated* bytes per message
  (WebSocketError 1009). Invalid compressed data is 1007, as in ws.
- :class:`Deflater`: the compressor, one per (window bits, level, memory level) for the whole
  process, never one per connection. The server always answers with
  ``server_no_context_takeover``, so every compressed message stands alone: each one is deflated
  and then flushed with ``Z_FULL_FLUSH`` (which drops the history, so nothing that follows
  refers back to it), the trailing ``00 00 ff ff`` taken off. The same compressed frame is thus
  valid for every connection that agreed on the same server window: a broadcast is deflated
  once, not once per recipient, and no compression window is kept per connection.

Window bits 8: zlib refuses a raw deflate window of 8 bits; a 9-bit window is used instead. Its
matches reach back at most 512 - 262 = 250 bytes (zlib's ``MAX_DIST``), so the output is valid
for a peer whose window is 256 bytes.

Plain Python on the standard ``zlib`` module (no compiled twin: the time goes into zlib itself,
and a reused compressor costs no allocation per message).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from .errors import WebSocketError
from .websocket import CLOSE_INVALID_DATA, CLOSE_MESSAGE_TOO_BIG, OP_BINARY, OP_TEXT

__all__ = [
    "EXTENSION_NAME",
    "Agreement",
    "Deflater",
    "Inflater",
    "PerMessageDeflate",
    "deflate_options",
    "parse_extensions",
]

EXTENSION_NAME = "permessage-deflate"

#: what a sender takes off the end of a compressed message, and a receiver puts back
TRAILER = b"\x00\x00\xff\xff"

_HEADER_16 = 126
_HEADER_64 = 127

# RFC 7230 tchar
_TCHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WHITESPACE = " \t"


# -- the header ---------------------------------------------------------------------------------


def parse_extensions(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """``Sec-WebSocket-Extensions`` (RFC 6455 9.1; repeated headers joined with commas) ->
    ``[(name, [(param, value or None), ...]), ...]`` in the order given. Names are lower-cased;
    a quoted value is unquoted. ValueError when the header does not follow the grammar."""
    out: list[tuple[str, list[tuple[str, str | None]]]] = []
    n = len(header)
    i = 0

    def skip(i: int) -> int:
        while i < n and header[i] in _WHITESPACE:
            i += 1
        return i

    def token(i: int) -> tuple[str, int]:
        start = i
        while i < n and header[i] in _TCHARS:
            i += 1
        if i == start:
            raise ValueError(f"token expected at {start} in {header!r}")
        return header[start:i], i

    while True:
        i = skip(i)
        if i < n and header[i] == ",":  # empty list elements are allowed (RFC 7230 7)
            i += 1
            continue
        if i >= n:
            break
        name, i = token(i)
        params: list[tuple[str, str | None]] = []
        i = skip(i)
        while i < n and header[i] == ";":
            i = skip(i + 1)
            key, i = token(i)
            i = skip(i)
            value: str | None = None
            if i < n and header[i] == "=":
                i = skip(i + 1)
                if i < n and header[i] == '"':
                    i += 1
                    chars = []
                    while True:
                        if i >= n:
                            raise ValueError(f"unterminated quoted string in {header!r}")
                        c = header[i]
                        if c == '"':
                            i += 1
                            break
                        if c == "\\":
                            i += 1
                            if i >= n:
                                raise ValueError(f"unterminated quoted string in {header!r}")
                            c = header[i]
                        chars.append(c)
                        i += 1
                    value = "".join(chars)
                    # RFC 6455 9.1: once unquoted, the value must be a token
                    if not value or not all(c in _TCHARS for c in value):
                        raise ValueError(f"quoted value {value!r} is not a token")
                else:
                    value, i = token(i)
                i = skip(i)
            params.append((key.lower(), value))
        out.append((name.lower(), params))
        if i < n:
            if header[i] != ",":
                raise ValueError(f"',' or ';' expected at {i} in {header!r}")
            i += 1
    return out


def _window_bits(value: str | None) -> int | None:
    # RFC 7692 7.1.2: a decimal integer 8..15 without leading zeroes
    if value is None or not value.isdigit() or not value.isascii() or value[0] == "0":
        return None
    bits = int(value)
    return bits if 8 <= bits <= 15 else None


# -- settings and negotiation -----------------------------------------------------------------


class Agreement:
    """What one connection agreed on. ``response``: the ``Sec-WebSocket-Extensions`` value to
    send back; ``deflater``: the shared compressor for its server window; ``client_window_bits``
    and ``client_no_context_takeover``: how to inflate what the client sends (``inflater()``)."""

    __slots__ = ("client_no_context_takeover", "client_window_bits", "deflater", "response")

    def __init__(
        self,
        response: str,
        deflater: Deflater,
        client_window_bits: int,
        client_no_context_takeover: bool,
    ) -> None:
        self.response = response
        self.deflater = deflater
        self.client_window_bits = client_window_bits
        self.client_no_context_takeover = client_no_context_takeover

    def inflater(self) -> Inflater:
        """A new inflater for the connection (its window is made on the first compressed
        message only)."""
        return Inflater(self.client_window_bits, self.client_no_context_takeover)

    def __repr__(self) -> str:
        return f"<Agreement {self.response!r}>"


class PerMessageDeflate:
    """The server's permessage-deflate settings (``Server(per_message_deflate=True | {...})``),
    named after ws's options (Node's ``perMessageDeflate``):

    - ``threshold`` (1024): messages shorter than this many bytes are sent uncompressed;
    - ``level`` (-1, zlib's default, 6) and ``mem_level`` (8): the zlib settings of the
      compressor (``zlibDeflateOptions`` in ws);
    - ``server_max_window_bits`` (15): the largest window the server compresses with (it uses
      less when the client asks for less);
    - ``client_max_window_bits`` (None): ask clients that allow it to compress with at most this
      many window bits (less memory per connection for their inflater here);
    - ``client_no_context_takeover`` (False): ask every client to compress each message on its
      own, so no inflate window is kept per connection between messages.

    The server always answers with ``server_no_context_takeover`` (see the module docstring):
    ``server_no_context_takeover=True`` is accepted for symmetry with ws, False is refused.
    """

    __slots__ = (
        "_deflaters",
        "client_max_window_bits",
        "client_no_context_takeover",
        "level",
        "mem_level",
        "server_max_window_bits",
        "threshold",
    )

    def __init__(
        self,
        threshold: int = 1024,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
        mem_level: int = 8,
        server_max_window_bits: int = 15,
        client_max_window_bits: int | None = None,
        client_no_context_takeover: bool = False,
        server_no_context_takeover: bool = True,
    ) -> None:
        if not server_no_context_takeover:
            raise ValueError(
                "per_message_deflate: the server always compresses without context takeover "
                "(one deflate per broadcast, no window per connection); "
                "server_no_context_takeover cannot be False"
            )
        if type(threshold) is not int or threshold < 0:
            raise ValueError(f"per_message_deflate threshold must be an int >= 0: {threshold!r}")
        if type(level) is not int or not -1 <= level <= 9:
            raise ValueError(f"per_message_deflate level must be -1..9: {level!r}")
        if type(mem_level) is not int or not 1 <= mem_level <= 9:
            raise ValueError(f"per_message_deflate mem_level must be 1..9: {mem_level!r}")
        for name, bits in (
            ("server_max_window_bits", server_max_window_bits),
            ("client_max_window_bits", client_max_window_bits),
        ):
            if bits is not None and (type(bits) is not int or not 8 <= bits <= 15):
                raise ValueError(f"per_message_deflate {name} must be 8..15: {bits!r}")
        self.threshold = threshold
        self.level = level
        self.mem_level = mem_level
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        self.client_no_context_takeover = bool(client_no_context_takeover)
        self._deflaters: dict[int, Deflater] = {}

    def deflater(self, window_bits: int = 15) -> Deflater:
        """The process's compressor for this server window (made once)."""
        deflater = self._deflaters.get(window_bits)
        if deflater is None:
            deflater = Deflater(window_bits, self.level, self.mem_level, self.threshold)
            self._deflaters[window_bits] = deflater
        return deflater

    def negotiate(self, header: str | None) -> Agreement | None:
        """The answer to a client's ``Sec-WebSocket-Extensions`` header: the first acceptable
        permessage-deflate offer, or None (none offered, none valid, or a header that does not
        parse: the connection then goes on uncompressed)."""
        if not header:
            return None
        try:
            offers = parse_extensions(header)
        except ValueError:
            return None
        for name, params in offers:
            if name == EXTENSION_NAME:
                agreement = self._accept(params)
                if agreement is not None:
                    return agreement
        return None

    def _accept(self, params: list[tuple[str, str | None]]) -> Agreement | None:
        """One offer -> an Agreement, or None to decline it (RFC 7692 5: an unknown parameter,
        one given twice, or an invalid value)."""
        seen: set[str] = set()
        server_bits: int | None = None
        client_bits_offered = False
        client_bits: int | None = None
        client_no_context = False
        for key, value in params:
            if key in seen:
                return None
            seen.add(key)
            if key == "server_no_context_takeover" or key == "client_no_context_takeover":
                if value is not None:
                    return None
                if key == "client_no_context_takeover":
                    client_no_context = True
            elif key == "server_max_window_bits":
                server_bits = _window_bits(value)
                if server_bits is None:
                    return None
            elif key == "client_max_window_bits":
                client_bits_offered = True
                if value is not None:
                    client_bits = _window_bits(value)
                    if client_bits is None:
                        return None
            else:
                return None
        response = [EXTENSION_NAME, "server_no_context_takeover"]
        if client_no_context or self.client_no_context_takeover:
            # the server may ask for it even when the offer did not (RFC 7692 7.1.1.2)
            client_no_context = True
            response.append("client_no_context_takeover")
        # the server's window: what the client allows, at most our own bound
        window = self.server_max_window_bits
        if server_bits is not None and server_bits < window:
            window = server_bits
        if server_bits is not None or window < 15:
            response.append(f"server_max_window_bits={window}")
        # the client's window: may be bounded only if the offer says the client supports it
        inflate_bits = 15
        if client_bits_offered:
            if client_bits is not None:
                inflate_bits = client_bits
            wanted = self.client_max_window_bits
            if wanted is not None and wanted < inflate_bits:
                inflate_bits = wanted
            if inflate_bits < 15:
                response.append(f"client_max_window_bits={inflate_bits}")
        return Agreement(
            "; ".join(response), self.deflater(window), inflate_bits, client_no_context
        )

    def __repr__(self) -> str:
        return (
            f"PerMessageDeflate(threshold={self.threshold}, level={self.level}, "
            f"mem_level={self.mem_level}, server_max_window_bits={self.server_max_window_bits}, "
            f"client_max_window_bits={self.client_max_window_bits}, "
            f"client_no_context_takeover={self.client_no_context_takeover})"
        )


def deflate_options(value: Any) -> PerMessageDeflate | None:
    """``Server(per_message_deflate=...)`` -> settings: False/None -> None (off), True -> the
    defaults, a dict -> those settings (see PerMessageDeflate), a PerMessageDeflate as is."""
    if value is None or value is False:
        return None
    if value is True:
        return PerMessageDeflate()
    if isinstance(value, PerMessageDeflate):
        return value
    if isinstance(value, Mapping):
        try:
            return PerMessageDeflate(**value)
        except TypeError as exc:
            raise ValueError(f"per_message_deflate: {exc}") from None
    raise TypeError(f"per_message_deflate must be a bool or a dict, not {type(value).__name__}")


# -- compressing --------------------------------------------------------------------------------


def _frame(b0: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 65536:
        return bytes((b0, _HEADER_16)) + n.to_bytes(2, "big") + payload
    return bytes((b0, _HEADER_64)) + n.to_bytes(8, "big") + payload


class Deflater:
    """Compresses whole messages, each on its own (server_no_context_takeover): one zlib stream
    reused for every message, flushed with Z_FULL_FLUSH after each. Shared by every connection
    with the same server window (see ``PerMessageDeflate.deflater``)."""

    __slots__ = ("_compressor", "level", "mem_level", "threshold", "window_bits")

    def __init__(
        self,
        window_bits: int = 15,
        level: int = zlib.Z_DEFAULT_COMPRESSION,
        mem_level: int = 8,
        threshold: int = 1024,
    ) -> None:
        self.window_bits = window_bits
        self.level = level
        self.mem_level = mem_level
        self.threshold = threshold
        # zlib refuses 8 for raw deflate; 9 stays within a 256-byte window (module docstring)
        bits = 9 if window_bits == 8 else window_bits
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -bits, mem_level)

    def compress(self, data: bytes) -> bytes:
        """The payload of a compressed message carrying ``data`` (RFC 7692 7.2.1)."""
        compressor = self._compressor
        out = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        return out[:-4]  # a full flush always ends with the empty stored block 00 00 ff ff

    def frame(self, opcode: int, payload: bytes) -> bytes | None:
        """A final frame of ``opcode`` (OP_TEXT / OP_BINARY) with ``payload`` compressed (RSV1
        set), or None when the payload is shorter than the threshold or does not shrink."""
        n = len(payload)
        if n < self.threshold or n == 0:
            return None
        compressed = self.compress(payload)
        if len(compressed) >= n:
            return None
        return _frame(0xC0 | opcode, compressed)

    def text_frame(self, text: str) -> bytes | None:
        """``frame(OP_TEXT, text in UTF-8)``; None: send it uncompressed."""
        if len(text) * 4 < self.threshold:  # cannot reach it in UTF-8: no encoding needed
            return None
        return self.frame(OP_TEXT, text.encode("utf-8"))

    def binary_frame(self, data: bytes) -> bytes | None:
        """``frame(OP_BINARY, data)``; None: send it uncompressed."""
        return self.frame(OP_BINARY, data)

    def __repr__(self) -> str:
        return (
            f"<Deflater window_bits={self.window_bits} level={self.level} "
            f"threshold={self.threshold}>"
        )


# -- inflating ----------------------------------------------------------------------------------


class Inflater:
    """The FrameReader extension of one connection that agreed on permessage-deflate: inflates
    the frames of compressed messages (``decode``). The zlib stream is made on the first
    compressed message and kept across messages (the client's context takeover) unless
    ``no_context_takeover``; it is made anew after a message that ended its deflate stream."""

    __slots__ = ("_inflater", "_size", "messages", "no_context_takeover", "window_bits")

    def __init__(self, window_bits: int = 15, no_context_takeover: bool = False) -> None:
        self.window_bits = window_bits
        self.no_context_takeover = no_context_takeover
        self._inflater: Any = None
        self._size = 0  # inflated bytes of the message in progress
        #: compressed messages inflated so far
        self.messages = 0

    def decode(self, payload: bytes, fin: bool, max_size: Any) -> bytes:
        """The inflated bytes of one frame of a compressed message (``fin``: its last frame).
        WebSocketError 1009 once the message passes ``max_size`` inflated bytes, 1007 for data
        that does not inflate."""
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self.window_bits)
        if fin:
            payload = payload + TRAILER
        limit = 0  # no bound
        if type(max_size) is int:
            left = max_size - self._size
            left = max(left, 0)
            limit = left + 1  # one byte more than allowed: reaching it means too big
        try:
            out = inflater.decompress(payload, limit)
        except zlib.error as exc:
            self._reset()
            raise WebSocketError(CLOSE_INVALID_DATA, f"invalid compressed data ({exc})") from None
        size = self._size + len(out)
        if limit and len(out) >= limit:
            self._reset()
            raise WebSocketError(
                CLOSE_MESSAGE_TOO_BIG, f"message larger than {max_size} bytes once inflated"
            )
        if inflater.eof:
            # the client ended its deflate stream (BFINAL): nothing may follow in this message
            tail = inflater.unused_data
            if tail and not (fin and tail == TRAILER):
                self._reset()
                raise WebSocketError(CLOSE_INVALID_DATA, "data after the end of the deflate stream")
        if fin:
            self._size = 0
            self.messages += 1
            if self.no_context_takeover or inflater.eof:
                self._inflater = None
        else:
            self._size = size
        return out

    def _reset(self) -> None:
        self._inflater = None
        self._size = 0

    def __repr__(self) -> str:
        return (
            f"<Inflater window_bits={self.window_bits} "
            f"no_context_takeover={self.no_context_takeover}>"
        )
