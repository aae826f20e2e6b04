"""Engine.IO v3 codec (fastsio.protocol.engineio3): length-prefixed polling payloads counted in UTF-16
code units, ``b4`` + base64 binary, XHR2 binary payloads, and malformed input -> ProtocolError.

Every test runs on each implementation (pure, and the compiled twin fastsio._speedups.engineio3_c:
see tests/codec_impls.py)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsio.protocol.errors import ProtocolError
from tests import codec_impls

eio3 = codec_impls.engineio3_impl  # the fixture: the Engine.IO v3 codec module under test

EMOJI = "\U0001f600"  # one code point, two UTF-16 code units (a surrogate pair)


# --------------------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    ("text", "units"),
    [
        ("", 0),
        ("hello", 5),
        ("h\u00e9llo", 5),  # BMP: one unit each
        ("\u2603\u2028", 2),
        (EMOJI, 2),
        ("a" + EMOJI + "b" + EMOJI, 6),
        ("\U0010ffff", 2),
    ],
)
def test_utf16_length(eio3, text, units):
    assert eio3.utf16_length(text) == units
    assert eio3.utf16_length(text) == len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- packets


def test_encode_packet_text_and_binary(eio3):
    assert eio3.encode_packet(eio3.PING) == "2"
    assert eio3.encode_packet(eio3.PONG, "probe") == "3probe"
    assert eio3.encode_packet(eio3.MESSAGE, "hi") == "4hi"
    # binary on a WebSocket: the type is the first byte (unlike v4)
    assert eio3.encode_packet(eio3.MESSAGE, b"\x00\xff") == b"\x04\x00\xff"
    assert eio3.encode_packet(eio3.MESSAGE, bytearray(b"ab"), supports_binary=False) == "b4YWI="
    with pytest.raises(ProtocolError):
        eio3.encode_packet(eio3.PING, b"x")
    with pytest.raises(ProtocolError):
        eio3.encode_packet(9)
    with pytest.raises(TypeError):
        eio3.encode_packet(eio3.MESSAGE, 3)  # type: ignore[arg-type]


def test_decode_packet(eio3):
    assert eio3.decode_packet("4hello") == (4, "hello")
    assert eio3.decode_packet("2probe") == (2, "probe")
    assert eio3.decode_packet("b4AAE=") == (4, b"\x00\x01")
    assert eio3.decode_packet(b"\x04\x00\x01") == (4, b"\x00\x01")
    assert eio3.decode_packet(b"\x04") == (4, b"")


@pytest.mark.parametrize("raw", ["", "9", "x", "b", "b2AA==", "b4!!", b"", b"\x02abc", b"\x09"])
def test_decode_packet_malformed(eio3, raw):
    with pytest.raises(ProtocolError):
        eio3.decode_packet(raw)


# --------------------------------------------------------------------------- text payloads


def test_encode_text_payload_counts_utf16_units(eio3):
    assert eio3.encode_payload(["4hello"]) == "6:4hello"
    assert eio3.encode_payload(["4" + EMOJI]) == "3:4" + EMOJI
    assert eio3.encode_payload(["3", "4a" + EMOJI + "b"]) == "1:35:4a" + EMOJI + "b"
    assert eio3.encode_payload(["0" + '{"sid":"x"}']) == '12:0{"sid":"x"}'
    # a binary message in a text payload: "b4" + base64, length of that string
    assert eio3.encode_payload([b"\x01\x02\x03"]) == "6:b4AQID"
    assert eio3.encode_payload(["4x", b"\x00"], supports_binary=False) == "2:4x6:b4AA=="


def test_decode_text_payload(eio3):
    assert eio3.decode_payload(b"6:4hello1:2") == [(4, "hello"), (2, "")]
    body = ("3:4" + EMOJI + "5:4a\u00e9" + EMOJI).encode()
    assert eio3.decode_payload(body) == [(4, EMOJI), (4, "a\u00e9" + EMOJI)]
    assert eio3.decode_payload("6:b4AQID") == [(4, b"\x01\x02\x03")]
    assert eio3.decode_payload(b"2:b4") == [(4, b"")]
    # an empty packet ("0:") is skipped, as engine.io-parser does
    assert eio3.decode_payload(b"0:1:6") == [(6, "")]
    # a ":" inside a packet is data, not a separator
    assert eio3.decode_payload(b'7:42["a"]') == [(4, '2["a"]')]
    assert eio3.decode_payload(b"4:4a:b") == [(4, "a:b")]


@pytest.mark.parametrize(
    "body",
    [
        b"",  # empty body
        b"4hello",  # no length at all
        b"6:4hell",  # length past the end
        b"5:4hello",  # length short: "o" is left, not a length
        b":4",  # empty length
        b"-1:4",  # sign
        b"+6:4hello",
        b" 6:4hello",
        b"1.5:4",
        b"6",  # length without colon
        b"6:4hello3",  # trailing length without colon
        b"99999999999:4",  # too many digits
        b"1:9",  # unknown packet type
        b"3:b4!",  # bad base64
        b"3:b2A",  # base64 packets must be MESSAGEs
        b"\xff\xfe",  # not UTF-8
        "2:4\U0001f600".encode(),  # length 2 ends inside the surrogate pair
        "1:\U0001f600".encode(),
        ("\u00e9" + "1:4").encode(),  # non-ASCII where a length should be
        "\uff16:4hello".encode(),  # a full-width digit is not a digit here
        "\u0666:4hello".encode(),  # nor is an Arabic-Indic one
    ],
)
def test_decode_text_payload_malformed(eio3, body):
    with pytest.raises(ProtocolError):
        eio3.decode_payload(body)


def test_decode_payload_max_packets(eio3):
    assert len(eio3.decode_payload(b"1:21:21:2", max_packets=3)) == 3
    with pytest.raises(ProtocolError):
        eio3.decode_payload(b"1:21:21:2", max_packets=2)
    with pytest.raises(ProtocolError):
        eio3.decode_payload(eio3.encode_payload(["2"] * 3, True), max_packets=2)


# --------------------------------------------------------------------------- binary payloads


def test_encode_binary_payload_layout(eio3):
    # engine.io-parser 2.x encodePayloadAsBinary: <0|1><digits as bytes><255><data>
    body = eio3.encode_payload(["4h\u00e9", b"\x00\xff"], supports_binary=True)
    assert body == b"\x00\x04\xff4h\xc3\xa9" + b"\x01\x03\xff\x04\x00\xff"
    # no binary message: a text payload even when binary is supported
    assert eio3.encode_payload(["4hi"], supports_binary=True) == "3:4hi"
    long = b"x" * 1234
    assert eio3.encode_payload([long], True) == b"\x01\x01\x02\x03\x05\xff\x04" + long


def test_decode_binary_payload(eio3):
    body = b"\x00\x04\xff4h\xc3\xa9" + b"\x01\x03\xff\x04\x00\xff" + b"\x00\x01\xff2"
    assert eio3.decode_payload(body, binary=True) == [(4, "h\u00e9"), (4, b"\x00\xff"), (2, "")]
    # a text packet inside a binary payload may itself be base64 binary
    assert eio3.decode_payload(b"\x00\x06\xffb4AQID", binary=True) == [(4, b"\x01\x02\x03")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x02\x01\xff4",  # kind neither 0 nor 1
        b"\x00\x01",  # no 255 after the length
        b"\x00\xff4",  # empty length
        b"\x00\x0a\xff4",  # "digit" 10
        b"\x00\x05\xff4ab",  # past the end
        b"\x00" + bytes([9] * 11) + b"\xff",  # too many digits
        b"\x00\x02\xff4\xff",  # invalid UTF-8
        b"\x01\x02\xff\x02a",  # binary packet that is not a MESSAGE
        b"\x01\x00\xff",  # empty binary packet
        b"\x00\x01\xff9",  # unknown type
    ],
)
def test_decode_binary_payload_malformed(eio3, body):
    with pytest.raises(ProtocolError):
        eio3.decode_payload(body, binary=True)


# --------------------------------------------------------------------------- properties

packet_text = st.text(max_size=40)  # any code points, astral ones included
items = st.lists(
    st.one_of(
        st.tuples(st.sampled_from("0123456"), packet_text).map(lambda t: t[0] + t[1]),
        st.binary(max_size=40),
    ),
    min_size=1,
    max_size=8,
)


def _expected(item):
    if isinstance(item, bytes):
        return (4, item)
    return (int(item[0]), item[1:])


@settings(max_examples=300, deadline=None)
@given(items, st.booleans())
def test_payload_round_trip(eio3, packets, supports_binary):
    # strings with lone surrogates cannot be sent as UTF-8 text; hypothesis' text() may make them
    packets = [p for p in packets if isinstance(p, bytes) or not _has_surrogate(p)] or ["6"]
    body = eio3.encode_payload(packets, supports_binary)
    binary = isinstance(body, bytes)
    wire = body if binary else body.encode("utf-8")
    assert eio3.decode_payload(wire, binary=binary) == [_expected(p) for p in packets]


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_decode_never_crashes(eio3, body, binary):
    try:
        packets = eio3.decode_payload(body, binary=binary)
    except ProtocolError:
        return
    for packet_type, data in packets:
        assert 0 <= packet_type <= 6
        assert isinstance(data, (str, bytes))


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(["1", "2", ":", "4", "b", EMOJI, "\u00e9", "x"]), max_size=30)
)
def test_decode_text_never_crashes(eio3, text):
    try:
        eio3.decode_payload(text.encode("utf-8"))
    except ProtocolError:
        pass


def test_base64_packet_in_text_payload_matches_node_format(eio3):
    data = bytes(range(256))
    encoded = "b4" + base64.b64encode(data).decode()
    assert eio3.encode_payload([data]) == f"{len(encoded)}:{encoded}"
