"""Compression on a running server: permessage-deflate with wsproto as the client (an independent
implementation), checked at the frame level (RSV1 on what left the server), the broadcast
deflated once for every recipient that agreed on the same parameters, ``compress(False)``, the
decompression bomb closed with 1009, and gzip/deflate on long-polling responses.

Run on both builds: the compiled connection and reader by default, the pure ones under
FASTSIO_NO_EXTENSIONS=1."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib

import orjson
import pytest
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from fastsio.protocol import deflate as deflate_module
from tests.rawclient import WebSocketClient, http_request
from tests.test_protocol_websocket import client_frame

WS_TARGET = "/socket.io/?EIO=4&transport=websocket"
BIG = "chat history " * 400  # 5,200 bytes: compressed
SMALL = "hi"


async def connect(port: int, extensions=(), headers=()) -> WebSocketClient:
    """A Socket.IO client on a raw WebSocket: open packet read, namespace "/" connected."""
    client = await WebSocketClient.connect(port, WS_TARGET, headers, extensions)
    assert (await client.recv())[0] == "0"
    client.send("40")
    assert (await client.recv()).startswith("40")
    return client


async def event(client: WebSocketClient) -> list:
    """The next event's arguments (pings answered on the way)."""
    while True:
        message = await client.recv()
        assert message is not None, "connection closed"
        if message == "2":
            client.send("3")
            continue
        assert message.startswith("42"), message
        return orjson.loads(message[2:])


def compressed_frames(client: WebSocketClient) -> list[bool]:
    """For each data frame received so far: was it compressed (RSV1)?"""
    return [bool(b0 & 0x40) for b0, _ in client.frames() if b0 & 0x0F in (1, 2)]


def setup_handlers(sio) -> list:
    sockets: list = []

    @sio.on("connection")
    def connected(socket):
        sockets.append(socket)

    @sio.on("echo")
    def echo(socket, data):
        socket.emit("echo", data)

    @sio.on("plain")
    def plain(socket, data):
        socket.compress(False).emit("echo", data)

    return sockets


@pytest.fixture
async def deflate_server(server_factory):
    sio = await server_factory(per_message_deflate=True)
    setup_handlers(sio)
    return sio


async def test_negotiated_and_both_directions(deflate_server):
    client = await connect(deflate_server.port, [WsprotoDeflate()])
    assert [type(e).__name__ for e in client.extensions] == ["PerMessageDeflate"]
    head = bytes(client.raw).split(b"\r\n\r\n")[0].decode().lower()
    assert "sec-websocket-extensions: permessage-deflate; server_no_context_takeover" in head
    # wsproto compresses what it sends, the small one too: inflated here; the echo of the big
    # one is compressed, that of the small one (below the 1024-byte threshold) is not
    client.send("42" + json.dumps(["echo", BIG]))
    assert await event(client) == ["echo", BIG]
    client.send("42" + json.dumps(["echo", SMALL]))
    assert await event(client) == ["echo", SMALL]
    assert compressed_frames(client)[-2:] == [True, False]
    (socket,) = list(deflate_server.sockets.values())
    conn = socket.client.session._ws
    assert conn.inflater.messages == 3  # "40" and the two events came compressed
    assert socket.client.session.deflater is conn.deflater is not None
    # binary both ways
    client.send("451-" + json.dumps(["echo", {"_placeholder": True, "num": 0}]))
    client.send(bytes(3000))
    header = await client.recv()
    assert header.startswith("451-")
    assert await client.recv() == bytes(3000)
    assert compressed_frames(client)[-2:] == [False, True]
    await client.close()


async def test_compress_false(deflate_server):
    client = await connect(deflate_server.port, [WsprotoDeflate()])
    client.send("42" + json.dumps(["plain", BIG]))
    assert await event(client) == ["echo", BIG]
    assert compressed_frames(client)[-1] is False
    deflate_server.compress(False).emit("echo", BIG)
    assert await event(client) == ["echo", BIG]
    deflate_server.emit("echo", BIG)
    assert await event(client) == ["echo", BIG]
    (socket,) = list(deflate_server.sockets.values())
    socket.compress(False).emit("echo", BIG)
    assert await event(client) == ["echo", BIG]
    socket.compress(True).emit("echo", BIG)
    assert await event(client) == ["echo", BIG]
    assert compressed_frames(client)[-4:] == [False, True, False, True]
    await client.close()


