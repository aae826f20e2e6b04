"""fastsio's Redis adapter in a mixed cluster: a Node socket.io 4.8 server with
@socket.io/redis-adapter 8.3 and fastsio servers on one Redis key, official socket.io-client 4.8
clients on each. Every operation is checked in both directions."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastsio
import fastsio.redis._connection
from fastsio.redis import create_adapter
from tests.conftest import server_url

pytestmark = pytest.mark.interop

BLOB = bytes(range(256))


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def fastsio_redis(server_factory, redis_url, redis_key):
    """``await fastsio_redis(**options)`` -> a started fastsio Server on the test's Redis key."""

    async def make(**options):
        options.setdefault("adapter", create_adapter(redis_url, key=redis_key, requests_timeout=2))
        return await server_factory(**options)

    return make


async def client_on(node, url: str, name: str) -> tuple:
    client = await node(url)
    await client.connect(name)
    sid = (await client.expect("connect", name=name))["id"]
    return client, sid


@pytest.fixture
async def mixed(fastsio_redis, node_redis_server, node):
    """A fastsio server and a Node server on one key, one client each:
    (sio, node_server, py_client, py_id, node_client, node_id)."""
    sio = await fastsio_redis()
    js = await node_redis_server(variant="classic", requestsTimeout=2000)
    py_client, py_id = await client_on(node, server_url(sio), "p")
    node_client, node_id = await client_on(node, js.url, "n")
    await js.expect("connection", id=node_id)
    return sio, js, py_client, py_id, node_client, node_id


async def test_server_count_counts_both(mixed):
    sio, js, *_ = mixed
    assert await sio.main_namespace.adapter.server_count() == 2
    assert (await js.call("server_count"))["result"] == 2


async def test_broadcasts_both_ways(mixed):
    sio, js, pc, _py_id, nc, _node_id = mixed
    sio.emit("from_py", 1, "two", {"three": [3]}, BLOB)
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_py")
        assert client.from_json(ev["args"]) == [1, "two", {"three": [3]}, BLOB]
    await js.call("emit", event="from_node", args=["x", BLOB])
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_node")
        assert client.from_json(ev["args"]) == ["x", BLOB]


async def test_rooms_and_except_both_ways(mixed):
    sio, js, pc, py_id, nc, node_id = mixed
    sio.sockets[py_id].join("py-room")
    await js.call("on_client_event", event="join", join="node-room", reply=["ok"])
    assert (await nc.emit_with_ack("n", "join", 1))["args"] == ["ok"]

    sio.to("node-room").emit("only_node")  # one room: the room channel
    ev = await nc.expect("event", name="n", event="only_node")
    await js.call("emit", to=["py-room"], event="only_py")
    await pc.expect("event", name="p", event="only_py")
    sio.to(["py-room", "node-room"]).emit("both")  # two rooms: the main channel
    await pc.expect("event", name="p", event="both")
    await nc.expect("event", name="n", event="both")
    sio.except_("node-room").emit("not_node")
    await js.call("emit", event="not_py", args=[], **{"except": ["py-room"]})
    await pc.expect("event", name="p", event="not_node")
    await nc.expect("event", name="n", event="not_py")
    sio.to(node_id).emit("direct")  # a socket's own room, remote
    await nc.expect("event", name="n", event="direct")
    # nothing that was not meant for a client reached it
    sio.emit("fence")
    await pc.expect("event", name="p", event="fence")
    await nc.expect("event", name="n", event="fence")
    assert pc.seen("event", name="p", event="only_node") == []
    assert pc.seen("event", name="p", event="not_py") == []
    assert nc.seen("event", name="n", event="only_py") == []
    assert nc.seen("event", name="n", event="not_node") == []
    assert ev["args"] == []


