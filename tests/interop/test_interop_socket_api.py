"""The official socket.io-client 4.8 against the socket API of the guide: per-packet middleware
(``socket.use``), catch-all listeners both ways, and the rooms helpers (``leave_all``, the
adapter's read-only ``rooms`` / ``sids``, ``fetch_sockets`` in place of socket.io 2's
``clients()``)."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.interop

TRANSPORTS = {"polling": ["polling"], "websocket": ["websocket"]}


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def connect_all(client, names, transport, **auth):
    for name in names:
        opts = {"transports": TRANSPORTS[transport], "auth": {"name": name, **auth}}
        await client.connect(name, opts=opts)
    return {name: (await client.expect("connect", name=name))["id"] for name in names}


# --------------------------------------------------------------------------- rooms helpers


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_leave_all_adapter_views_and_fetch_sockets(server, url, node, transport):
    @server.on("join")
    def join(socket, *rooms):
        socket.join(rooms)
        return sorted(socket.rooms - {socket.id})

    @server.on("leave all")
    def leave_all(socket):
        socket.leave_all()
        return sorted(socket.rooms)

    client = await node(url)
    ids = await connect_all(client, "ab", transport)
    assert (await client.emit_with_ack("a", "join", "r1", "r2"))["args"] == [["r1", "r2"]]
    assert (await client.emit_with_ack("b", "join", "r1"))["args"] == [["r1"]]

    adapter = server.of("/").adapter
    assert set(adapter.rooms["r1"]) == {ids["a"], ids["b"]}
    assert adapter.sids[ids["a"]] == {ids["a"], "r1", "r2"}
    in_r1 = await server.in_("r1").fetch_sockets()  # socket.io 2's io.in("r1").clients(cb)
    assert sorted(s.id for s in in_r1) == sorted(ids.values())

    assert (await client.emit_with_ack("a", "leave all"))["args"] == [[ids["a"]]]
    assert "r2" not in adapter.rooms and set(adapter.rooms["r1"]) == {ids["b"]}
    assert [s.id for s in await server.in_("r1").fetch_sockets()] == [ids["b"]]
    server.to("r1").emit("m", "to r1")
    server.to("r2").emit("m", "to r2")
    server.to(ids["a"]).emit("m", "to a by its id")
    server.emit("fence")
    for name in "ab":
        await client.expect("event", name=name, event="fence")
    assert client.events("a", "m") == [["to a by its id"]]
    assert client.events("b", "m") == [["to r1"]]
