"""Bad and edge-case input on the wire, with raw HTTP / WebSocket clients written here (no Node and
no fastsio code on the client side). Every test that hurts one session checks that another, healthy
session still works afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time

import pytest

TIMEOUT = 5.0
EIO = "/socket.io/?EIO=4"


# --------------------------------------------------------------------------- raw HTTP


class Response:
    def __init__(self, status: int, headers: dict, body: bytes) -> None:
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            k = k.strip().lower()
            headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    return status, headers


async def read_body(reader: asyncio.StreamReader, headers: dict) -> bytes:
    if "content-length" in headers:
        n = int(headers["content-length"])
        return await asyncio.wait_for(reader.readexactly(n), TIMEOUT) if n else b""
    if "chunked" in headers.get("transfer-encoding", ""):
        body = b""
        while True:
            size = int((await asyncio.wait_for(reader.readline(), TIMEOUT)).split(b";")[0], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), TIMEOUT)
            if size == 0:
                return body
            body += chunk[:-2]
    return await asyncio.wait_for(reader.read(), TIMEOUT)


async def http(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict | None = None,
    timeout: float = TIMEOUT,
) -> Response:
    """One request on its own connection (``Connection: close``)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
    try:
        hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close", **(headers or {})}
        if body or method == "POST":
            hdrs.setdefault("Content-Type", "text/plain;charset=UTF-8")
            hdrs["Content-Length"] = str(len(body))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        writer.write(head.encode() + b"\r\n" + body)
        status, rheaders = await asyncio.wait_for(read_head(reader), timeout)
        return Response(status, rheaders, await read_body(reader, rheaders))
    finally:
        writer.close()


class Polling:
    """A raw Engine.IO v4 long-polling session."""

    def __init__(self, port: int, path: str = "/socket.io/") -> None:
        self.port = port
        self.path = path
        self.sid = ""
        self.open: dict = {}

    def target(self, extra: str = "") -> str:
        return f"{self.path}?EIO=4&transport=polling&sid={self.sid}{extra}"

    async def handshake(self) -> dict:
        r = await http(self.port, "GET", f"{self.path}?EIO=4&transport=polling")
        assert r.status == 200, r
        assert r.body[:1] == b"0", r
        self.open = json.loads(r.body[1:].split(b"\x1e")[0])
        self.sid = self.open["sid"]
        return self.open

    async def post(self, payload: str | bytes) -> Response:
        data = payload.encode() if isinstance(payload, str) else payload
        return await http(self.port, "POST", self.target(), data)

    async def get(self, timeout: float = TIMEOUT) -> Response:
        return await http(self.port, "GET", self.target(), timeout=timeout)

    async def packets(self, timeout: float = TIMEOUT) -> list[str]:
        r = await self.get(timeout)
        assert r.status == 200, r
        return r.body.decode().split("\x1e")

    async def expect(self, predicate, timeout: float = TIMEOUT) -> str:
        """Polls until a packet matches (skipping pings / noops / other packets)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for packet in await self.packets(timeout=max(0.1, deadline - time.monotonic())):
                if predicate(packet):
                    return packet
                if packet == "2":
                    assert (await self.post("3")).status == 200
        raise AssertionError("no matching packet")

    async def connect(self, nsp: str = "/") -> dict:
        prefix = "40" if nsp == "/" else f"40{nsp},"
        assert (await self.post(prefix)).status == 200
        packet = await self.expect(lambda p: p.startswith((prefix, "44")))
        assert packet.startswith(prefix), packet
        return json.loads(packet[len(prefix) :])

    async def echo(self, value, ack_id: int = 1) -> None:
        """Emits ["echo", value] with an ack id and checks the server's answer."""
        assert (await self.post(f"42{ack_id}" + json.dumps(["echo", value]))).status == 200
        packet = await self.expect(lambda p: p.startswith(f"43{ack_id}"))
        assert json.loads(packet[len(f"43{ack_id}") :]) == [value]


