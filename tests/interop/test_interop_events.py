"""The official socket.io-client (Node) against fastsio: events, acknowledgements, binary."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastsio

pytestmark = pytest.mark.interop

TRANSPORTS = ["polling", "websocket"]

# JSON values that must survive both ways unchanged (the "\x1e" would split a polling payload if
# it were not escaped; U+2028 is valid JSON but not valid JavaScript source).
SAMPLES = [
    "hello",
    "h\u00e9llo \u2713 \U0001f600 \u2028 \x1e end",
    "",
    0,
    -42,
    2**53 - 1,
    1.5,
    True,
    False,
    None,
    [1, [2, [3, {"deep": [None]}]]],
    {"nested": {"list": [1, "two", {"three": 3.25}], "empty": {}, "none": None}},
]


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def connected_client(node, url, transport, name="a", **opts):
    client = await node(url)
    await client.connect(name, opts={"transports": [transport], **opts})
    msg = await client.expect("connect", name=name)
    return client, msg


# --------------------------------------------------------------------------- events


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_events_both_ways(server, url, node, transport):
    received: list = []
    sockets: list = []

    @server.on("connection")
    def on_connection(socket):
        sockets.append(socket)

    @server.on("chat message")
    def chat(socket, *args):
        received.append(list(args))

    @server.on("async event")
    async def async_event(socket, *args):
        await asyncio.sleep(0.01)
        received.append(["async", *args])

    client, _ = await connected_client(node, url, transport)
    await until(lambda: sockets, what="the connection handler")

    for sample in SAMPLES:
        await client.emit("a", "chat message", sample)
    await client.emit("a", "chat message", "several", 2, {"three": [3]})
    await client.emit("a", "chat message")
    await client.emit("a", "async event", "x")
    await until(lambda: len(received) == len(SAMPLES) + 3, what="the client's events")
    assert received[: len(SAMPLES)] == [[s] for s in SAMPLES]
    assert received[len(SAMPLES) :] == [["several", 2, {"three": [3]}], [], ["async", "x"]]

    (socket,) = sockets
    for sample in SAMPLES:
        socket.emit("server message", sample)
    socket.emit("server message", "several", 2, {"three": [3]})
    socket.emit("server message")
    socket.emit("\u00fcnicode event name \U0001f600", 1)
    await client.expect_count("event", len(SAMPLES) + 2, name="a", event="server message")
    await client.expect("event", name="a", event="\u00fcnicode event name \U0001f600")
    assert client.events("a", "server message") == [[s] for s in SAMPLES] + [
        ["several", 2, {"three": [3]}],
        [],
    ]


# --------------------------------------------------------------------------- acks


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_to_server_acks(server, url, node, transport):
    @server.on("sync")
    def sync_handler(socket, value):
        return f"ok {value}"

    @server.on("async")
    async def async_handler(socket, value):
        await asyncio.sleep(0.02)
        return {"doubled": value * 2}

    @server.on("several")
    def several(socket):
        return ("one", 2, [3])

    release = asyncio.Event()

    @server.on("never")
    async def never(socket, *args):
        await asyncio.wait_for(release.wait(), 5)  # does not answer while the client waits

    client, _ = await connected_client(node, url, transport)

    assert (await client.emit_with_ack("a", "sync", "x"))["args"] == ["ok x"]
    assert (await client.emit_with_ack("a", "async", 21))["args"] == [{"doubled": 42}]
    assert (await client.emit_with_ack("a", "several"))["args"] == ["one", 2, [3]]
    # an ack with a client-side timeout that is met
    reply = await client.emit_with_ack("a", "sync", "y", timeout_ms=2000)
    assert reply["ev"] == "ack" and reply["args"] == ["ok y"]

    started = time.monotonic()
    reply = await client.emit_with_ack("a", "never", 1, timeout_ms=200)
    elapsed = time.monotonic() - started
    release.set()
    assert reply["ev"] == "ack_error", reply
    assert reply["message"] == "operation has timed out"
    assert 0.15 < elapsed < 2
    # the connection is fine afterwards
    assert (await client.emit_with_ack("a", "sync", "z"))["args"] == ["ok z"]
    assert not client.seen("disconnect")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_to_client_acks(server, url, node, transport):
    sockets: list = []

    @server.on("connection")
    def on_connection(socket):
        sockets.append(socket)

    client, _ = await connected_client(node, url, transport)
    await client.call("ack_policy", name="a", event="question", reply=["answer", 42])
    await client.call("ack_policy", name="a", event="echo", echo=True)
    await client.call("ack_policy", name="a", event="one", reply=[{"k": "v"}])
    await until(lambda: sockets, what="the connection handler")
    (socket,) = sockets

    # callback style: the callback gets the client's ack arguments
    got: list = []
    socket.emit("question", "what?", ack=lambda *args: got.append(args))
    await until(lambda: got, what="the ack callback")
    assert got == [("answer", 42)]
    assert (await client.expect("event", name="a", event="question"))["args"] == ["what?"]

    # awaitable style
    assert await socket.emit_with_ack("one", timeout=2) == {"k": "v"}
    assert await socket.emit_with_ack("echo", "single", timeout=2) == "single"

    # a client that never acks
    started = time.monotonic()
    with pytest.raises(fastsio.AckTimeoutError):
        await socket.emit_with_ack("unanswered", 1, timeout=0.2)
    elapsed = time.monotonic() - started
    assert 0.15 < elapsed < 1.5
    assert (await client.expect("event", name="a", event="unanswered"))["ack"] is True
    # still connected and working
    assert await socket.emit_with_ack("echo", "again", timeout=2) == "again"


# --------------------------------------------------------------------------- binary


BLOB = bytes(range(256)) * 40  # 10 KiB, every byte value


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_binary_client_to_server(server, url, node, transport):
    received: list = []

    @server.on("upload")
    def upload(socket, *args):
        received.append(args)
        _, payload = args
        # a binary ack: bytes nested in the answer
        return {"size": len(payload["file"]), "head": payload["file"][:4]}, b"\x00\xff"

    client, _ = await connected_client(node, url, transport)
    ab = client.arraybuffer(b"\x01\x02\x03")
    reply = await client.emit_with_ack(
        "a",
        "upload",
        {"name": "blob.bin"},
        {"file": BLOB, "parts": [ab, {"deep": b"\xff" * 3}, b""], "text": "not binary"},
    )
    assert reply["args"] == [{"size": len(BLOB), "head": BLOB[:4]}, b"\x00\xff"]

    ((meta, payload),) = received
    assert meta == {"name": "blob.bin"}
    assert payload["file"] == BLOB and isinstance(payload["file"], bytes)
    assert payload["parts"] == [b"\x01\x02\x03", {"deep": b"\xff\xff\xff"}, b""]
    assert payload["text"] == "not binary"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_binary_server_to_client(server, url, node, transport):
    sockets: list = []

    @server.on("connection")
    def on_connection(socket):
        sockets.append(socket)

    client, _ = await connected_client(node, url, transport)
    await client.call("ack_policy", name="a", event="echo", echo=True)
    await until(lambda: sockets, what="the connection handler")
    (socket,) = sockets

    socket.emit("download", {"file": BLOB, "list": [b"x", {"deep": b"\x00" * 1000}]}, b"\x07")
    msg = await client.expect("event", name="a", event="download")
    assert msg["args"][1] == {"$buffer": "Bw=="}  # a Node Buffer, not a string or an array
    args = client.from_json(msg["args"])
    assert args == [{"file": BLOB, "list": [b"x", {"deep": b"\x00" * 1000}]}, b"\x07"]

    # binary in both directions through an ack
    answer = await socket.emit_with_ack("echo", {"blob": BLOB[:300], "n": 1}, timeout=2)
    assert answer == {"blob": BLOB[:300], "n": 1}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_large_payloads(server, url, node, transport):
    """Messages far over one TCP segment / one 64 KiB WebSocket frame length, under maxPayload."""
    big_text = "\u00e9" * 300_000  # 600 kB of UTF-8
    big_blob = bytes(range(256)) * 1600  # 400 kB

    @server.on("big")
    def big(socket, *args):
        return tuple(args)

    client, _ = await connected_client(node, url, transport)
    assert (await client.emit_with_ack("a", "big", big_text))["args"] == [big_text]
    assert (await client.emit_with_ack("a", "big", {"blob": big_blob}))["args"] == [
        {"blob": big_blob}
    ]


async def test_binary_broadcast_to_mixed_transports(server, url, node):
    """One broadcast with attachments reaches polling, WebSocket and upgraded clients alike."""
    sockets: dict = {}

    @server.on("connection")
    def on_connection(socket):
        sockets[socket.handshake.auth["name"]] = socket
        socket.join("room")

    client = await node(url)
    transports = {"p": ["polling"], "w": ["websocket"], "u": ["polling", "websocket"]}
    for name, allowed in transports.items():
        await client.connect(name, opts={"transports": allowed, "auth": {"name": name}})
        await client.expect("connect", name=name)
    await client.expect("upgrade", name="u")
    await until(lambda: len(sockets) == 3, what="three connections")

    payload = {"blob": BLOB, "parts": [b"\x00", b"\x01\x02"], "n": 1}
    server.emit("everyone", payload, b"\xfe")
    server.to("room").except_(sockets["w"].id).emit("room", b"\x0a" * 70_000)
    sockets["u"].broadcast.emit("others", {"x": b"\x0b"})
    server.emit("fence")
    for name in transports:
        await client.expect("event", name=name, event="fence")
        assert client.events(name, "everyone") == [[payload, b"\xfe"]], name
    assert client.events("p", "room") == [[b"\x0a" * 70_000]]
    assert client.events("u", "room") == [[b"\x0a" * 70_000]]
    assert client.events("w", "room") == []
    assert client.events("p", "others") == client.events("w", "others") == [[{"x": b"\x0b"}]]
    assert client.events("u", "others") == []
