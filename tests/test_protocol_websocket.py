"""RFC 6455 framing (server side): RFC vectors, protocol violations with their close codes,
incremental parsing over random chunk splits, and differential checks against wsproto."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from fastsio.protocol.errors import ProtocolError, WebSocketError
from tests import codec_impls

codec = codec_impls.codec  # the fixture: every test runs on each implementation


CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10
MASK = b"\x37\xfa\x21\x3d"


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def client_frame(opcode, payload=b"", fin=True, mask=MASK, rsv=0, length=None):
    """A client frame built by hand (reference implementation); mask=None -> unmasked."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv | opcode
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        header = bytes((b0, mbit | n))
    elif n < 65536:
        header = bytes((b0, mbit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((b0, mbit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return header + payload
    return header + mask + naive_mask(payload, mask)


def feed_all(reader, data, chunks=None):
    out = []
    if chunks is None:
        out.extend(reader.feed(data))
    else:
        pos = 0
        for cut in sorted(chunks) + [len(data)]:
            out.extend(reader.feed(data[pos:cut]))
            pos = cut
    return out


def test_constants(codec):
    ws = codec.websocket
    assert (ws.OP_CONTINUATION, ws.OP_TEXT, ws.OP_BINARY) == (0, 1, 2)
    assert (ws.OP_CLOSE, ws.OP_PING, ws.OP_PONG) == (8, 9, 10)


# --- helpers -----------------------------------------------------------------------------------


def test_accept_key(codec):
    # RFC 6455 section 1.3
    assert codec.websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    key = base64.b64encode(os.urandom(16)).decode()
    expected = base64.b64encode(
        hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    ).decode()
    assert codec.websocket.accept_key(key) == expected


@pytest.mark.parametrize("n", [*range(18), 120, 125, 126, 1000, 65536, 100_003])
def test_apply_mask(codec, n):
    data = os.urandom(n)
    mask = os.urandom(4)
    masked = codec.websocket.apply_mask(data, mask)
    assert type(masked) is bytes
    assert masked == naive_mask(data, mask)
    assert codec.websocket.apply_mask(masked, mask) == data
    assert codec.websocket.apply_mask(bytearray(data), bytearray(mask)) == masked
    assert codec.websocket.apply_mask(memoryview(data), mask) == masked


# --- RFC 6455 section 5.7 examples -------------------------------------------------------------


def test_rfc_examples(codec):
    ws = codec.websocket
    masked_hello = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert ws.FrameReader().feed(masked_hello) == [(TEXT, "Hello")]

    unmasked = ws.FrameReader(require_mask=False)
    assert unmasked.feed(bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])) == [(TEXT, "Hello")]
    # fragmented unmasked text: "Hel" + "lo"
    assert unmasked.feed(bytes([0x01, 0x03, 0x48, 0x65, 0x6C])) == []
    assert unmasked.feed(bytes([0x80, 0x02, 0x6C, 0x6F])) == [(TEXT, "Hello")]
    # unmasked ping, masked pong
    assert unmasked.feed(bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])) == [(PING, b"Hello")]
    masked_pong = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert ws.FrameReader().feed(masked_pong) == [(PONG, b"Hello")]
    # 256 bytes and 64 KiB binary, unmasked: 16-bit and 64-bit lengths
    big = os.urandom(256)
    assert unmasked.feed(b"\x82\x7e\x01\x00" + big) == [(BINARY, big)]
    bigger = os.urandom(65536)
    frame = b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00" + bigger
    assert unmasked.feed(frame) == [(BINARY, bigger)]
    # and the server builds exactly these frames
    assert ws.build_text_frame("Hello") == bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert ws.build_frame(TEXT, b"Hel", fin=False) == bytes([0x01, 0x03, 0x48, 0x65, 0x6C])
    assert ws.build_frame(CONT, b"lo") == bytes([0x80, 0x02, 0x6C, 0x6F])
    assert ws.build_frame(PING, b"Hello") == bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert ws.build_frame(BINARY, big) == b"\x82\x7e\x01\x00" + big
    assert ws.build_binary_frame(bigger) == frame


