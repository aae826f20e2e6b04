"""The Node side of the mixed-cluster harness on its own: two socket.io 4.8 servers with
@socket.io/redis-adapter 8.3 (classic and sharded) on one Redis key, an official socket.io-client
on each, and the @socket.io/redis-emitter 5.1. These pin the harness (server.js / emitter.js and
the fixtures) and the Node baseline that fastsio's Redis adapter must match."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import NodeProcessError

pytestmark = pytest.mark.interop

BLOB = bytes(range(256)) + b"\x00\xff"


async def until(predicate, server, what: str, timeout: float = 5.0) -> None:
    """Polls ``server``'s local rooms (bounded) until ``predicate(rooms)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        rooms = (await server.call("local_rooms"))["result"]
        if predicate(rooms):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {rooms}")
        await asyncio.sleep(0.02)


async def connect_client(node, server, name: str):
    """One socket.io-client driver connected to ``server``; returns (driver, socket id)."""
    client = await node(server.url)
    await client.connect(name)
    sid = (await client.expect("connect", name=name))["id"]
    connection = await server.expect("connection", id=sid)
    assert connection["nsp"] == "/" and connection["rooms"] == [sid]
    return client, sid


async def two_servers(node_redis_server, node, variant: str):
    a = await node_redis_server(variant=variant, requestsTimeout=3000)
    b = await node_redis_server(variant=variant, requestsTimeout=3000)
    assert a.key == b.key
    ca, a_id = await connect_client(node, a, "a")
    cb, b_id = await connect_client(node, b, "b")
    return a, b, ca, cb, a_id, b_id


async def fence(server, clients) -> None:
    """A broadcast every client gets after whatever ``server`` sent it before (per-client order)."""
    await server.call("emit", event="fence", args=[])
    for client, name in clients:
        await client.expect("event", name=name, event="fence")


