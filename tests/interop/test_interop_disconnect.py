"""The official socket.io-client (Node) against fastsio: who disconnects, with which reason, and
whether the client reconnects on its own (it must not after a server-side disconnect(), it must
after a lost connection)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.interop

TRANSPORTS = ["polling", "websocket"]


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def track(sio, nsp=None):
    """Records connections and (socket id, reason) of disconnections on a namespace."""
    target = sio.of(nsp) if nsp else sio
    connected: list = []
    gone: list = []

    @target.on("connection")
    def on_connection(socket):
        connected.append(socket)

    @target.on("disconnect")
    def on_disconnect(socket, reason):
        gone.append((socket.id, reason))

    @target.on("echo")
    def echo(socket, *args):
        return args

    return connected, gone


def close_engine_session(socket) -> None:
    """Closes the Engine.IO connection under ``socket``, as Node's ``socket.conn.close()`` does."""
    socket.conn.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_disconnect_is_final(server, url, node, transport):
    connected, gone = track(server)
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})
    first = await client.expect("connect", name="a")
    await until(lambda: connected, what="the connection handler")
    (socket,) = connected

    socket.disconnect()
    msg = await client.expect("disconnect", name="a")
    assert msg["reason"] == "io server disconnect"
    assert msg["active"] is False
    await until(lambda: gone, what="the server's disconnect handler")
    assert gone == [(first["id"], "server namespace disconnect")]
    await client.assert_none(0.5, "reconnect_attempt", name="a")
    assert len(client.seen("connect", name="a")) == 1
    assert len(connected) == 1

    # the application may reconnect explicitly
    await client.call("connect_again", name="a")
    again = await client.expect("connect", name="a")
    assert again["id"] != first["id"]
    assert (await client.emit_with_ack("a", "echo", 1))["args"] == [1]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_disconnect_with_close_ends_every_namespace(server, url, node, transport):
    """disconnect(close=True) closes the whole connection: every namespace on it gets a
    disconnect packet first, so the client sees "io server disconnect" and does not reconnect."""
    connected, gone = track(server)
    admin_connected, admin_gone = track(server, "/admin")
    client = await node(url)
    await client.connect("a", nsp="/", opts={"transports": [transport]})
    await client.connect("a-admin", nsp="/admin", manager="a")
    await client.expect("connect", name="a")
    await client.expect("connect", name="a-admin")
    await until(lambda: connected and admin_connected, what="the connection handlers")
    (socket,) = connected

    socket.disconnect(close=True)
    for name in ("a", "a-admin"):
        msg = await client.expect("disconnect", name=name)
        assert msg["reason"] == "io server disconnect", msg
    await until(lambda: gone and admin_gone, what="the server's disconnect handlers")
    assert gone == [(connected[0].id, "server namespace disconnect")]
    assert admin_gone == [(admin_connected[0].id, "server namespace disconnect")]
    await client.expect("engine_close", name="a")
    await client.assert_none(0.5, "reconnect_attempt", name="a")
    assert len(connected) == 1 and len(admin_connected) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lost_connection_makes_the_client_reconnect(server, url, node, transport):
    connected, gone = track(server)
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})
    first = await client.expect("connect", name="a")
    await until(lambda: connected, what="the connection handler")

    close_engine_session(connected[0])
    msg = await client.expect("disconnect", name="a")
    assert msg["reason"] == "transport close"
    assert msg["active"] is True
    await until(lambda: gone, what="the server's disconnect handler")
    assert gone == [(first["id"], "forced close")]

    await client.expect("reconnect_attempt", name="a")
    second = await client.expect("connect", name="a")
    assert second["id"] != first["id"]
    await until(lambda: len(connected) == 2, what="the reconnection on the server")
    assert connected[1].id == second["id"]
    assert (await client.emit_with_ack("a", "echo", "again"))["args"] == ["again"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_disconnect(server, url, node, transport):
    connected, gone = track(server)
    admin_connected, admin_gone = track(server, "/admin")
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})
    await client.connect("a-admin", nsp="/admin", manager="a")
    first = await client.expect("connect", name="a")
    await client.expect("connect", name="a-admin")
    await until(lambda: connected and admin_connected, what="the connection handlers")

    # leaving one namespace keeps the connection and the other namespace
    await client.call("disconnect", name="a-admin")
    assert (await client.expect("disconnect", name="a-admin"))["reason"] == "io client disconnect"
    await until(lambda: admin_gone, what="the /admin disconnect handler")
    assert admin_gone == [(admin_connected[0].id, "client namespace disconnect")]
    assert (await client.emit_with_ack("a", "echo", "still"))["args"] == ["still"]
    assert not gone

    await client.call("disconnect", name="a")
    assert (await client.expect("disconnect", name="a"))["reason"] == "io client disconnect"
    await until(lambda: gone, what="the / disconnect handler")
    assert gone == [(first["id"], "client namespace disconnect")]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_client_closes_the_connection(server, url, node, transport):
    connected, gone = track(server)
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})
    first = await client.expect("connect", name="a")

    await client.call("close_engine", name="a")
    await until(lambda: gone, what="the server's disconnect handler")
    assert gone == [(first["id"], "transport close")]
    # the client treats it as a lost connection and comes back
    assert (await client.expect("disconnect", name="a"))["reason"] == "forced close"
    await client.expect("connect", name="a")
    await until(lambda: len(connected) == 2, what="the reconnection on the server")


@pytest.mark.parametrize(
    "transport, reason",
    # Node: the WebSocket's TCP close is "transport close"; on polling, the parked GET's
    # connection drops, which engine.io reports as "transport error"
    [("polling", "transport error"), ("websocket", "transport close")],
)
async def test_killed_client_is_noticed(server, url, node, transport, reason):
    _, gone = track(server)
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})
    first = await client.expect("connect", name="a")
    await asyncio.sleep(0.05)  # let the polling client park its next GET

    client.proc.kill()
    await until(lambda: gone, timeout=3, what="the server's disconnect handler")
    assert gone == [(first["id"], reason)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_shutdown(server_factory, node, transport):
    sio = await server_factory()
    _, gone = track(sio)
    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"transports": [transport]})
    first = await client.expect("connect", name="a")

    await asyncio.wait_for(sio.close(), 5)
    assert gone == [(first["id"], "server shutting down")]
    msg = await client.expect("disconnect", name="a")
    # against Node's server too, a polling client sees either: "transport error" when its parked
    # GET fails, "transport close" when it gets the close packet; a WebSocket just closes
    expected = {
        "polling": ("transport error", "transport close"),
        "websocket": ("transport close",),
    }
    assert msg["reason"] in expected[transport]
    assert msg["active"] is True
    await client.expect("reconnect_attempt", name="a")  # ... and finds nobody there


async def test_disconnect_in_the_connection_handler(server, url, node):
    """The client was told it is connected, then that the server disconnected it."""

    @server.on("connection")
    def on_connection(socket):
        socket.disconnect()

    client = await node(url)
    await client.connect("a")
    await client.expect("connect", name="a")
    msg = await client.expect("disconnect", name="a")
    assert msg["reason"] == "io server disconnect" and msg["active"] is False
    await client.assert_none(0.3, "reconnect_attempt", name="a")