# --- building ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, header",
    [
        (0, b"\x82\x00"),
        (1, b"\x82\x01"),
        (125, b"\x82\x7d"),
        (126, b"\x82\x7e\x00\x7e"),
        (65535, b"\x82\x7e\xff\xff"),
        (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70000, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70"),
    ],
)
def test_build_frame_lengths(codec, n, header):
    ws = codec.websocket
    payload = os.urandom(n)
    frame = ws.build_frame(BINARY, payload)
    assert type(frame) is bytes
    assert frame == header + payload
    assert ws.build_binary_frame(payload) == frame
    assert ws.build_frame(BINARY, bytearray(payload)) == frame
    assert ws.build_frame(BINARY, memoryview(payload)) == frame
    text = "é" * (n // 2) + "a" * (n % 2)
    assert ws.build_text_frame(text) == bytes([0x81]) + header[1:] + text.encode()
    assert ws.build_frame(TEXT, text.encode()) == ws.build_text_frame(text)


def test_build_frame_invalid(codec):
    ws = codec.websocket
    with pytest.raises(ValueError):
        ws.build_frame(PING, b"x" * 126)
    with pytest.raises(ValueError):
        ws.build_frame(CLOSE, b"x", fin=False)
    for opcode in (3, 7, 11, 15, -1, 16):
        with pytest.raises(ValueError):
            ws.build_frame(opcode, b"x")


def test_build_close_frame(codec):
    ws = codec.websocket
    assert ws.build_close_frame() == b"\x88\x02\x03\xe8"
    assert ws.build_close_frame(1001, "bye") == b"\x88\x05\x03\xe9bye"
    assert ws.build_close_frame(4000, "é") == b"\x88\x04\x0f\xa0\xc3\xa9"
    assert ws.build_close_frame(1005) == b"\x88\x00"
    long_reason = "€" * 100  # 300 bytes: cut to 123 bytes on a character boundary
    frame = ws.build_close_frame(1000, long_reason)
    assert frame[1] <= 125
    assert len(frame) == 2 + frame[1]
    assert ws.parse_close_payload(frame[2:]) == (1000, "€" * 41)
    for code in (999, 1004, 1006, 1015, 2000, 5000, 0):
        with pytest.raises(ValueError):
            ws.build_close_frame(code)


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"", (1005, "")),
        (b"\x03\xe8", (1000, "")),
        (b"\x03\xe9bye", (1001, "bye")),
        (b"\x03\xea", (1002, "")),
        (b"\x03\xeb", (1003, "")),
        (b"\x03\xef", (1007, "")),
        (b"\x03\xf3", (1011, "")),
        (b"\x03\xf6", (1014, "")),
        (b"\x0b\xb8", (3000, "")),
        (b"\x13\x87\xc3\xa9", (4999, "é")),
    ],
)
def test_parse_close_payload(codec, payload, expected):
    assert codec.websocket.parse_close_payload(payload) == expected
    assert codec.websocket.parse_close_payload(bytearray(payload)) == expected


@pytest.mark.parametrize(
    "payload, close_code",
    [
        (b"\x03", 1002),
        (b"\x00\x00", 1002),
        (b"\x03\xe7", 1002),  # 999
        (b"\x03\xec", 1002),  # 1004
        (b"\x03\xed", 1002),  # 1005
        (b"\x03\xee", 1002),  # 1006
        (b"\x03\xf7", 1002),  # 1015
        (b"\x03\xf8", 1002),  # 1016
        (b"\x07\xd0", 1002),  # 2000
        (b"\x0b\xb7", 1002),  # 2999
        (b"\x13\x88", 1002),  # 5000
        (b"\xff\xff", 1002),
        (b"\x03\xe8\xff", 1007),
        (b"\x03\xe8a\xc3", 1007),
        (b"\x03\xe8\xed\xa0\x80", 1007),  # encoded surrogate
    ],
)
def test_parse_close_payload_invalid(codec, payload, close_code):
    with pytest.raises(WebSocketError) as info:
        codec.websocket.parse_close_payload(payload)
    assert info.value.close_code == close_code
    assert isinstance(info.value, ProtocolError)


# --- reading: protocol violations --------------------------------------------------------------