async def check_cluster(variant: str, node_redis_server, node) -> tuple:
    a, b, ca, cb, a_id, b_id = await two_servers(node_redis_server, node, variant)

    # server count: each server counts both
    assert (await a.call("server_count"))["result"] == 2
    assert (await b.call("server_count"))["result"] == 2

    # a broadcast from A reaches both clients
    await a.call("emit", event="hello", args=["from A", 1, {"k": [True, None]}])
    for client, name in ((ca, "a"), (cb, "b")):
        ev = await client.expect("event", name=name, event="hello")
        assert client.from_json(ev["args"]) == ["from A", 1, {"k": [True, None]}]

    # a room broadcast: b joins "r1" on B (the ack comes once joined and, sharded, subscribed)
    for server in (a, b):
        await server.call("on_client_event", event="join_room", join="r1", reply=["joined"])
    reply = await cb.emit_with_ack("b", "join_room", "please")
    assert reply["ev"] == "ack" and reply["args"] == ["joined"]
    seen = await b.expect("client_event", id=b_id, event="join_room")
    assert seen["nsp"] == "/" and seen["args"] == ["please"] and seen["ack"] is True
    assert (await b.call("local_rooms"))["result"]["r1"] == [b_id]

    await a.call("emit", to=["r1"], event="room_msg", args=["r1 only"])
    ev = await cb.expect("event", name="b", event="room_msg")
    assert cb.from_json(ev["args"]) == ["r1 only"]
    await a.call("emit", event="not_r1", args=[], **{"except": ["r1"]})
    await ca.expect("event", name="a", event="not_r1")
    await fence(a, ((ca, "a"), (cb, "b")))
    assert ca.seen("event", name="a", event="room_msg") == []
    assert cb.seen("event", name="b", event="not_r1") == []

    # fetch_sockets from A sees both sockets with their rooms and handshakes
    sockets = (await a.call("fetch_sockets"))["result"]
    by_id = {s["id"]: s for s in sockets}
    assert set(by_id) == {a_id, b_id}
    assert by_id[a_id]["rooms"] == [a_id]
    assert sorted(by_id[b_id]["rooms"]) == sorted([b_id, "r1"])
    for s in sockets:
        assert s["data"] == {}
        assert s["handshake"]["query"]["EIO"] == "4"
        assert s["handshake"]["auth"] == {}
        assert s["handshake"]["address"] in ("127.0.0.1", "::ffff:127.0.0.1")
    in_r1 = (await a.call("fetch_sockets", to=["r1"]))["result"]
    assert [s["id"] for s in in_r1] == [b_id]

    # socket.data set on B shows in A's fetch. Node baseline for binary in it: the classic adapter
    # answers fetchSockets in JSON (a Buffer arrives as {"type": "Buffer", "data": [...]}), the
    # sharded one in MessagePack when there is binary (the Buffer arrives as a Buffer).
    await b.call("set_data", id=b_id, data={"user": "bob", "blob": b"\x01\x02"})
    sockets = (await a.call("fetch_sockets", to=[b_id]))["result"]
    blob = {"type": "Buffer", "data": [1, 2]} if variant == "classic" else b"\x01\x02"
    assert [a.from_json(s["data"]) for s in sockets] == [{"user": "bob", "blob": blob}]

    # a remote socket operation from A on B's socket
    await a.call("remote", id=b_id, action="emit", event="direct", args=["just b"])
    ev = await cb.expect("event", name="b", event="direct")
    assert cb.from_json(ev["args"]) == ["just b"]
    await cb.call("ack_policy", name="b", event="direct_ask", reply=["b says", b"\x09"])
    done = await a.call("remote", id=b_id, action="emit", event="direct_ask", args=[], ack=True)
    assert a.from_json(done["result"]) == "b says"  # socket.emitWithAck: the first argument
    await a.call("remote", id=b_id, action="join", room="r3")
    await until(lambda rooms: rooms.get("r3") == [b_id], b, "B's socket in r3")
    await a.call("remote", id=b_id, action="leave", room="r3")
    await until(lambda rooms: "r3" not in rooms, b, "r3 gone from B")

    # server_side_emit_with_ack from A gets B's reply (not A's own)
    await a.call("on_server_event", event="whoami", reply=["A"])
    await b.call("on_server_event", event="whoami", reply=["B"])
    done = await a.call("server_side_emit_with_ack", event="whoami", args=[7, "x"])
    assert done["result"] == ["B"]
    ev = await b.expect("server_event", event="whoami")
    assert ev["nsp"] == "/" and ev["args"] == [7, "x"] and ev["ack"] is True
    assert a.seen("server_event", event="whoami") == []

    # server_side_emit without ack
    await a.call("server_side_emit", event="note", args=["fyi", BLOB[:4]])
    # (not registered with on_server_event on B: nothing to observe, but it must not break B)
    assert (await b.call("server_count"))["result"] == 2

    # binary crosses both ways: server -> clients (via Redis to B's client) and client -> server
    await a.call("emit", event="bin", args=[BLOB, {"nested": [b"xy", "s"]}])
    for client, name in ((ca, "a"), (cb, "b")):
        ev = await client.expect("event", name=name, event="bin")
        assert client.from_json(ev["args"]) == [BLOB, {"nested": [b"xy", "s"]}]
    await b.call("on_client_event", event="echo", reply="echo")
    reply = await cb.emit_with_ack("b", "echo", BLOB, "t")
    assert reply["ev"] == "ack" and reply["args"] == [BLOB, "t"]
    ev = await b.expect("client_event", id=b_id, event="echo")
    assert b.from_json(ev["args"]) == [BLOB, "t"]

    # emit_with_ack from A over the cluster: one answer per client
    await ca.call("ack_policy", name="a", event="ask", reply=["from a"])
    await cb.call("ack_policy", name="b", event="ask", reply=[{"from": "b", "bin": b"\x07"}])
    done = await a.call("emit_with_ack", event="ask", args=[1], timeout=3000)
    answers = [a.from_json(r) for r in done["result"]]
    assert sorted(answers, key=repr) == sorted(["from a", {"from": "b", "bin": b"\x07"}], key=repr)

    # a client that never answers: "timeout", with the answers that did come
    with pytest.raises(NodeProcessError, match="timeout"):
        await a.call("emit_with_ack", event="unanswered", args=[], timeout=300)
    failed = a.seen("error", op="emit_with_ack")
    assert failed and failed[-1]["message"] == "timeout" and failed[-1]["responses"] == []

    # sockets_join from A puts B's socket in a room; sockets_leave takes it out
    await a.call("sockets_join", to=[b_id], rooms=["r2"])
    await until(lambda rooms: rooms.get("r2") == [b_id], b, "B's socket in r2")
    await a.call("sockets_leave", to=["r2"], rooms=["r2"])
    await until(lambda rooms: "r2" not in rooms, b, "r2 gone from B")
    await a.call("sockets_join", to=[b_id], rooms=["r2"])
    await until(lambda rooms: rooms.get("r2") == [b_id], b, "B's socket in r2 again")
    return a, b, ca, cb, a_id, b_id


