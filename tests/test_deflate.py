"""permessage-deflate (RFC 7692), sans-I/O: negotiation at the header level, the shared Deflater,
and the FrameReader's extension hook on both builds (inflate round trips, context takeover on and
off, fragmented compressed messages with control frames between them, the RSV rules, invalid
data, the decompression bomb). wsproto's permessage-deflate is the independent peer at the frame
level; the differential test against the compiled reader is in test_speedups.py."""

from __future__ import annotations

import os
import time
import zlib

import pytest
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate
from wsproto.frame_protocol import FrameProtocol

from fastsio.http.compression import HttpCompression, http_compression_options, pick_encoding
from fastsio.protocol.deflate import (
    Deflater,
    Inflater,
    PerMessageDeflate,
    deflate_options,
    parse_extensions,
)
from fastsio.protocol.errors import WebSocketError
from tests import codec_impls
from tests.test_protocol_websocket import client_frame

codec = codec_impls.codec  # the fixture: every reader test runs on each implementation

RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10
TEXT, BINARY, PING, CLOSE = 1, 2, 9, 8
BASE = "permessage-deflate; server_no_context_takeover"


class ClientCompressor:
    """What a client sends: raw deflate, Z_SYNC_FLUSH, trailer taken off; one stream kept across
    messages (context takeover) unless ``takeover`` is False."""

    def __init__(self, window_bits: int = 15, takeover: bool = True) -> None:
        self.window_bits = window_bits
        self.takeover = takeover
        self._stream = None

    def __call__(self, data: bytes) -> bytes:
        if self._stream is None or not self.takeover:
            self._stream = zlib.compressobj(6, zlib.DEFLATED, -self.window_bits)
        out = self._stream.compress(data) + self._stream.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]


def inflate(payload: bytes, window_bits: int = 15) -> bytes:
    """A receiver's inflate of one compressed message, with a fresh stream (what a client that
    agreed on server_no_context_takeover may do)."""
    return zlib.decompressobj(-window_bits).decompress(payload + b"\x00\x00\xff\xff")


def parse_server_frame(frame: bytes) -> tuple[int, int, bytes]:
    """(first byte, opcode, payload) of one unmasked frame."""
    b0, b1 = frame[0], frame[1]
    assert not b1 & 0x80
    n, pos = b1 & 0x7F, 2
    if n == 126:
        n, pos = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, pos = int.from_bytes(frame[2:10], "big"), 10
    assert len(frame) == pos + n
    return b0, b0 & 0x0F, frame[pos:]


def reader_with_deflate(codec, max_size=1_000_000, **kwargs):
    reader = codec.websocket.FrameReader(max_size)
    reader.extension = Inflater(**kwargs)
    return reader


def feed_split(reader, stream: bytes, step: int | None = None) -> list:
    if step is None:
        return reader.feed(stream)
    out = []
    for i in range(0, len(stream), step):
        out.extend(reader.feed(stream[i : i + step]))
    return out