async def assert_session_closed(session: Polling) -> None:
    """The session is over: its next GET brings the close packet, or its sid is unknown."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        r = await session.get()
        if r.status == 400:
            assert r.json() == {"code": 1, "message": "Session ID unknown"}
            return
        assert r.status == 200, r
        if "1" in r.body.decode().split("\x1e"):
            return
        assert time.monotonic() < deadline, "session not closed"


# --------------------------------------------------------------------------- raw WebSocket


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, target: str, headers: dict | None = None) -> RawWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        writer.write(
            (
                f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        status, headers = await read_head(reader)
        assert status == 101, (status, headers)
        return cls(reader, writer)

    def send_frame(
        self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0
    ) -> None:
        head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
        n = len(payload)
        bit = 0x80 if mask else 0
        if n < 126:
            head += bytes([bit | n])
        elif n < 65536:
            head += bytes([bit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([bit | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.writer.write(head + payload)

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    async def recv_frame(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            assert not b1 & 0x80, "server frames must not be masked"
            return b0 & 0x0F, await self.reader.readexactly(n)

        return await asyncio.wait_for(read(), timeout)

    async def recv_text(self, timeout: float = TIMEOUT) -> str:
        """The next text message, answering pings ("2") on the way."""
        while True:
            opcode, payload = await self.recv_frame(timeout)
            assert opcode == 0x1, (opcode, payload)
            text = payload.decode()
            if text == "2":
                self.send_text("3")
                continue
            return text

    async def expect_close(self, timeout: float = TIMEOUT) -> int | None:
        """Reads until the server's close frame; returns its code (None: no close frame, EOF)."""
        try:
            while True:
                opcode, payload = await self.recv_frame(timeout)
                if opcode == 0x8:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        except asyncio.IncompleteReadError:
            return None

    async def expect_eof(self, timeout: float = TIMEOUT) -> None:
        data = await asyncio.wait_for(self.reader.read(), timeout)
        assert data == b"", data

    def close(self) -> None:
        self.writer.close()


async def ws_session(port: int) -> RawWebSocket:
    """A raw WebSocket-only session connected to "/"."""
    ws = await RawWebSocket.connect(port, "/socket.io/?EIO=4&transport=websocket")
    assert (await ws.recv_text()).startswith("0{")
    ws.send_text("40")
    assert (await ws.recv_text()).startswith("40{")
    return ws


async def ws_echo(ws: RawWebSocket, value, ack_id: int = 1) -> None:
    ws.send_text(f"42{ack_id}" + json.dumps(["echo", value]))
    assert await ws.recv_text() == f"43{ack_id}" + json.dumps([value], separators=(",", ":"))


# --------------------------------------------------------------------------- fixtures


def with_echo(sio):
    gone: list = []

    @sio.on("echo")
    def echo(socket, *args):
        return args

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        gone.append(reason)

    return gone


class Healthy:
    """A polling session that was healthy before the test hurt another one."""

    def __init__(self, port: int, gone: list) -> None:
        self.port = port
        self.gone = gone  # reasons the server's "disconnect" handler got
        self.session = Polling(port)

    async def __call__(self) -> None:
        """Checks that the old session and a brand-new one still work."""
        await self.session.echo("after", ack_id=2)
        fresh = Polling(self.port)
        await fresh.handshake()
        await fresh.connect()
        await fresh.echo("fresh")


@pytest.fixture
async def healthy(server):
    """Registers the "echo" handler on ``server`` and opens a healthy session; await it to check
    that session (and a new one) still work."""
    check = Healthy(server.port, with_echo(server))
    await check.session.handshake()
    await check.session.connect()
    await check.session.echo("before")
    return check


def error_json(r: Response) -> dict:
    assert r.status == 400, r
    return r.json()


# --------------------------------------------------------------------------- HTTP-level errors


async def test_unknown_transport(server, healthy):
    r = await http(server.port, "GET", f"{EIO}&transport=carrier-pigeon")
    assert error_json(r) == {"code": 0, "message": "Transport unknown"}
    r = await http(server.port, "GET", "/socket.io/?EIO=4")  # no transport at all
    assert error_json(r) == {"code": 0, "message": "Transport unknown"}
    await healthy()


async def test_unknown_sid(server, healthy):
    unknown = {"code": 1, "message": "Session ID unknown"}
    r = await http(server.port, "GET", f"{EIO}&transport=polling&sid=nope")
    assert error_json(r) == unknown
    r = await http(server.port, "POST", f"{EIO}&transport=polling&sid=nope", b"40")
    assert error_json(r) == unknown
    with pytest.raises(AssertionError, match="400"):
        await RawWebSocket.connect(server.port, f"{EIO}&transport=websocket&sid=nope")
    await healthy()


async def test_unknown_sid_wins_over_missing_upgrade(server, healthy):
    """Node's engine.io checks the sid before it checks that a websocket request upgrades."""
    unknown = {"code": 1, "message": "Session ID unknown"}
    r = await http(server.port, "GET", f"{EIO}&transport=websocket&sid=nope")
    assert error_json(r) == unknown
    await healthy()


