"""The fuzz targets: every decoder a client's bytes reach, each a function of one ``bytes`` input.

A target raises (AssertionError, or the unexpected exception itself) when an invariant breaks:

- a decoder ends only with its documented error (``ProtocolError``, of which ``WebSocketError``
  with its close code), never with another exception;
- where a compiled twin exists, it does exactly what the pure one does: same result, or the same
  error class, close code and message (the differential check of tests/test_speedups.py).

The HTTP request head is parsed by httptools under ``HttpProtocol``: whatever the bytes, feeding
them never raises, all that is written back is HTTP/1.1 responses, and the compiled HttpProtocol
(``fastsio._speedups.httpproto_c``) writes, closes and dispatches exactly as the pure one.

Used by ``python -m tests.fuzz.run`` (coverage-guided, atheris) and tests/test_fuzz_corpus.py
(every saved input replayed on each test run, no atheris needed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastsio import _impl  # noqa: F401 - the compiled Socket.IO codec's JSON fast paths, as used
from fastsio.protocol import engineio as pure_engineio
from fastsio.protocol import engineio3 as pure_engineio3
from fastsio.protocol import socketio as pure_socketio
from fastsio.protocol import websocket as pure_websocket
from fastsio.protocol.errors import ProtocolError, WebSocketError

from .. import codec_impls

COMPILED = codec_impls.IMPLEMENTATIONS.get("compiled")
COMPILED_ENGINEIO3 = codec_impls.ENGINEIO3.get("compiled")
PURE_MSGPACK = codec_impls.MSGPACK_PARSER.get("pure")
COMPILED_MSGPACK = codec_impls.MSGPACK_PARSER.get("compiled")


def outcome(fn: Callable[..., Any], *args: Any) -> tuple:
    """What a call did, comparable across implementations: its result, or its documented error
    (class, close code, message). Any other exception propagates: that is a finding."""
    try:
        result = fn(*args)
    except WebSocketError as exc:
        return ("raise", WebSocketError, exc.close_code, str(exc))
    except ProtocolError as exc:
        return ("raise", type(exc), str(exc))
    return ("ok", plain(result))


def plain(value: Any) -> Any:
    if type(value).__name__ == "Packet":
        return ("Packet", value.type, value.nsp, plain(value.data), value.id, value.attachments)
    if type(value) is list:
        return [plain(item) for item in value]
    if type(value) is tuple:
        return tuple(plain(item) for item in value)
    return value


def agree(pure_fn: Callable[..., Any], compiled_fn: Callable[..., Any] | None, *args: Any) -> tuple:
    """The pure outcome, checked equal to the compiled one when there is a compiled twin. Compared
    by repr: decoded data may hold NaN (never equal to itself), and repr tells 0.0 from -0.0."""
    pure = outcome(pure_fn, *args)
    if compiled_fn is not None:
        compiled = outcome(compiled_fn, *args)
        assert repr(compiled) == repr(pure), (args, pure, compiled)
    return pure


def _compiled(module: Any, name: str) -> Any:
    return None if module is None else getattr(module, name)


def _pieces(data: bytes) -> list[bytes]:
    """A stream cut where 0xFE bytes are (which are dropped): several reads or messages."""
    return data.split(b"\xfe")


# -- Engine.IO ------------------------------------------------------------------------------------


def engineio_payload(data: bytes) -> None:
    """A v4 polling POST body (and a text one, as a WebSocket message would carry)."""
    compiled = _compiled(COMPILED and COMPILED.engineio, "decode_payload")
    agree(pure_engineio.decode_payload, compiled, data)
    agree(pure_engineio.decode_payload, compiled, data, 3)
    text = data.decode("utf-8", "replace")
    result = agree(
        pure_engineio.decode_packet,
        _compiled(COMPILED and COMPILED.engineio, "decode_packet"),
        text,
    )
    if result[0] == "ok":
        assert result[1][0] in range(7)


def engineio3_payload(data: bytes) -> None:
    """A v3 polling POST body: the first byte says text (even) or binary (odd, XHR2)."""
    if not data:
        return
    binary = bool(data[0] & 1)
    body = data[1:]
    agree(
        pure_engineio3.decode_payload,
        _compiled(COMPILED_ENGINEIO3, "decode_payload"),
        body,
        binary,
    )
    agree(
        pure_engineio3.decode_packet,
        _compiled(COMPILED_ENGINEIO3, "decode_packet"),
        body if binary else body.decode("utf-8", "replace"),
    )


# -- Socket.IO ------------------------------------------------------------------------------------


def socketio_packet(data: bytes) -> None:
    """A Socket.IO packet (the JSON parser), then the same bytes fed to a PacketDecoder as a
    stream: pieces starting with 0x01 are binary attachments, the others text."""
    text = data.decode("utf-8", "replace")
    compiled = COMPILED and COMPILED.socketio
    agree(pure_socketio.decode_packet, _compiled(compiled, "decode_packet"), text)
    agree(pure_socketio.decode_packet, _compiled(compiled, "decode_packet"), text, 2)
    pure_decoder = pure_socketio.PacketDecoder(max_attachments=4)
    compiled_decoder = None if compiled is None else compiled.PacketDecoder(max_attachments=4)
    for piece in _pieces(data):
        item: str | bytes = piece if piece[:1] == b"\x01" else piece.decode("utf-8", "replace")
        compiled_feed = None if compiled_decoder is None else compiled_decoder.feed
        if agree(pure_decoder.feed, compiled_feed, item)[0] == "raise":
            break
        if compiled_decoder is not None:
            assert pure_decoder.pending == compiled_decoder.pending


def msgpack_packet(data: bytes) -> None:
    """A socket.io-msgpack-parser packet (v5 and v2 forms), and the decoder objects."""
    if PURE_MSGPACK is None:  # the optional msgpack package is not installed
        return
    for name in ("decode_packet", "decode_packet_v2"):
        agree(getattr(PURE_MSGPACK, name), _compiled(COMPILED_MSGPACK, name), data)
    for name in ("PacketDecoder", "PacketDecoderV2"):
        compiled = None if COMPILED_MSGPACK is None else getattr(COMPILED_MSGPACK, name)().feed
        agree(getattr(PURE_MSGPACK, name)().feed, compiled, data)


# -- WebSocket ------------------------------------------------------------------------------------


def _frame_readers(flags: int) -> list:
    from fastsio.protocol.deflate import Inflater

    modules = [pure_websocket] + ([COMPILED.websocket] if COMPILED is not None else [])
    readers = []
    for module in modules:
        reader = module.FrameReader(max_message_size=2048, max_fragments=6)
        if flags & 1:  # permessage-deflate agreed: the extension hook
            reader.extension = Inflater(9 + (flags >> 1) % 7, bool(flags & 0x10))
        readers.append(reader)
    return readers


def websocket_frames(data: bytes) -> None:
    """A client's stream of frames, read in pieces (as reads come): the first byte chooses
    permessage-deflate or not and its window; small limits so that they are reached."""
    if not data:
        return
    readers = _frame_readers(data[0])
    pure = readers[0]
    compiled = readers[1] if len(readers) > 1 else None
    for piece in _pieces(data[1:]):
        result = agree(pure.feed, None if compiled is None else compiled.feed, piece)
        if result[0] == "raise":
            assert 1000 <= result[2] < 1012, result
            break
        if compiled is not None:
            assert pure.buffered == compiled.buffered


# -- HTTP -----------------------------------------------------------------------------------------


class RecordingTransport:
    """What HttpProtocol needs of a transport; keeps what is written."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def set_protocol(self, protocol: Any) -> None: ...