# -- negotiation, at the header level -------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer", "settings", "response"),
    [
        (None, {}, None),
        ("", {}, None),
        ("x-webkit-deflate-frame", {}, None),
        ("permessage-deflate", {}, BASE),  # Firefox
        ("permessage-deflate; client_max_window_bits", {}, BASE),  # Chromium, Safari, ws
        ("Permessage-Deflate; Client_Max_Window_Bits", {}, BASE),
        (" permessage-deflate ;  client_max_window_bits  ,  ", {}, BASE),
        ("x-webkit-deflate-frame, permessage-deflate", {}, BASE),
        ("permessage-deflate; server_no_context_takeover", {}, BASE),
        (
            "permessage-deflate; client_max_window_bits",
            {"client_max_window_bits": 10},
            BASE + "; client_max_window_bits=10",
        ),
        # the server may not bound the client's window when the offer does not allow it
        ("permessage-deflate", {"client_max_window_bits": 10}, BASE),
        (
            "permessage-deflate; client_max_window_bits=12",
            {},
            BASE + "; client_max_window_bits=12",
        ),
        (
            "permessage-deflate; client_max_window_bits=12",
            {"client_max_window_bits": 14},
            BASE + "; client_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            {},
            BASE + "; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            {"server_max_window_bits": 10},
            BASE + "; server_max_window_bits=10",
        ),
        (
            "permessage-deflate",
            {"server_max_window_bits": 11},
            BASE + "; server_max_window_bits=11",
        ),
        (
            'permessage-deflate; server_max_window_bits="10"',
            {},
            BASE + "; server_max_window_bits=10",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            {},
            BASE + "; client_no_context_takeover",
        ),
        (
            "permessage-deflate",
            {"client_no_context_takeover": True},
            BASE + "; client_no_context_takeover",
        ),
        (
            "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15",  # wsproto
            {},
            BASE + "; server_max_window_bits=15",
        ),
        (
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
            {},
            BASE + "; server_max_window_bits=8; client_max_window_bits=8",
        ),
        # several offers: the first acceptable one
        ("permessage-deflate; foo=1, permessage-deflate; client_max_window_bits", {}, BASE),
        (
            "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=9",
            {},
            BASE + "; server_max_window_bits=9",
        ),
    ],
)
def test_negotiation(offer, settings, response):
    agreement = PerMessageDeflate(**settings).negotiate(offer)
    if response is None:
        assert agreement is None
    else:
        assert agreement is not None and agreement.response == response


@pytest.mark.parametrize(
    "offer",
    [
        # an offer with an unknown, repeated or invalid parameter is declined (RFC 7692 5)
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1x",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        # a header that does not parse: no extension, the handshake goes on
        "permessage-deflate;",
        "permessage-deflate; =3",
        'permessage-deflate; server_max_window_bits="10',
        'permessage-deflate; server_max_window_bits="1 0"',
        "permessage-deflate x",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate\x00",
    ],
)
def test_bad_offers_are_declined_not_failed(offer):
    assert PerMessageDeflate().negotiate(offer) is None
    # the same offer followed by a good one: the good one is taken
    assert PerMessageDeflate().negotiate(offer + ", permessage-deflate") is not None or (
        # (unless the whole header is unparseable)
        _unparseable(offer)
    )


def _unparseable(header: str) -> bool:
    try:
        parse_extensions(header)
    except ValueError:
        return True
    return False


def test_agreement_parameters():
    settings = PerMessageDeflate()
    agreement = settings.negotiate(
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9; "
        "client_no_context_takeover"
    )
    assert agreement.deflater.window_bits == 10
    assert agreement.client_window_bits == 9 and agreement.client_no_context_takeover
    inflater = agreement.inflater()
    assert inflater.window_bits == 9 and inflater.no_context_takeover
    assert agreement.inflater() is not inflater  # one per connection
    # the compressor is the process's, shared by every agreement with the same server window
    assert settings.negotiate("permessage-deflate; server_max_window_bits=10").deflater is (
        agreement.deflater
    )
    assert settings.negotiate("permessage-deflate").deflater is settings.deflater(15)
    assert settings.deflater(15) is not agreement.deflater
    plain = settings.negotiate("permessage-deflate; client_max_window_bits")
    assert plain.client_window_bits == 15 and not plain.client_no_context_takeover


def test_parse_extensions():
    assert parse_extensions("") == []
    assert parse_extensions('a, b; c; d=1; e="x\\y", ,') == [
        ("a", []),
        ("b", [("c", None), ("d", "1"), ("e", "xy")]),
    ]
    for bad in ("a;", "a b", ";a", 'a; b="', 'a; b=""', "a; b=,", "a=b"):
        with pytest.raises(ValueError):
            parse_extensions(bad)


