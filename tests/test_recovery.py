"""Connection state recovery with the official socket.io-client 4.8: the transport is cut,
packets are sent meanwhile, the client comes back as the same socket and gets each of them once,
in order."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastsio
from fastsio.recovery import SessionAwareAdapter, recovery_options
from tests.conftest import server_url

pytestmark = pytest.mark.interop

TRANSPORTS = [["websocket"], ["polling"]]


async def until(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def recoverable(server_factory, **options):
    options.setdefault("connection_state_recovery", True)
    sio = await server_factory(**options)

    @sio.on("join")
    def join(socket, room):
        socket.join(room)
        socket.data["joined"] = room
        return True

    return sio


async def connect(node, sio, name: str, transports: list) -> tuple:
    client = await node(server_url(sio), args={"transports": transports})
    await client.connect(name)
    connected = await client.expect("connect", name=name)
    assert connected["recovered"] is False
    return client, connected["id"]


def offsets_stripped(events: list) -> list:
    """The event arguments without the offset recovery appends (a str, last)."""
    return [args[:-1] for args in events]


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
async def test_a_cut_client_comes_back_with_what_it_missed(server_factory, node, transports):
    sio = await recoverable(server_factory)
    client, sid = await connect(node, sio, "a", transports)
    assert (await client.emit_with_ack("a", "join", "room1"))["args"] == [True]
    sio.to("room1").emit("news", 0)
    await client.expect("event", name="a", event="news")

    await client.call("close_engine", name="a")
    await client.expect("disconnect", name="a")
    await until(lambda: sid not in sio.sockets, "the server to see the socket gone")
    sio.to("room1").emit("news", 1)  # to its room
    sio.emit("news", 2)  # to everyone
    sio.to("other-room").emit("news", -1)  # not for it
    sio.volatile.emit("news", -2)  # volatile: not kept
    sio.to(sid).emit("news", 3)  # to its own room

    again = await client.expect("connect", name="a", timeout=10)
    assert again["recovered"] is True and again["id"] == sid
    await until(lambda: sid in sio.sockets, "the recovered socket")
    socket = sio.sockets[sid]
    assert socket.recovered is True
    assert "room1" in socket.rooms and socket.data == {"joined": "room1"}
    sio.to("room1").emit("news", 4)
    await client.expect_count("event", 5, name="a", event="news")
    await asyncio.sleep(0.2)
    values = [args[0] for args in client.events("a", "news")]
    assert values == [0, 1, 2, 3, 4]  # each once, in order; -1 and -2 never


async def test_socket_emit_is_kept_and_middlewares_skipped_or_not(server_factory, node):
    sio = await recoverable(server_factory)
    calls = []
    sio.use(lambda socket: calls.append(socket.recovered))
    client, sid = await connect(node, sio, "a", ["websocket"])
    socket = sio.sockets[sid]
    # a client recovers from the last offset it saw (none yet: nothing to recover from, as Node)
    socket.emit("hello")
    await client.expect("event", name="a", event="hello")
    await client.call("close_engine", name="a")
    await until(lambda: sid not in sio.sockets, "the disconnect")
    socket.emit("direct", "while away")  # a socket.emit goes through the log too
    assert (await client.expect("connect", name="a", timeout=10))["recovered"] is True
    ev = await client.expect("event", name="a", event="direct")
    assert ev["args"][0] == "while away" and isinstance(ev["args"][-1], str)
    assert calls == [False]  # skipped on recovery (the default)

    sio2 = await recoverable(server_factory, connection_state_recovery={"skip_middlewares": False})
    seen = []
    sio2.use(lambda socket: seen.append(socket.recovered))
    client2, sid2 = await connect(node, sio2, "b", ["websocket"])
    sio2.emit("hello")
    await client2.expect("event", name="b", event="hello")
    await client2.call("close_engine", name="b")
    await until(lambda: sid2 not in sio2.sockets, "the disconnect")
    assert (await client2.expect("connect", name="b", timeout=10))["recovered"] is True
    assert seen == [False, True]


async def test_an_expired_session_gives_a_fresh_socket(server_factory, node):
    sio = await recoverable(
        server_factory, connection_state_recovery={"max_disconnection_duration": 0.2}
    )
    client, sid = await connect(node, sio, "a", ["websocket"])
    sio.emit("first")
    await client.expect("event", name="a", event="first")
    client.suspend()  # frozen: it cannot come back before the session expires
    sio.sockets[sid].conn.close("transport close")
    await until(lambda: sid not in sio.sockets, "the disconnect")
    await asyncio.sleep(0.4)  # longer than max_disconnection_duration
    client.resume()
    again = await client.expect("connect", name="a", timeout=10)
    assert again["recovered"] is False and again["id"] != sid


async def test_forged_or_foreign_pid_and_offset_give_a_fresh_socket(server_factory, node):
    sio = await recoverable(server_factory)
    client = await node(server_url(sio), args={"transports": ["websocket"]})
    for name, auth in [
        ("forged", {"pid": "not-a-session", "offset": "x-1"}),
        ("types", {"pid": 7, "offset": ["nope"]}),
    ]:
        await client.connect(name, opts={"auth": auth})
        connected = await client.expect("connect", name=name)
        assert connected["recovered"] is False
    first, sid = await connect(node, sio, "real", ["websocket"])
    socket = sio.sockets[sid]
    sio.emit("hello")
    await first.expect("event", name="real", event="hello")
    pid = socket.pid
    await first.call("close_engine", name="real")
    await until(lambda: sid not in sio.sockets, "the disconnect")
    # the right pid with an offset of another server: not recovered, the session stays
    await client.connect("thief", opts={"auth": {"pid": pid, "offset": "ffffffff-0"}})
    assert (await client.expect("connect", name="thief"))["recovered"] is False
    again = await first.expect("connect", name="real", timeout=10)
    assert again["recovered"] is True and again["id"] == sid


def test_options_and_the_log_bounds():
    assert recovery_options(False) is None
    assert recovery_options(True)["max_disconnection_duration"] == 120
    with pytest.raises(ValueError, match="unknown"):
        recovery_options({"max_disconnection": 1})
    with pytest.raises(TypeError):
        recovery_options("yes")
    sio = fastsio.Server(connection_state_recovery={"max_packets": 3})
    adapter = sio.main_namespace.adapter
    assert isinstance(adapter, SessionAwareAdapter)
    for i in range(10):
        sio.emit("tick", i)
    assert [data[1] for _, _, _, data in adapter.packets] == [7, 8, 9]
    assert all(isinstance(data[-1], str) for _, _, _, data in adapter.packets)
    plain = fastsio.Server()
    assert type(plain.main_namespace.adapter) is fastsio.InMemoryAdapter
    assert plain.connection_state_recovery is None