async def test_bad_handshake_method(server, healthy):
    r = await http(server.port, "POST", f"{EIO}&transport=polling", b"40")
    assert error_json(r) == {"code": 2, "message": "Bad handshake method"}
    await healthy()


async def test_bad_request(server, healthy):
    # a WebSocket handshake without the upgrade headers
    r = await http(server.port, "GET", f"{EIO}&transport=websocket")
    assert error_json(r) == {"code": 3, "message": "Bad request"}
    # a polling session addressed as websocket, without upgrading
    session = Polling(server.port)
    await session.handshake()
    r = await http(server.port, "GET", f"{EIO}&transport=websocket&sid={session.sid}")
    assert error_json(r) == {"code": 3, "message": "Bad request"}
    await healthy()


async def test_eio3_refused(server, healthy):
    r = await http(server.port, "GET", "/socket.io/?EIO=3&transport=polling")
    assert error_json(r) == {"code": 5, "message": "Unsupported protocol version"}
    await healthy()


async def test_cors(server_factory):
    sio = await server_factory(cors_allowed_origins="*")
    origin = {"Origin": "http://example.com"}
    r = await http(sio.port, "GET", f"{EIO}&transport=polling", headers=origin)
    assert r.status == 200
    assert r.headers.get("access-control-allow-origin") in ("*", "http://example.com"), r
    r = await http(
        sio.port,
        "OPTIONS",
        f"{EIO}&transport=polling",
        headers={**origin, "Access-Control-Request-Method": "POST"},
    )
    assert r.status in (200, 204), r
    assert r.headers.get("access-control-allow-origin") in ("*", "http://example.com"), r
    assert "POST" in r.headers.get("access-control-allow-methods", ""), r
    # error answers carry the CORS headers too, or a browser could not read their status
    r = await http(sio.port, "GET", f"{EIO}&transport=polling&sid=nope", headers=origin)
    assert r.status == 400
    assert r.headers.get("access-control-allow-origin") in ("*", "http://example.com"), r


async def test_cors_with_an_allow_list(server_factory):
    sio = await server_factory(cors_allowed_origins=["http://good.example"])
    r = await http(
        sio.port, "GET", f"{EIO}&transport=polling", headers={"Origin": "http://good.example"}
    )
    assert r.status == 200
    assert r.headers.get("access-control-allow-origin") == "http://good.example", r
    r = await http(
        sio.port, "GET", f"{EIO}&transport=polling", headers={"Origin": "http://evil.example"}
    )
    assert r.headers.get("access-control-allow-origin") not in ("*", "http://evil.example"), r


# --------------------------------------------------------------------------- sessions


async def test_second_concurrent_get_closes_the_session(server, healthy):
    session = Polling(server.port)
    await session.handshake()
    first = asyncio.ensure_future(session.get())  # parked: nothing to send yet
    await asyncio.sleep(0.1)
    assert not first.done()
    second = await session.get()
    assert second.status == 400, second
    # the parked GET is released (with the close packet) instead of hanging
    released = await asyncio.wait_for(first, TIMEOUT)
    assert released.status != 200 or "1" in released.body.decode().split("\x1e"), released
    r = await session.get()
    assert error_json(r) == {"code": 1, "message": "Session ID unknown"}
    await healthy()


async def test_post_over_max_http_buffer_size(server_factory):
    sio = await server_factory(max_http_buffer_size=1000)
    with_echo(sio)
    other = Polling(sio.port)
    await other.handshake()
    await other.connect()
    victim = Polling(sio.port)
    opened = await victim.handshake()
    assert opened["maxPayload"] == 1000
    await victim.connect()

    r = await victim.post("4" + "x" * 2000)
    assert r.status == 413, r
    await other.echo("unaffected")