async def test_foreign_rooms_and_own_echoes_are_dropped_unread(mixed):
    """A room channel message for a room no local socket is in, and this server's own broadcast
    back from Redis, never reach the handler with the compiled reader (``dropped_unread``), and
    are dropped by the handler before decoding without it; a held room's message arrives."""
    sio, js, pc, py_id, _nc, _node_id = mixed
    adapter = sio.main_namespace.adapter
    link = adapter.factory.subscriber
    key = (adapter.channel + "*").encode()
    handled = []
    original = link.patterns[key]
    link.patterns[key] = lambda channel, message: (
        handled.append(channel),
        original(channel, message),
    )
    sio.sockets[py_id].join("held")
    before = link.dropped_unread
    for _ in range(3):
        await js.call("emit", to=["node-only"], event="foreign")
    await js.call("emit", to=["7"], event="foreign")  # a numeric room nobody holds
    sio.to("held").emit("own")  # comes back from Redis: our own
    await js.call("emit", to=["held"], event="held")
    await pc.expect("event", name="p", event="own")
    await pc.expect("event", name="p", event="held")
    held = f"{adapter.channel}held#".encode()
    if fastsio.redis._connection._reader is not None:
        assert link.dropped_unread - before == 5
        assert handled == [held]
    else:
        assert link.dropped_unread == 0
        assert handled.count(held) == 2 and len(handled) == 6
    assert pc.seen("event", name="p", event="foreign") == []
    assert len(pc.seen("event", name="p", event="own")) == 1


async def test_local_stays_local(mixed):
    sio, _js, pc, _py_id, nc, _node_id = mixed
    sio.local.emit("local_only")
    await pc.expect("event", name="p", event="local_only")
    sio.emit("fence")
    await nc.expect("event", name="n", event="fence")
    assert nc.seen("event", name="n", event="local_only") == []


async def test_fetch_sockets_both_ways(mixed):
    sio, js, _pc, py_id, _nc, node_id = mixed
    sio.sockets[py_id].data["user"] = "py-user"
    sio.sockets[py_id].join("shared")
    await js.call("set_data", id=node_id, data={"user": "node-user"})
    sockets = await sio.fetch_sockets()
    by_id = {s.id: s for s in sockets}
    assert set(by_id) == {py_id, node_id}
    remote = by_id[node_id]
    assert isinstance(remote, fastsio.cluster.RemoteSocket)
    assert remote.data == {"user": "node-user"}
    assert remote.rooms == {node_id}
    assert remote.handshake.query["EIO"] == "4"
    assert remote.handshake.address in ("127.0.0.1", "::ffff:127.0.0.1")
    assert [s.id for s in await sio.in_("shared").fetch_sockets()] == [py_id]

    fetched = (await js.call("fetch_sockets"))["result"]
    mine = {s["id"]: s for s in fetched}[py_id]
    assert mine["data"] == {"user": "py-user"}
    assert sorted(mine["rooms"]) == sorted([py_id, "shared"])
    assert mine["handshake"]["query"]["EIO"] == "4"
    assert [s["id"] for s in (await js.call("fetch_sockets", to=["shared"]))["result"]] == [py_id]


async def test_remote_socket_actions_both_ways(mixed):
    sio, js, pc, py_id, nc, node_id = mixed
    remote = next(s for s in await sio.fetch_sockets() if s.id == node_id)
    remote.emit("hi_remote", BLOB)
    ev = await nc.expect("event", name="n", event="hi_remote")
    assert nc.from_json(ev["args"]) == [BLOB]
    remote.join("joined-remotely")
    await wait_for_node_rooms(js, lambda rooms: rooms.get("joined-remotely") == [node_id])
    remote.leave("joined-remotely")
    await wait_for_node_rooms(js, lambda rooms: "joined-remotely" not in rooms)

    await js.call("remote", id=py_id, action="join", room="r-from-node")
    await wait_for(lambda: "r-from-node" in sio.sockets[py_id].rooms, "the remote join")
    await js.call("remote", id=py_id, action="emit", event="hello_from_node", args=[1])
    await pc.expect("event", name="p", event="hello_from_node")
    await js.call("remote", id=py_id, action="disconnect")
    await pc.expect("disconnect", name="p")
    await wait_for(lambda: py_id not in sio.sockets, "the remote disconnect")
    remote.disconnect()
    await nc.expect("disconnect", name="n")


