"""The official socket.io-client (Node) against fastsio: rooms, broadcasts, namespaces, middleware,
auth and handshake data."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

import fastsio

pytestmark = pytest.mark.interop


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- rooms


async def test_rooms_and_broadcasts_with_three_clients(server, url, node):
    """a in r1; b in r1 and r2; c in r2. Each emit is tagged; a final "fence" to everyone proves
    that whatever a client was going to get has arrived (per-client order is kept)."""
    by_name: dict = {}

    @server.on("connection")
    def on_connection(socket):
        for room in socket.handshake.auth["rooms"]:
            socket.join(room)
        by_name[socket.handshake.auth["name"]] = socket

    client = await node(url)
    rooms = {"a": ["r1"], "b": ["r1", "r2"], "c": ["r2"]}
    for name, joined in rooms.items():
        await client.connect(name, opts={"auth": {"name": name, "rooms": joined}})
    ids = {name: (await client.expect("connect", name=name))["id"] for name in rooms}
    await until(lambda: len(by_name) == 3, what="three connections")
    a, b, c = by_name["a"], by_name["b"], by_name["c"]
    assert {name: s.id for name, s in by_name.items()} == ids
    assert set(a.rooms) == {a.id, "r1"}
    assert set(b.rooms) == {b.id, "r1", "r2"}
    assert set(c.rooms) == {c.id, "r2"}

    server.to("r1").emit("m", "to r1")
    server.to("r1").except_("r2").emit("m", "to r1 except r2")
    server.to("r1").to("r2").emit("m", "to r1 or r2")
    server.emit("m", "to all")
    a.broadcast.emit("m", "broadcast from a")
    b.to("r1").emit("m", "from b to r1")
    c.to(a.id).emit("m", "from c to a's own room")
    server.except_("r1").emit("m", "all except r1")
    b.leave("r2")
    server.to("r2").emit("m", "to r2 after b left")
    server.emit("fence")

    for name in rooms:
        await client.expect("event", name=name, event="fence")
    got = {name: [args[0] for args in client.events(name, "m")] for name in rooms}
    assert got["a"] == [
        "to r1",
        "to r1 except r2",
        "to r1 or r2",
        "to all",
        "from b to r1",
        "from c to a's own room",
    ]
    assert got["b"] == ["to r1", "to r1 or r2", "to all", "broadcast from a"]
    assert got["c"] == [
        "to r1 or r2",
        "to all",
        "broadcast from a",
        "all except r1",
        "to r2 after b left",
    ]
    assert set(b.rooms) == {b.id, "r1"}


async def test_client_driven_join_and_room_chat(server, url, node):
    """The usual chat pattern: clients ask to join, then messages go to the room except the sender."""

    @server.on("join")
    def join(socket, room):
        socket.join(room)
        return sorted(socket.rooms - {socket.id})

    @server.on("say")
    def say(socket, room, text):
        socket.to(room).emit("said", socket.handshake.auth["name"], text)

    client = await node(url)
    for name in "abc":
        await client.connect(name, opts={"auth": {"name": name}})
        await client.expect("connect", name=name)
    assert (await client.emit_with_ack("a", "join", "lobby"))["args"] == [["lobby"]]
    assert (await client.emit_with_ack("b", "join", "lobby"))["args"] == [["lobby"]]
    await client.emit("a", "say", "lobby", "hi from a")
    await client.expect("event", name="b", event="said")
    await client.emit("c", "say", "lobby", "hi from c (not in the room)")
    await client.expect("event", name="a", event="said")
    await client.expect("event", name="b", event="said")
    assert client.events("b", "said") == [["a", "hi from a"], ["c", "hi from c (not in the room)"]]
    assert client.events("a", "said") == [["c", "hi from c (not in the room)"]]
    await client.assert_none(0.2, "event", name="c", event="said")


# --------------------------------------------------------------------------- namespaces


async def test_namespaces_are_separate(server, url, node):
    main_sockets: list = []
    admin_sockets: list = []
    admin = server.of("/admin")

    @server.on("connection")
    def on_main(socket):
        main_sockets.append(socket)

    @admin.on("connection")
    def on_admin(socket):
        admin_sockets.append(socket)

    @admin.on("whoami")
    def whoami(socket):
        return "admin", socket.id

    @server.on("whoami")
    def main_whoami(socket):
        return "main", socket.id

    client = await node(url)
    await client.connect("a", nsp="/admin")
    await client.connect("b", nsp="/")
    await client.connect("b-admin", nsp="/admin", manager="b")  # same connection as b
    ids = {n: (await client.expect("connect", name=n))["id"] for n in ("a", "b", "b-admin")}
    await until(lambda: len(admin_sockets) == 2 and main_sockets, what="the connection handlers")
    assert sorted(s.id for s in admin_sockets) == sorted([ids["a"], ids["b-admin"]])
    assert [s.id for s in main_sockets] == [ids["b"]]
    assert ids["b"] != ids["b-admin"]  # one id per namespace
    info_b, info_b_admin = await client.info("b"), await client.info("b-admin")
    assert info_b["sid"] == info_b_admin["sid"]  # ... over one Engine.IO session

    assert (await client.emit_with_ack("a", "whoami"))["args"] == ["admin", ids["a"]]
    assert (await client.emit_with_ack("b", "whoami"))["args"] == ["main", ids["b"]]
    assert (await client.emit_with_ack("b-admin", "whoami"))["args"] == ["admin", ids["b-admin"]]

    server.emit("news", "main")
    admin.emit("news", "admin")
    server.emit("fence")
    admin.emit("fence")
    for name in ("a", "b", "b-admin"):
        await client.expect("event", name=name, event="fence")
    assert client.events("a", "news") == [["admin"]]
    assert client.events("b", "news") == [["main"]]
    assert client.events("b-admin", "news") == [["admin"]]


async def test_dynamic_namespace(server, url, node):
    connected: list = []
    dyn = server.of(re.compile(r"^/dyn-\d+$"))

    @dyn.on("connection")
    def on_connection(socket):
        connected.append(socket)

    @dyn.on("hello")
    def hello(socket):
        return "hi"

    client = await node(url)
    await client.connect("a", nsp="/dyn-42")
    await client.connect("b", nsp="/dyn-7")
    await client.connect("bad", nsp="/dyn-abc")
    await client.expect("connect", name="a")
    await client.expect("connect", name="b")
    assert (await client.emit_with_ack("a", "hello"))["args"] == ["hi"]
    err = await client.expect("connect_error", name="bad")
    assert err["message"] == "Invalid namespace"
    assert len(connected) == 2


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_invalid_namespace(server, url, node, transport):
    connected: list = []

    @server.on("connection")
    def on_connection(socket):
        connected.append(socket)

    client = await node(url)
    await client.connect("bad", nsp="/nope", opts={"transports": [transport]})
    err = await client.expect("connect_error", name="bad")
    assert err["message"] == "Invalid namespace"
    assert err["data"] is None
    assert err["active"] is False  # the client gives up: no retry
    await client.assert_none(0.4, "connect_error", name="bad")
    assert not client.seen("connect", name="bad")
    assert not connected


# --------------------------------------------------------------------------- middleware


async def test_middleware_refuses_with_data(server, url, node):
    seen: list = []
    connected: list = []

    @server.use
    async def auth(socket):
        seen.append(socket.handshake.auth)
        await asyncio.sleep(0.01)
        if socket.handshake.auth.get("token") != "secret":
            raise fastsio.ConnectionRefused("not authorized", data={"code": 42, "why": ["token"]})

    @server.on("connection")
    def on_connection(socket):
        connected.append(socket)

    client = await node(url)
    await client.connect("bad", opts={"auth": {"token": "wrong"}})
    err = await client.expect("connect_error", name="bad")
    assert err["message"] == "not authorized"
    assert err["data"] == {"code": 42, "why": ["token"]}
    assert err["active"] is False
    await client.assert_none(0.3, "connect_error", name="bad")

    await client.connect("good", opts={"auth": {"token": "secret"}})
    await client.expect("connect", name="good")
    await until(lambda: connected, what="the connection handler")
    assert len(connected) == 1
    assert connected[0].handshake.auth == {"token": "secret"}

    # the refused client retries with a better token
    await client.call("connect_again", name="bad", auth={"token": "secret"})
    await client.expect("connect", name="bad")
    await until(lambda: len(connected) == 2, what="the second connection")
    assert seen == [{"token": "wrong"}, {"token": "secret"}, {"token": "secret"}]


async def test_namespace_middleware_chain(server, url, node):
    admin = server.of("/admin")
    order: list = []

    @admin.use
    def first(socket):
        order.append("first")
        socket.data["role"] = "admin"

    @admin.use
    async def second(socket):
        order.append("second")
        if socket.handshake.auth.get("user") == "mallory":
            raise fastsio.ConnectionRefused("go away")

    @admin.on("role")
    def role(socket):
        return socket.data["role"]

    client = await node(url)
    await client.connect("bob", nsp="/admin", opts={"auth": {"user": "bob"}})
    await client.expect("connect", name="bob")
    assert (await client.emit_with_ack("bob", "role"))["args"] == ["admin"]

    await client.connect("mallory", nsp="/admin", opts={"auth": {"user": "mallory"}})
    err = await client.expect("connect_error", name="mallory")
    assert err["message"] == "go away"
    assert err["data"] is None
    assert order == ["first", "second", "first", "second"]


# --------------------------------------------------------------------------- handshake


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_auth_query_and_headers_in_the_handshake(server, url, node, transport):
    sockets: list = []

    @server.on("connection")
    def on_connection(socket):
        sockets.append(socket)

    client = await node(url)
    await client.connect(
        "a",
        opts={
            "transports": [transport],
            "auth": {"token": "abc", "n": 1, "nested": {"ok": True}},
            "query": {"room": "lobby", "x": "1 2&3"},
            "extraHeaders": {"x-test": "hello"},
        },
    )
    await client.expect("connect", name="a")
    await until(lambda: sockets, what="the connection handler")
    (socket,) = sockets
    assert socket.handshake.auth == {"token": "abc", "n": 1, "nested": {"ok": True}}
    assert socket.handshake.query["room"] == "lobby"
    assert socket.handshake.query["x"] == "1 2&3"
    assert socket.handshake.query["EIO"] == "4"
    assert socket.handshake.headers["x-test"] == "hello"
    assert socket.handshake.address in ("127.0.0.1", "::ffff:127.0.0.1")  # Node binds to ::
    assert socket.handshake.secure is False
    assert socket.handshake.xdomain is False  # no Origin header from Node
    assert socket.handshake.url.startswith("/socket.io/?") and "EIO=4" in socket.handshake.url
    assert set(socket.rooms) == {socket.id}


async def test_broadcast_with_acks(server, url, node):
    """sio.timeout(s).emit_with_ack(): one response per targeted client (its ack argument)."""
    sockets: dict = {}

    @server.on("connection")
    def on_connection(socket):
        sockets[socket.handshake.auth["name"]] = socket
        if socket.handshake.auth["name"] != "c":
            socket.join("acking")

    client = await node(url)
    for name in "abc":
        await client.connect(name, opts={"auth": {"name": name}})
        await client.expect("connect", name=name)
    await client.call("ack_policy", name="a", event="question", reply=["from a"])
    await client.call(
        "ack_policy", name="b", event="question", reply=[{"from": "b", "bin": b"\x01"}]
    )
    await until(lambda: len(sockets) == 3, what="three connections")

    responses = await server.to("acking").timeout(2).emit_with_ack("question", 1)
    assert sorted(responses, key=repr) == ["from a", {"from": "b", "bin": b"\x01"}]

    # c never answers: the timeout reports the responses that did arrive
    started = time.monotonic()
    with pytest.raises(fastsio.AckTimeoutError) as caught:
        await server.timeout(0.3).emit_with_ack("question", 2)
    assert 0.25 < time.monotonic() - started < 2
    assert sorted(caught.value.responses, key=repr) == ["from a", {"from": "b", "bin": b"\x01"}]
    assert client.events("a", "question") == client.events("b", "question") == [[1], [2]]
    assert client.events("c", "question") == [[2]]


async def test_dynamic_namespace_children_and_parent(server, url, node):
    dyn = server.of(re.compile(r"^/dyn-\d+$"))
    connected: list = []

    @dyn.on("connection")
    def on_connection(socket):
        connected.append(socket)

    client = await node(url)
    for name, nsp in (("one", "/dyn-1"), ("one-again", "/dyn-1"), ("two", "/dyn-2")):
        await client.connect(name, nsp=nsp)
        await client.expect("connect", name=name)
    await until(lambda: len(connected) == 3, what="three connections")

    dyn.emit("all", "from the parent")  # every child namespace
    server.of("/dyn-1").emit("child", "only /dyn-1")  # the child namespace created on connect
    dyn.emit("fence")
    for name in ("one", "one-again", "two"):
        await client.expect("event", name=name, event="fence")
        assert client.events(name, "all") == [["from the parent"]]
    assert client.events("one", "child") == client.events("one-again", "child") == [["only /dyn-1"]]
    assert client.events("two", "child") == []


async def test_server_side_room_operations(server, url, node):
    """sockets_join / disconnect_sockets on a broadcast operator, like Node's socketsJoin /
    disconnectSockets."""
    sockets: dict = {}

    @server.on("connection")
    def on_connection(socket):
        name = socket.handshake.auth["name"]
        sockets[name] = socket
        if name != "c":
            socket.join("ab")

    client = await node(url)
    for name in "abc":
        await client.connect(name, opts={"auth": {"name": name}})
        await client.expect("connect", name=name)
    await until(lambda: len(sockets) == 3, what="three connections")

    server.to("ab").except_(sockets["b"].id).sockets_join("only-a")
    server.to("only-a").emit("m", "to only-a")
    server.emit("fence")
    for name in "abc":
        await client.expect("event", name=name, event="fence")
    assert [client.events(n, "m") for n in "abc"] == [[["to only-a"]], [], []]

    server.to("ab").disconnect_sockets()
    for name in "ab":
        msg = await client.expect("disconnect", name=name)
        assert msg["reason"] == "io server disconnect" and msg["active"] is False
    assert (await client.info("c"))["connected"]
    await client.assert_none(0.2, "disconnect", name="c")