VIOLATIONS = [
    ("unmasked", client_frame(TEXT, b"hi", mask=None), 1002),
    ("unmasked ping", client_frame(PING, b"", mask=None), 1002),
    ("rsv1", client_frame(TEXT, b"hi", rsv=0x40), 1002),
    ("rsv2", client_frame(BINARY, b"hi", rsv=0x20), 1002),
    ("rsv3", client_frame(PING, b"", rsv=0x10), 1002),
    *[(f"opcode {op}", client_frame(op, b"x"), 1002) for op in (3, 4, 5, 6, 7, 11, 12, 15)],
    ("fragmented ping", client_frame(PING, b"x", fin=False), 1002),
    ("fragmented close", client_frame(CLOSE, b"\x03\xe8", fin=False), 1002),
    ("long ping", client_frame(PING, b"x" * 126), 1002),
    ("long pong", client_frame(PONG, b"x" * 65536), 1002),
    ("long close", client_frame(CLOSE, b"\x03\xe8" + b"x" * 124), 1002),
    ("orphan continuation", client_frame(CONT, b"x"), 1002),
    ("orphan final continuation", client_frame(CONT, b"x", fin=True), 1002),
    ("text during fragments", client_frame(TEXT, b"a", fin=False) + client_frame(TEXT, b"b"), 1002),
    (
        "binary during fragments",
        client_frame(BINARY, b"a", fin=False) + client_frame(BINARY, b"b", fin=False),
        1002,
    ),
    (
        "continuation after end",
        client_frame(TEXT, b"a", fin=False) + client_frame(CONT, b"b") + client_frame(CONT, b"c"),
        1002,
    ),
    ("64-bit length with MSB", b"\x82\xff" + (2**63 + 5).to_bytes(8, "big") + MASK, 1002),
    ("invalid utf-8", client_frame(TEXT, b"\xff"), 1007),
    ("truncated utf-8", client_frame(TEXT, b"a\xc3"), 1007),
    ("surrogate utf-8", client_frame(TEXT, b"\xed\xa0\x80"), 1007),
    ("overlong utf-8", client_frame(TEXT, b"\xc0\xaf"), 1007),
    (
        "invalid utf-8 in fragments",
        client_frame(TEXT, b"ok", fin=False) + client_frame(CONT, b"\xc3", fin=True),
        1007,
    ),
    ("too big", client_frame(BINARY, b"x" * 101), 1009),
    ("too big text", client_frame(TEXT, b"x" * 200), 1009),
    ("too big 64-bit", client_frame(BINARY, b"x" * 70000), 1009),
    (
        "too big fragmented",
        client_frame(TEXT, b"x" * 60, fin=False) + client_frame(CONT, b"x" * 41),
        1009,
    ),
]


@pytest.mark.parametrize(
    "data, close_code", [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS]
)
def test_violations(codec, data, close_code):
    with pytest.raises(WebSocketError) as info:
        codec.websocket.FrameReader(max_message_size=100).feed(data)
    assert info.value.close_code == close_code
    assert str(info.value)
    # same when fed byte by byte
    reader = codec.websocket.FrameReader(max_message_size=100)
    with pytest.raises(WebSocketError) as info:
        for i in range(len(data)):
            reader.feed(data[i : i + 1])
    assert info.value.close_code == close_code


@pytest.mark.parametrize(
    "header",
    [
        b"\x82\xfe\x00\x65",  # 101 bytes, 16-bit length
        b"\x82\xff\x00\x00\x00\x00\x00\x00\x00\x65",  # 101 bytes, 64-bit length
        b"\x82\xff\x00\x00\x01\x00\x00\x00\x00\x00",  # 1 TiB
        b"\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff",  # 2**63 - 1
    ],
)
def test_too_big_detected_from_header(codec, header):
    # 1009 from the header alone, without buffering (or waiting for) the payload
    reader = codec.websocket.FrameReader(max_message_size=100)
    with pytest.raises(WebSocketError) as info:
        reader.feed(header + MASK)
    assert info.value.close_code == 1009
    reader = codec.websocket.FrameReader(max_message_size=100)
    with pytest.raises(WebSocketError) as info:
        reader.feed(header)
    assert info.value.close_code == 1009


def test_max_message_size_boundary(codec):
    ws = codec.websocket
    reader = ws.FrameReader(max_message_size=100)
    assert reader.feed(client_frame(BINARY, b"x" * 100)) == [(BINARY, b"x" * 100)]
    data = client_frame(TEXT, b"x" * 50, fin=False) + client_frame(CONT, b"y" * 50)
    assert reader.feed(data) == [(TEXT, "x" * 50 + "y" * 50)]
    # control frames do not count towards the message
    data = (
        client_frame(TEXT, b"x" * 60, fin=False)
        + client_frame(PING, b"p" * 100)
        + client_frame(CONT, b"y" * 40)
    )
    assert reader.feed(data) == [(PING, b"p" * 100), (TEXT, "x" * 60 + "y" * 40)]