async def test_classic_cluster(node_redis_server, node_redis_emitter, node):
    a, b, ca, cb, a_id, b_id = await check_cluster("classic", node_redis_server, node)

    rooms = (await a.call("all_rooms"))["result"]
    assert set(rooms) == {a_id, b_id, "r1", "r2"}

    # the emitter reaches both clients, rooms included, binary included
    emitter = await node_redis_emitter()
    await emitter.call("emit", event="from_emitter", args=["e", BLOB])
    for client, name in ((ca, "a"), (cb, "b")):
        ev = await client.expect("event", name=name, event="from_emitter")
        assert client.from_json(ev["args"]) == ["e", BLOB]
    await emitter.call("emit", to=["r1"], event="emitter_room", args=[])
    await cb.expect("event", name="b", event="emitter_room")
    await emitter.call("emit", event="emitter_except", args=[], **{"except": ["r1"]})
    await ca.expect("event", name="a", event="emitter_except")
    await fence(a, ((ca, "a"), (cb, "b")))
    assert ca.seen("event", name="a", event="emitter_room") == []
    assert cb.seen("event", name="b", event="emitter_except") == []

    # the emitter's server-side emit reaches both servers
    for server in (a, b):
        await server.call("on_server_event", event="from_outside")
    await emitter.call("server_side_emit", event="from_outside", args=["hi"])
    for server in (a, b):
        ev = await server.expect("server_event", event="from_outside")
        assert ev["args"] == ["hi"] and ev["ack"] is False

    # the emitter's disconnect_sockets ends b's socket on B
    await emitter.call("disconnect_sockets", to=["r1"], close=False)
    ev = await b.expect("disconnect", id=b_id)
    assert ev["reason"] == "server namespace disconnect"
    await cb.expect("disconnect", name="b")
    assert (await a.call("fetch_sockets"))["result"][0]["id"] == a_id

    # another key is another cluster
    c = await node_redis_server(variant="classic", key=a.key + "-other")
    assert (await c.call("server_count"))["result"] == 1
    assert (await a.call("server_count"))["result"] == 2


async def test_sharded_cluster(node_redis_server, node_redis_emitter, node):
    a, b, ca, cb, _a_id, b_id = await check_cluster("sharded", node_redis_server, node)

    # allRooms() does not exist on the sharded adapter
    with pytest.raises(NodeProcessError, match="allRooms"):
        await a.call("all_rooms")

    # Node baseline: the emitter publishes with PUBLISH in the classic format, which a sharded
    # adapter (SSUBSCRIBE, ClusterAdapter messages) never sees.
    emitter = await node_redis_emitter()
    await emitter.call("emit", event="from_emitter", args=["e"])
    await fence(a, ((ca, "a"), (cb, "b")))
    await cb.assert_none(0.3, "event", name="b", event="from_emitter")
    assert ca.seen("event", name="a", event="from_emitter") == []

    # a namespace other than "/" works across the cluster too
    for server in (a, b):
        await server.call("namespace", nsp="/admin")
    await cb.connect("b_admin", nsp="/admin")
    b_admin = (await cb.expect("connect", name="b_admin"))["id"]
    await b.expect("connection", nsp="/admin", id=b_admin)
    await a.call("emit", nsp="/admin", event="admins", args=[])
    await cb.expect("event", name="b_admin", event="admins")
    sockets = (await a.call("fetch_sockets", nsp="/admin"))["result"]
    assert [s["id"] for s in sockets] == [b_admin]
    await fence(a, ((ca, "a"), (cb, "b")))
    assert cb.seen("event", name="b", event="admins") == []

    # a remote disconnect from A ends b's socket on B
    await a.call("remote", id=b_id, action="disconnect", close=False)
    ev = await b.expect("disconnect", id=b_id)
    assert ev["nsp"] == "/" and ev["reason"] == "server namespace disconnect"
    await cb.expect("disconnect", name="b")
