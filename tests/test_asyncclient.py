"""fastsio.AsyncClient / SimpleClient against a fastsio server and against Node's socket.io 4.8
(tests/node_server), every feature on both: transports and the upgrade, events, binary, acks both
ways, namespaces, refusals, server disconnects, reconnection (transport closed, server restarted,
given up), buffered and volatile emits, the msgpack parser, TLS, connection state recovery.
Node-only: a socket.io 2.x server refused, sticky-session cookies, ping timeouts (SIGSTOP).
Every wait is bounded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import ssl
import threading

import pytest

import fastsio
from fastsio import AckTimeoutError, AsyncClient, ConnectError
from fastsio.clientside.asyncclient import Backoff
from tests.asyncclient_servers import (
    WAIT,
    FastsioBackend,
    NodeBackend,
    free_port,
    make_certificate,
    node_ready,
)

TRANSPORTS = {
    "polling+websocket": ("polling", "websocket"),
    "polling": ("polling",),
    "websocket": ("websocket",),
}


@pytest.fixture
async def backends():
    """``await backends(kind, **options)`` -> a started server backend ("fastsio" / "node");
    closed on teardown."""
    made = []

    async def make(kind: str, tls: ssl.SSLContext | None = None, **options):
        if kind == "fastsio":
            backend = FastsioBackend(options, tls=tls)
        else:
            node_ready()
            if tls is not None:
                options["tls"] = tls
            backend = NodeBackend(options)
        made.append(backend)
        await backend.start()
        return backend

    yield make
    for backend in made:
        await backend.close()


@pytest.fixture
async def clients():
    """``clients(url, **options)`` -> an AsyncClient, disconnected on teardown."""
    made: list[AsyncClient] = []

    def make(url: str, **options) -> AsyncClient:
        options.setdefault("reconnection_delay", 0.05)
        options.setdefault("reconnection_delay_max", 0.2)
        options.setdefault("timeout", WAIT)
        client = AsyncClient(url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        await asyncio.wait_for(client.disconnect(), 5)


class Inbox:
    """Events a client received, awaited one at a time (bounded)."""

    def __init__(self, socket, *events: str) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        for event in events:
            socket.on(event, lambda *args, _e=event: self.queue.put_nowait((_e, list(args))))

    async def get(self, timeout: float = WAIT):
        return await asyncio.wait_for(self.queue.get(), timeout)


async def until(predicate, timeout: float = WAIT) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


KINDS = ["fastsio", "node"]


# ------------------------------------------------------------------------ the basics, both ways


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transports", list(TRANSPORTS))
async def test_events_acks_binary(backends, clients, kind, transports):
    server = await backends(kind)
    client = clients(server.url, auth={"token": "abc"}, transports=TRANSPORTS[transports])
    inbox = Inbox(client, "echo")
    client.on("question", lambda *args: ("answer", *args))
    connects = []
    client.on("connect", lambda: connects.append(client.id))

    await client.connect()
    assert client.connected and client.id and connects == [client.id]
    conn = await server.expect("connection", nsp="/")
    assert conn["id"] == client.id and conn["auth"] == {"token": "abc"}

    # events with binary anywhere, both ways
    payload = ["text", 1, 2.5, None, True, {"nested": [b"\x00\x01", {"deep": b"\xff"}]}, b"raw"]
    client.emit("echo", *payload)
    assert await inbox.get() == ("echo", payload)
    event = await server.expect("event", event="echo")
    assert event["args"] == payload

    # the client's acks: awaited, and as a callback
    assert await client.emit_with_ack("ack", 1, "two", b"3", timeout=5) == (1, "two", b"3")
    assert await client.emit_with_ack("ack", {"one": 1}, timeout=5) == {"one": 1}
    assert await client.emit_with_ack("ack", timeout=5) is None
    got = asyncio.get_running_loop().create_future()
    client.emit("ack", "cb", ack=lambda *args: got.set_result(args))
    assert await asyncio.wait_for(got, WAIT) == ("cb",)
    got = asyncio.get_running_loop().create_future()
    client.timeout(5).emit("ack", "cb2", ack=lambda err, *args: got.set_result((err, args)))
    assert await asyncio.wait_for(got, WAIT) == (None, ("cb2",))

    # the server's acks: the handler's return value answers (a tuple: several arguments)
    client.emit("ask", 41, b"bin")
    answer = await server.expect("answer", id=client.id)
    assert answer["args"] == ["answer", 41, b"bin"] and not answer["error"]

    # async handler answering
    async def slow(x):
        await asyncio.sleep(0.01)
        return x * 2

    client.off("question")
    client.on("question", slow)
    client.emit("ask", 21)
    answer = await server.expect("answer", id=client.id)
    assert answer["args"] == [42]

    if transports == "polling+websocket":
        await until(lambda: client.transport == "websocket")
    else:
        assert client.transport == TRANSPORTS[transports][0]

    sid = client.id
    await asyncio.wait_for(client.disconnect(), WAIT)
    assert not client.connected and client.id is None
    reason = (await server.expect("disconnect", id=sid))["reason"]
    assert reason == "client namespace disconnect"


@pytest.mark.parametrize("kind", KINDS)
async def test_upgrade_events_and_ack_timeout(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url)
    upgrades = []
    client.io.on("upgrade", upgrades.append)
    await client.connect()
    await until(lambda: upgrades == ["websocket"])
    assert client.transport == "websocket"
    # the engine carries on on the WebSocket
    assert await client.emit_with_ack("ack", "after upgrade", timeout=5) == "after upgrade"
    with pytest.raises(AckTimeoutError):
        await client.emit_with_ack("noack", timeout=0.2)
    got = asyncio.get_running_loop().create_future()
    client.timeout(0.2).emit("noack", ack=lambda err, *args: got.set_result(err))
    assert isinstance(await asyncio.wait_for(got, WAIT), AckTimeoutError)
    with pytest.raises(ValueError):
        client.emit("disconnect")


@pytest.mark.parametrize("kind", KINDS)
async def test_namespaces_share_one_connection(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url, namespaces=["/admin"])
    await client.connect()
    admin = client.of("/admin")
    assert admin.connected and admin.io is client.io and admin.id != client.id
    conn = await server.expect("connection", nsp="/admin")
    assert conn["id"] == admin.id
    inbox = Inbox(admin, "echo")
    admin.emit("echo", "to admin")
    assert await inbox.get() == ("echo", ["to admin"])
    assert (await server.expect("event", nsp="/admin"))["event"] == "echo"
    assert await admin.emit_with_ack("ack", "a", timeout=5) == "a"
    # leaving one namespace keeps the connection
    await admin.disconnect()
    assert not admin.connected and client.connected
    assert await client.emit_with_ack("ack", "main", timeout=5) == "main"
    # and joining again works (auth per namespace)
    await client.of("/admin", auth={"token": "ok"}).connect()
    conn = await server.expect("connection", nsp="/admin")
    assert conn["auth"] == {"token": "ok"}


@pytest.mark.parametrize("kind", KINDS)
async def test_connect_error_message_and_data(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url + "/refused")
    errors = []
    client.on("connect_error", errors.append)
    with pytest.raises(ConnectError) as info:
        await client.connect()
    assert info.value.message == "not authorized"
    assert info.value.data == {"content": "retry later"}
    assert errors == [info.value] and not client.connected and not client.active

    bad = clients(server.url, auth={"token": "bad"})
    with pytest.raises(ConnectError) as info:
        await bad.connect()
    assert (info.value.message, info.value.data) == ("bad token", {"reason": "token"})

    # one namespace refused, the main one fine: only that one fails
    ok = clients(server.url)
    await ok.connect()
    with pytest.raises(ConnectError):
        await ok.of("/refused").connect()
    assert ok.connected
    assert await ok.emit_with_ack("ack", 1, timeout=5) == 1


async def test_unreachable_server_fails_fast(clients):
    client = clients(f"http://127.0.0.1:{free_port()}")
    errors = []
    client.on("connect_error", errors.append)
    with pytest.raises(ConnectError) as info:
        await client.connect()
    assert "could not connect" in info.value.message
    assert len(errors) == 1
    await asyncio.wait_for(client.wait(), WAIT)


# ------------------------------------------------------------------------ disconnects, reconnection


@pytest.mark.parametrize("kind", KINDS)
async def test_server_disconnect_is_final(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url)
    reasons = []
    client.on("disconnect", reasons.append)
    await client.connect()
    client.emit("disconnect_me")
    await asyncio.wait_for(client.wait(), WAIT)
    assert reasons == ["io server disconnect"]
    assert not client.connected and not client.active
    await asyncio.sleep(0.3)
    assert not client.connected and client.io.state == "closed"
    # connect() again is allowed
    await client.connect()
    assert client.connected


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transports", ["polling+websocket", "polling", "websocket"])
async def test_reconnects_after_transport_close(backends, clients, kind, transports):
    server = await backends(kind)
    client = clients(server.url, transports=TRANSPORTS[transports])
    events = []
    client.on("disconnect", lambda reason: events.append(("disconnect", reason)))
    client.on("connect", lambda: events.append(("connect",)))
    client.io.on("reconnect_attempt", lambda n: events.append(("attempt", n)))
    client.io.on("reconnect", lambda n: events.append(("reconnect", n)))
    inbox = Inbox(client, "echo")
    await client.connect()
    first = client.id
    if transports == "polling+websocket":
        await until(lambda: client.transport == "websocket")
    client.emit("close_conn")
    await until(lambda: ("disconnect", "transport close") in events)
    # while disconnected: emits wait in the buffer, volatile ones are dropped
    assert not client.connected
    client.emit("echo", "buffered", b"\x01")
    client.volatile.emit("echo", "volatile")
    acked = asyncio.ensure_future(client.emit_with_ack("ack", "buffered ack", timeout=WAIT))
    await asyncio.sleep(0)
    assert len(client.send_buffer) == 2
    await until(lambda: client.connected)
    assert client.id != first
    assert await inbox.get() == ("echo", ["buffered", b"\x01"])
    assert await asyncio.wait_for(acked, WAIT) == "buffered ack"
    assert client.send_buffer == []
    assert [e[0] for e in events] == ["connect", "disconnect", "attempt", "reconnect", "connect"]
    assert ("attempt", 1) in events and ("reconnect", 1) in events
    await asyncio.sleep(0.1)
    assert inbox.queue.empty()  # the volatile one never left


@pytest.mark.parametrize("kind", KINDS)
async def test_reconnects_after_server_restart(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url, reconnection_delay=0.1, reconnection_delay_max=0.5)
    reasons = []
    attempts = []
    client.on("disconnect", reasons.append)
    client.io.on("reconnect_attempt", attempts.append)
    await client.connect()
    await until(lambda: client.transport == "websocket")
    first = client.id
    await server.stop()
    await until(lambda: not client.connected)
    await asyncio.sleep(0.6)  # a few failed attempts while the server is down
    await server.start()
    await until(lambda: client.connected, timeout=15)
    assert client.id != first
    assert reasons == ["transport close"]
    assert len(attempts) >= 2 and attempts == sorted(attempts)
    conn = await server.expect("connection", id=client.id)
    assert conn["nsp"] == "/"
    assert await client.emit_with_ack("ack", "back", timeout=5) == "back"


@pytest.mark.parametrize("kind", KINDS)
async def test_reconnection_gives_up(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url, transports=["websocket"], reconnection_attempts=2)
    failed = []
    errors = []
    client.io.on("reconnect_failed", lambda: failed.append(True))
    client.io.on("reconnect_error", errors.append)
    await client.connect()
    await server.stop()
    await asyncio.wait_for(client.wait(), WAIT)
    assert failed == [True] and len(errors) == 2
    assert not client.connected and not client.active


async def test_reconnection_off(backends, clients):
    server = await backends("fastsio")
    client = clients(server.url, reconnection=False, transports=["websocket"])
    await client.connect()
    client.emit("close_conn")
    await asyncio.wait_for(client.wait(), WAIT)
    await asyncio.sleep(0.2)
    assert not client.connected


async def test_connect_retry(backends, clients):
    port = free_port()
    client = clients(f"http://127.0.0.1:{port}", reconnection_delay=0.1)
    task = asyncio.ensure_future(client.connect(retry=True))
    await asyncio.sleep(0.4)
    assert not task.done()
    server = FastsioBackend({})
    server.port = port
    await server.start()
    try:
        await asyncio.wait_for(task, WAIT)
        assert client.connected
    finally:
        await client.disconnect()
        await server.close()


def test_backoff_is_socketio_clients():
    backoff = Backoff(1.0, 5.0, 0.5)
    for attempt in range(8):
        base = min(1000 * 2**attempt, 10**9)
        delay = backoff.duration()
        assert min(base * 0.5, 5000) / 1000 - 0.001 <= delay <= min(base * 1.5, 5000) / 1000
    backoff.reset()
    assert Backoff(1.0, 5.0, 0).duration() == 1.0
    assert AsyncClient("http://x").io.reconnection_attempts == math.inf


# ------------------------------------------------------------------------ parsers, TLS


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transports", ["polling+websocket", "polling"])
async def test_msgpack_parser(backends, clients, kind, transports):
    server = await backends(kind, parser="msgpack")
    client = clients(server.url, parser="msgpack", transports=TRANSPORTS[transports])
    inbox = Inbox(client, "echo")
    client.on("question", lambda *args: list(args))
    await client.connect()
    client.emit("echo", "hi", {"bin": b"\x00\xff", "n": [1, 2.5]})
    assert await inbox.get() == ("echo", ["hi", {"bin": b"\x00\xff", "n": [1, 2.5]}])
    assert await client.emit_with_ack("ack", b"x", 7, timeout=5) == (b"x", 7)
    client.emit("ask", "q")
    assert (await server.expect("answer", id=client.id))["args"] == [["q"]]
    refused = clients(server.url + "/refused", parser="msgpack")
    with pytest.raises(ConnectError) as info:
        await refused.connect()
    assert info.value.data == {"content": "retry later"}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("transports", ["polling+websocket", "websocket"])
async def test_tls(backends, clients, certificate, kind, transports):
    key, cert = certificate
    if kind == "fastsio":
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        server = await backends(kind, tls=server_context)
    else:
        server = await backends(kind, tls={"key": str(key), "cert": str(cert)})
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    client = clients(server.url, ssl=context, transports=TRANSPORTS[transports])
    inbox = Inbox(client, "echo")
    await client.connect()
    client.emit("echo", "secure", b"\x01")
    assert await inbox.get() == ("echo", ["secure", b"\x01"])
    if transports == "polling+websocket":
        await until(lambda: client.transport == "websocket")
        assert await client.emit_with_ack("ack", "wss", timeout=5) == "wss"
    # not verifying: any certificate
    loose = clients(server.url, ssl=False, transports=TRANSPORTS[transports])
    await loose.connect()
    # verifying against the system CAs: refused
    strict = clients(server.url, transports=TRANSPORTS[transports], reconnection=False)
    with pytest.raises(ConnectError) as info:
        await strict.connect()
    assert "certificate" in info.value.message.lower() or "certificate" in str(
        info.value.description
    )


# ------------------------------------------------------------------------ recovery; Node only


@pytest.mark.parametrize("kind", KINDS)
async def test_connection_state_recovery(backends, clients, kind):
    if kind == "node":
        server = await backends("node", recovery=True)
    else:
        server = await backends("fastsio", connection_state_recovery=True)
    client = clients(server.url, transports=["websocket"])
    inbox = Inbox(client, "tick", "missed")
    await client.connect()
    assert not client.recovered
    first = client.id
    # a broadcast carries the server's offset as its last argument (as socket.io-client sees)
    client.emit("broadcast", 1)
    event, args = await inbox.get()
    assert event == "tick" and args[0] == 1 and isinstance(args[1], str)
    assert client._last_offset == args[1]
    # the transport closes; the server emits while the client is away
    client.emit("close_conn")
    await until(lambda: not client.connected)
    await server.emit("missed", "while away", to=first)
    await until(lambda: client.connected)
    assert client.recovered and client.id == first
    event, args = await inbox.get()
    assert event == "missed" and args[0] == "while away"
    conn = await server.expect("connection", id=first, recovered=True)
    assert conn["nsp"] == "/"
    # a fresh client is not recovered
    other = clients(server.url, transports=["websocket"])
    await other.connect()
    assert not other.recovered


@pytest.mark.parametrize("transports", ["polling+websocket", "websocket"])
async def test_socketio_2_server_refused_clearly(backends, clients, transports):
    server = await backends("node", v2=True)
    client = clients(server.url, transports=TRANSPORTS[transports])
    with pytest.raises(ConnectError) as info:
        await client.connect()
    assert "Socket.IO 2.x protocol" in info.value.message
    assert "Engine.IO v3" in info.value.message
    # no reconnection loop against it
    await asyncio.wait_for(client.wait(), WAIT)
    await asyncio.sleep(0.2)
    assert client.io.state == "closed" and not client.active


async def _one_write_server(frames: bytes) -> asyncio.AbstractServer:
    """A WebSocket server that answers the upgrade and ``frames`` in one write, so the client
    reads the open packet and what follows it in one go."""

    async def serve(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        )
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n" + frames
        )
        await reader.read()  # until the client hangs up
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def _text_frame(text: str) -> bytes:
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, len(data)]) + data


async def test_messages_right_behind_the_open_packet_wait_for_the_client():
    """A 2.x server sends "40" right behind its open packet; read in the same chunk, it must
    reach the client only once the client is ready for it (it once met a client with no
    decoder yet and the connect hung until its timeout)."""
    open_packet = '0{"sid":"s","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
    server = await _one_write_server(_text_frame(open_packet) + _text_frame("40"))
    port = server.sockets[0].getsockname()[1]
    client = AsyncClient(f"http://127.0.0.1:{port}", transports=("websocket",), reconnection=False)
    try:
        with pytest.raises(ConnectError) as info:
            await asyncio.wait_for(client.connect(), WAIT)
        assert "Socket.IO 2.x protocol" in info.value.message
    finally:
        await client.disconnect()
        server.close()


async def test_path_option(backends, clients):
    for kind in KINDS:
        server = await backends(kind, path="/custom-path")
        client = clients(server.url, path="/custom-path", transports=["polling"])
        await client.connect()
        assert await client.emit_with_ack("ack", kind, timeout=5) == kind


async def test_headers_and_query_reach_the_server(backends, clients):
    server = await backends("fastsio")
    seen = {}

    @server.sio.on("connection")
    def conn(socket):
        seen["headers"] = socket.handshake.headers
        seen["query"] = socket.handshake.query

    client = clients(server.url + "/?a=1", headers={"X-Token": "t"}, query={"b": "2"})
    await client.connect()
    await until(lambda: "query" in seen)
    assert seen["headers"]["x-token"] == "t"
    assert seen["query"]["a"] == "1" and seen["query"]["b"] == "2"
    assert seen["query"]["EIO"] == "4"


# ------------------------------------------------------------------------ SimpleClient


@pytest.mark.parametrize("kind", KINDS)
async def test_simple_client(backends, kind):
    server = await backends(kind)
    url = server.url
    results = {}

    def run():
        with fastsio.SimpleClient(url, transports=["websocket"]) as client:
            results["sid"] = client.sid
            client.emit("echo", "sync", b"\x02")
            results["received"] = client.receive(timeout=5)
            results["call"] = client.call("ack", 1, 2, timeout=5)
            try:
                client.receive(timeout=0.1)
            except TimeoutError:
                results["timeout"] = True

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 20)
    assert not thread.is_alive()
    assert results["sid"]
    assert results["received"] == ["echo", "sync", b"\x02"]
    assert results["call"] == (1, 2)
    assert results["timeout"]
    await server.expect("disconnect", id=results["sid"])


def test_simple_client_refused():
    with pytest.raises(ConnectError):
        fastsio.SimpleClient(f"http://127.0.0.1:{free_port()}").connect()


async def test_auth_callable_on_any_once(backends, clients):
    server = await backends("fastsio")
    calls = []

    async def auth():
        calls.append(1)
        return {"token": f"t{len(calls)}"}

    client = clients(server.url, auth=auth, transports=["websocket"])
    seen = []
    client.on_any(lambda event, *args: seen.append((event, args)))
    outgoing = []
    client.on_any_outgoing(lambda event, *args: outgoing.append(event))
    once = []
    client.once("echo", lambda *args: once.append(args))
    await client.connect()
    assert (await server.expect("connection"))["auth"] == {"token": "t1"}
    client.emit("echo", 1)
    client.emit("echo", 2)
    await until(lambda: len(seen) == 2)
    assert seen == [("echo", (1,)), ("echo", (2,))] and once == [(1,)]
    assert outgoing == ["echo", "echo"]
    # the auth callable runs again on reconnection
    client.emit("close_conn")
    await until(lambda: len(calls) == 2 and client.connected)
    assert (await server.expect("connection"))["auth"] == {"token": "t2"}


@pytest.mark.parametrize("transports", ["polling", "websocket"])
async def test_ping_timeout_then_reconnect(backends, clients, transports):
    server = await backends("node", pingInterval=300, pingTimeout=200)
    client = clients(server.url, transports=TRANSPORTS[transports], timeout=1.0)
    reasons = []
    client.on("disconnect", reasons.append)
    pings = []
    client.io.on("ping", lambda: pings.append(1))
    await client.connect()
    await until(lambda: len(pings) >= 2)
    first = client.id
    server.proc.suspend()  # no more pings
    try:
        await until(lambda: reasons == ["ping timeout"], timeout=5)
    finally:
        server.proc.resume()
    await until(lambda: client.connected and client.id != first)
    assert await client.emit_with_ack("ack", "alive", timeout=5) == "alive"


@pytest.mark.parametrize("kind", KINDS)
async def test_no_loss_or_reordering_across_the_upgrade(backends, clients, kind):
    server = await backends(kind)
    client = clients(server.url)
    upgrades = []
    client.io.on("upgrade", upgrades.append)
    await client.connect()
    sent = 0
    while not upgrades and sent < 2000:  # a steady stream through the upgrade
        client.emit("n", sent, b"\x01" if sent % 7 == 0 else None)
        sent += 1
        await asyncio.sleep(0.002)
    for _ in range(20):
        client.emit("n", sent, None)
        sent += 1
    assert upgrades == ["websocket"]
    last = await client.emit_with_ack("ack", "done", timeout=WAIT)
    assert last == "done"
    numbers = []
    for _ in range(sent):
        event = await server.expect("event", event="n")
        numbers.append(event["args"][0])
    assert numbers == list(range(sent))


async def test_polling_posts_split_at_max_payload(backends, clients):
    server = await backends("fastsio", max_http_buffer_size=10_000)
    client = clients(server.url, transports=["polling"])
    await client.connect()
    assert client.io.engine.max_payload == 10_000
    big = "y" * 3000
    for i in range(10):  # 30 KB in one tick: three POSTs at least
        client.emit("n", i, big)
    assert await client.emit_with_ack("ack", "after", timeout=WAIT) == "after"
    for i in range(10):
        assert (await server.expect("event", event="n"))["args"] == [i, big]


async def test_cookies_are_sent_back(backends, clients):
    """A cookie the handshake sets (sticky sessions) comes back on the session's next requests:
    the polling GETs and POSTs and the WebSocket upgrade."""
    server = await backends("node", cookie=True)
    client = clients(server.url)
    await client.connect()
    await until(lambda: client.transport == "websocket")
    cookie = await server.expect("cookie")
    assert cookie["cookie"].startswith("sticky=")
    seen = server.proc.seen("cookie")
    assert any("transport=websocket" in m["url"] for m in seen)
    assert client.io.engine.cookies["sticky"] == cookie["cookie"].split("=", 1)[1]


async def test_simple_client_namespace_and_disconnect(backends):
    server = await backends("fastsio")
    url = server.url
    results = {}

    def run():
        client = fastsio.SimpleClient()
        client.connect(url, namespace="/admin", transports=["polling"])
        results["sid"] = client.sid
        results["transport"] = client.transport
        results["call"] = client.call("ack", "admin", timeout=5)
        client.emit("disconnect_me")
        try:
            client.receive(timeout=5)
        except ConnectionError:
            results["disconnected"] = True
        client.disconnect()

    thread = threading.Thread(target=run)
    thread.start()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 20)
    assert not thread.is_alive()
    conn = await server.expect("connection", nsp="/admin")
    assert conn["id"] == results["sid"]
    assert results["transport"] == "polling" and results["call"] == "admin"
    assert results["disconnected"]