# --- reading: valid streams --------------------------------------------------------------------


def test_control_frames_between_fragments(codec):
    reader = codec.websocket.FrameReader()
    assert reader.feed(client_frame(TEXT, "héllo ".encode(), fin=False)) == []
    assert reader.feed(client_frame(PING, b"1")) == [(PING, b"1")]
    assert reader.feed(client_frame(CONT, b"wor", fin=False)) == []
    assert reader.feed(client_frame(PONG, b"")) == [(PONG, b"")]
    assert reader.feed(client_frame(CONT, b"ld")) == [(TEXT, "héllo world")]
    stream = (
        client_frame(BINARY, b"\x00", fin=False)
        + client_frame(CLOSE, b"\x03\xe8")
        + client_frame(CONT, b"\x01", fin=False)
        + client_frame(CONT, b"")
        + client_frame(BINARY, b"next")
    )
    assert reader.feed(stream) == [(CLOSE, b"\x03\xe8"), (BINARY, b"\x00\x01"), (BINARY, b"next")]


def test_utf8_split_across_fragments(codec):
    reader = codec.websocket.FrameReader()
    raw = "a€😀b".encode()
    data = b"".join(
        client_frame(CONT if i else TEXT, raw[i : i + 1], fin=i == len(raw) - 1)
        for i in range(len(raw))
    )
    assert reader.feed(data) == [(TEXT, "a€😀b")]


def test_invalid_utf8_fails_fast(codec):
    # the bad fragment is rejected before the message ends
    reader = codec.websocket.FrameReader()
    assert reader.feed(client_frame(TEXT, b"ok", fin=False)) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(CONT, b"\xff", fin=False))
    assert info.value.close_code == 1007


def test_empty_messages(codec):
    reader = codec.websocket.FrameReader()
    data = (
        client_frame(TEXT, b"")
        + client_frame(BINARY, b"")
        + client_frame(TEXT, b"", fin=False)
        + client_frame(CONT, b"")
    )
    assert reader.feed(data) == [(TEXT, ""), (BINARY, b""), (TEXT, "")]


def test_partial_frames_and_input_types(codec):
    ws = codec.websocket
    frames = [client_frame(TEXT, b"x" * n) for n in (0, 5, 125, 126, 300, 65535, 65536)]
    stream = b"".join(frames)
    expected = [(TEXT, "x" * n) for n in (0, 5, 125, 126, 300, 65535, 65536)]
    assert ws.FrameReader(max_message_size=70000).feed(stream) == expected
    assert ws.FrameReader(max_message_size=70000).feed(bytearray(stream)) == expected
    assert ws.FrameReader(max_message_size=70000).feed(memoryview(stream)) == expected
    # byte by byte through the headers, then larger pieces
    reader = ws.FrameReader(max_message_size=70000)
    out = []
    for i in range(400):
        out.extend(reader.feed(stream[i : i + 1]))
    out.extend(reader.feed(memoryview(stream)[400:1000]))
    out.extend(reader.feed(bytearray(stream[1000:])))
    assert out == expected
    assert reader.feed(b"") == []


def test_unmasked_allowed_when_not_required(codec):
    reader = codec.websocket.FrameReader(require_mask=False)
    data = client_frame(TEXT, b"a", mask=None) + client_frame(BINARY, b"b")
    assert reader.feed(data) == [(TEXT, "a"), (BINARY, b"b")]


# --- fragments per message (ws's maxFragments) -------------------------------------------------


def fragmented(opcode, pieces, mask=MASK):
    """One message sent as ``len(pieces)`` frames."""
    return b"".join(
        client_frame(CONT if i else opcode, piece, fin=i == len(pieces) - 1, mask=mask)
        for i, piece in enumerate(pieces)
    )


