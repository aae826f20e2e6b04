"""Engine.IO v4 packet and polling payload codec: spec vectors, malformed input, round trips."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsio.protocol.errors import ProtocolError
from tests import codec_impls

codec = codec_impls.codec  # the fixture: every test runs on each implementation


OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = range(7)


def test_constants(codec):
    eio = codec.engineio
    assert (eio.OPEN, eio.CLOSE, eio.PING, eio.PONG) == (0, 1, 2, 3)
    assert (eio.MESSAGE, eio.UPGRADE, eio.NOOP) == (4, 5, 6)


# --- single packets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "packet_type, data, expected",
    [
        (
            OPEN,
            '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}',
            '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}',
        ),
        (CLOSE, None, "1"),
        (PING, None, "2"),
        (PING, "probe", "2probe"),
        (PONG, "probe", "3probe"),
        (MESSAGE, "hello", "4hello"),
        (MESSAGE, "", "4"),
        (MESSAGE, "€ ünïcode", "4€ ünïcode"),
        (UPGRADE, None, "5"),
        (NOOP, None, "6"),
        (MESSAGE, b"\x01\x02\x03", b"\x01\x02\x03"),
        (MESSAGE, bytearray(b"\x00\xff"), b"\x00\xff"),
        (MESSAGE, memoryview(b"abc"), b"abc"),
    ],
)
def test_encode_packet(codec, packet_type, data, expected):
    result = codec.engineio.encode_packet(packet_type, data)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("packet_type", [-1, 7, 10])
def test_encode_packet_unknown_type(codec, packet_type):
    with pytest.raises(ProtocolError):
        codec.engineio.encode_packet(packet_type, "x")


@pytest.mark.parametrize("packet_type", [OPEN, CLOSE, PING, PONG, UPGRADE, NOOP])
def test_encode_packet_binary_only_for_message(codec, packet_type):
    with pytest.raises(ProtocolError):
        codec.engineio.encode_packet(packet_type, b"\x01")


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("4hello", (MESSAGE, "hello")),
        ("4", (MESSAGE, "")),
        ("2probe", (PING, "probe")),
        ("3", (PONG, "")),
        ("5", (UPGRADE, "")),
        ("6", (NOOP, "")),
        ("1", (CLOSE, "")),
        ('0{"sid":"x"}', (OPEN, '{"sid":"x"}')),
        ("4€\x00", (MESSAGE, "€\x00")),
        (b"\x01\x02\x03", (MESSAGE, b"\x01\x02\x03")),
        (b"", (MESSAGE, b"")),
        (bytearray(b"\x04"), (MESSAGE, b"\x04")),
        ("bAQIDBA==", (MESSAGE, b"\x01\x02\x03\x04")),
        ("b", (MESSAGE, b"")),
    ],
)
def test_decode_packet(codec, raw, expected):
    result = codec.engineio.decode_packet(raw)
    assert result == expected
    assert type(result[1]) is type(expected[1])


@pytest.mark.parametrize("raw", ["", "7", "9hello", "x", "a4", " 4", "bA", "b@@@@", "bAQ=D"])
def test_decode_packet_malformed(codec, raw):
    with pytest.raises(ProtocolError):
        codec.engineio.decode_packet(raw)


# --- polling payloads --------------------------------------------------------------------------


def test_encode_payload_spec_vector(codec):
    # engine.io-protocol v4, "HTTP long-polling": 4hello\x1e4€ and a binary message
    assert codec.engineio.encode_payload(["4hello", "4€"]) == "4hello\x1e4€"
    assert codec.engineio.encode_payload(["4hello", b"\x01\x02\x03\x04"]) == "4hello\x1ebAQIDBA=="
    assert codec.engineio.encode_payload(["6"]) == "6"
    assert codec.engineio.encode_payload([b""]) == "b"
    assert codec.engineio.encode_payload([bytearray(b"\xff"), "2"]) == "b/w==\x1e2"


def test_decode_payload_spec_vector(codec):
    eio = codec.engineio
    assert eio.decode_payload("4hello\x1e4€") == [(MESSAGE, "hello"), (MESSAGE, "€")]
    assert eio.decode_payload("4hello\x1e4€".encode()) == [(MESSAGE, "hello"), (MESSAGE, "€")]
    assert eio.decode_payload(b"4hello\x1ebAQIDBA==") == [
        (MESSAGE, "hello"),
        (MESSAGE, b"\x01\x02\x03\x04"),
    ]
    assert eio.decode_payload(b"1") == [(CLOSE, "")]
    assert eio.decode_payload("2probe\x1e3\x1e5\x1e6") == [
        (PING, "probe"),
        (PONG, ""),
        (UPGRADE, ""),
        (NOOP, ""),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        "",
        b"4a\x1e",
        b"\x1e4a",
        b"4a\x1e\x1e4b",
        b"\xff\xfe",
        b"4\xc3",  # truncated UTF-8
        b"4a\x1e7b",
        b"4a\x1ex",
        b"bAQ",
        b"4a\x1eb!!!!",
        b"b AQID",
    ],
)
def test_decode_payload_malformed(codec, body):
    with pytest.raises(ProtocolError):
        codec.engineio.decode_payload(body)


def test_decode_payload_max_packets(codec):
    eio = codec.engineio
    body = "\x1e".join(["4x"] * 5)
    assert len(eio.decode_payload(body, max_packets=5)) == 5
    assert len(eio.decode_payload(body, max_packets=None)) == 5
    with pytest.raises(ProtocolError):
        eio.decode_payload(body, max_packets=4)
    with pytest.raises(ProtocolError):
        eio.decode_payload("4x", max_packets=0)


def test_matches_python_engineio(codec):
    from engineio import packet as pe
    from engineio import payload as pp

    eio = codec.engineio
    packets = [
        pe.Packet(pe.MESSAGE, "hello"),
        pe.Packet(pe.MESSAGE, b"\x00\x01\xfe"),
        pe.Packet(pe.PING),
        pe.Packet(pe.NOOP),
    ]
    theirs = pp.Payload(packets=packets).encode()
    ours = eio.encode_payload(
        [
            eio.encode_packet(MESSAGE, "hello"),
            eio.encode_packet(MESSAGE, b"\x00\x01\xfe"),
            eio.encode_packet(PING),
            eio.encode_packet(NOOP),
        ]
    )
    assert ours == theirs
    decoded = pp.Payload(encoded_payload=ours).packets
    assert [(p.packet_type, p.data) for p in decoded] == [
        (MESSAGE, "hello"),
        (MESSAGE, b"\x00\x01\xfe"),
        (PING, ""),
        (NOOP, ""),
    ]


# --- properties --------------------------------------------------------------------------------

text_data = st.text().filter(lambda s: "\x1e" not in s)
text_packet = st.tuples(st.integers(0, 6), text_data)
binary_packet = st.binary().map(lambda b: (MESSAGE, b))
packet_lists = st.lists(st.one_of(text_packet, binary_packet), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(packets=packet_lists, as_bytes=st.booleans())
def test_payload_round_trip(codec, packets, as_bytes):
    eio = codec.engineio
    encoded = eio.encode_payload([eio.encode_packet(t, d) for t, d in packets])
    assert isinstance(encoded, str)
    body = encoded.encode("utf-8") if as_bytes else encoded
    assert eio.decode_payload(body) == packets
    for t, d in packets:
        # a single packet survives its own encoding (binary only as a raw or base64 message)
        assert eio.decode_packet(eio.encode_packet(t, d)) == (t, d)
        if isinstance(d, bytes):
            assert eio.decode_packet("b" + base64.b64encode(d).decode()) == (MESSAGE, d)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(st.binary(max_size=64), st.text(max_size=64)))
def test_decode_payload_fuzz(codec, body):
    # never anything but ProtocolError on garbage
    try:
        result = codec.engineio.decode_payload(body)
    except ProtocolError:
        return
    assert all(0 <= t <= 6 for t, _ in result)
