"""The official socket.io-client 4.8 (Node) against the engine-level API: ``socket.conn``
(transport, upgrade, packets, close), ``socket.handshake`` (issued, secure over TLS), the sid
cookie a sticky balancer pins on, ``connection_error``, and ``Server.close()``."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

import fastsio
from fastsio.engine import EngineServer
from fastsio.http import HttpServer
from tests.asyncclient_servers import make_certificate
from tests.interop.test_interop_transports import until

pytestmark = pytest.mark.interop


def track_connections(sio) -> list:
    connected: list = []
    sio.on("connection", connected.append)
    return connected


async def test_conn_reports_transport_upgrade_packets_and_close(server_factory, node):
    sio = await server_factory(ping_interval=0.2, ping_timeout=5)
    seen: dict = {"upgrade": [], "packets": [], "close": [], "before": None}

    @sio.on("connection")
    def connected(socket):
        conn = socket.conn
        seen["before"] = (conn.transport.name, conn.upgraded, conn.id == conn.sid)
        conn.on("upgrade", lambda transport: seen["upgrade"].append(transport.name))
        conn.on("packet", lambda packet: seen["packets"].append((packet.type, packet.data)))
        conn.on("close", seen["close"].append)
        seen["socket"] = socket

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a")
    await client.expect("connect", name="a")
    await client.expect("upgrade", name="a")
    await until(lambda: seen["upgrade"], what="the server's upgrade event")
    assert seen["before"] == ("polling", False, True)
    conn = seen["socket"].conn
    assert seen["upgrade"] == ["websocket"]
    assert conn.upgraded and conn.transport.name == "websocket" and not conn.upgrading

    await client.emit("a", "hello", 1)
    await until(lambda: ("message", '2["hello",1]') in seen["packets"], what="the message packet")
    await until(lambda: ("pong", "") in seen["packets"], what="a pong")
    conn.off("packet")
    count = len(seen["packets"])
    await client.emit("a", "unwatched")
    await client.expect("ping", name="a")
    await asyncio.sleep(0.05)
    assert len(seen["packets"]) == count

    gone = []
    sio.on("disconnect", lambda socket, reason: gone.append(reason))
    conn.close()
    assert (await client.expect("disconnect", name="a"))["reason"] == "transport close"
    assert gone == ["forced close"] and seen["close"] == ["forced close"]


async def test_handshake_issued_is_a_millisecond_timestamp(server, url, node):
    connected = track_connections(server)
    before = time.time() * 1000
    client = await node(url)
    await client.connect("a")
    await client.expect("connect", name="a")
    await until(lambda: connected, what="the connection")
    handshake = connected[0].handshake
    assert isinstance(handshake.issued, int)
    assert before - 1 <= handshake.issued <= time.time() * 1000 + 1
    assert handshake.secure is False


async def test_handshake_secure_over_tls(node, tmp_path):
    key, cert = make_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sio = fastsio.Server()
    connected = track_connections(sio)
    engine = EngineServer(path="/socket.io", on_connection=sio.handle_engine_session)
    http = HttpServer()
    engine.attach(http)
    listener = await http.start("127.0.0.1", 0, ssl=context)
    try:
        port = listener.sockets[0].getsockname()[1]
        client = await node(f"https://127.0.0.1:{port}", args={"rejectUnauthorized": False})
        await client.connect("a")
        await client.expect("connect", name="a")
        await client.expect("upgrade", name="a")
        await until(lambda: connected, what="the connection")
        assert connected[0].handshake.secure is True
        assert connected[0].conn.request.secure is True
    finally:
        await engine.close()
        await http.close()


async def test_sid_cookie_comes_back_on_every_later_request(server_factory, node):
    """A sticky balancer pins on the cookie: socket.io-client (withCredentials, Node's cookie
    jar) sends it back on its later polling requests and on the WebSocket upgrade."""
    sio = await server_factory(cookie=True)
    requests: list = []

    @sio.engine.on("headers")
    def record(headers, request):
        requests.append(
            (
                request.method,
                request.is_websocket,
                request.query.get("sid"),
                request.headers.get("cookie"),
            )
        )

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"withCredentials": True})
    opened = await client.expect("open", name="a")
    await client.expect("upgrade", name="a")
    sid = opened["sid"]
    assert requests[0] == ("GET", False, None, None)  # the handshake: no cookie yet
    later = requests[1:]
    assert later and all(entry[2] == sid for entry in later)
    assert all(entry[3] == f"io={sid}" for entry in later), later
    assert any(entry[1] for entry in later)  # the upgrade's request carried it too


async def test_connection_error_seen_by_server_and_client(server_factory, node):
    sio = await server_factory(transports=["polling"])
    errors: list = []
    sio.engine.on("connection_error", errors.append)
    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"transports": ["websocket"], "reconnection": False})
    await client.expect("connect_error", name="a")
    await until(lambda: errors, what="the connection_error event")
    assert (errors[0].code, errors[0].message) == (0, "Transport unknown")
    assert errors[0].context == {"transport": "websocket"}


async def test_close_tells_every_polling_client(server_factory, node):
    """Polling clients that have just been sent something have no GET held when close() starts:
    close() waits for their next GET to hand them the close packet (they see "transport close",
    not the "transport error" of a connection cut under them) and returns once all are gone."""
    sio = await server_factory()
    connected = track_connections(sio)
    client = await node(f"http://127.0.0.1:{sio.port}")
    names = [f"c{i}" for i in range(4)]
    for name in names:
        await client.connect(name, opts={"transports": ["polling"]})
    for name in names:
        await client.expect("connect", name=name)
    await until(lambda: len(connected) == len(names), what="the connections")
    await asyncio.sleep(0.1)  # every client has its next GET parked
    sio.emit("bye")  # answers the parked GETs in the next tick; close() then owes a close packet
    called = []
    await asyncio.wait_for(sio.close(lambda: called.append(True)), 5)
    assert called == [True]
    assert sio.engine.clients_count == 0 and sio.http is None
    for name in names:
        await client.expect("event", name=name, event="bye")
        assert (await client.expect("disconnect", name=name))["reason"] == "transport close"
