"""The Socket.IO layer with Socket.IO v2 clients (Engine.IO v3 sessions) and with other parsers
(msgpack, a custom object), on fake Engine.IO sessions: what the server sends, byte for byte."""

from __future__ import annotations

import importlib.util
import json

import orjson
import pytest

import fastsio
from fastsio import ConnectionRefused
from fastsio.protocol.socketio import Packet
from tests.fakes import FakeEngine, FakeRequest, FakeSession


def open_v3(sio, **query) -> FakeSession:
    """A session as an Engine.IO v3 (socket.io-client 2.x) connection would open it."""
    session = FakeSession(FakeRequest(query={"EIO": "3", "transport": "websocket", **query}))
    session.protocol = 3
    sio.handle_engine_session(session)
    return session


@pytest.fixture
def sio():
    return fastsio.Server(allow_eio3=True)


# --------------------------------------------------------------------------- Socket.IO v2 clients


async def test_v2_client_is_connected_to_main_namespace_implicitly(sio):
    connected = []
    sio.on("connection", connected.append)
    session = open_v3(sio, token="t")
    # the CONNECT answer has no payload: the v2 client derives its id from the Engine.IO sid
    assert session.take() == ["0"]
    [socket] = connected
    assert socket.id == session.sid
    assert socket.handshake.auth == {}
    assert socket.handshake.query["token"] == "t"
    socket.emit("hi", b"\x01")
    assert session.take() == ['51-["hi",{"_placeholder":true,"num":0}]', b"\x01"]
    # explicit CONNECT for "/" (never sent by 2.x) changes nothing
    session.receive("0")
    assert session.take() == []


async def test_v2_namespace_query_becomes_auth_and_query(sio):
    admin = []
    sio.of("/admin").on("connection", admin.append)
    session = open_v3(sio, token="from-url")
    session.take()
    session.receive("0/admin?token=x&room=&token2=y,")
    assert session.take() == ["0/admin,"]
    [socket] = admin
    assert socket.id == f"/admin#{session.sid}"
    assert socket.handshake.auth == {"token": "x", "room": "", "token2": "y"}
    # the request's own query wins, as in socket.io 2.x servers
    assert socket.handshake.query["token"] == "from-url"
    assert socket.handshake.query["token2"] == "y"
    session.receive('2/admin,5["ev",1]')
    socket.emit("x")
    assert session.take() == ['2/admin,["x"]']
    session.receive("1/admin,")
    assert socket.disconnected


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        (ConnectionRefused("not authorized"), '"not authorized"'),
        (ConnectionRefused("refused", {"code": 42}), '{"code":42}'),
        (ConnectionRefused("refused", 0), '"refused"'),  # falsy data: the message, as Node
        (ValueError("boom"), '"boom"'),
    ],
)
async def test_v2_connect_error_is_a_plain_value(sio, error, sent):
    @sio.of("/private").use
    def gate(socket):
        raise error

    session = open_v3(sio)
    session.take()
    session.receive("0/private,")
    assert session.take() == ["4/private," + sent]
    session.receive("0/nope,")
    assert session.take() == ['4/nope,"Invalid namespace"']
    assert not session.closed


async def test_v2_and_v4_clients_get_one_broadcast_encoding(sio):
    engine = FakeEngine(sio)
    v4_session, _ = engine.connect()
    v3_session = open_v3(sio)
    v3_session.take()
    sio.emit("all", "x", b"\x00")
    expected = ['51-["all","x",{"_placeholder":true,"num":0}]', b"\x00"]
    assert v4_session.take() == expected
    assert v3_session.take() == expected
    assert v4_session.prepared == v3_session.prepared == 2


async def test_v2_bad_packet_closes_only_its_session(sio):
    good = open_v3(sio)
    bad = open_v3(sio)
    bad.receive("9garbage")
    assert bad.closed and bad.close_reason == "parse error"
    assert not good.closed


async def test_allow_eio3_is_off_by_default():
    assert fastsio.Server().allow_eio3 is False


# --------------------------------------------------------------------------- msgpack

needs_msgpack = pytest.mark.skipif(
    importlib.util.find_spec("msgpack") is None, reason="pip install fastsio[msgpack]"
)


def packb(obj):
    import msgpack

    return msgpack.packb(obj)


def unpack(items):
    import msgpack

    return [msgpack.unpackb(item) if isinstance(item, bytes) else item for item in items]


