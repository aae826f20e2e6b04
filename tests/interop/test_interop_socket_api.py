"""The official socket.io-client 4.8 against the socket API of the guide: per-packet middleware
(``socket.use``), catch-all listeners both ways, and the rooms helpers (``leave_all``, the
adapter's read-only ``rooms`` / ``sids``, ``fetch_sockets`` in place of socket.io 2's
``clients()``)."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastsio

pytestmark = pytest.mark.interop

TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"]}


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def connect_all(client, names, transport, **auth):
    for name in names:
        opts = {"transports": TRANSPORTS[transport], "auth": {"name": name, **auth}}
        await client.connect(name, opts=opts)
    return {name: (await client.expect("connect", name=name))["id"] for name in names}


# --------------------------------------------------------------------------- rooms helpers


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_leave_all_adapter_views_and_fetch_sockets(server, url, node, transport):
    @server.on("join")
    def join(socket, *rooms):
        socket.join(rooms)
        return sorted(socket.rooms - {socket.id})

    @server.on("leave all")
    def leave_all(socket):
        socket.leave_all()
        return sorted(socket.rooms)

    client = await node(url)
    ids = await connect_all(client, "ab", transport)
    assert (await client.emit_with_ack("a", "join", "r1", "r2"))["args"] == [["r1", "r2"]]
    assert (await client.emit_with_ack("b", "join", "r1"))["args"] == [["r1"]]

    adapter = server.of("/").adapter
    assert set(adapter.rooms["r1"]) == {ids["a"], ids["b"]}
    assert adapter.sids[ids["a"]] == {ids["a"], "r1", "r2"}
    in_r1 = await server.in_("r1").fetch_sockets()  # socket.io 2's io.in("r1").clients(cb)
    assert sorted(s.id for s in in_r1) == sorted(ids.values())

    assert (await client.emit_with_ack("a", "leave all"))["args"] == [[ids["a"]]]
    assert "r2" not in adapter.rooms and set(adapter.rooms["r1"]) == {ids["b"]}
    assert [s.id for s in await server.in_("r1").fetch_sockets()] == [ids["b"]]
    server.to("r1").emit("m", "to r1")
    server.to("r2").emit("m", "to r2")
    server.to(ids["a"]).emit("m", "to a by its id")
    server.emit("fence")
    for name in "ab":
        await client.expect("event", name=name, event="fence")
    assert client.events("a", "m") == [["to a by its id"]]
    assert client.events("b", "m") == [["to r1"]]


# --------------------------------------------------------------------------- packet middleware


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_packet_middleware_guide_examples(server, url, node, transport):
    """The guide's socket.use examples against real clients: per-event authorisation whose
    "error" handler disconnects the socket, a namespace-wide rate limit that drops events, and
    a middleware that changes the arguments (binary ones too)."""
    limit = 4
    handled: list = []
    errors: list = []

    @server.use_packets
    def rate_limit(socket, event, args):
        socket.data["count"] = socket.data.get("count", 0) + 1
        return fastsio.DROP if socket.data["count"] > limit else None

    @server.on("connection")
    def on_connection(socket):
        @socket.use
        def authorise(event, args):
            if event.startswith("admin:") and socket.handshake.auth["name"] != "admin":
                raise PermissionError("unauthorized event")
            if event == "stamp":
                return [*args, socket.handshake.auth["name"]]
            return None

        @socket.on("error")
        def on_error(err):
            errors.append((socket.handshake.auth["name"], str(err)))
            socket.emit("refused", str(err))
            socket.disconnect()

    server.on("admin:wipe", lambda socket: handled.append(("wipe", socket.handshake.auth["name"])))
    server.on("stamp", lambda socket, *args: list(args))
    server.on("msg", lambda socket, n: handled.append(("msg", n)))

    client = await node(url)
    await connect_all(client, ["admin", "user", "chatty"], transport)

    reply = await client.emit_with_ack("user", "stamp", "x", b"\x00\xff")
    assert reply["args"] == [["x", b"\x00\xff", "user"]]
    await client.emit("admin", "admin:wipe")
    await client.emit("user", "admin:wipe")
    refused = await client.expect("event", name="user", event="refused")
    assert refused["args"] == ["unauthorized event"]
    assert (await client.expect("disconnect", name="user"))["reason"] == "io server disconnect"
    assert errors == [("user", "unauthorized event")]

    for n in range(limit + 3):
        await client.emit("chatty", "msg", n)
    late = await client.emit_with_ack("chatty", "stamp", "late", timeout_ms=300)
    assert late["ev"] == "ack_error"  # dropped: its ack never comes, as in Node
    await until(lambda: ("wipe", "admin") in handled, what="the admin's event")
    await until(lambda: len([h for h in handled if h[0] == "msg"]) == limit, what="the msgs")
    await client.assert_none(0.2, "event", name="chatty")
    assert [n for kind, n in handled if kind == "msg"] == list(range(limit))
    assert handled.count(("wipe", "admin")) == 1 and ("wipe", "user") not in handled


# --------------------------------------------------------------------------- catch-all listeners


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_outgoing_listeners_see_what_the_client_receives(server, url, node, transport):
    outgoing: dict = {}
    incoming: dict = {}

    @server.on("connection")
    def on_connection(socket):
        name = socket.handshake.auth["name"]
        outgoing[name] = []
        incoming[name] = []
        socket.on_any_outgoing(lambda event, *args: outgoing[name].append([event, *args]))
        socket.prepend_any(lambda event, *args: incoming[name].append(("first", event)))
        socket.on_any(lambda event, *args: incoming[name].append(("then", event, *args)))
        if name == "b":
            socket.join("room")

    server.on("ping me", lambda socket, n: socket.emit("pong", n) and "acked")

    client = await node(url)
    ids = await connect_all(client, "abc", transport)
    sockets = {name: server.sockets[ids[name]] for name in "abc"}
    sockets["c"].off_any_outgoing()  # c: no listener; it still gets everything below

    assert (await client.emit_with_ack("a", "ping me", 1))["args"] == ["acked"]  # ack: not seen
    await client.call("ack_policy", name="b", event="question", echo=True)
    answer = await asyncio.wait_for(sockets["b"].emit_with_ack("question", {"q": 1}), 5)
    assert answer == {"q": 1}
    server.emit("to all", b"\x01")
    server.to("room").emit("to room", "r")
    sockets["a"].broadcast.emit("from a")
    sockets["a"].compress(False).emit("uncompressed", "u")
    server.emit("fence")
    for name in "abc":
        await client.expect("event", name=name, event="fence")

    for name in "ab":
        received = [
            [m["event"], *client.from_json(m["args"])] for m in client.seen("event", name=name)
        ]
        assert outgoing[name] == received, name
    assert outgoing["a"] == [["pong", 1], ["to all", b"\x01"], ["uncompressed", "u"], ["fence"]]
    assert outgoing["b"] == [
        ["question", {"q": 1}],
        ["to all", b"\x01"],
        ["to room", "r"],
        ["from a"],
        ["fence"],
    ]
    assert outgoing["c"] == []  # no listener left: told nothing, and still sent everything
    assert [m["event"] for m in client.seen("event", name="c")] == ["to all", "from a", "fence"]
    assert incoming["a"] == [("first", "ping me"), ("then", "ping me", 1)]