def test_max_fragments_default_is_ws_server_default(codec):
    ws = codec.websocket
    assert ws.MAX_FRAGMENTS == 16384  # ws 8.21's WebSocketServer maxFragments
    assert ws.FrameReader().max_fragments == 16384
    assert ws.FrameReader(max_fragments=3).max_fragments == 3


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_max_fragments_boundary(codec, opcode):
    ws = codec.websocket
    reader = ws.FrameReader(max_fragments=5)
    expected = (opcode, "abbbc" if opcode == TEXT else b"abbbc")
    # exactly 5 frames, twice: the count starts again with each message; pings do not count,
    # nor do unfragmented messages
    data = fragmented(opcode, [b"a", b"b", b"b", b"b", b"c"])
    assert reader.feed(data) == [expected]
    assert reader.feed(data + client_frame(opcode, b"single") * 10)[0] == expected
    stream = (
        client_frame(opcode, b"a", fin=False)
        + client_frame(PING, b"1")
        + b"".join(client_frame(CONT, b"b", fin=False) + client_frame(PONG, b"") for _ in range(3))
        + client_frame(CONT, b"c")
    )
    assert reader.feed(stream) == [(PING, b"1"), *[(PONG, b"")] * 3, expected]
    # a sixth frame: 1008, from its header alone (its payload is not waited for)
    reader = ws.FrameReader(max_fragments=5)
    five = client_frame(opcode, b"a", fin=False) + client_frame(CONT, b"b", fin=False) * 4
    assert reader.feed(five) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(CONT, b"last")[:2])
    assert info.value.close_code == 1008
    assert "5 fragments" in str(info.value)


def test_max_fragments_one_refuses_every_fragmented_message(codec):
    reader = codec.websocket.FrameReader(max_fragments=1)
    assert reader.feed(client_frame(TEXT, b"whole") * 3) == [(TEXT, "whole")] * 3
    assert reader.feed(client_frame(BINARY, b"first", fin=False)) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(client_frame(CONT, b"second"))
    assert info.value.close_code == 1008


@pytest.mark.parametrize("piece", [b"", b"x"], ids=["empty", "one-byte"])
def test_fragment_flood_is_refused_with_1008(codec, piece):
    # the floods (1,000,000 empty continuation frames, 100,000 one-byte fragments) end at
    # the 16385th frame with the default bound, whatever the chunking
    ws = codec.websocket
    frame = client_frame(CONT, piece, fin=False)
    at_bound = client_frame(TEXT, piece, fin=False) + frame * (ws.MAX_FRAGMENTS - 1)
    reader = ws.FrameReader()
    assert reader.feed(at_bound) == []
    with pytest.raises(WebSocketError) as info:
        reader.feed(frame * 1000)
    assert info.value.close_code == 1008
    flood = at_bound + frame * 1000
    reader = ws.FrameReader()
    with pytest.raises(WebSocketError) as info:
        for i in range(0, len(flood), 4093):
            reader.feed(flood[i : i + 4093])
    assert info.value.close_code == 1008
    # a message of exactly the bound's frames is whole
    reader = ws.FrameReader()
    data = at_bound[: -len(frame)] + client_frame(CONT, piece)
    assert reader.feed(data) == [(TEXT, (piece * ws.MAX_FRAGMENTS).decode())]


@pytest.mark.parametrize("value, error", [(0, ValueError), (-1, ValueError), (1.5, TypeError)])
def test_max_fragments_invalid(codec, value, error):
    ws = codec.websocket
    with pytest.raises(error):
        ws.FrameReader(max_fragments=value)
    reader = ws.FrameReader()
    with pytest.raises(error):
        reader.max_fragments = value
    assert reader.max_fragments == ws.MAX_FRAGMENTS
    reader.max_fragments = 2**70  # no effective bound; accepted as an int
    assert reader.max_fragments == 2**70
    assert reader.feed(fragmented(BINARY, [b"a"] * 20)) == [(BINARY, b"a" * 20)]


# --- properties and wsproto cross-checks -------------------------------------------------------

payloads = st.binary(max_size=300)
control = st.tuples(st.sampled_from([PING, PONG]), st.binary(max_size=125))


@st.composite
def message_streams(draw):
    """A list of (opcode, payload, fragment sizes, controls between fragments) items and the
    whole client byte stream with random masks, with the messages the reader must return."""
    items = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just(TEXT), st.text(max_size=200).map(str.encode)),
                st.tuples(st.just(BINARY), payloads),
                control,
            ),
            max_size=8,
        )
    )
    stream = b""
    expected = []
    for opcode, payload in items:
        mask = draw(st.binary(min_size=4, max_size=4))
        if opcode >= 8:
            stream += client_frame(opcode, payload, mask=mask)
            expected.append((opcode, payload))
            continue
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for i, piece in enumerate(pieces):
            stream += client_frame(
                CONT if i else opcode,
                piece,
                fin=i == len(pieces) - 1,
                mask=draw(st.binary(min_size=4, max_size=4)),
            )
            if i < len(pieces) - 1 and draw(st.booleans()):
                ping = draw(control)
                stream += client_frame(ping[0], ping[1], mask=mask)
                expected.append(ping)
        expected.append((opcode, payload.decode() if opcode == TEXT else payload))
    return stream, expected