async def test_broadcast_deflated_once(deflate_server, monkeypatch):
    """Three clients with the extension, one without, one with a smaller server window, and a
    polling client: every one gets the broadcast intact; the deflate runs once per server
    window (2 here), not once per recipient; per-socket emits deflate once each."""
    calls: list = []
    original = deflate_module.Deflater.compress

    def counting(self, data):
        calls.append(self.window_bits)
        return original(self, data)

    monkeypatch.setattr(deflate_module.Deflater, "compress", counting)
    port = deflate_server.port
    compressed = [await connect(port, [WsprotoDeflate()]) for _ in range(3)]
    small_window = await connect(port, [WsprotoDeflate(server_max_window_bits=10)])
    plain = await connect(port)
    _, _, body = await http_request(port, "GET", "/socket.io/?EIO=4&transport=polling")
    sid = json.loads(body[1:])["sid"]
    polling_target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    await http_request(port, "POST", polling_target, b"40")
    _, _, body = await http_request(port, "GET", polling_target)
    assert body.startswith(b"40")
    calls.clear()

    deflate_server.emit("news", BIG, {"n": 1})
    for client in [*compressed, small_window, plain]:
        assert await event(client) == ["news", BIG, {"n": 1}]
    _, headers, body = await http_request(
        port, "GET", polling_target, headers={"Accept-Encoding": "gzip"}
    )
    assert headers.get("content-encoding") == "gzip"
    assert gzip.decompress(body) == b"42" + orjson.dumps(["news", BIG, {"n": 1}])
    assert sorted(calls) == [10, 15]
    for client in [*compressed, small_window]:
        assert compressed_frames(client)[-1] is True
    assert compressed_frames(plain)[-1] is False

    calls.clear()
    for socket in list(deflate_server.sockets.values()):
        socket.emit("news", BIG)
    for client in [*compressed, small_window]:
        assert await event(client) == ["news", BIG]
    assert len(calls) == 4  # per socket: one deflate each
    for client in [*compressed, small_window, plain]:
        await client.close()


async def test_broadcast_with_binary_and_acks(deflate_server):
    clients = [await connect(deflate_server.port, [WsprotoDeflate()]) for _ in range(2)]
    deflate_server.emit("blob", bytes(4000), SMALL)
    for client in clients:
        header = await client.recv()
        assert header.startswith("451-")
        assert await client.recv() == bytes(4000)
        assert compressed_frames(client)[-2:] == [False, True]  # the attachment only
    # a broadcast with acks, to a room
    for socket in deflate_server.sockets.values():
        socket.join("room")
    results: list = []
    deflate_server.to("room").timeout(5).emit("ask", BIG, ack=lambda err, r: results.append(r))
    for client in clients:
        message = await client.recv()
        assert message.startswith("42")
        ack_id = message[2 : message.index("[")]
        assert orjson.loads(message[2 + len(ack_id) :]) == ["ask", BIG]
        client.send(f"43{ack_id}[1]")
        assert compressed_frames(client)[-1] is True
    for _ in range(100):
        if results:
            break
        await asyncio.sleep(0.01)
    assert results == [[1, 1]]
    for client in clients:
        await client.close()


