"""Connecting to namespaces: default, custom, dynamic, invalid; middleware; auth; handshake."""

from __future__ import annotations

import asyncio
import re

import pytest

import fastsio
from fastsio.protocol.socketio import CONNECT, CONNECT_ERROR, EVENT, Packet

from .fakes import FakeEngine, connect_packet


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
def engine(sio):
    return FakeEngine(sio)


async def test_connect_default_namespace(sio, engine):
    connected = []
    sio.on("connection", connected.append)
    session = engine.open()
    session.receive("0")
    (reply,) = session.packets()
    assert reply.type == CONNECT and reply.nsp == "/"
    sid = reply.data["sid"]
    assert isinstance(sid, str) and len(sid) == 20 and sid != session.sid
    (socket,) = connected
    assert isinstance(socket, fastsio.Socket)
    assert socket.id == sid and socket.connected
    assert socket.nsp is sio.of("/") and socket.server is sio
    assert socket.rooms == {sid}
    assert sio.sockets == {sid: socket}


async def test_connect_alias_and_async_connection_handler(sio, engine):
    seen = []

    @sio.on("connect")
    async def on_connect(socket):
        seen.append(socket.id)
        socket.emit("welcome", "hi")

    session, sid = engine.connect()
    assert seen == [sid]
    # connect reply first, then the handler's emit: both went out synchronously
    session.receive("0")  # a second CONNECT to the same namespace is ignored
    assert session.take() == []


async def test_connection_handler_emits_follow_the_connect_reply(sio, engine):
    sio.on("connection", lambda socket: socket.emit("welcome", 1))
    session = engine.open()
    session.receive("0")
    first, second = session.take()
    assert first.startswith('0{"sid":')
    assert second == '2["welcome",1]'


async def test_connect_custom_namespace(sio, engine):
    admin = sio.of("/admin")
    assert sio.of("admin") is admin
    connected = []
    admin.on("connection", connected.append)
    session = engine.open()
    session.receive("0/admin,")
    (reply,) = session.packets()
    assert reply.type == CONNECT and reply.nsp == "/admin"
    assert connected[0].id == reply.data["sid"]
    assert connected[0].nsp is admin
    assert sio.sockets == {}  # not in "/"
    assert admin.sockets == {reply.data["sid"]: connected[0]}


async def test_one_session_several_namespaces(sio, engine):
    sio.of("/a")
    sio.of("/b")
    session = engine.open()
    session.receive("0", "0/a,", "0/b,")
    replies = session.packets()
    assert [(p.type, p.nsp) for p in replies] == [(CONNECT, "/"), (CONNECT, "/a"), (CONNECT, "/b")]
    assert len({p.data["sid"] for p in replies}) == 3


async def test_invalid_namespace(sio, engine):
    session = engine.open()
    session.receive("0/nope,")
    (reply,) = session.packets()
    assert reply == Packet(CONNECT_ERROR, "/nope", {"message": "Invalid namespace"})
    assert not session.closed
    session.receive("0")  # the session stays usable
    assert session.packets()[0].type == CONNECT


async def test_dynamic_namespace_regex(sio, engine):
    parent = sio.of(re.compile(r"^/dyn-\d+$"))
    assert sio.of(re.compile(r"^/dyn-\d+$")) is parent
    connected = []
    parent.on("connection", lambda socket: connected.append(socket.nsp.name))
    session = engine.open()
    session.receive("0/dyn-1,", "0/dyn-x,", "0/dyn-22,")
    replies = session.packets()
    assert [(p.type, p.nsp) for p in replies] == [
        (CONNECT, "/dyn-1"),
        (CONNECT_ERROR, "/dyn-x"),
        (CONNECT, "/dyn-22"),
    ]
    assert connected == ["/dyn-1", "/dyn-22"]
    child = sio.of("/dyn-1")
    assert child.parent is parent and child in parent.children
    # a second client to the same child reuses it
    other = engine.open()
    other.receive("0/dyn-1,")
    assert other.packets()[0].type == CONNECT
    assert len(parent.children) == 2
    assert len(child.sockets) == 2


async def test_dynamic_namespace_handlers_added_later_apply(sio, engine):
    parent = sio.of(re.compile(r"^/room-"))
    session = engine.open()
    session.receive("0/room-a,")
    session.take()
    got = []
    parent.on("ping", lambda socket, x: got.append((socket.nsp.name, x)))
    session.receive('2/room-a,["ping",1]')
    assert got == [("/room-a", 1)]