@settings(max_examples=200, deadline=None)
@given(data=message_streams(), chunk_cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_random_streams_random_chunks(codec, data, chunk_cuts):
    stream, expected = data
    cuts = [c for c in chunk_cuts if c <= len(stream)]
    assert feed_all(codec.websocket.FrameReader(), stream, cuts) == expected


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.one_of(
            st.tuples(st.just("text"), st.lists(st.text(max_size=100), min_size=1, max_size=3)),
            st.tuples(st.just("bytes"), st.lists(payloads, min_size=1, max_size=3)),
            st.tuples(st.just("ping"), st.binary(max_size=125)),
        ),
        max_size=6,
    ),
    chunk_cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_reads_wsproto_client_frames(codec, items, chunk_cuts):
    client = FrameProtocol(client=True, extensions=[])
    stream = b""
    expected = []
    for kind, value in items:
        if kind == "ping":
            stream += bytes(client.ping(value))
            expected.append((PING, value))
            continue
        for i, part in enumerate(value):
            stream += bytes(client.send_data(part, fin=i == len(value) - 1))
        expected.append((TEXT, "".join(value)) if kind == "text" else (BINARY, b"".join(value)))
    stream += bytes(client.close(1000, "done"))
    expected.append((CLOSE, b"\x03\xe8done"))
    cuts = [c for c in chunk_cuts if c <= len(stream)]
    out = feed_all(codec.websocket.FrameReader(), stream, cuts)
    assert out == expected
    assert codec.websocket.parse_close_payload(out[-1][1]) == (1000, "done")


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(
        st.one_of(
            st.tuples(st.just(TEXT), st.text(max_size=300)),
            st.tuples(st.just(BINARY), st.binary(max_size=70000) | st.binary(max_size=200)),
            st.tuples(st.sampled_from([PING, PONG]), st.binary(max_size=125)),
        ),
        max_size=6,
    ),
    close=st.tuples(st.sampled_from([1000, 1001, 1011, 3000, 4999]), st.text(max_size=60)),
)
def test_wsproto_reads_our_frames(codec, items, close):
    ws = codec.websocket
    stream = b""
    for opcode, value in items:
        if opcode == TEXT:
            stream += ws.build_text_frame(value)
        else:
            stream += ws.build_frame(opcode, value)
    stream += ws.build_close_frame(*close)
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(stream)
    frames = list(client.received_frames())
    assert len(frames) == len(items) + 1
    for frame, (opcode, value) in zip(frames, items):
        assert frame.opcode == Opcode(opcode)
        assert frame.frame_finished and frame.message_finished
        assert frame.payload == value
    code, reason = frames[-1].payload
    assert frames[-1].opcode == Opcode.CLOSE
    assert code == close[0]
    assert close[1].startswith(reason)
    assert len(reason.encode()) <= 123


def test_wsproto_reads_our_fragments(codec):
    ws = codec.websocket
    stream = (
        ws.build_frame(TEXT, "hé".encode(), fin=False)
        + ws.build_frame(PING, b"p")
        + ws.build_frame(CONT, b"llo", fin=True)
    )
    client = FrameProtocol(client=True, extensions=[])
    client.receive_bytes(stream)
    frames = list(client.received_frames())
    # wsproto labels continuation frames with the message opcode
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.PING, Opcode.TEXT]
    assert not frames[0].message_finished
    assert "".join(f.payload for f in frames if f.opcode != Opcode.PING) == "héllo"
    assert frames[-1].message_finished


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64), cut=st.integers(0, 64))
def test_reader_fuzz(codec, data, cut):
    # garbage only ever raises WebSocketError
    reader = codec.websocket.FrameReader(max_message_size=1000)
    try:
        reader.feed(data[:cut])
        reader.feed(data[cut:])
    except WebSocketError as exc:
        assert exc.close_code in (1002, 1007, 1009)
