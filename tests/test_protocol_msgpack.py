"""The msgpack parser (fastsio.protocol.msgpack_parser), compatible with socket.io-msgpack-parser:
round trips, notepack.io's extension types, and malformed input -> ProtocolError, never a crash.

Every test that takes ``mp`` runs on each implementation (pure, and the compiled twin
fastsio._speedups.msgpack_parser_c: see tests/codec_impls.py)."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

msgpack = pytest.importorskip("msgpack")

from fastsio.parser import JsonParser, encoder_of, resolve_parser
from fastsio.protocol.errors import ProtocolError
from fastsio.protocol.socketio import RESERVED_EVENTS, Packet
from tests import codec_impls

mp = codec_impls.msgpack_parser_impl  # the fixture: the msgpack parser module under test


def packed(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def roundtrip(mp, packet_type, nsp="/", data=None, ack_id=None):
    (raw,) = mp.encode_packet(packet_type, nsp, data, ack_id)
    assert isinstance(raw, bytes)
    return mp.decode_packet(raw)


# --------------------------------------------------------------------------- encoding


def test_encoded_map_is_what_the_npm_parser_writes(mp):
    (raw,) = mp.encode_packet(2, "/", ["ev", 1, b"\x00"], 7)
    assert msgpack.unpackb(raw) == {"type": 2, "data": ["ev", 1, b"\x00"], "nsp": "/", "id": 7}
    # no "id" key without an ack id, no "data" key without data: the npm decoder refuses null
    assert msgpack.unpackb(mp.encode_packet(1, "/chat")[0]) == {"type": 1, "nsp": "/chat"}
    assert msgpack.unpackb(mp.encode_packet(0, "", {"sid": "x"})[0]) == {
        "type": 0,
        "data": {"sid": "x"},
        "nsp": "/",
    }


def test_binary_types_become_event_and_ack(mp):
    # socket.io-msgpack-parser knows types 0-4 only; binary is inline
    assert msgpack.unpackb(mp.encode_packet(5, "/", ["b", b"x"])[0])["type"] == 2
    assert msgpack.unpackb(mp.encode_packet(6, "/", [b"x"], 3)[0])["type"] == 3


def test_encode_errors(mp):
    with pytest.raises(ProtocolError):
        mp.encode_packet(7)
    with pytest.raises(ProtocolError):
        mp.encode_packet(2, "chat", ["x"])
    with pytest.raises(ProtocolError):
        mp.encode_packet(2, "/", ["x"], -1)
    with pytest.raises(ProtocolError):
        mp.encode_packet(2, "/", ["x"], 2**53)
    with pytest.raises(ProtocolError):
        mp.encode_packet(0, "/", None, 1)
    with pytest.raises(TypeError):
        mp.encode_packet(2, "/", ["x"], "1")
    with pytest.raises(TypeError):
        mp.encode_packet(2, "/", ["x", object()])
    with pytest.raises(TypeError):
        mp.encode_packet(2, "/", ["x", 2**70])
    assert mp.encode_packet(2, "/", ["x"], True) == mp.encode_packet(2, "/", ["x"], 1)


# --------------------------------------------------------------------------- round trips

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.text(min_size=1, max_size=10).filter(lambda e: e not in RESERVED_EVENTS),
    st.lists(json_like, max_size=4),
    st.none() | st.integers(min_value=0, max_value=2**53 - 1),
    st.sampled_from(["/", "/chat", "/a/b"]),
)
def test_event_round_trip(mp, event, args, ack_id, nsp):
    assert roundtrip(mp, 2, nsp, [event, *args], ack_id) == Packet(2, nsp, [event, *args], ack_id)


def test_other_round_trips(mp):
    assert roundtrip(mp, 0, "/", {"token": "x"}) == Packet(0, "/", {"token": "x"})
    assert roundtrip(mp, 0, "/admin") == Packet(0, "/admin")
    assert roundtrip(mp, 1, "/admin") == Packet(1, "/admin")
    assert roundtrip(mp, 3, "/", [], 4) == Packet(3, "/", [], 4)
    assert roundtrip(mp, 3, "/", [b"\x00", {"a": [b""]}], 0) == Packet(
        3, "/", [b"\x00", {"a": [b""]}], 0
    )
    assert roundtrip(mp, 4, "/", {"message": "no"}) == Packet(4, "/", {"message": "no"})
    assert roundtrip(mp, 4, "/", "Invalid namespace") == Packet(4, "/", "Invalid namespace")
    # tuples, bytearrays and memoryviews go out as arrays and bin
    assert roundtrip(mp, 2, "/", ("t", bytearray(b"ab"), memoryview(b"cd"))).data == [
        "t",
        b"ab",
        b"cd",
    ]


# --------------------------------------------------------------------------- notepack.io ext types


def test_notepack_undefined_date_and_arraybuffer(mp):
    # what notepack.io writes for: ["ev", undefined, new Date(1700000000123), ArrayBuffer [0],
    # an 8-byte ArrayBuffer, a 3-byte ArrayBuffer]
    millis = 1700000000123
    raw = (
        b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x96\xa2ev"
        + b"\xd4\x00\x00"  # fixext 1, type 0: undefined
        + b"\xd7\x00"
        + struct.pack(">q", millis)  # fixext 8, type 0: Date
        + b"\xc7\x01\x00\x00"  # ext 8, 1 byte, type 0: ArrayBuffer [0]
        + b"\xc7\x08\x00"
        + b"\x01" * 8  # ext 8, 8 bytes: ArrayBuffer
        + b"\xc7\x03\x00abc"  # ext 8, 3 bytes: ArrayBuffer
    )
    packet = mp.decode_packet(raw)
    when = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)
    assert packet.data == ["ev", None, when, b"\x00", b"\x01" * 8, b"abc"]
    # the usual case needs no second pass: ArrayBuffers of other lengths are bytes straight away
    assert mp.decode_packet(
        b"\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x92\xa2ev\xc7\x03\x00abc"
    ).data == [
        "ev",
        b"abc",
    ]


def test_undefined_id_and_extra_keys_are_ignored(mp):
    # socket.io-client writes {type, data, options, nsp} and may leave id undefined
    raw = (
        b"\x85\xa4type\x02\xa4data\x91\xa1e\xa7options\x81\xa8compress\xc3"
        + b"\xa3nsp\xa1/\xa2id\xd4\x00\x00"
    )
    assert mp.decode_packet(raw) == Packet(2, "/", ["e"], None)


def test_datetime_is_sent_as_a_date(mp):
    when = datetime.datetime(2020, 1, 2, 3, 4, 5, 678000, tzinfo=datetime.timezone.utc)
    (raw,) = mp.encode_packet(2, "/", ["t", when, datetime.datetime(1970, 1, 1, 0, 0, 1)])
    assert b"\xd7\x00" + struct.pack(">q", 1577934245678) in raw
    assert b"\xd7\x00" + struct.pack(">q", 1000) in raw
    assert mp.decode_packet(raw).data == [
        "t",
        when,
        datetime.datetime.fromtimestamp(1, datetime.timezone.utc),
    ]


def test_other_extension_types_are_type_and_bytes(mp):
    raw = packed({"type": 2, "nsp": "/", "data": ["e", msgpack.ExtType(5, b"xyz")]})
    assert mp.decode_packet(raw).data == ["e", [5, b"xyz"]]


# --------------------------------------------------------------------------- malformed input

BAD = [
    b"",
    b"\xc1",  # never used
    b"\x91",  # truncated array
    packed({"type": 2, "nsp": "/", "data": ["e"]}) + b"\x00",  # extra data
    packed([2, "/", ["e"]]),  # not a map
    packed("text"),
    packed({}),
    packed({"type": "2", "nsp": "/", "data": ["e"]}),
    packed({"type": 5, "nsp": "/", "data": ["e"]}),  # no BINARY_EVENT in this parser
    packed({"type": 7, "nsp": "/", "data": ["e"]}),
    packed({"type": -1, "nsp": "/"}),
    packed({"type": True, "nsp": "/"}),
    packed({"type": 2, "data": ["e"]}),  # no nsp
    packed({"type": 2, "nsp": 2, "data": ["e"]}),
    packed({"type": 2, "nsp": "/"}),  # EVENT without data
    packed({"type": 2, "nsp": "/", "data": 4}),
    packed({"type": 2, "nsp": "/", "data": []}),
    packed({"type": 2, "nsp": "/", "data": [1]}),
    packed({"type": 2, "nsp": "/", "data": ["disconnect"]}),  # reserved
    packed({"type": 2, "nsp": "/", "data": ["e"], "id": "a"}),
    packed({"type": 2, "nsp": "/", "data": ["e"], "id": -1}),
    packed({"type": 2, "nsp": "/", "data": ["e"], "id": 1.5}),
    packed({"type": 2, "nsp": "/", "data": ["e"], "id": 2**53}),
    packed({"type": 3, "nsp": "/", "data": []}),  # ACK without id
    packed({"type": 3, "nsp": "/", "data": {}, "id": 1}),
    packed({"type": 0, "nsp": "/", "data": []}),
    packed({"type": 0, "nsp": "/", "id": 1}),
    packed({"type": 1, "nsp": "/", "data": "x"}),
    packed({"type": 4, "nsp": "/", "data": []}),
    b"\x81\x01\x02",  # integer map key
    b"\x81\xa1\xff\x02",  # invalid UTF-8
    b"\xdd\xff\xff\xff\xff",  # array claiming 4 billion items
    b"\x91" * 100_000,  # nested past any limit
    b"\x91" * 600 + b"\xd4\x00\x00",  # deep, through the exact reader
    b"\x81\xa4type\xd7\x00" + struct.pack(">q", 2**62),  # Date out of range
    b"\x82\xa4type\x02\xa3nsp\xd4\x00\x00",  # nsp undefined
]


@pytest.mark.parametrize("raw", BAD, ids=range(len(BAD)))
def test_malformed_input(mp, raw):
    with pytest.raises(ProtocolError):
        mp.decode_packet(raw)


def test_text_is_refused(mp):
    with pytest.raises(ProtocolError):
        mp.PacketDecoder().feed('2["e"]')


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_crash(mp, raw):
    try:
        mp.decode_packet(raw)
    except ProtocolError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=0, max_value=200))
def test_mutated_packets_never_crash(mp, noise, position):
    raw = bytearray(mp.encode_packet(2, "/chat", ["ev", {"a": [1, 2.5, b"\x00"]}, None], 3)[0])
    position %= len(raw)
    raw[position : position + len(noise)] = noise
    try:
        mp.decode_packet(bytes(raw))
    except ProtocolError:
        pass


# --------------------------------------------------------------------------- the parser objects


def test_resolve_parser(mp):
    assert isinstance(resolve_parser("json"), JsonParser)
    assert isinstance(resolve_parser(None), JsonParser)
    assert resolve_parser("msgpack").name == "msgpack"
    with pytest.raises(ValueError):
        resolve_parser("yaml")
    with pytest.raises(TypeError):
        resolve_parser(object())

    class Custom:
        def encode(self, packet):
            return [f"{packet.type}{packet.nsp}"]

        def decoder(self):
            return mp.PacketDecoder()

    custom = Custom()
    assert resolve_parser(custom) is custom
    assert encoder_of(custom)(2, "/x", ["e"], None) == ["2/x"]


def test_parser_objects_agree_with_their_codecs(mp):
    msgpack_parser = resolve_parser("msgpack")
    packet = Packet(2, "/", ["e", b"\x01"], 5)
    assert msgpack_parser.encode(packet) == mp.encode_packet(2, "/", ["e", b"\x01"], 5)
    assert msgpack_parser.decoder().feed(msgpack_parser.encode(packet)[0]) == packet
    json_parser = JsonParser()
    parts = json_parser.encode(packet)
    decoder = json_parser.decoder()
    assert [decoder.feed(part) for part in parts][-1].data == ["e", b"\x01"]