_loop: asyncio.AbstractEventLoop | None = None


def _answer(request: Any) -> None:
    """Answers with what was parsed (so that both HttpProtocols must agree on all of it)."""
    body = repr(
        (
            request.method,
            request.url,
            request.path,
            request.query_string,
            request.http_version,
            request._keep_alive,
            request.is_websocket,
            sorted(request.headers.items()),
            request.body,
        )
    ).encode("utf-8", "replace")
    request.respond(200, [("Content-Type", "text/plain")], body)


def _http_protocols() -> list:
    from fastsio.http import protocol

    classes = [protocol.HttpProtocol]
    try:
        from fastsio._speedups import httpproto_c  # type: ignore[attr-defined]
    except ImportError:  # not built
        pass
    else:
        classes.append(httpproto_c.HttpProtocol)
    return classes


def _http_run(protocol_class: Any, data: bytes) -> tuple:
    from fastsio.http import HttpServer

    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()  # never run: the protocol only asks it the time
    server = HttpServer(max_body_size=4096, max_header_size=1024)
    server.mount("/", _answer)
    protocol = protocol_class(server, _loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    for piece in _pieces(data):
        if transport.closed:
            break
        protocol.data_received(piece)
    protocol.connection_lost(None)
    return bytes(transport.written), transport.closed


def http_head(data: bytes) -> None:
    """Request heads (and bodies) as a client sends them, in pieces: never an exception, only
    HTTP/1.1 responses written back, the same by both HttpProtocols."""
    outcomes = [_http_run(protocol_class, data) for protocol_class in _http_protocols()]
    written = outcomes[0][0]
    assert written == b"" or written.startswith(b"HTTP/1.1 "), written[:80]
    assert written.count(b"HTTP/1.1 ") >= written.count(b"\r\n\r\nHTTP/1.1 ")
    assert all(other == outcomes[0] for other in outcomes[1:]), (outcomes[0], outcomes[1:])


TARGETS: dict[str, Callable[[bytes], None]] = {
    "engineio_payload": engineio_payload,
    "engineio3_payload": engineio3_payload,
    "socketio_packet": socketio_packet,
    "msgpack_packet": msgpack_packet,
    "websocket_frames": websocket_frames,
    "http_head": http_head,
}
