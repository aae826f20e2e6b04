"""socket.io-client 2.x (2.0.4 and 2.5.0) against the socket API of the guide on a server with
``allow_eio3=True``: per-packet middleware (``socket.use``, which socket.io 2 servers had as
well) with its "error" event, dropped events, outgoing catch-all listeners and
``leave_all`` / ``fetch_sockets`` (socket.io 2's ``leaveAll`` and ``clients``)."""

from __future__ import annotations

import pytest

import fastsio

from .helpers import TRANSPORTS, server_url, until

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("client", ["sio2", "sio2-last"])
async def test_v2_clients_through_packet_middleware_and_listeners(
    server_factory, node2, client, transport
):
    sio = await server_factory(allow_eio3=True)
    sockets: dict = {}
    outgoing: dict = {}
    errors: list = []

    @sio.use_packets
    def drop_noise(socket, event, args):
        return fastsio.DROP if event == "noise" else None

    @sio.on("connection")
    def on_connection(socket):
        name = socket.handshake.query["name"]  # a v2 client's query, in the handshake
        sockets[name] = socket
        outgoing[name] = []
        socket.on_any_outgoing(lambda event, *args: outgoing[name].append([event, *args]))

        @socket.use
        def authorise(event, args):
            if event == "secret" and name != "boss":
                raise PermissionError("unauthorized event")
            return [*args, "seen"] if event == "join" else None

        @socket.on("error")
        def on_error(err):
            errors.append((name, str(err)))
            socket.disconnect()

    @sio.on("join")
    def join(socket, *rooms):
        socket.join(rooms[:-1])
        return sorted(socket.rooms - {socket.id}), rooms[-1]

    @sio.on("leave all")
    def leave_all(socket):
        socket.leave_all()
        return sorted(socket.rooms)

    sio.on("secret", lambda socket: "the secret")
    sio.on("noise", lambda socket: pytest.fail("dropped by the middleware"))

    node = await node2(server_url(sio), client=client)
    for name in ("boss", "staff"):
        opts = {"transports": TRANSPORTS[transport], "query": {"name": name}}
        await node.connect(name, opts=opts, client=client)
        await node.expect("connect", name=name)
    await until(lambda: len(sockets) == 2, what="both connections")
    boss, staff = sockets["boss"], sockets["staff"]

    assert (await node.emit_with_ack("boss", "join", "r1", "r2"))["args"] == [["r1", "r2"], "seen"]
    assert (await node.emit_with_ack("staff", "join", "r1"))["args"] == [["r1"], "seen"]
    assert (await node.emit_with_ack("boss", "secret"))["args"] == ["the secret"]
    await node.emit("boss", "noise")
    in_r1 = sorted(s.id for s in await sio.in_("r1").fetch_sockets())
    assert in_r1 == sorted([boss.id, staff.id])

    assert (await node.emit_with_ack("boss", "leave all"))["args"] == [[boss.id]]
    sio.to("r1").emit("news", "r1 only", b"\x00\x01")
    sio.to(boss.id).emit("news", "to the boss")
    await node.expect("event", name="staff", event="news")
    await node.expect("event", name="boss", event="news")
    assert outgoing["boss"] == [["news", "to the boss"]]
    assert outgoing["staff"] == [["news", "r1 only", b"\x00\x01"]]

    await node.emit("staff", "secret")
    await node.expect("disconnect", name="staff")
    assert errors == [("staff", "unauthorized event")]
    assert not staff.connected and boss.connected