async def test_dynamic_namespace_callable_sync_and_async(sio, engine):
    checked = []

    def sync_check(name, auth):
        checked.append(("sync", name, auth))
        return name.startswith("/s-")

    async def async_check(name, auth):
        await asyncio.sleep(0)
        checked.append(("async", name, auth))
        return auth.get("ok") is True

    sio.of(sync_check)
    sio.of(async_check)
    session = engine.open()
    session.receive("0/s-1,")
    assert session.packets()[0].type == CONNECT
    session.receive('0/other,{"ok":true}')
    await asyncio.sleep(0.01)
    assert session.packets()[0].type == CONNECT
    session.receive('0/third,{"ok":false}')
    await asyncio.sleep(0.01)
    assert session.packets() == [Packet(CONNECT_ERROR, "/third", {"message": "Invalid namespace"})]
    assert ("async", "/other", {"ok": True}) in checked


async def test_parent_emit_reaches_all_children(sio, engine):
    parent = sio.of(re.compile(r"^/p-"))
    s1, _ = engine.connect("/p-1")
    s2, _ = engine.connect("/p-2")
    s3, _ = engine.connect("/")
    parent.emit("news", 1)
    assert s1.take() == ['2/p-1,["news",1]']
    assert s2.take() == ['2/p-2,["news",1]']
    assert s3.take() == []
    assert len(await parent.fetch_sockets()) == 2


async def test_middleware_order_sync_and_async(sio, engine):
    order = []

    @sio.use
    def first(socket):
        order.append("first")
        socket.data["user"] = "ann"

    async def second(socket):
        await asyncio.sleep(0)
        order.append("second")

    sio.use(second)

    @sio.use
    def third(socket):
        order.append(("third", socket.data["user"], socket.connected))

    connected = []
    sio.on("connection", lambda socket: connected.append(socket.data["user"]))
    session = engine.open()
    session.receive("0")
    assert order == ["first"]
    await asyncio.sleep(0.01)
    assert order == ["first", "second", ("third", "ann", False)]
    assert connected == ["ann"]
    assert session.packets()[0].type == CONNECT


async def test_sync_middleware_connects_synchronously(sio, engine):
    sio.use(lambda socket: None)
    session = engine.open()
    session.receive("0")
    assert session.packets()[0].type == CONNECT


async def test_middleware_refusal_with_data(sio, engine):
    calls = []

    @sio.use
    def auth(socket):
        if socket.handshake.auth.get("token") != "secret":
            raise fastsio.ConnectionRefused("not authorized", data={"code": 401})

    @sio.use
    def never(socket):
        calls.append("never")

    sio.on("connection", lambda socket: calls.append("connected"))
    session = engine.open()
    session.receive('0{"token":"wrong"}')
    (reply,) = session.packets()
    assert reply == Packet(CONNECT_ERROR, "/", {"message": "not authorized", "data": {"code": 401}})
    assert calls == []
    assert sio.sockets == {}
    assert not session.closed
    session.receive('0{"token":"secret"}')
    assert session.packets()[0].type == CONNECT
    assert calls == ["never", "connected"]


async def test_middleware_refusal_without_data_and_async(sio, engine):
    @sio.use
    async def auth(socket):
        await asyncio.sleep(0)
        raise fastsio.ConnectionRefused("go away")

    session = engine.open()
    session.receive("0")
    await asyncio.sleep(0.01)
    assert session.take() == ['4{"message":"go away"}']


async def test_middleware_other_exception_is_logged_and_refuses(sio, engine, caplog):
    @sio.of("/admin").use
    def broken(socket):
        raise ValueError("database down")

    session = engine.open()
    session.receive("0/admin,")
    assert session.take() == ['4/admin,{"message":"database down"}']
    assert "database down" in caplog.text


async def test_middleware_per_namespace(sio, engine):
    sio.of("/admin").use(lambda socket: (_ for _ in ()).throw(fastsio.ConnectionRefused("no")))
    session = engine.open()
    session.receive("0", "0/admin,")
    replies = session.packets()
    assert [(p.type, p.nsp) for p in replies] == [(CONNECT, "/"), (CONNECT_ERROR, "/admin")]


async def test_client_gone_while_async_middleware_runs(sio, engine):
    gate = asyncio.get_running_loop().create_future()

    @sio.use
    async def slow(socket):
        await gate

    connected = []
    sio.on("connection", connected.append)
    session = engine.open()
    session.receive("0")
    session.drop()
    gate.set_result(None)
    await asyncio.sleep(0.01)
    assert connected == [] and sio.sockets == {}


async def test_connection_handler_refusing_disconnects(sio, engine):
    @sio.on("connection")
    def refuse(socket):
        raise fastsio.ConnectionRefused("nope")

    session = engine.open()
    session.receive("0")
    replies = session.packets()
    assert [p.type for p in replies] == [CONNECT, 1]
    assert sio.sockets == {}