async def wait_for_node_rooms(js, predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rooms = (await js.call("local_rooms"))["result"]
        if predicate(rooms):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Node's rooms never matched: {rooms}")
        await asyncio.sleep(0.02)


async def test_sockets_join_leave_disconnect_both_ways(mixed):
    sio, js, pc, py_id, nc, node_id = mixed
    sio.sockets_join("everyone")
    await wait_for_node_rooms(js, lambda rooms: rooms.get("everyone") == [node_id])
    assert "everyone" in sio.sockets[py_id].rooms
    await js.call("sockets_leave", rooms=["everyone"])
    await wait_for(lambda: "everyone" not in sio.sockets[py_id].rooms, "the remote leave")
    await wait_for_node_rooms(js, lambda rooms: "everyone" not in rooms)
    await js.call("sockets_join", rooms=["a", "b"], to=[py_id])
    await wait_for(lambda: {"a", "b"} <= sio.sockets[py_id].rooms, "the remote sockets_join")
    sio.in_(node_id).disconnect_sockets()
    await nc.expect("disconnect", name="n")
    await js.call("disconnect_sockets")
    await pc.expect("disconnect", name="p")


async def test_disconnect_sockets_close_closes_the_connections_both_ways(mixed):
    """``disconnect_sockets(close=True)`` from Node closes the Engine.IO session on fastsio, and
    from fastsio the session on Node: the clients see their connection close, not just a
    namespace disconnect (they would stay connected at the engine level then)."""
    sio, js, pc, _py_id, nc, _node_id = mixed
    assert sio.engine.clients_count == 1
    await js.call("disconnect_sockets", close=True)
    await pc.expect("disconnect", name="p")
    await pc.expect("engine_close", name="p")
    await wait_for(lambda: sio.engine.clients_count == 0, "the fastsio session closed")
    await nc.expect("disconnect", name="n")  # Node's own client too
    await nc.expect("engine_close", name="n")
    # and from fastsio, once both are back ("io server disconnect": they wait to be told)
    for client, name in ((pc, "p"), (nc, "n")):
        await client.call("connect_again", name=name)
        await client.expect("connect", name=name)
    await js.expect("connection")
    sio.disconnect_sockets(close=True)
    await nc.expect("engine_close", name="n")
    await pc.expect("engine_close", name="p")


async def test_server_side_events_both_ways(mixed):
    sio, js, *_ = mixed
    got = []

    @sio.on_server_event("ping_py")
    def ping_py(*args):
        got.append(args)
        return {"from": "py", "args": list(args)}

    await js.call("on_server_event", event="ping_node", reply=["node answers"])
    assert await sio.server_side_emit_with_ack("ping_node", 1, "a") == ["node answers"]
    ev = await js.expect("server_event", event="ping_node")
    assert ev["args"] == [1, "a"]
    done = await js.call("server_side_emit_with_ack", event="ping_py", args=[2, "b"])
    assert done["result"] == [{"from": "py", "args": [2, "b"]}]
    assert got == [(2, "b")]
    await js.call("server_side_emit", event="ping_py", args=["no ack"])
    await wait_for(lambda: len(got) == 2, "the server-side event without ack")
    assert got[1] == ("no ack",)
    sio.server_side_emit("ping_node", "plain")
    ev = await js.expect("server_event", event="ping_node")
    assert ev["args"] == ["plain"] and ev["ack"] is False


async def test_broadcast_acks_both_ways(mixed):
    sio, js, pc, _py_id, nc, _node_id = mixed
    await pc.call("ack_policy", name="p", event="poll", reply=["py says"])
    await nc.call("ack_policy", name="n", event="poll", reply=[{"node": True}])
    answers = await sio.timeout(3).emit_with_ack("poll", 1)
    assert sorted(answers, key=str) == sorted(["py says", {"node": True}], key=str)
    done = await js.call("emit_with_ack", event="poll", args=[2], timeout=3000)
    assert sorted(done["result"], key=str) == sorted(["py says", {"node": True}], key=str)


async def test_node_emitter_reaches_fastsio_clients(mixed, node_redis_emitter):
    sio, _js, pc, py_id, nc, _node_id = mixed
    emitter = await node_redis_emitter()
    sio.sockets[py_id].join("em-room")
    await emitter.call("emit", event="from_emitter", args=["e", BLOB])
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_emitter")
        assert client.from_json(ev["args"]) == ["e", BLOB]
    await emitter.call("emit", to=["em-room"], event="room_emitter", args=[])
    await pc.expect("event", name="p", event="room_emitter")
    await emitter.call("sockets_join", rooms=["by-emitter"])
    await wait_for(lambda: "by-emitter" in sio.sockets[py_id].rooms, "the emitter's join")
    got = []
    sio.on_server_event("from_emitter", lambda *args: got.append(args))
    await emitter.call("server_side_emit", event="from_emitter", args=[5])
    await wait_for(lambda: got == [(5,)], "the emitter's server-side event")
    await emitter.call("disconnect_sockets", to=[py_id])
    await pc.expect("disconnect", name="p")


async def test_fastsio_emitters_reach_fastsio_and_node_clients(mixed, redis_url, redis_key):
    from fastsio.redis import AsyncEmitter, Emitter

    sio, js, pc, py_id, nc, node_id = mixed
    sio.sockets[py_id].join("py-room")
    with Emitter(redis_url, key=redis_key) as emitter:
        await asyncio.to_thread(emitter.emit, "sync_emit", BLOB, {"k": 1})
        for client, name in ((pc, "p"), (nc, "n")):
            ev = await client.expect("event", name=name, event="sync_emit")
            assert client.from_json(ev["args"]) == [BLOB, {"k": 1}]
        await asyncio.to_thread(emitter.to("py-room").emit, "room_only")
        await pc.expect("event", name="p", event="room_only")
        await asyncio.to_thread(emitter.except_("py-room").sockets_join, "joined-by-emitter")
        await wait_for_node_rooms(js, lambda rooms: rooms.get("joined-by-emitter") == [node_id])
        with pytest.raises(ValueError):
            emitter.emit("disconnect")

    emitter = AsyncEmitter(redis_url, key=redis_key)
    try:
        got = []
        sio.on_server_event("hello_servers", lambda *args: got.append(args))
        await js.call("on_server_event", event="hello_servers")
        await emitter.server_side_emit("hello_servers", 1)
        await wait_for(lambda: got == [(1,)], "the emitter's server-side event on fastsio")
        ev = await js.expect("server_event", event="hello_servers")
        assert ev["args"] == [1]
        await emitter.of("/").to(node_id).disconnect_sockets()
        await nc.expect("disconnect", name="n")
        await emitter.sockets_leave("py-room")
        await wait_for(lambda: "py-room" not in sio.sockets[py_id].rooms, "the emitter's leave")
    finally:
        await emitter.close()


async def test_outgoing_listeners_see_the_broadcasts_of_other_servers(mixed):
    """socket.on_any_outgoing on a fastsio socket is told of what reaches it from the Node
    server through Redis too (Node calls its listeners from the adapter the same way)."""
    sio, js, pc, py_id, _nc, _node_id = mixed
    socket = sio.sockets[py_id]
    socket.join("py-room")
    seen: list = []
    socket.on_any_outgoing(lambda event, *args: seen.append([event, *args]))
    await js.call("emit", event="from_node", args=["x", BLOB])
    await js.call("emit", to=["other-room"], event="not_for_py")
    await js.call("emit", to=["py-room"], event="to_py_room")
    await pc.expect("event", name="p", event="from_node")
    await pc.expect("event", name="p", event="to_py_room")
    assert seen == [["from_node", "x", BLOB], ["to_py_room"]]
    assert [m["event"] for m in pc.seen("event", name="p")] == ["from_node", "to_py_room"]