@needs_msgpack
async def test_msgpack_v4_session():
    sio = fastsio.Server(parser="msgpack")
    events = []

    @sio.on("ev")
    def ev(socket, *args):
        events.append(args)
        return "ok"

    session = FakeEngine(sio).open()
    session.receive(packb({"type": 0, "nsp": "/", "data": {"token": "t"}}))
    [reply] = unpack(session.take())
    assert reply["type"] == 0 and reply["nsp"] == "/" and set(reply["data"]) == {"sid"}
    socket = sio.sockets[reply["data"]["sid"]]
    assert socket.handshake.auth == {"token": "t"}
    session.receive(packb({"type": 2, "nsp": "/", "data": ["ev", b"\x01", 2], "id": 9}))
    assert events == [(b"\x01", 2)]
    assert unpack(session.take()) == [{"type": 3, "data": ["ok"], "nsp": "/", "id": 9}]
    sio.emit("all", b"\x02")  # a broadcast: one binary message, no attachments
    assert unpack(session.take()) == [{"type": 2, "data": ["all", b"\x02"], "nsp": "/"}]
    assert session.prepared == 1


@needs_msgpack
async def test_msgpack_bad_input_closes_only_its_session():
    sio = fastsio.Server(parser="msgpack")
    engine = FakeEngine(sio)
    good = engine.open()
    good.receive(packb({"type": 0, "nsp": "/"}))
    good.take()
    for garbage in (b"\xc1", b"", "40", packb({"type": 9, "nsp": "/"})):
        bad = engine.open()
        bad.receive(garbage)
        assert bad.closed and bad.close_reason == "parse error", garbage
    sio.emit("still", 1)
    assert unpack(good.take()) == [{"type": 2, "data": ["still", 1], "nsp": "/"}]


@needs_msgpack
async def test_msgpack_v2_session_uses_the_2x_parser():
    sio = fastsio.Server(parser="msgpack", allow_eio3=True)
    refused = sio.of("/private")

    @refused.use
    def gate(socket):
        raise ConnectionRefused("no")

    session = open_v3(sio)
    # socket.io-msgpack-parser 2.x: CONNECT / DISCONNECT / ERROR as JSON text
    assert [json.loads(item) for item in session.take()] == [{"type": 0, "nsp": "/"}]
    session.receive('{"type":0,"nsp":"/private?x=1"}')
    assert [json.loads(item) for item in session.take()] == [
        {"type": 4, "nsp": "/private", "data": "no"}
    ]
    # binary events are typed BINARY_EVENT (5) by socket.io-client 2.x
    got = []
    sio.on("ev", lambda socket, *args: got.append(args))
    session.receive(packb({"type": 5, "nsp": "/", "data": ["ev", b"\x00"]}))
    assert got == [(b"\x00",)]
    sio.sockets[session.sid].disconnect()
    assert [json.loads(item) for item in session.take()] == [{"type": 1, "nsp": "/"}]


# --------------------------------------------------------------------------- a custom parser


class JsonLinesParser:
    """A made-up parser: every packet is one JSON text message, binary as lists of ints."""

    def encode(self, packet):
        return [orjson.dumps([packet.type, packet.nsp, packet.data, packet.id]).decode()]

    def decoder(self):
        return self

    def feed(self, data):
        packet_type, nsp, payload, ack_id = orjson.loads(data)
        return Packet(packet_type, nsp, payload, ack_id)


async def test_custom_parser_object():
    sio = fastsio.Server(parser=JsonLinesParser())
    echoed = []

    @sio.on("echo")
    def echo(socket, value):
        echoed.append(value)
        socket.emit("echo", value)
        return value

    session = FakeEngine(sio).open()
    session.receive('[0, "/", null, null]')
    [reply] = session.take()
    sid = json.loads(reply)[2]["sid"]
    session.receive('[2, "/", ["echo", {"a": 1}], 4]')
    assert echoed == [{"a": 1}]
    assert [json.loads(item) for item in session.take()] == [
        [2, "/", ["echo", {"a": 1}], None],
        [3, "/", [{"a": 1}], 4],
    ]
    sio.emit("all", 1)
    assert [json.loads(item) for item in session.take()] == [[2, "/", ["all", 1], None]]
    session.receive("not json")
    assert session.closed and session.close_reason == "parse error"
    assert sid not in sio.sockets
