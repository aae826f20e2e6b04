"""``Server(parser="msgpack")`` against socket.io-client with the npm ``socket.io-msgpack-parser``:
3.x with socket.io-client 4.8, 2.x with socket.io-client 2.x (``allow_eio3``), every transport.
Events, acks, binary (Buffer, ArrayBuffer), JavaScript's undefined and Date, namespaces, middleware
refusal and broadcasts to v2 and v4 clients in one room."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from fastsio import ConnectionRefused

from .helpers import TRANSPORTS, server_url, until

pytestmark = pytest.mark.interop
pytest.importorskip("msgpack")

TEXT = "h\u00e9llo \U0001f600 \u2028"
WHEN = datetime.datetime(2024, 2, 29, 12, 30, 15, 250000, tzinfo=datetime.timezone.utc)
WHEN_MS = 1709209815250


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_msgpack_v4_client(server_factory, node2, transport):
    sio = await server_factory(parser="msgpack")
    sockets: list = []
    received: list = []

    @sio.on("connection")
    def on_connection(socket):
        sockets.append(socket)
        socket.emit("welcome", TEXT, b"\x00\xff", {"when": WHEN, "n": [1, 2.5, None]})

    @sio.on("msg")
    def on_msg(socket, *args):
        received.append(list(args))
        return ("got", *args)

    @sio.of("/private").use
    def gate(socket):
        raise ConnectionRefused("not authorized", {"retry": False})

    node = await node2(server_url(sio), client="sio4", parser="msgpack")
    await node.connect("a", opts={"transports": TRANSPORTS[transport]})
    connected = await node.expect("connect", name="a")
    await until(lambda: sockets, what="the connection")
    assert sockets[0].id == connected["id"]
    welcome = await node.expect("event", name="a", event="welcome")
    assert node.from_json(welcome["args"]) == [
        TEXT,
        b"\x00\xff",
        {"when": {"$date": WHEN_MS}, "n": [1, 2.5, None]},
    ]

    # Buffer -> bin, ArrayBuffer -> notepack ext 0, undefined -> fixext 1, Date -> fixext 8
    reply = await node.emit_with_ack(
        "a",
        "msg",
        TEXT,
        {"buf": b"\x01\x02", "ab": node.arraybuffer(b"\x00"), "u": {"$undefined": True}},
        {"$date": WHEN_MS},
        node.arraybuffer(b"\x03" * 8),
    )
    expected = [TEXT, {"buf": b"\x01\x02", "ab": b"\x00", "u": None}, WHEN, b"\x03" * 8]
    assert received == [expected]
    assert reply["args"][0] == "got" and reply["args"][1:3] == [
        TEXT,
        {"buf": b"\x01\x02", "ab": b"\x00", "u": None},
    ]

    if transport == "upgrade":
        await node.expect("upgrade", name="a", transport="websocket")
    await node.call("ack_policy", name="a", event="ask", echo=True)
    answer = await asyncio.wait_for(sockets[0].emit_with_ack("ask", b"\x09", [1]), 5)
    assert answer == (b"\x09", [1])

    # a refused namespace: connect_error with the message and the data
    await node.connect("p", nsp="/private", manager="a")
    error = await node.expect("connect_error", name="p")
    assert error["message"] == "not authorized"
    assert error["data"] == {"retry": False}
    info = await node.info("a")
    assert info["connected"] and info["transport"] == (
        "polling" if transport == "polling" else "websocket"
    )


async def test_msgpack_v2_and_v4_clients_in_one_room(server_factory, node2):
    sio = await server_factory(parser="msgpack", allow_eio3=True)
    joined: dict = {}

    @sio.on("join")
    def join(socket, name):
        joined[name] = socket
        socket.join("room")
        return ("joined", socket.id)

    @sio.on("say")
    def say(socket, *args):
        socket.to("room").emit("said", *args)

    admin = sio.of("/admin")

    @admin.use
    def admin_gate(socket):
        if socket.handshake.auth.get("token") != "s3cret":
            raise ConnectionRefused("not authorized")

    node = await node2(server_url(sio), parser="msgpack")
    clients = {
        "old": ("sio2", ["polling"]),
        "last": ("sio2-last", ["polling", "websocket"]),
        "new": ("sio4", ["websocket"]),
    }
    for name, (version, transports) in clients.items():
        await node.connect(name, client=version, opts={"transports": transports})
    for name in clients:
        connected = await node.expect("connect", name=name)
        reply = await node.emit_with_ack(name, "join", name)
        assert reply["args"] == ["joined", connected["id"]]
    assert joined["old"].client.protocol == 3 and joined["new"].client.protocol == 4

    for name in clients:
        await node.emit(name, "say", name, b"\x00" + name.encode())
    for name in clients:
        events = await node.expect_count("event", 2, name=name, event="said")
        got = sorted(tuple(node.from_json(e["args"])) for e in events)
        assert got == sorted((n, b"\x00" + n.encode()) for n in clients if n != name)

    sio.to("room").emit("all", {"blob": b"\x00\x01"}, TEXT)
    for name in clients:
        event = await node.expect("event", name=name, event="all")
        assert node.from_json(event["args"]) == [{"blob": b"\x00\x01"}, TEXT]

    # a v2 msgpack client's namespace CONNECT (JSON text in the 2.x parser) with a query, and a
    # refusal as a plain string
    await node.connect("adm", client="sio2", nsp="/admin", opts={"query": {"token": "s3cret"}})
    await node.connect("bad", client="sio2", nsp="/admin", opts={"query": {"token": "no"}})
    await node.expect("connect", name="adm")
    assert (await node.expect("server_error", name="bad"))["data"] == "not authorized"
    joined["old"].disconnect()
    assert (await node.expect("disconnect", name="old"))["reason"] == "io server disconnect"
