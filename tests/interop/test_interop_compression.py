"""The official socket.io-client 4.8 (Node) with compression: over WebSocket its ws offers
permessage-deflate (``permessage-deflate; client_max_window_bits``) and compresses what it sends
from 1024 bytes on (engine.io-client's default ``perMessageDeflate: {threshold: 1024}``); large and
small messages both ways, binary, and broadcasts deflated once for every client. Over polling the
client in Node (xmlhttprequest-ssl) sends no Accept-Encoding, so it gets identity answers with
HTTP compression on (the default); gzip itself is checked with raw HTTP in test_compression.py."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.interop

BIG = {"history": [{"user": f"user{i}", "text": "message text " * 8} for i in range(40)]}
SMALL = "hi"


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def register(sio) -> list:
    sockets: list = []

    @sio.on("connection")
    def connected(socket):
        sockets.append(socket)

    @sio.on("echo")
    def echo(socket, *args):
        return args

    @sio.on("shout")
    def shout(socket, data):
        sio.emit("news", data)

    return sockets


@pytest.mark.parametrize("transports", [None, ["websocket"]], ids=["upgrade", "websocket"])
async def test_node_client_with_permessage_deflate(server_factory, node, transports):
    sio = await server_factory(per_message_deflate=True)
    sockets = register(sio)
    url = f"http://127.0.0.1:{sio.port}"
    client = await node(url)
    names = ["a", "b", "c"]
    opts = {"transports": transports} if transports else {}
    for name in names:
        await client.connect(name, opts=opts)
        await client.expect("connect", name=name)
        if transports is None:
            await client.expect("upgrade", name=name)
    await until(lambda: len(sockets) == 3, what="three sockets")
    for socket in sockets:
        session = socket.client.session
        await until(lambda s=session: s.transport_name == "websocket", what="the upgrade")
        assert session.deflater is not None  # agreed with ws

    for name in names:
        assert (await client.emit_with_ack(name, "echo", BIG))["args"] == [BIG]
        assert (await client.emit_with_ack(name, "echo", SMALL, 1))["args"] == [SMALL, 1]
        blob = bytes(range(256)) * 20
        assert (await client.emit_with_ack(name, "echo", blob, SMALL))["args"] == [blob, SMALL]
    for socket in sockets:
        # what the client compressed (its big messages) was inflated here
        assert socket.client.session._ws.inflater.messages >= 2

    # broadcasts, big and small, one of them uncompressed, one with an attachment
    await client.emit("a", "shout", BIG)
    for name in names:
        await client.expect_count("event", 1, name=name, event="news")
    sio.emit("news", SMALL)
    sio.compress(False).emit("news", BIG)
    sio.emit("news", {"blob": bytes(5000)})
    for name in names:
        events = await client.expect_count("event", 4, name=name, event="news")
        assert [e["args"] for e in events] == [
            [BIG],
            [SMALL],
            [BIG],
            [{"blob": {"$buffer": "AAAA" * 1666 + "AAA="}}],
        ]
        assert {e["transport"] for e in events} == {"websocket"}
    for socket in sockets:
        socket.emit("news", BIG)
    for name in names:
        events = await client.expect_count("event", 5, name=name, event="news")
        assert events[-1]["args"] == [BIG]
    assert not client.seen("disconnect")


async def test_node_client_polling_with_compression(server_factory, node):
    """Polling only, with both compressions on: everything arrives intact."""
    sio = await server_factory(per_message_deflate=True)
    register(sio)
    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"transports": ["polling"]})
    await client.expect("connect", name="a")
    for data in (BIG, SMALL, BIG):
        assert (await client.emit_with_ack("a", "echo", data))["args"] == [data]
    await client.emit("a", "shout", BIG)
    events = await client.expect_count("event", 1, name="a", event="news")
    assert events[0]["args"] == [BIG] and events[0]["transport"] == "polling"