async def test_browser_like_offer(deflate_server):
    """The header Chromium (and Safari, and Node's ws) sends, written by hand: accepted, and
    the frames read with wsproto's inflater set up from our answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", deflate_server.port)
    writer.write(
        (
            f"GET {WS_TARGET} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b"101 Switching Protocols" in head
    assert b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" in head
    from wsproto.frame_protocol import FrameProtocol

    extension = WsprotoDeflate()
    extension.offer()
    extension.finalize("server_no_context_takeover")
    frames = FrameProtocol(client=True, extensions=[extension])
    writer.write(frames.send_data("40"))
    writer.write(frames.send_data("42" + json.dumps(["echo", BIG])))
    messages: list = []
    while len(messages) < 3:
        frames.receive_bytes(await asyncio.wait_for(reader.read(65536), 5))
        messages += [frame.payload for frame in frames.received_frames()]
    assert messages[0].startswith("0{") and messages[1].startswith("40{")
    assert orjson.loads(messages[2][2:]) == ["echo", BIG]
    writer.close()


async def test_decompression_bomb_closes_1009(server_factory):
    sio = await server_factory(per_message_deflate=True, max_http_buffer_size=100_000)
    client = await connect(sio.port, [WsprotoDeflate()])
    stream = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = (stream.compress(b"4" + bytes(10_000_000)) + stream.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(bomb) < 100_000  # passes the wire check, not the inflated one
    client.send_raw(client_frame(1, bomb, rsv=0x40))
    assert await client.wait_closed() == 1009


async def test_off_by_default(server):
    """Without per_message_deflate the offer is ignored, and an RSV1 frame is a protocol error."""
    client = await WebSocketClient.connect(server.port, WS_TARGET)
    head = bytes(client.raw).split(b"\r\n\r\n")[0].lower()
    assert b"sec-websocket-extensions" not in head
    assert (await client.recv())[0] == "0"
    client.send_raw(client_frame(1, b"\x00", rsv=0x40))
    assert await client.wait_closed() == 1002
    # an offer from a client that gets no answer: it goes on uncompressed
    client = await connect(server.port, [WsprotoDeflate()])
    assert client.extensions == []
    await client.close()


@pytest.mark.parametrize(
    "settings",
    [
        {"client_no_context_takeover": True},
        {"client_max_window_bits": 9, "server_max_window_bits": 9, "threshold": 0},
        {"level": 1, "mem_level": 4, "threshold": 0},
    ],
)
async def test_settings_on_the_wire(server_factory, settings):
    sio = await server_factory(per_message_deflate=settings)
    setup_handlers(sio)
    client = await connect(sio.port, [WsprotoDeflate(client_max_window_bits=15)])
    head = bytes(client.raw).split(b"\r\n\r\n")[0].decode()
    if settings.get("client_no_context_takeover"):
        assert "client_no_context_takeover" in head
    if "client_max_window_bits" in settings:
        assert "client_max_window_bits=9" in head and "server_max_window_bits=9" in head
    for text in (BIG, BIG[:100], SMALL, BIG):
        client.send("42" + json.dumps(["echo", text]))
        assert await event(client) == ["echo", text]
    await client.close()


# -- HTTP compression of long-polling responses ---------------------------------------------------


async def polling_session(sio) -> tuple[str, object]:
    port = sio.port
    _, _, body = await http_request(port, "GET", "/socket.io/?EIO=4&transport=polling")
    sid = json.loads(body[1:])["sid"]
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    await http_request(port, "POST", target, b"40")
    _, _, body = await http_request(port, "GET", target)
    assert body.startswith(b"40")
    (socket,) = [s for s in sio.sockets.values() if s.client.session.sid == sid]
    return target, socket


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, deflate, br", "gzip"),
        ("deflate", "deflate"),
        ("gzip;q=0, deflate;q=0.5", "deflate"),
        ("identity", None),
        (None, None),
    ],
)
async def test_polling_compression(server, accept, coding):
    target, socket = await polling_session(server)
    expected = ("42" + orjson.dumps(["news", BIG]).decode()).encode()
    socket.emit("news", BIG)
    headers = {"Accept-Encoding": accept} if accept else {}
    status, answer, body = await http_request(server.port, "GET", target, headers=headers)
    assert status == 200
    assert answer.get("content-encoding") == coding
    assert answer.get("vary") == "Accept-Encoding"
    if coding == "gzip":
        body = gzip.decompress(body)
    elif coding == "deflate":
        body = zlib.decompress(body)
    assert body == expected
    assert int(answer["content-length"]) < len(expected) or coding is None


async def test_polling_compression_threshold_and_off(server_factory):
    sio = await server_factory()
    target, socket = await polling_session(sio)
    gzip_ok = {"Accept-Encoding": "gzip"}
    socket.emit("news", "x" * 900)  # below 1024 bytes: as is, and no Vary
    _, answer, body = await http_request(sio.port, "GET", target, headers=gzip_ok)
    assert "content-encoding" not in answer and "vary" not in answer
    assert body.endswith(b'"]')
    socket.compress(False).emit("news", BIG)  # compress(False): as is
    _, answer, body = await http_request(sio.port, "GET", target, headers=gzip_ok)
    assert "content-encoding" not in answer and body.endswith(b'"]')
    socket.compress(False).emit("news", BIG)  # one packet that may be compressed is enough
    socket.emit("news", SMALL)
    _, answer, body = await http_request(sio.port, "GET", target, headers=gzip_ok)
    assert answer.get("content-encoding") == "gzip"
    assert gzip.decompress(body).count(b"news") == 2

    off = await server_factory(http_compression=False)
    target, socket = await polling_session(off)
    socket.emit("news", BIG)
    _, answer, body = await http_request(off.port, "GET", target, headers=gzip_ok)
    assert "content-encoding" not in answer and body.endswith(b'"]')

    low = await server_factory(http_compression={"threshold": 10})
    target, socket = await polling_session(low)
    socket.emit("news", "x" * 20)
    _, answer, body = await http_request(low.port, "GET", target, headers=gzip_ok)
    assert answer.get("content-encoding") == "gzip"
    assert gzip.decompress(body) == b'42["news","' + b"x" * 20 + b'"]'