SOCKETIO_ERROR = ("parse error", "forced close")  # Node's socket.io says "forced close"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize(
    "messages, reasons",
    [
        # not Socket.IO packets
        pytest.param(["4garbage"], SOCKETIO_ERROR, id="socketio-garbage"),
        pytest.param(['42["unterminated'], SOCKETIO_ERROR, id="socketio-bad-json"),
        pytest.param(['42{"not":"an array"}'], SOCKETIO_ERROR, id="socketio-event-not-array"),
        # a binary event whose attachment never comes: text instead
        pytest.param(
            ['451-["x",{"_placeholder":true,"num":0}]', '42["y"]'],
            SOCKETIO_ERROR,
            id="socketio-text-instead-of-attachment",
        ),
        # a placeholder pointing past the attachments
        pytest.param(
            ['451-["x",{"_placeholder":true,"num":7}]', b"\x01"],
            SOCKETIO_ERROR,
            id="socketio-placeholder-out-of-range",
        ),
        # not an Engine.IO packet
        pytest.param(["9oops"], ("parse error",), id="engineio-unknown-type"),
    ],
)
async def test_malformed_packet_closes_only_that_session(
    server, healthy, transport, messages, reasons
):
    if transport == "polling":
        victim = Polling(server.port)
        await victim.handshake()
        await victim.connect()
        await victim.echo("ok")
        for message in messages:  # Node answers 200 "ok"; either way the session ends
            if isinstance(message, bytes):
                message = "b" + base64.b64encode(message).decode()
            if (await victim.post(message)).status != 200:
                break
        await assert_session_closed(victim)
    else:
        ws = await ws_session(server.port)
        await ws_echo(ws, "ok")
        for message in messages:
            if isinstance(message, bytes):
                ws.send_frame(0x2, message)
            else:
                ws.send_text(message)
        await ws.expect_close()
        ws.close()
    await asyncio.sleep(0.05)
    assert len(healthy.gone) == 1 and healthy.gone[0] in reasons, healthy.gone
    await healthy()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize(
    "message",
    [
        pytest.param("40", id="connect-twice"),
        pytest.param('42/nowhere,["x"]', id="event-for-unconnected-nsp"),
        pytest.param('43/nowhere,5["x"]', id="ack-for-unconnected-nsp"),
        pytest.param("41/nowhere,", id="disconnect-unconnected-nsp"),
    ],
)
async def test_packet_out_of_state(server, healthy, transport, message):
    """Well-formed packets that do not fit the session's state. Node's socket.io closes the whole
    connection ("forced server close" / "forced close"); ignoring the packet is the other sane
    answer. Either way the outcome is clear at once and other sessions do not notice."""
    echo = '429["echo","after"]'
    if transport == "polling":
        victim = Polling(server.port)
        await victim.handshake()
        await victim.connect()
        await victim.post(message)
        if (await victim.post(echo)).status == 400:
            outcome = "closed"
        else:
            packet = await victim.expect(lambda p: p == "1" or p.startswith("439"))
            outcome = "closed" if packet == "1" else "ignored"
    else:
        ws = await ws_session(server.port)
        ws.send_text(message)
        ws.send_text(echo)
        try:
            opcode, payload = await ws.recv_frame()
            while (opcode, payload) == (0x1, b"2"):
                ws.send_text("3")
                opcode, payload = await ws.recv_frame()
        except asyncio.IncompleteReadError:
            opcode, payload = 0x8, b""
        assert opcode in (0x1, 0x8), (opcode, payload)
        outcome = "ignored" if opcode == 0x1 else "closed"
        if outcome == "ignored":
            assert payload == b'439["after"]'
    await asyncio.sleep(0.05)
    if outcome == "closed":
        assert healthy.gone in (["forced server close"], ["forced close"], ["parse error"])
    else:
        assert healthy.gone == []
    if transport == "websocket":
        ws.close()
    await healthy()


@pytest.mark.parametrize(
    "frame, code",
    [
        pytest.param({"opcode": 0x1, "payload": b"42", "mask": False}, 1002, id="unmasked"),
        pytest.param({"opcode": 0x3, "payload": b"42"}, 1002, id="reserved-opcode"),
        pytest.param({"opcode": 0x1, "payload": b"42", "rsv": 0b100}, 1002, id="rsv1-no-extension"),
        pytest.param({"opcode": 0x9, "payload": b"ping", "fin": False}, 1002, id="fragmented-ping"),
        pytest.param({"opcode": 0x1, "payload": b"4\xff\xfe"}, 1007, id="invalid-utf8"),
    ],
)
async def test_malformed_websocket_frame_closes_only_that_socket(server, healthy, frame, code):
    other = await ws_session(server.port)
    victim = await ws_session(server.port)
    await ws_echo(victim, "ok")
    victim.send_frame(**frame)
    assert await victim.expect_close() == code
    victim.send_frame(0x8, struct.pack("!H", code))  # complete the closing handshake
    await victim.expect_eof()
    victim.close()
    await ws_echo(other, "unaffected")
    other.close()
    await healthy()


# --------------------------------------------------------------------------- heartbeat