async def test_auth_and_handshake(sio, engine):
    sockets = []
    sio.on("connection", sockets.append)
    session = engine.open(
        headers={"host": "example.com", "origin": "http://example.com", "cookie": "a=b"},
        query={"EIO": "4", "transport": "websocket", "room": "lobby"},
        client=("10.1.2.3", 4567),
        url="/socket.io/?EIO=4&transport=websocket&room=lobby",
        secure=True,
    )
    session.receive('0{"token":"abc","n":1}')
    (socket,) = sockets
    hs = socket.handshake
    assert hs.auth == {"token": "abc", "n": 1}
    assert hs.headers["cookie"] == "a=b"
    assert hs.query["room"] == "lobby"
    assert hs.address == "10.1.2.3"
    assert hs.url == "/socket.io/?EIO=4&transport=websocket&room=lobby"
    assert hs.secure is True and hs.xdomain is True
    assert isinstance(hs.issued, int) and hs.issued > 1_600_000_000_000
    assert isinstance(hs.time, str) and "GMT" in hs.time
    assert socket.conn is session and socket.request is session.request


async def test_auth_defaults_to_empty_dict(sio, engine):
    sockets = []
    sio.on("connection", sockets.append)
    engine.connect()
    assert sockets[0].handshake.auth == {}
    assert sockets[0].handshake.xdomain is False


async def test_connect_timeout_closes_a_silent_session():
    sio = fastsio.Server(connect_timeout=0.02)
    engine = FakeEngine(sio)
    silent = engine.open()
    active = engine.open()
    active.receive("0")
    await asyncio.sleep(0.05)
    assert silent.closed
    assert not active.closed


async def test_connect_timeout_none_disables_it():
    sio = fastsio.Server(connect_timeout=None)
    session = FakeEngine(sio).open()
    await asyncio.sleep(0.01)
    assert not session.closed


async def test_events_for_unconnected_namespace_are_ignored(sio, engine):
    got = []
    sio.of("/admin").on("hello", lambda socket: got.append(1))
    session, _ = engine.connect("/")
    session.receive('2/admin,["hello"]', '2/admin,1["hello"]', "1/admin,", "3/admin,5[]")
    assert got == [] and session.take() == [] and not session.closed


async def test_events_during_async_middleware_are_ignored(sio, engine):
    gate = asyncio.get_running_loop().create_future()
    got = []

    @sio.use
    async def slow(socket):
        await gate

    sio.on("early", lambda socket: got.append(1))
    session = engine.open()
    session.receive("0", '2["early"]')
    gate.set_result(None)
    await asyncio.sleep(0.01)
    assert got == []
    assert session.packets()[0].type == CONNECT
    session.receive('2["early"]')
    assert got == [1]


async def test_namespace_name_with_auth_packet_format(sio, engine):
    sio.of("/admin")
    sockets = []
    sio.of("/admin").on("connection", sockets.append)
    session = engine.open()
    session.receive(connect_packet("/admin", {"token": "t"}))
    assert sockets[0].handshake.auth == {"token": "t"}
    assert session.packets()[0].type == CONNECT
    assert EVENT == 2


async def test_client_disconnect_while_middleware_runs(sio, engine):
    gate = asyncio.get_running_loop().create_future()

    @sio.use
    async def slow(socket):
        await gate

    connected = []
    sio.on("connection", connected.append)
    session = engine.open()
    session.receive("0", "1")
    gate.set_result(None)
    await asyncio.sleep(0.01)
    assert connected == [] and session.take() == []
    session.receive("0")  # it may try again (the gate is open now)
    await asyncio.sleep(0.01)
    assert len(connected) == 1


async def test_handshake_time_and_repr(sio, engine):
    sockets = []
    sio.on("connection", sockets.append)
    engine.connect()
    hs = sockets[0].handshake
    assert re.match(r"\w{3} \w{3} \d{2} \d{4} \d{2}:\d{2}:\d{2} GMT[+-]\d{4}", hs.time)
    assert "auth={}" in repr(hs) and "time=" in repr(hs)


async def test_ack_awaited_in_middleware_fails_when_refused_elsewhere(sio, engine):
    outcome = []

    @sio.use
    async def ask(socket):
        try:
            await socket.emit_with_ack("captcha?")
        except fastsio.DisconnectedError:
            outcome.append("disconnected")
            raise

    session = engine.open()
    session.receive("0")
    await asyncio.sleep(0)
    assert session.events() == [["captcha?"]]
    session.drop()
    await asyncio.sleep(0.01)
    assert outcome == ["disconnected"]
