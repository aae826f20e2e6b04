"""Connection state recovery with ``fastsio run --workers N``: official socket.io-client 4.8
clients cut from their worker come back on any worker (the kernel picks) recovered: same id,
rooms and data, every broadcast sent to their rooms meanwhile from any worker exactly once and
in order, volatile ones not replayed; a forged pid gets a fresh socket."""

from __future__ import annotations

import asyncio

import pytest

from tests.test_workers import running_workers

pytestmark = pytest.mark.interop

CLIENTS = 12
# the clients come back a second after the cut: time for the messages sent meanwhile
SLOW_RECONNECT = {
    "transports": ["websocket"],
    "reconnectionDelay": 1000,
    "reconnectionDelayMax": 1000,
    "randomizationFactor": 0,
}


@pytest.fixture
async def workers():
    async with running_workers("tests.workers_recovery_app:sio", 2) as running:
        yield running


async def ask(client, name: str, event: str, *args):
    reply = await client.emit_with_ack(name, event, *args)
    assert reply["ev"] == "ack", reply
    return reply["args"][0] if reply["args"] else None


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_recovered_on_any_worker(workers, node, transports):
    _, url = workers
    helper = await node(url, args={"transports": ["websocket"]})
    await helper.connect("h")
    await helper.expect("connect", name="h")
    clients = await node(url, args=dict(SLOW_RECONNECT, transports=transports))
    names = [f"c{i}" for i in range(CLIENTS)]
    before = {}
    for name in names:
        await clients.connect(name)
        connected = await clients.expect("connect", name=name)
        assert connected["recovered"] is False
        before[name] = (connected["id"], await ask(clients, name, "join", "room"))
    await helper.emit("h", "to_room", "room", "m0")
    for name in names:
        await clients.expect("event", name=name, event="room_msg")

    for name in names:
        await clients.call("close_engine", name=name)
    for name in names:
        await clients.expect("disconnect", name=name)
    # from whichever worker the helper sits on, and to one socket by id (socket.emit's path)
    await helper.emit("h", "to_room", "room", "m1")
    await helper.emit("h", "to_room", "room", "lost", True)  # volatile
    await helper.emit("h", "to_room", "elsewhere", "not for them")
    await helper.emit("h", "to_room", "room", "m2")
    await helper.emit("h", "to_me_later", before["c0"][0], "just c0")

    moved = 0
    for name in names:
        again = await clients.expect("connect", name=name, timeout=15)
        sid, pid = before[name]
        assert again["recovered"] is True and again["id"] == sid, (name, again)
        state = await ask(clients, name, "check")
        assert state["recovered"] is True
        assert "room" in state["rooms"] and state["data"] == {"room": "room"}
        moved += state["pid"] != pid
    assert moved, "no client came back on another worker (the kernel's choice): rerun"

    await helper.emit("h", "to_room", "room", "m3")
    for name in names:
        expected = ["m0", "m1", "m2", "just c0", "m3"] if name == "c0" else ["m0", "m1", "m2", "m3"]
        await clients.expect_count("event", len(expected), name=name, event="room_msg")
    await asyncio.sleep(0.3)
    for name in names:
        got = [args[0] for args in clients.events(name, "room_msg")]
        expected = ["m0", "m1", "m2", "just c0", "m3"] if name == "c0" else ["m0", "m1", "m2", "m3"]
        assert got == expected, (name, got)


async def test_a_forged_pid_gets_a_fresh_socket(workers, node):
    _, url = workers
    client = await node(url, args={"transports": ["websocket"]})
    await client.connect("a", opts={"auth": {"pid": "forged", "offset": "0-1"}})
    connected = await client.expect("connect", name="a")
    assert connected["recovered"] is False
    state = await ask(client, "a", "check")
    assert state["recovered"] is False and state["data"] == {}
