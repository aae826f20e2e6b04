"""Socket.IO v5 packet codec: spec vectors, validation, binary reassembly, round trips and a
cross-check against python-socketio's Packet."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsio.protocol.errors import ProtocolError
from tests import codec_impls

codec = codec_impls.codec  # the fixture: every test runs on each implementation


CONNECT, DISCONNECT, EVENT, ACK, CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = range(7)
PH0 = '{"_placeholder":true,"num":0}'


def test_constants(codec):
    sio = codec.socketio
    assert (sio.CONNECT, sio.DISCONNECT, sio.EVENT, sio.ACK) == (0, 1, 2, 3)
    assert (sio.CONNECT_ERROR, sio.BINARY_EVENT, sio.BINARY_ACK) == (4, 5, 6)


def test_packet_object(codec):
    Packet = codec.socketio.Packet
    p = Packet(EVENT, "/", ["a"], 3)
    assert (p.type, p.nsp, p.data, p.id, p.attachments) == (EVENT, "/", ["a"], 3, 0)
    assert p == Packet(EVENT, "/", ["a"], 3, 0)
    assert p != Packet(EVENT, "/x", ["a"], 3, 0)
    assert p != Packet(ACK, "/", ["a"], 3, 0)
    assert "EVENT" in repr(p)
    with pytest.raises(AttributeError):
        p.other = 1  # __slots__


# --- encoding ----------------------------------------------------------------------------------

# the examples of the socket.io-protocol v5 document, and a few more
ENCODE_VECTORS = [
    ((CONNECT, "/", None, None), ["0"]),
    (
        (CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}, None),
        ['0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}'],
    ),
    ((CONNECT, "/", {"token": "123"}, None), ['0{"token":"123"}']),
    ((CONNECT_ERROR, "/", {"message": "Not authorized"}, None), ['4{"message":"Not authorized"}']),
    ((CONNECT_ERROR, "/admin", "Invalid namespace", None), ['4/admin,"Invalid namespace"']),
    ((DISCONNECT, "/admin", None, None), ["1/admin,"]),
    ((DISCONNECT, "/", None, None), ["1"]),
    ((EVENT, "/", ["foo"], None), ['2["foo"]']),
    ((EVENT, "/admin", ["bar"], None), ['2/admin,["bar"]']),
    ((EVENT, "/", ["foo"], 12), ['212["foo"]']),
    ((EVENT, "/", ["chat message", "hello"], None), ['2["chat message","hello"]']),
    ((EVENT, "/admin", ["project:delete", 123], 456), ['2/admin,456["project:delete",123]']),
    ((ACK, "/admin", ["bar"], 13), ['3/admin,13["bar"]']),
    ((ACK, "/admin", [], 456), ["3/admin,456[]"]),
    ((ACK, "/", [], 0), ["30[]"]),
    ((EVENT, "/", ["é", "€", "😀"], None), ['2["é","€","😀"]']),
    ((EVENT, "", ["x"], None), ['2["x"]']),
    ((EVENT, "/", ("t", (1, 2)), None), ['2["t",[1,2]]']),
    ((EVENT, "/", ["a", {1: 2}], None), ['2["a",{"1":2}]']),
    (
        (EVENT, "/", ["baz", b"\x01\x02\x03\x04"], None),
        ['51-["baz",' + PH0 + "]", b"\x01\x02\x03\x04"],
    ),
    ((ACK, "/admin", [b"\x03"], 15), ["61-/admin,15[" + PH0 + "]", b"\x03"]),
    (
        (EVENT, "/", ["x", bytearray(b"ab"), {"k": [memoryview(b"cd")]}, (b"",)], 7),
        [
            '53-7["x",' + PH0 + ',{"k":[{"_placeholder":true,"num":1}]},'
            '[{"_placeholder":true,"num":2}]]',
            b"ab",
            b"cd",
            b"",
        ],
    ),
    ((BINARY_EVENT, "/", ["x"], None), ['50-["x"]']),
    ((BINARY_ACK, "/", [b"z"], 1), ["61-1[" + PH0 + "]", b"z"]),
]


@pytest.mark.parametrize("args, expected", ENCODE_VECTORS)
def test_encode_vectors(codec, args, expected):
    result = codec.socketio.encode_packet(*args)
    assert result == expected
    assert [type(x) for x in result] == [type(x) for x in expected]


def test_encode_keywords(codec):
    enc = codec.socketio.encode_packet
    assert enc(EVENT, data=["a"], ack_id=1) == ['21["a"]']
    assert enc(EVENT, nsp="/n", data=["a"]) == ['2/n,["a"]']


def test_encode_does_not_mutate(codec):
    data = ["ev", {"a": b"1", "b": [b"2", "s"]}, b"3"]
    before = copy.deepcopy(data)
    codec.socketio.encode_packet(EVENT, "/", data)
    assert data == before


@pytest.mark.parametrize("packet_type", [CONNECT, DISCONNECT, CONNECT_ERROR])
def test_encode_binary_not_allowed(codec, packet_type):
    with pytest.raises(ProtocolError):
        codec.socketio.encode_packet(packet_type, "/", {"x": b"1"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"packet_type": 7, "data": ["a"]},
        {"packet_type": -1, "data": ["a"]},
        {"packet_type": EVENT, "data": ["a"], "ack_id": -1},
        {"packet_type": EVENT, "data": ["a"], "ack_id": 2**53},
        {"packet_type": EVENT, "data": ["a"], "nsp": "admin"},
        {"packet_type": EVENT, "data": ["a", b"x"], "nsp": "admin"},
        {"packet_type": CONNECT, "data": {}, "ack_id": 1},
        {"packet_type": DISCONNECT, "ack_id": 1},
        {"packet_type": CONNECT_ERROR, "data": "x", "ack_id": 1},
    ],
)
def test_encode_invalid_arguments(codec, kwargs):
    with pytest.raises(ProtocolError):
        codec.socketio.encode_packet(**kwargs)


def test_encode_ack_id_type(codec):
    with pytest.raises(TypeError):
        codec.socketio.encode_packet(EVENT, "/", ["a"], "12")
    with pytest.raises(TypeError):
        codec.socketio.encode_packet(EVENT, "/", ["a"], 1.0)


def test_encode_unserializable(codec):
    with pytest.raises(TypeError):
        codec.socketio.encode_packet(EVENT, "/", ["a", object()])
    with pytest.raises(TypeError):
        codec.socketio.encode_packet(EVENT, "/", ["a", b"x", object()])


# --- decoding ----------------------------------------------------------------------------------

DECODE_VECTORS = [
    ("0", (CONNECT, "/", None, None, 0)),
    ("0{}", (CONNECT, "/", {}, None, 0)),
    ('0{"token":"123"}', (CONNECT, "/", {"token": "123"}, None, 0)),
    ("0/admin,", (CONNECT, "/admin", None, None, 0)),
    ("0/admin", (CONNECT, "/admin", None, None, 0)),
    (
        '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
        (CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}, None, 0),
    ),
    ("1", (DISCONNECT, "/", None, None, 0)),
    ("1/admin,", (DISCONNECT, "/admin", None, None, 0)),
    ('2["foo"]', (EVENT, "/", ["foo"], None, 0)),
    ('2["chat message","hello"]', (EVENT, "/", ["chat message", "hello"], None, 0)),
    ('2/admin,["bar"]', (EVENT, "/admin", ["bar"], None, 0)),
    ('212["foo"]', (EVENT, "/", ["foo"], 12, 0)),
    ('20["foo"]', (EVENT, "/", ["foo"], 0, 0)),
    ('2/admin,456["project:delete",123]', (EVENT, "/admin", ["project:delete", 123], 456, 0)),
    ('2["é","€",{"k":null}]', (EVENT, "/", ["é", "€", {"k": None}], None, 0)),
    ('2[""]', (EVENT, "/", [""], None, 0)),
    ('2 ["a"] ', (EVENT, "/", ["a"], None, 0)),  # JSON whitespace is JSON
    ('3/admin,13["bar"]', (ACK, "/admin", ["bar"], 13, 0)),
    ("3/admin,456[]", (ACK, "/admin", [], 456, 0)),
    ("39007199254740991[]", (ACK, "/", [], 2**53 - 1, 0)),
    ('4{"message":"Not authorized"}', (CONNECT_ERROR, "/", {"message": "Not authorized"}, None, 0)),
    ('4/admin,"Invalid namespace"', (CONNECT_ERROR, "/admin", "Invalid namespace", None, 0)),
    (
        '51-["baz",' + PH0 + "]",
        (BINARY_EVENT, "/", ["baz", {"_placeholder": True, "num": 0}], None, 1),
    ),
    (
        "61-/admin,15[" + PH0 + "]",
        (BINARY_ACK, "/admin", [{"_placeholder": True, "num": 0}], 15, 1),
    ),
    ('50-["x"]', (BINARY_EVENT, "/", ["x"], None, 0)),
    ('512-/a,9["x"]', (BINARY_EVENT, "/a", ["x"], 9, 12)),
]


@pytest.mark.parametrize("text, expected", DECODE_VECTORS)
def test_decode_vectors(codec, text, expected):
    p = codec.socketio.decode_packet(text)
    assert (p.type, p.nsp, p.data, p.id, p.attachments) == expected


MALFORMED = [
    "",  # empty
    "7",
    "8[]",
    "9",
    "a",
    "-",
    ' 2["a"]',  # unknown type
    "2",  # EVENT without payload
    "2/chat,",
    '2/chat["a"]',  # no comma: the whole rest is the namespace, EVENT without payload
    "2[]",
    "2{}",
    '2"ev"',
    "2null",
    "2[1]",
    "2[null]",
    '2[["a"]]',  # bad EVENT payload
    '2["connect"]',
    '2["disconnect",1]',
    '2["disconnecting"]',
    '2["connect_error"]',
    '2["newListener"]',
    '2["removeListener"]',  # reserved event names
    '2["a"]x',
    '2["a"]]',
    '2["a"',
    '2["a",]',
    "2abc",
    '2["a"]\x00',
    '2{"a":1',  # bad JSON
    "3",
    "3[]",
    "31",
    "31{}",
    '31"x"',
    "3/a,1null",  # bad ACK: no payload, no id, not array
    "0[]",
    '0"x"',
    "00",
    "0/a,1",
    "0null",
    "01{}",  # CONNECT payload must be an object
    "1{}",
    "1/admin,{}",
    '1""',
    "1[]",
    "11",  # DISCONNECT has no payload
    "4",
    "4[]",
    "41",
    "4null",
    "4/a,",  # CONNECT_ERROR needs an object or string
    '5["a"]',
    '5-["a"]',
    '5a-["a"]',
    '51["a"]',
    '51["a-b"]',
    '5-1-["a"]',
    '5 1-["a"]',
    '5１-["a"]',
    '5²-["a"]',
    '51001-["a"]',
    '512345678901-["a"]',  # bad attachment count
    '6["a"]',
    "61-[]",
    "6-1[]",  # BINARY_ACK: bad count, missing id
    "2" + "9" * 17 + '["a"]',  # ack id too long
    "2" + str(2**53) + '["a"]',  # ack id out of range
    '2٣["a"]',  # non-ASCII digit is not an ack id
    '2["\\ud800"]',  # lone surrogate escape
]


@pytest.mark.parametrize("text", MALFORMED)
def test_decode_malformed(codec, text):
    with pytest.raises(ProtocolError):
        codec.socketio.decode_packet(text)
    with pytest.raises(ProtocolError):
        codec.socketio.PacketDecoder().feed(text)


@pytest.mark.parametrize(
    "name",
    ["connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"],
)
def test_decode_reserved_names(codec, name):
    """Every reserved name is refused, in EVENT and BINARY_EVENT packets; names that only look
    like one (shorter, longer, another case) are events like any other."""
    sio = codec.socketio
    for text in (f'2["{name}"]', f'2["{name}","x",1]', f'51-["{name}",{{"_placeholder":true}}]'):
        with pytest.raises(ProtocolError, match="reserved event name"):
            sio.decode_packet(text)
    for other in (name[:-1], name[1:], name + "x", name.upper(), name[0]):
        assert sio.decode_packet(f'2["{other}",1]').data == [other, 1]
    assert sio.decode_packet(f'3["{name}"]'.replace("3", "37", 1)).data == [name]  # an ACK


def test_decode_max_attachments(codec):
    sio = codec.socketio
    assert sio.decode_packet('51000-["a"]').attachments == 1000
    with pytest.raises(ProtocolError):
        sio.decode_packet('53-["a"]', max_attachments=2)
    with pytest.raises(ProtocolError):
        sio.PacketDecoder(max_attachments=2).feed('53-["a"]')
    assert sio.PacketDecoder(max_attachments=3).feed('53-["a"]') is None


# --- binary reassembly -------------------------------------------------------------------------


def test_decoder_plain_packets(codec):
    d = codec.socketio.PacketDecoder()
    p = d.feed('2["chat message","hello"]')
    assert (p.type, p.nsp, p.data, p.id) == (EVENT, "/", ["chat message", "hello"], None)
    p = d.feed("0/admin,")
    assert (p.type, p.nsp, p.data) == (CONNECT, "/admin", None)


def test_decoder_binary_event(codec):
    d = codec.socketio.PacketDecoder()
    text = (
        '53-/a,7["up",{"_placeholder":true,"num":2},{"k":[{"_placeholder":true,"num":0}],'
        '"n":{"_placeholder":false,"num":1},"m":{"_placeholder":true,"num":1}}]'
    )
    assert d.feed(text) is None
    assert d.pending
    assert d.feed(b"zero") is None
    assert d.feed(bytearray(b"one")) is None
    p = d.feed(memoryview(b"two"))
    assert not d.pending
    assert (p.type, p.nsp, p.id, p.attachments) == (BINARY_EVENT, "/a", 7, 3)
    assert p.data == [
        "up",
        b"two",
        {"k": [b"zero"], "n": {"_placeholder": False, "num": 1}, "m": b"one"},
    ]
    assert all(type(x) is bytes for x in (p.data[1], p.data[2]["k"][0], p.data[2]["m"]))
    # and the decoder is ready for the next packet
    assert d.feed('2["again"]').data == ["again"]


def test_decoder_binary_ack_and_zero_attachments(codec):
    d = codec.socketio.PacketDecoder()
    assert d.feed("61-/admin,15[" + PH0 + "]") is None
    p = d.feed(b"\x03")
    assert (p.type, p.nsp, p.id, p.data) == (BINARY_ACK, "/admin", 15, [b"\x03"])
    p = d.feed('50-["x",{"y":1}]')
    assert (p.type, p.data) == (BINARY_EVENT, ["x", {"y": 1}])


def test_decoder_deep_placeholder(codec):
    depth = 500
    text = '51-["deep",' + "[" * depth + PH0 + "]" * depth + "]"
    d = codec.socketio.PacketDecoder()
    assert d.feed(text) is None
    node = d.feed(b"bottom").data[1]
    for _ in range(depth - 1):
        node = node[0]
    assert node == [b"bottom"]


def test_decoder_binary_without_pending(codec):
    d = codec.socketio.PacketDecoder()
    with pytest.raises(ProtocolError):
        d.feed(b"\x01")
    d = codec.socketio.PacketDecoder()
    assert d.feed('2["a"]') is not None
    with pytest.raises(ProtocolError):
        d.feed(b"\x01")


def test_decoder_text_while_pending(codec):
    d = codec.socketio.PacketDecoder()
    assert d.feed('52-["a",' + PH0 + ',{"_placeholder":true,"num":1}]') is None
    assert d.feed(b"x") is None
    with pytest.raises(ProtocolError):
        d.feed('2["b"]')


@pytest.mark.parametrize(
    "placeholder",
    [
        '{"_placeholder":true,"num":1}',  # out of range
        '{"_placeholder":true,"num":-1}',
        '{"_placeholder":true,"num":"0"}',
        '{"_placeholder":true,"num":0.0}',
        '{"_placeholder":true,"num":true}',
        '{"_placeholder":true,"num":null}',
        '{"_placeholder":true}',
        '{"a":[{"_placeholder":true,"num":5}]}',
    ],
)
def test_decoder_bad_placeholder(codec, placeholder):
    d = codec.socketio.PacketDecoder()
    assert d.feed('51-["a",' + placeholder + "]") is None
    with pytest.raises(ProtocolError):
        d.feed(b"x")
    # a placeholder in a packet that announced no attachments
    with pytest.raises(ProtocolError):
        codec.socketio.PacketDecoder().feed('50-["a",' + placeholder + "]")


# --- properties --------------------------------------------------------------------------------

_keys = st.text(max_size=8).filter(lambda k: k != "_placeholder")
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    _leaves,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(_keys, c, max_size=5),
    max_leaves=15,
)
values_with_bytes = st.recursive(
    _leaves | st.binary(max_size=20),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(_keys, c, max_size=5),
    max_leaves=15,
)
event_names = st.text(max_size=20).filter(
    lambda s: (
        s
        not in (
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        )
    )
)
namespaces = st.just("/") | st.text(
    st.characters(blacklist_characters=",?", blacklist_categories=("Cs",)), max_size=10
).map(lambda s: "/" + s)
ack_ids = st.none() | st.integers(0, 2**53 - 1)


def _has_bytes(value):
    if isinstance(value, bytes):
        return True
    if isinstance(value, list):
        return any(_has_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bytes(v) for v in value.values())
    return False


def _decode_all(sio, parts):
    d = sio.PacketDecoder()
    for part in parts[:-1]:
        assert d.feed(part) is None
    p = d.feed(parts[-1])
    assert p is not None
    assert not d.pending
    return p


@settings(max_examples=200, deadline=None)
@given(
    name=event_names, args=st.lists(values_with_bytes, max_size=4), nsp=namespaces, ack_id=ack_ids
)
def test_event_round_trip(codec, name, args, nsp, ack_id):
    sio = codec.socketio
    data = [name, *args]
    parts = sio.encode_packet(EVENT, nsp, data, ack_id)
    binary = _has_bytes(data)
    assert isinstance(parts[0], str)
    assert all(type(x) is bytes for x in parts[1:])
    assert parts[0][0] == ("5" if binary else "2")
    p = _decode_all(sio, parts)
    assert p.type == (BINARY_EVENT if binary else EVENT)
    assert (p.nsp, p.id, p.data) == (nsp, ack_id, data)
    assert p.attachments == len(parts) - 1


@settings(max_examples=100, deadline=None)
@given(
    args=st.lists(values_with_bytes, max_size=4), nsp=namespaces, ack_id=st.integers(0, 2**53 - 1)
)
def test_ack_round_trip(codec, args, nsp, ack_id):
    sio = codec.socketio
    parts = sio.encode_packet(ACK, nsp, args, ack_id)
    p = _decode_all(sio, parts)
    assert p.type == (BINARY_ACK if _has_bytes(args) else ACK)
    assert (p.nsp, p.id, p.data) == (nsp, ack_id, args)


@settings(max_examples=100, deadline=None)
@given(
    packet=st.one_of(
        st.tuples(st.just(CONNECT), st.none() | st.dictionaries(_keys, json_values, max_size=5)),
        st.tuples(st.just(DISCONNECT), st.none()),
        st.tuples(
            st.just(CONNECT_ERROR),
            st.text(max_size=20) | st.dictionaries(_keys, json_values, max_size=5),
        ),
    ),
    nsp=namespaces,
)
def test_other_packets_round_trip(codec, packet, nsp):
    sio = codec.socketio
    packet_type, data = packet
    parts = sio.encode_packet(packet_type, nsp, data)
    assert len(parts) == 1
    p = sio.decode_packet(parts[0])
    assert (p.type, p.nsp, p.data, p.id) == (packet_type, nsp, data, None)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=40)
    | st.tuples(st.sampled_from("0123456"), st.text(max_size=40)).map("".join)
)
def test_decode_fuzz(codec, text):
    # never anything but ProtocolError on garbage
    try:
        p = codec.socketio.decode_packet(text)
    except ProtocolError:
        return
    assert 0 <= p.type <= 6
    assert p.nsp.startswith("/")


# --- python-socketio cross-check ---------------------------------------------------------------

CROSS_PACKETS = [
    (EVENT, "/", ["chat message", "hello"], None),
    (EVENT, "/admin", ["x", 1, 2.5, True, None, {"a": [1, 2]}, 'quote"back\\slash'], 7),
    (ACK, "/", [], 3),
    (ACK, "/n", ["ok", {"n": 1}], 0),
    (CONNECT, "/", {"token": "abc"}, None),
    (CONNECT, "/chat", None, None),
    (CONNECT, "/chat", {"sid": "abc123"}, None),
    (DISCONNECT, "/chat", None, None),
    (CONNECT_ERROR, "/", {"message": "Invalid namespace"}, None),
    (EVENT, "/", ["bin", b"\x00\x01", {"k": [b"\x02"]}], 5),
    (ACK, "/n", [b"abc", "x"], 9),
]


@pytest.mark.parametrize("packet_type, nsp, data, ack_id", CROSS_PACKETS)
def test_matches_python_socketio(codec, packet_type, nsp, data, ack_id):
    from socketio import packet as sp

    theirs = sp.Packet(packet_type, data=data, namespace=nsp, id=ack_id).encode()
    if isinstance(theirs, str):
        theirs = [theirs]
    ours = codec.socketio.encode_packet(packet_type, nsp, data, ack_id)
    assert ours == theirs

    # and each side reads the other's packets
    p = _decode_all(codec.socketio, theirs)
    assert (p.nsp, p.id, p.data) == (nsp, ack_id, data)
    back = sp.Packet(encoded_packet=ours[0])
    for attachment in ours[1:]:
        back.add_attachment(attachment)
    assert back.data == data
    assert back.id == ack_id
    assert (back.namespace or "/") == nsp


@settings(max_examples=100, deadline=None)
@given(
    name=event_names, args=st.lists(values_with_bytes, max_size=4), nsp=namespaces, ack_id=ack_ids
)
def test_reads_python_socketio_events(codec, name, args, nsp, ack_id):
    from socketio import packet as sp

    data = [name, *args]
    theirs = sp.Packet(EVENT, data=data, namespace=nsp, id=ack_id).encode()
    if isinstance(theirs, str):
        theirs = [theirs]
    p = _decode_all(codec.socketio, theirs)
    assert (p.nsp, p.id, p.data) == (nsp, ack_id, data)