def test_settings():
    assert deflate_options(False) is None and deflate_options(None) is None
    assert deflate_options(True).threshold == 1024
    settings = deflate_options({"threshold": 0, "level": 1, "client_no_context_takeover": True})
    assert (settings.threshold, settings.level, settings.client_no_context_takeover) == (0, 1, True)
    assert deflate_options(settings) is settings
    assert deflate_options({"server_no_context_takeover": True}).threshold == 1024
    for bad in (
        {"threshold": -1},
        {"level": 10},
        {"mem_level": 0},
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"server_no_context_takeover": False},
        {"unknown": 1},
    ):
        with pytest.raises(ValueError):
            deflate_options(bad)
    with pytest.raises(TypeError):
        deflate_options("yes")
    assert http_compression_options(False) is None
    assert http_compression_options(True).threshold == 1024
    assert http_compression_options({"threshold": 10}).threshold == 10
    with pytest.raises(ValueError):
        http_compression_options({"threshold": -5})
    with pytest.raises(ValueError):
        http_compression_options({"unknown": 1})
    with pytest.raises(TypeError):
        http_compression_options(3)


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        (None, None),
        ("", None),
        ("identity", None),
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("gzip, deflate, br", "gzip"),
        ("deflate, gzip", "gzip"),  # a tie: the server's preference
        ("deflate, gzip;q=0.5", "deflate"),
        ("gzip;q=0, deflate", "deflate"),
        ("gzip;q=0", None),
        ("*", "gzip"),
        ("*;q=0.1, deflate;q=0.5", "deflate"),
        ("gzip;q=0, *", "deflate"),
        ("x-gzip", "gzip"),
        ("GZIP ; Q=1", "gzip"),
        ("gzip;q=abc", None),
        ("br, zstd", None),
    ],
)
def test_accept_encoding(accept, coding):
    assert pick_encoding(accept) == coding


def test_http_compression_encode():
    class Req:
        def __init__(self, accept):
            self.headers = {} if accept is None else {"accept-encoding": accept}

    body = b"4" + b"hello world " * 200
    compression = HttpCompression(threshold=1024)
    for accept, coding in (("gzip", "gzip"), ("deflate", "deflate"), (None, None), ("br", None)):
        for _ in range(2):  # the second time from the cache
            headers = [("Content-Type", "text/plain")]
            out = compression.encode(Req(accept), headers, body)
            assert ("Vary", "Accept-Encoding") in headers
            if coding is None:
                assert out is body and len(headers) == 2
            else:
                assert ("Content-Encoding", coding) in headers
                wbits = 31 if coding == "gzip" else 15
                assert zlib.decompress(out, wbits) == body and len(out) < len(body)
    headers = []
    assert compression.encode(Req("gzip"), headers, body[:1023]) == body[:1023]
    assert headers == []  # below the threshold: never compressed, so no Vary


# -- the Deflater -------------------------------------------------------------------------------


def test_deflater_messages_stand_alone():
    deflater = Deflater(threshold=0)
    messages = [os.urandom(50) * 40, b"same " * 300, b"same " * 300, b"x", b""]
    for message in messages:
        # each inflates on its own stream: nothing refers to an earlier message
        assert inflate(deflater.compress(message)) == message
    one = deflater.compress(b"same " * 300)
    assert deflater.compress(b"same " * 300) == one  # no history: the same input, the same bytes


@pytest.mark.parametrize("window_bits", range(8, 16))
def test_deflater_window_bits(window_bits):
    # repeats at distances around the window size tempt matches that reach too far back
    chunk = bytes(range(256)) + os.urandom(300)
    data = (chunk * 20 + os.urandom(5000) + chunk * 10) * 2
    deflater = Deflater(window_bits, threshold=0)
    out = deflater.compress(data)
    assert inflate(out, window_bits) == data
    assert inflate(out, 15) == data