async def test_silent_websocket_client_is_dropped(server_factory):
    sio = await server_factory(ping_interval=0.3, ping_timeout=0.2)
    gone = with_echo(sio)
    ws = await RawWebSocket.connect(sio.port, "/socket.io/?EIO=4&transport=websocket")
    opcode, payload = await ws.recv_frame()
    opened = time.monotonic()
    handshake = json.loads(payload[1:])
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (300, 200)
    ws.send_text("40")
    assert (await ws.recv_frame())[1].startswith(b"40{")
    # the first ping comes after ping_interval; never answer it
    opcode, payload = await ws.recv_frame()
    assert (opcode, payload) == (0x1, b"2")
    assert 0.2 < time.monotonic() - opened < 0.45
    await ws.expect_close(timeout=2)
    closed = time.monotonic() - opened
    assert 0.4 < closed < 0.75, f"closed {closed:.3f}s after the handshake (expected ~0.5)"
    await asyncio.sleep(0.05)
    assert gone == ["ping timeout"]
    ws.close()


async def test_silent_polling_client_is_dropped(server_factory):
    sio = await server_factory(ping_interval=0.3, ping_timeout=0.2)
    with_echo(sio)
    session = Polling(sio.port)
    await session.handshake()
    await asyncio.sleep(0.8)  # no GET, no pong: gone after 0.3 + 0.2 s
    r = await session.get()
    assert error_json(r) == {"code": 1, "message": "Session ID unknown"}


async def test_websocket_message_over_max_http_buffer_size(server_factory):
    sio = await server_factory(max_http_buffer_size=1000)
    with_echo(sio)
    other = await ws_session(sio.port)
    victim = await ws_session(sio.port)
    victim.send_text("4" + "x" * 2000)
    assert await victim.expect_close() == 1009  # message too big
    victim.close()
    await ws_echo(other, "unaffected")
    other.close()


async def test_connect_timeout_closes_a_session_without_namespace(server_factory):
    sio = await server_factory(connect_timeout=0.3)
    with_echo(sio)
    idle = Polling(sio.port)
    await idle.handshake()
    active = Polling(sio.port)
    await active.handshake()
    await active.connect()
    await asyncio.sleep(0.6)
    await assert_session_closed(idle)
    await active.echo("connected in time, still here")


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_allow_request_refusal(server_factory, transport):
    sio = await server_factory(allow_request=lambda request: "x-allowed" in request.headers)
    with_echo(sio)
    forbidden = {"code": 4, "message": "Forbidden"}
    target = f"{EIO}&transport={transport}"
    if transport == "polling":
        r = await http(sio.port, "GET", target)
        assert r.status == 403, r
        assert r.json() == forbidden
        r = await http(sio.port, "GET", target, headers={"X-Allowed": "1"})
        assert r.status == 200 and r.body.startswith(b"0{"), r
    else:
        # Node answers a refused upgrade with "400 Bad Request" (text body "Forbidden")
        with pytest.raises(AssertionError, match=r"\((400|403), "):
            await RawWebSocket.connect(sio.port, target)
        ws = await RawWebSocket.connect(sio.port, target, {"X-Allowed": "1"})
        assert (await ws.recv_text()).startswith("0{")
        ws.close()


# --------------------------------------------------------------------------- upgrade


async def test_raw_upgrade_sequence(server):
    """polling -> probe -> "3probe" -> the parked GET is released with a noop -> "5" -> WebSocket.
    A message emitted in between waits and comes over the WebSocket; polling is over after."""
    sockets: list = []

    @server.on("connection")
    def on_connection(socket):
        sockets.append(socket)

    with_echo(server)
    session = Polling(server.port)
    opened = await session.handshake()
    assert opened["upgrades"] == ["websocket"]
    await session.connect()
    parked = asyncio.ensure_future(session.get())
    await asyncio.sleep(0.05)
    assert not parked.done()

    ws = await RawWebSocket.connect(
        server.port, f"/socket.io/?EIO=4&transport=websocket&sid={session.sid}"
    )
    ws.send_text("2probe")
    assert await ws.recv_text() == "3probe"
    released = await asyncio.wait_for(parked, 1)
    assert released.status == 200 and released.body == b"6", released

    sockets[0].emit("during", "upgrade")  # polling is paused: this must wait for the WebSocket
    await asyncio.sleep(0.05)
    ws.send_text("5")
    assert await ws.recv_text() == '42["during","upgrade"]'
    await ws_echo(ws, "over websocket")

    r = await session.get()  # the polling transport is gone
    assert error_json(r) == {"code": 3, "message": "Bad request"}
    await ws_echo(ws, "still fine", ack_id=2)
    ws.close()
