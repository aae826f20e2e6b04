"""socket.io-client 2.x (2.0.4, the classic CDN version, and 2.5.0, the last 2.x) against fastsio
with ``allow_eio3=True``: transports, upgrade, events, acks, binary, heartbeat, namespaces with
query auth, middleware refusal, and v2 and v4 clients sharing a room. With the option off a v2
client is refused with the spec's "Unsupported protocol version"."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from fastsio import ConnectionRefused
from tests.rawclient import http_request

from .helpers import TRANSPORTS, server_url, until

pytestmark = pytest.mark.interop

V2_CLIENTS = ["sio2", "sio2-last"]

TEXT = "h\u00e9llo \U0001f600 \u2028 \x1e :1:2"


@pytest.mark.parametrize("transport", list(TRANSPORTS))
@pytest.mark.parametrize("client", V2_CLIENTS)
async def test_events_acks_and_binary(server_factory, node2, client, transport):
    sio = await server_factory(allow_eio3=True)
    sockets: list = []
    received: list = []
    reasons: list = []

    @sio.on("connection")
    def on_connection(socket):
        sockets.append(socket)
        socket.emit("welcome", TEXT, b"\x00\x01\xff")

    @sio.on("msg")
    def on_msg(socket, *args):
        received.append(list(args))
        return ("got", *args)

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        reasons.append(reason)

    node = await node2(server_url(sio), client=client)
    await node.connect("a", opts={"transports": TRANSPORTS[transport]})
    opened = await node.expect("open", name="a")
    connected = await node.expect("connect", name="a")
    await until(lambda: sockets, what="the connection handler")
    socket = sockets[0]
    # a v2 client's socket id is the Engine.IO sid; the server uses the same
    assert connected["id"] == opened["sid"] == socket.id
    assert socket.client.protocol == 3
    assert socket.handshake.query["EIO"] == "3"
    welcome = await node.expect("event", name="a", event="welcome")
    assert node.from_json(welcome["args"]) == [TEXT, b"\x00\x01\xff"]

    # client -> server, with binary nested in objects and an ack answered by the return value
    reply = await node.emit_with_ack("a", "msg", TEXT, {"bin": b"\x00\xff", "n": [1, None]}, 2.5)
    assert reply["args"] == ["got", TEXT, {"bin": b"\x00\xff", "n": [1, None]}, 2.5]
    await node.emit("a", "msg", node.arraybuffer(b"\x07" * 300))
    await until(lambda: len(received) == 2, what="the client's events")
    assert received[1] == [b"\x07" * 300]

    if transport == "upgrade":
        await node.expect("upgrade", name="a", transport="websocket")

    # server -> client with an ack the client answers
    await node.call("ack_policy", name="a", event="ask", echo=True)
    answer = await asyncio.wait_for(socket.emit_with_ack("ask", 1, b"\x09", {"k": "v"}), 5)
    assert answer == (1, b"\x09", {"k": "v"})

    info = await node.info("a")
    assert info["transport"] == ("polling" if transport == "polling" else "websocket")
    assert info["connected"]

    await node.call("disconnect", name="a")
    await until(lambda: reasons, what="the disconnect")
    assert reasons == ["client namespace disconnect"]


async def test_v2_and_v4_clients_in_one_room(server_factory, node2):
    sio = await server_factory(allow_eio3=True)
    by_name: dict = {}
    reasons: dict = {}

    @sio.on("join")
    def join(socket, name):
        by_name[name] = socket
        socket.join("room")
        return "joined"

    @sio.on("say")
    def say(socket, text):
        socket.to("room").emit("said", text, b"\xfe" + text.encode())

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        reasons[socket.id] = reason

    node = await node2(server_url(sio))
    clients = {
        "old": ("sio2", ["polling"]),
        "last": ("sio2-last", ["websocket"]),
        "new": ("sio4", ["polling", "websocket"]),
    }
    for name, (version, transports) in clients.items():
        await node.connect(name, client=version, opts={"transports": transports})
    for name in clients:
        await node.expect("connect", name=name)
        assert (await node.emit_with_ack(name, "join", name))["args"] == ["joined"]
    assert by_name["old"].client.protocol == 3 and by_name["new"].client.protocol == 4

    for name in clients:
        await node.emit(name, "say", f"from {name} \U0001f600")
    for name in clients:
        others = sorted(n for n in clients if n != name)
        events = await node.expect_count("event", 2, name=name, event="said")
        got = sorted(node.from_json(e["args"])[0] for e in events)
        assert got == [f"from {other} \U0001f600" for other in others]
        for event in events:
            text, blob = node.from_json(event["args"])
            assert blob == b"\xfe" + text.encode()

    # one broadcast (encoded once) with binary reaches both protocol versions
    sio.to("room").emit("all", {"blob": b"\x00\x01"}, "end")
    for name in clients:
        event = await node.expect("event", name=name, event="all")
        assert node.from_json(event["args"]) == [{"blob": b"\x00\x01"}, "end"]

    # server-side disconnect of a v2 client, client-side of the other
    by_name["old"].disconnect()
    assert (await node.expect("disconnect", name="old"))["reason"] == "io server disconnect"
    await node.call("disconnect", name="last")
    await until(lambda: by_name["last"].id in reasons, what="the v2 client's disconnect")
    assert reasons[by_name["last"].id] == "client namespace disconnect"


@pytest.mark.parametrize("client", V2_CLIENTS)
async def test_namespaces_query_auth_and_refusals(server_factory, node2, client):
    sio = await server_factory(allow_eio3=True)
    admin = sio.of("/admin")
    seen: list = []

    @sio.use
    def main_gate(socket):
        if socket.handshake.query.get("deny"):
            raise ConnectionRefused("go away")

    @admin.use
    def admin_gate(socket):
        if socket.handshake.auth.get("token") != "s3cret":
            raise ConnectionRefused("not authorized")

    @admin.on("connection")
    def admin_connected(socket):
        seen.append(socket)

    @admin.on("whoami")
    def whoami(socket):
        return socket.nsp.name, socket.id

    @sio.of("/data").use
    def data_gate(socket):
        raise ConnectionRefused("nope", {"code": 42})

    dynamic = sio.of(re.compile(r"^/dyn-\d+$"))

    @dynamic.on("connection")
    def dynamic_connected(socket):
        seen.append(socket)

    node = await node2(server_url(sio), client=client)
    await node.connect("a", nsp="/admin", opts={"query": {"token": "s3cret"}})
    opened = await node.expect("open", name="a")
    connected = await node.expect("connect", name="a")
    assert connected["id"] == "/admin#" + opened["sid"]
    await until(lambda: seen, what="the /admin connection")
    socket = seen[0]
    assert socket.id == connected["id"]
    assert socket.handshake.auth == {"token": "s3cret"}  # the namespace's query, as Node
    assert socket.handshake.query["token"] == "s3cret"
    reply = await node.emit_with_ack("a", "whoami")
    assert reply["args"] == ["/admin", connected["id"]]

    # a second namespace on the same connection, with its own query
    await node.connect("e", nsp="/dyn-7", manager="a", opts={"query": {"room": "blue"}})
    connected_e = await node.expect("connect", name="e")
    await until(lambda: len(seen) == 2, what="the dynamic namespace connection")
    assert seen[1].nsp.name == "/dyn-7" and seen[1].id == connected_e["id"]
    assert seen[1].handshake.auth == {"room": "blue"}
    assert seen[1].handshake.query["room"] == "blue"  # merged into the query, as socket.io 2.x
    assert seen[1].client is socket.client

    # refusals arrive as plain strings (or the data, when there is some)
    await node.connect("b", nsp="/admin", opts={"query": {"token": "wrong"}})
    await node.connect("c", nsp="/data")
    await node.connect("d", nsp="/nope")
    await node.connect("f", opts={"query": {"deny": "1"}})
    assert (await node.expect("server_error", name="b"))["data"] == "not authorized"
    assert (await node.expect("server_error", name="c"))["data"] == {"code": 42}
    assert (await node.expect("server_error", name="d"))["data"] == "Invalid namespace"
    assert (await node.expect("server_error", name="f"))["data"] == "go away"
    await node.assert_none(0.1, "connect", name="b")
    assert len(seen) == 2


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_client_heartbeat_and_ping_timeout(server_factory, node2, transport):
    sio = await server_factory(allow_eio3=True, ping_interval=0.3, ping_timeout=0.2)
    closed: list = []

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        closed.append((reason, time.monotonic()))

    node = await node2(server_url(sio), client="sio2")
    await node.connect("a", opts={"transports": [transport]})
    await node.expect("connect", name="a")
    # the client pings every 300 ms and the server answers
    await node.expect_count("pong", 3, name="a", timeout=3)
    assert not closed
    node.suspend()
    suspended = time.monotonic()
    try:
        await until(lambda: closed, timeout=3, what="the ping timeout")
    finally:
        node.resume()
    reason, when = closed[0]
    assert reason == "ping timeout"
    # no ping for ping_interval + ping_timeout (0.5 s) since the last one closes it, promptly
    assert when - suspended < 0.5 + 0.25


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_v2_client_refused_when_the_option_is_off(server_factory, node2, transport):
    sio = await server_factory()  # allow_eio3 defaults to False, as in Node
    node = await node2(server_url(sio), client="sio2")
    await node.connect("a", opts={"transports": [transport], "reconnection": False})
    await node.expect("connect_error", name="a")
    await node.assert_none(0.2, "connect", name="a")
    assert not sio._clients
    status, _, body = await http_request(sio.port, "GET", "/socket.io/?EIO=3&transport=polling")
    assert status == 400
    assert json.loads(body) == {"code": 5, "message": "Unsupported protocol version"}