def test_deflater_frames():
    deflater = Deflater(threshold=100)
    assert deflater.text_frame("a" * 24) is None  # 24 * 4 < 100: not even encoded
    assert deflater.text_frame("a" * 99) is None
    assert deflater.binary_frame(os.urandom(500)) is None  # does not shrink
    assert deflater.binary_frame(b"") is None
    for size in (150, 2000, 70000, 300_000):
        text = ("é" + "hello " * (size // 6 + 1))[:size]
        frame = deflater.text_frame(text)
        b0, opcode, payload = parse_server_frame(frame)
        assert b0 == 0x80 | RSV1 | TEXT and opcode == TEXT
        assert inflate(payload).decode() == text
    noise = os.urandom(70000) + bytes(70000)
    b0, _, payload = parse_server_frame(deflater.binary_frame(noise))
    assert b0 == 0xC2 and inflate(payload) == noise
    assert Deflater(threshold=0).text_frame("ab" * 20) is not None


def test_build_frame_rsv1(codec):
    ws = codec.websocket
    assert ws.build_frame(TEXT, b"abc", True, True) == b"\xc1\x03abc"
    assert ws.build_frame(BINARY, b"abc", False, True) == b"\x42\x03abc"
    assert ws.build_frame(BINARY, b"x" * 200, True, True)[:4] == b"\xc2\x7e\x00\xc8"
    assert ws.build_frame(TEXT, b"abc", True, False) == ws.build_frame(TEXT, b"abc")
    with pytest.raises(ValueError):
        ws.build_frame(PING, b"", True, True)


# -- wsproto as the peer ------------------------------------------------------------------------


def wsproto_client(response: str) -> FrameProtocol:
    extension = WsprotoDeflate()
    extension.offer()
    extension.finalize(response.split(";", 1)[1] if ";" in response else "")
    return FrameProtocol(client=True, extensions=[extension])


def test_our_frames_inflate_in_wsproto():
    agreement = PerMessageDeflate(threshold=0).negotiate("permessage-deflate")
    client = wsproto_client(agreement.response)
    messages = ["héllo " * 500, "x", "plain", "héllo " * 500, "z" * 100_000]
    stream = b""
    for text in messages:
        frame = agreement.deflater.text_frame(text)
        stream += frame if frame is not None else codec_impls._websocket.build_text_frame(text)
    stream += agreement.deflater.binary_frame(bytes(5000))
    client.receive_bytes(stream)
    received, parts = [], []
    for frame in client.received_frames():
        parts.append(frame.payload)
        if frame.message_finished:
            received.append(
                "".join(parts) if isinstance(parts[0], str) else b"".join(map(bytes, parts))
            )
            parts = []
    assert received == [*messages, bytes(5000)]


@pytest.mark.parametrize("no_context_takeover", [False, True])
def test_wsproto_frames_inflate_here(codec, no_context_takeover):
    offer = "permessage-deflate" + ("; client_no_context_takeover" if no_context_takeover else "")
    agreement = PerMessageDeflate().negotiate(offer)
    client = wsproto_client(agreement.response)
    reader = codec.websocket.FrameReader(1_000_000)
    reader.extension = agreement.inflater()
    messages = ["hello " * 400, "hello " * 400, "ö" * 3, os.urandom(3000), bytes(20000)]
    stream = b""
    for message in messages:
        frame = client.send_data(message, fin=True)
        assert frame[0] & RSV1  # compressed by wsproto
        stream += frame
    assert feed_split(reader, stream, 777) == [
        (TEXT if isinstance(m, str) else BINARY, m) for m in messages
    ]


# -- the FrameReader's extension hook -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1000, 65535, 65536, 300_000])
@pytest.mark.parametrize("step", [None, 1, 7, 4096])
def test_inflate_round_trip(codec, size, step):
    if step == 1 and size > 1000:
        pytest.skip("byte by byte: small sizes only")
    text = ("ünïcode " * (size // 8 + 1))[:size]
    binary = (os.urandom(64) * (size // 64 + 1))[:size]
    compress = ClientCompressor()
    stream = client_frame(TEXT, compress(text.encode()), rsv=RSV1)
    stream += client_frame(BINARY, compress(binary), rsv=RSV1)
    stream += client_frame(TEXT, b"plain")  # RSV1 clear: not compressed, with the extension on
    reader = reader_with_deflate(codec)
    assert feed_split(reader, stream, step) == [(TEXT, text), (BINARY, binary), (TEXT, "plain")]


def test_context_takeover(codec):
    message = os.urandom(200) * 10
    compress = ClientCompressor(takeover=True)
    first, second = compress(message), compress(message)
    assert len(second) < len(first) // 4  # the second message refers back to the first
    stream = client_frame(BINARY, first, rsv=RSV1) + client_frame(BINARY, second, rsv=RSV1)
    reader = reader_with_deflate(codec)
    assert reader.feed(stream) == [(BINARY, message), (BINARY, message)]
    # an inflater without the client's context takeover cannot read the second one
    reader = reader_with_deflate(codec, no_context_takeover=True)
    with pytest.raises(WebSocketError) as info:
        reader.feed(stream)
    assert info.value.close_code == 1007
    # a client that compresses each message on its own is read either way
    compress = ClientCompressor(takeover=False)
    stream = client_frame(BINARY, compress(message), rsv=RSV1) * 3
    for takeover in (False, True):
        reader = reader_with_deflate(codec, no_context_takeover=not takeover)
        assert reader.feed(stream) == [(BINARY, message)] * 3


def test_fragmented_compressed_messages(codec):
    """RSV1 on the first frame only; pings between the fragments are read as they come."""
    text = "ü" + "fragmented and compressed " * 300 + "ü"
    payload = ClientCompressor()(text.encode())
    for pieces in (2, 3, 10):
        cuts = [len(payload) * i // pieces for i in range(pieces + 1)]
        stream = b""
        for i in range(pieces):
            first, last = i == 0, i == pieces - 1
            stream += client_frame(
                TEXT if first else 0, payload[cuts[i] : cuts[i + 1]], last, rsv=RSV1 if first else 0
            )
            if not last:
                stream += client_frame(PING, b"between")  # control frames: never compressed
        for step in (None, 5):
            out = feed_split(reader_with_deflate(codec), stream, step)
            assert out == [(PING, b"between")] * (pieces - 1) + [(TEXT, text)]
    # with context takeover across fragmented messages
    compress = ClientCompressor()
    reader = reader_with_deflate(codec)
    for _ in range(3):
        payload = compress(text.encode())
        stream = client_frame(TEXT, payload[:10], False, rsv=RSV1) + client_frame(0, payload[10:])
        assert reader.feed(stream) == [(TEXT, text)]


def test_fragmented_text_split_inside_a_character(codec):
    text = "€" * 5000
    raw = zlib.compressobj(0, zlib.DEFLATED, -15)  # stored: byte cuts land inside characters
    payload = (raw.compress(text.encode()) + raw.flush(zlib.Z_SYNC_FLUSH))[:-4]
    stream = client_frame(TEXT, payload[:1001], False, rsv=RSV1)
    stream += client_frame(0, payload[1001:2002], False) + client_frame(0, payload[2002:])
    assert reader_with_deflate(codec).feed(stream) == [(TEXT, text)]


@pytest.mark.parametrize(
    ("frames", "extension"),
    [
        ([client_frame(TEXT, b"x", rsv=RSV1)], False),  # RSV1 without the extension: 1002
        ([client_frame(TEXT, b"x", rsv=RSV2)], True),
        ([client_frame(TEXT, b"x", rsv=RSV3)], True),
        ([client_frame(TEXT, b"x", rsv=RSV1 | RSV2)], True),
        ([client_frame(PING, b"", rsv=RSV1)], True),  # a compressed control frame
        ([client_frame(CLOSE, b"\x03\xe8", rsv=RSV1)], True),
        ([client_frame(10, b"", rsv=RSV1)], True),
        ([client_frame(TEXT, b"x", False, rsv=RSV1), client_frame(0, b"y", rsv=RSV1)], True),
        ([client_frame(TEXT, b"x", False), client_frame(0, b"y", rsv=RSV1)], True),
    ],
)
def test_rsv_rules(codec, frames, extension):
    reader = reader_with_deflate(codec) if extension else codec.websocket.FrameReader()
    with pytest.raises(WebSocketError) as info:
        for frame in frames:
            reader.feed(frame)
    assert info.value.close_code == 1002


def test_invalid_compressed_data(codec):
    for payload in (b"\xff\xff\xff\xff", b"\x07" + os.urandom(20)):
        reader = reader_with_deflate(codec)
        with pytest.raises(WebSocketError) as info:
            reader.feed(client_frame(BINARY, payload, rsv=RSV1))
        assert info.value.close_code == 1007
    # invalid UTF-8 in a compressed text message: 1007, whole or fragmented
    payload = ClientCompressor(takeover=False)(b"ok \xff\xfe not utf-8" * 10)
    with pytest.raises(WebSocketError) as info:
        reader_with_deflate(codec).feed(client_frame(TEXT, payload, rsv=RSV1))
    assert info.value.close_code == 1007
    reader = reader_with_deflate(codec)
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(TEXT, payload[:5], False, rsv=RSV1) + client_frame(0, payload[5:]))
    assert info.value.close_code == 1007


def test_final_deflate_block(codec):
    """A client that ends each message's deflate stream (BFINAL, Z_FINISH) is read, the next
    message starting a new stream; data after the final block is 1007."""
    message = b"finished " * 200
    finished = zlib.compress(message, 6, -15)
    reader = reader_with_deflate(codec)
    stream = client_frame(BINARY, finished, rsv=RSV1) * 2
    assert reader.feed(stream) == [(BINARY, message)] * 2
    reader = reader_with_deflate(codec)
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(BINARY, finished + b"\x01\x02", rsv=RSV1))
    assert info.value.close_code == 1007
    reader = reader_with_deflate(codec)
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(BINARY, finished, False, rsv=RSV1) + client_frame(0, b"more"))
    assert info.value.close_code == 1007
    # an empty compressed message is the one byte 0x00 (RFC 7692 7.2.3.6)
    empty = ClientCompressor()(b"")
    assert empty == b"\x00"
    assert reader_with_deflate(codec).feed(client_frame(TEXT, empty, rsv=RSV1)) == [(TEXT, "")]


@pytest.mark.parametrize("pieces", [1, 4, 50])
def test_decompression_bomb(codec, pieces):
    """50 MB of zeros deflate to ~50 KB, far below max_message_size on the wire: stopped at
    max_message_size *inflated* bytes with 1009, without inflating the rest."""
    payload = ClientCompressor()(bytes(50_000_000))
    assert len(payload) < 100_000
    cuts = [len(payload) * i // pieces for i in range(pieces + 1)]
    stream = b"".join(
        client_frame(
            BINARY if i == 0 else 0,
            payload[cuts[i] : cuts[i + 1]],
            i == pieces - 1,
            rsv=RSV1 if i == 0 else 0,
        )
        for i in range(pieces)
    )
    reader = reader_with_deflate(codec, max_size=1_000_000)
    started = time.perf_counter()
    with pytest.raises(WebSocketError) as info:
        reader.feed(stream)
    assert info.value.close_code == 1009
    assert time.perf_counter() - started < 0.5  # not 50 MB of work


def test_inflated_size_limit_is_exact(codec):
    compress = ClientCompressor(takeover=False)
    for size, ok in ((1000, True), (1001, False)):
        for pieces in (1, 3):
            payload = compress(b"a" * size)
            cut = len(payload) // 2
            if pieces == 1:
                stream = client_frame(BINARY, payload, rsv=RSV1)
            else:
                stream = client_frame(BINARY, payload[:cut], False, rsv=RSV1)
                stream += client_frame(PING, b"") + client_frame(0, payload[cut:])
            reader = reader_with_deflate(codec, max_size=1000)
            if ok:
                assert reader.feed(stream)[-1] == (BINARY, b"a" * size)
                # and the count starts again at the next message
                assert reader.feed(client_frame(BINARY, compress(b"b" * 1000), rsv=RSV1)) == [
                    (BINARY, b"b" * 1000)
                ]
            else:
                with pytest.raises(WebSocketError) as info:
                    reader.feed(stream)
                assert info.value.close_code == 1009
    # the frames' own lengths stay bounded too (a compressed frame longer than the limit)
    reader = reader_with_deflate(codec, max_size=10)
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(BINARY, compress(os.urandom(100)), rsv=RSV1))
    assert info.value.close_code == 1009


def test_inflater_window_is_made_on_first_use():
    inflater = Inflater()
    assert inflater._inflater is None  # an idle connection holds no zlib stream
    inflater.decode(ClientCompressor()(b"x" * 100), True, 1000)
    assert inflater._inflater is not None
    inflater = Inflater(no_context_takeover=True)
    inflater.decode(ClientCompressor()(b"x" * 100), True, 1000)
    assert inflater._inflater is None  # nothing kept between messages
