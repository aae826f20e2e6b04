"""fastsio's sharded Redis adapter in a mixed cluster: a Node socket.io 4.8 server with
@socket.io/redis-adapter 8.3's ``createShardedAdapter`` (socket.io-adapter 2.5.9) and fastsio
servers on one channel prefix of a Redis 7, official socket.io-client 4.8 clients on each. Every
operation is checked in both directions; then the wire format, the room subscriptions of each
subscription mode, and garbage on the channels."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import pytest

from fastsio.cluster import MessageType, RemoteSocket
from fastsio.exceptions import AckTimeoutError, AdapterTimeoutError
from fastsio.redis import ShardedRedisAdapter, create_sharded_adapter
from fastsio.redis._codec import pack, unpack
from fastsio.redis._connection import CommandLink, SubscribeLink, connection_options
from tests.conftest import server_url

pytestmark = pytest.mark.interop

BLOB = bytes(range(256))


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_for_node_rooms(js, predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rooms = (await js.call("local_rooms"))["result"]
        if predicate(rooms):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Node's rooms never matched: {rooms}")
        await asyncio.sleep(0.02)


async def client_on(node, url: str, name: str, nsp: str = "/") -> tuple:
    client = await node(url)
    await client.connect(name, nsp=nsp)
    sid = (await client.expect("connect", name=name))["id"]
    return client, sid


def adapter_of(sio, nsp: str = "/") -> ShardedRedisAdapter:
    adapter = sio.of(nsp).adapter
    assert isinstance(adapter, ShardedRedisAdapter)
    return adapter


async def subscribed(sio, nsp: str = "/") -> None:
    """Redis has confirmed the room channel (un)subscriptions the fastsio server made so far."""
    await asyncio.wait_for(adapter_of(sio, nsp).wait_subscriptions(), 5)


class Redis:
    """A raw connection for the tests: commands, and SPUBLISH of anything."""

    def __init__(self, url: str) -> None:
        self.link = CommandLink(connection_options(url), logging.getLogger("test"), "test")

    async def call(self, *args):
        return await asyncio.wait_for(self.link.call(*args), 5)

    async def spublish(self, channel: str, message: bytes) -> int:
        return await self.call("SPUBLISH", channel, message)

    async def shard_subscribers(self, channel: str) -> int:
        return int((await self.call("PUBSUB", "SHARDNUMSUB", channel))[1])

    async def shard_channels(self, pattern: str) -> set:
        return {c.decode() for c in await self.call("PUBSUB", "SHARDCHANNELS", pattern)}


@pytest.fixture
async def redis(redis_url):
    r = Redis(redis_url)
    await r.link.start()
    yield r
    await r.link.close()


@pytest.fixture
async def fastsio_sharded(server_factory, redis_url, redis_key):
    """``await fastsio_sharded(mode="dynamic", **options)`` -> a started fastsio Server with the
    sharded adapter on the test's channel prefix."""

    async def make(mode: str = "dynamic", **options):
        options.setdefault(
            "adapter",
            create_sharded_adapter(
                redis_url, channel_prefix=redis_key, subscription_mode=mode, requests_timeout=2
            ),
        )
        return await server_factory(**options)

    return make


async def mixed_cluster(fastsio_sharded, node_redis_server, node, mode: str = "dynamic"):
    sio = await fastsio_sharded(mode)
    js = await node_redis_server(variant="sharded", subscriptionMode=mode)
    py_client, py_id = await client_on(node, server_url(sio), "p")
    node_client, node_id = await client_on(node, js.url, "n")
    await js.expect("connection", id=node_id)
    await subscribed(sio)
    return sio, js, py_client, py_id, node_client, node_id


@pytest.fixture
async def mixed(fastsio_sharded, node_redis_server, node):
    """A fastsio server and a Node server (both "dynamic") on one prefix, one client each:
    (sio, node_server, py_client, py_id, node_client, node_id)."""
    return await mixed_cluster(fastsio_sharded, node_redis_server, node)


async def fence(sio, clients) -> None:
    """A broadcast from fastsio every client gets after whatever it was sent before."""
    sio.emit("fence")
    for client, name in clients:
        await client.expect("event", name=name, event="fence")


# -- every operation, both ways ------------------------------------------------------------------


async def test_server_count_counts_both(mixed, fastsio_sharded, redis_key, node_redis_server):
    sio, js, *_ = mixed
    assert await sio.main_namespace.adapter.server_count() == 2
    assert (await js.call("server_count"))["result"] == 2
    # a second fastsio server counts for everyone; another prefix is another cluster
    await fastsio_sharded()
    assert await sio.main_namespace.adapter.server_count() == 3
    assert (await js.call("server_count"))["result"] == 3
    other = await node_redis_server(variant="sharded", key=redis_key + "-other")
    assert (await other.call("server_count"))["result"] == 1


async def test_broadcasts_both_ways(mixed):
    sio, js, pc, _py_id, nc, _node_id = mixed
    sio.emit("from_py", 1, "two", {"three": [3]}, None, True)
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_py")
        assert client.from_json(ev["args"]) == [1, "two", {"three": [3]}, None, True]
    await js.call("emit", event="from_node", args=["x", {"y": [1.5, None]}])
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_node")
        assert client.from_json(ev["args"]) == ["x", {"y": [1.5, None]}]
    # each client got each broadcast once (fastsio skips its own echo from Redis)
    await fence(sio, ((pc, "p"), (nc, "n")))
    for client, name in ((pc, "p"), (nc, "n")):
        assert len(client.seen("event", name=name, event="from_py")) == 1
        assert len(client.seen("event", name=name, event="from_node")) == 1


async def test_binary_broadcasts_both_ways(mixed):
    sio, js, pc, py_id, nc, _node_id = mixed
    sio.emit("bin_py", BLOB, {"nested": [b"xy", "s"]})
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="bin_py")
        assert client.from_json(ev["args"]) == [BLOB, {"nested": [b"xy", "s"]}]
    await js.call("emit", event="bin_node", args=[BLOB, {"k": b"\x00"}])
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="bin_node")
        assert client.from_json(ev["args"]) == [BLOB, {"k": b"\x00"}]
    # a single room (the room's own channel) with binary, both ways
    sio.sockets[py_id].join("bin-room")
    await subscribed(sio)
    await js.call("emit", to=["bin-room"], event="bin_room", args=[b"\x01\x02"])
    ev = await pc.expect("event", name="p", event="bin_room")
    assert pc.from_json(ev["args"]) == [b"\x01\x02"]


@pytest.mark.parametrize("mode", ["static", "dynamic", "dynamic-private"])
async def test_rooms_and_except_both_ways(fastsio_sharded, node_redis_server, node, mode):
    sio, js, pc, py_id, nc, node_id = await mixed_cluster(
        fastsio_sharded, node_redis_server, node, mode
    )
    sio.sockets[py_id].join("py-room")
    await subscribed(sio)
    await js.call("on_client_event", event="join", join="node-room", reply=["ok"])
    assert (await nc.emit_with_ack("n", "join", 1))["args"] == ["ok"]

    sio.to("node-room").emit("only_node", 1)  # one room: the room's channel when dynamic
    ev = await nc.expect("event", name="n", event="only_node")
    assert ev["args"] == [1]
    await js.call("emit", to=["py-room"], event="only_py", args=[2])
    ev = await pc.expect("event", name="p", event="only_py")
    assert ev["args"] == [2]
    sio.to(["py-room", "node-room"]).emit("both")  # two rooms: the main channel
    await js.call("emit", to=["py-room", "node-room"], event="both_from_node", args=[])
    for client, name in ((pc, "p"), (nc, "n")):
        await client.expect("event", name=name, event="both")
        await client.expect("event", name=name, event="both_from_node")
    sio.except_("node-room").emit("not_node")
    await js.call("emit", event="not_py", args=[], **{"except": ["py-room"]})
    await pc.expect("event", name="p", event="not_node")
    await nc.expect("event", name="n", event="not_py")
    # a socket's own room on the other server (the main channel, or its own in dynamic-private)
    sio.to(node_id).emit("direct_to_node")
    await nc.expect("event", name="n", event="direct_to_node")
    await js.call("emit", to=[py_id], event="direct_to_py", args=[])
    await pc.expect("event", name="p", event="direct_to_py")
    # a room and except together: one room, but nobody left
    await js.call("emit", to=["py-room"], event="nobody", args=[], **{"except": ["py-room"]})
    # nothing that was not meant for a client reached it
    await fence(sio, ((pc, "p"), (nc, "n")))
    assert pc.seen("event", name="p", event="only_node") == []
    assert pc.seen("event", name="p", event="not_py") == []
    assert pc.seen("event", name="p", event="direct_to_node") == []
    assert pc.seen("event", name="p", event="nobody") == []
    assert nc.seen("event", name="n", event="only_py") == []
    assert nc.seen("event", name="n", event="not_node") == []
    assert nc.seen("event", name="n", event="direct_to_py") == []
    for client, name in ((pc, "p"), (nc, "n")):
        assert len(client.seen("event", name=name, event="both")) == 1


async def test_local_stays_local(mixed):
    sio, js, pc, _py_id, nc, _node_id = mixed
    sio.local.emit("local_only")
    await pc.expect("event", name="p", event="local_only")
    await js.call("emit", local=True, event="node_local", args=[])
    await nc.expect("event", name="n", event="node_local")
    await fence(sio, ((pc, "p"), (nc, "n")))
    assert nc.seen("event", name="n", event="local_only") == []
    assert pc.seen("event", name="p", event="node_local") == []


async def test_fetch_sockets_both_ways(mixed):
    sio, js, _pc, py_id, _nc, node_id = mixed
    sio.sockets[py_id].data["user"] = "py-user"
    sio.sockets[py_id].join("shared")
    await js.call("set_data", id=node_id, data={"user": "node-user", "blob": b"\x01\x02"})
    sockets = await sio.fetch_sockets()
    by_id = {s.id: s for s in sockets}
    assert set(by_id) == {py_id, node_id}
    remote = by_id[node_id]
    assert isinstance(remote, RemoteSocket)
    # Node answers in MessagePack when socket.data holds binary: it arrives as bytes
    assert remote.data == {"user": "node-user", "blob": b"\x01\x02"}
    assert remote.rooms == {node_id}
    assert remote.handshake.query["EIO"] == "4"
    assert remote.handshake.address in ("127.0.0.1", "::ffff:127.0.0.1")
    assert [s.id for s in await sio.in_("shared").fetch_sockets()] == [py_id]
    assert [s.id for s in await sio.in_(node_id).fetch_sockets()] == [node_id]
    assert [s.id for s in await sio.except_("shared").fetch_sockets()] == [node_id]

    sio.sockets[py_id].data["blob"] = b"\x03"
    fetched = (await js.call("fetch_sockets"))["result"]
    mine = {s["id"]: s for s in fetched}[py_id]
    assert js.from_json(mine["data"]) == {"user": "py-user", "blob": b"\x03"}
    assert sorted(mine["rooms"]) == sorted([py_id, "shared"])
    assert mine["handshake"]["query"]["EIO"] == "4"
    assert [s["id"] for s in (await js.call("fetch_sockets", to=["shared"]))["result"]] == [py_id]
    fetched = (await js.call("fetch_sockets", **{"except": ["shared"]}))["result"]
    assert [s["id"] for s in fetched] == [node_id]


async def test_fetch_sockets_with_unserialisable_data_still_answers(mixed):
    sio, js, _pc, py_id, _nc, node_id = mixed
    sio.sockets[py_id].data["thing"] = object()
    fetched = (await js.call("fetch_sockets"))["result"]
    assert {s["id"] for s in fetched} == {py_id, node_id}
    assert {s["id"]: s for s in fetched}[py_id]["data"] is None


async def test_remote_socket_actions_both_ways(mixed):
    sio, js, pc, py_id, nc, node_id = mixed
    remote = next(s for s in await sio.fetch_sockets() if s.id == node_id)
    remote.emit("hi_remote", BLOB)
    ev = await nc.expect("event", name="n", event="hi_remote")
    assert nc.from_json(ev["args"]) == [BLOB]
    await nc.call("ack_policy", name="n", event="ask_remote", reply=["n says", b"\x09"])
    answers = await remote.timeout(3).emit_with_ack("ask_remote")
    assert answers == ["n says"]  # the first argument only, as Node's adapters carry it
    remote.join("joined-remotely")
    await wait_for_node_rooms(js, lambda rooms: rooms.get("joined-remotely") == [node_id])
    remote.leave("joined-remotely")
    await wait_for_node_rooms(js, lambda rooms: "joined-remotely" not in rooms)

    await js.call("remote", id=py_id, action="join", room="r-from-node")
    await wait_for(lambda: "r-from-node" in sio.sockets[py_id].rooms, "the remote join")
    await js.call("remote", id=py_id, action="emit", event="hello_from_node", args=[1, b"\x05"])
    ev = await pc.expect("event", name="p", event="hello_from_node")
    assert pc.from_json(ev["args"]) == [1, b"\x05"]
    await pc.call("ack_policy", name="p", event="ask_py", reply=[{"p": True}])
    done = await js.call("remote", id=py_id, action="emit", event="ask_py", args=[], ack=True)
    assert done["result"] == {"p": True}
    await js.call("remote", id=py_id, action="leave", room="r-from-node")
    await wait_for(lambda: "r-from-node" not in sio.sockets[py_id].rooms, "the remote leave")
    await js.call("remote", id=py_id, action="disconnect")
    await pc.expect("disconnect", name="p")
    await wait_for(lambda: py_id not in sio.sockets, "the remote disconnect")
    remote.disconnect()
    await nc.expect("disconnect", name="n")
    ev = await js.expect("disconnect", id=node_id)
    assert ev["reason"] == "server namespace disconnect"


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
    await subscribed(sio)
    # the rooms joined on Node's request are live: a broadcast to one of them arrives
    await js.call("emit", to=["a"], event="in_a", args=[])
    await pc.expect("event", name="p", event="in_a")
    sio.in_(py_id).sockets_leave(["a"])
    assert "a" not in sio.sockets[py_id].rooms
    sio.in_(node_id).sockets_join("from-py")
    await wait_for_node_rooms(js, lambda rooms: rooms.get("from-py") == [node_id])
    sio.in_("from-py").sockets_leave("from-py")
    await wait_for_node_rooms(js, lambda rooms: "from-py" not in rooms)
    sio.except_(py_id).disconnect_sockets()
    await nc.expect("disconnect", name="n")
    assert py_id in sio.sockets
    await js.call("disconnect_sockets", close=True)
    await pc.expect("disconnect", name="p")
    await wait_for(lambda: py_id not in sio.sockets, "the remote disconnect_sockets")


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
    assert ev["args"] == [1, "a"] and ev["ack"] is True
    done = await js.call("server_side_emit_with_ack", event="ping_py", args=[2, "b"])
    assert done["result"] == [{"from": "py", "args": [2, "b"]}]
    assert got == [(2, "b")]
    await js.call("server_side_emit", event="ping_py", args=["no ack", b"\x07"])
    await wait_for(lambda: len(got) == 2, "the server-side event without ack")
    assert got[1] == ("no ack", b"\x07")
    sio.server_side_emit("ping_node", "plain", b"\x08")
    ev = await js.expect("server_event", event="ping_node")
    assert js.from_json(ev["args"]) == ["plain", b"\x08"] and ev["ack"] is False
    # binary in the answers, both ways
    await js.call("on_server_event", event="bin_answer", reply=[b"\x0a"])
    assert await sio.server_side_emit_with_ack("bin_answer") == [b"\x0a"]
    sio.on_server_event("bin_py", lambda: b"\x0b")
    done = await js.call("server_side_emit_with_ack", event="bin_py", args=[])
    assert js.from_json(done["result"]) == [b"\x0b"]
    # a server that never answers: the timeout, with what came
    await js.call("on_server_event", event="silent")
    with pytest.raises(AckTimeoutError):
        await sio.server_side_emit_with_ack("silent", timeout=0.3)


async def test_broadcast_acks_both_ways(mixed):
    sio, js, pc, py_id, nc, _node_id = mixed
    await pc.call("ack_policy", name="p", event="poll", reply=["py says"])
    await nc.call("ack_policy", name="n", event="poll", reply=[{"node": True, "bin": b"\x07"}])
    expected = sorted(["py says", {"node": True, "bin": b"\x07"}], key=repr)
    answers = await sio.timeout(3).emit_with_ack("poll", 1)
    assert sorted(answers, key=repr) == expected
    done = await js.call("emit_with_ack", event="poll", args=[2], timeout=3000)
    assert sorted((js.from_json(r) for r in done["result"]), key=repr) == expected
    # to one room (acked broadcasts use the main channel: every server counts its clients)
    sio.sockets[py_id].join("ack-room")
    await subscribed(sio)
    done = await js.call("emit_with_ack", to=["ack-room"], event="poll", args=[3], timeout=3000)
    assert done["result"] == ["py says"]
    await js.call("on_client_event", event="j", join="node-ack-room", reply=[])
    await nc.emit_with_ack("n", "j")
    answers = await sio.to("node-ack-room").timeout(3).emit_with_ack("poll", 4)
    assert answers == [{"node": True, "bin": b"\x07"}]
    # a client that never answers: the timeout, with the answers that did come
    await nc.call("ack_policy", name="n", event="half", reply=["n"])
    with pytest.raises(AckTimeoutError) as failed:
        await sio.timeout(0.5).emit_with_ack("half")
    assert failed.value.responses == ["n"]


async def test_another_namespace(mixed, node):
    sio, js, pc, _py_id, nc, _node_id = mixed
    admin = sio.of("/admin")
    await js.call("namespace", nsp="/admin")
    await wait_for(lambda: adapter_of(sio, "/admin")._initialised, "the /admin adapter")
    # both servers are counted on /admin, once each
    assert await admin.adapter.server_count() == 2
    pa, pa_id = await client_on(node, server_url(sio), "pa", nsp="/admin")
    await nc.connect("na", nsp="/admin")
    na_id = (await nc.expect("connect", name="na"))["id"]
    await js.expect("connection", nsp="/admin", id=na_id)
    admin.emit("admins")
    await js.call("emit", nsp="/admin", event="admins_node", args=[])
    for client, name in ((pa, "pa"), (nc, "na")):
        await client.expect("event", name=name, event="admins")
        await client.expect("event", name=name, event="admins_node")
    assert {s.id for s in await admin.fetch_sockets()} == {pa_id, na_id}
    await fence(sio, ((pc, "p"), (nc, "n")))
    assert pc.seen("event", name="p", event="admins_node") == []
    assert nc.seen("event", name="n", event="admins") == []


# -- the wire ----------------------------------------------------------------------------------


async def test_wire_format_is_nodes(fastsio_sharded, redis_url, redis_key):
    """What fastsio publishes, byte for byte in the form Node's sharded adapter writes it."""
    sio = await fastsio_sharded()
    adapter = adapter_of(sio)
    seen: list = []
    link = SubscribeLink(connection_options(redis_url), logging.getLogger("test"), "spy")
    await link.start()
    try:
        for channel in (f"{redis_key}#/#", f"{redis_key}#/#room1#"):
            await link.ssubscribe(channel, lambda ch, msg: seen.append((ch.decode(), msg)))
        sio.to("room1").emit("hello", "world")
        sio.to("room1").emit("hello-bin", b"\x01\x02\x03")
        sio.to(["room1", "room2"]).volatile.emit("two")
        sio.sockets_join("room3")
        sio.server_side_emit("sse", 1)
        await wait_for(lambda: len(seen) == 5, "five messages")
    finally:
        await link.close()
    uid = adapter.uid
    assert len(uid) == 16 and int(uid, 16) >= 0
    channel, raw = seen[0]
    assert channel == f"{redis_key}#/#room1#"
    assert raw == (
        b'{"type":3,"data":{"packet":{"type":2,"data":["hello","world"]},'
        b'"opts":{"rooms":["room1"],"except":[],"flags":{}}},"uid":"'
        + uid.encode()
        + b'","nsp":"/"}'
    )
    channel, raw = seen[1]
    assert channel == f"{redis_key}#/#room1#"
    assert raw[:1] == b"\x84"  # a MessagePack map: binary inside
    assert raw == pack(
        {
            "type": 3,
            "data": {
                "packet": {"type": 2, "data": ["hello-bin", b"\x01\x02\x03"]},
                "opts": {"rooms": ["room1"], "except": [], "flags": {}},
            },
            "uid": uid,
            "nsp": "/",
        }
    )
    channel, raw = seen[2]
    message = orjson.loads(raw)
    assert channel == f"{redis_key}#/#"
    assert sorted(message["data"]["opts"]["rooms"]) == ["room1", "room2"]
    assert message["data"]["opts"]["flags"] == {"volatile": True}
    channel, raw = seen[3]
    assert channel == f"{redis_key}#/#"
    assert orjson.loads(raw) == {
        "type": MessageType.SOCKETS_JOIN,
        "data": {"opts": {"rooms": [], "except": [], "flags": {}}, "rooms": ["room3"]},
        "uid": uid,
        "nsp": "/",
    }
    assert orjson.loads(seen[4][1])["data"] == {"packet": ["sse", 1]}


async def test_responses_go_to_the_requester_channel(fastsio_sharded, node, redis_url, redis_key):
    """fastsio answers a request on ``{prefix}#{nsp}#{requester uid}#``, in Node's shapes."""
    sio = await fastsio_sharded()
    client, sid = await client_on(node, server_url(sio), "p")
    sio.on_server_event("ask", lambda *args: ["answer", *args])
    await client.call("ack_policy", name="p", event="poll", reply=["pong", "ignored"])
    main, spy = f"{redis_key}#/#", f"{redis_key}#/#spyspyspyspyspy0#"
    seen: list = []
    link = SubscribeLink(connection_options(redis_url), logging.getLogger("test"), "spy")
    redis = Redis(redis_url)
    await link.start()
    await redis.link.start()
    try:
        await link.ssubscribe(spy, lambda ch, msg: seen.append(msg))

        def request(kind: int, data: dict) -> bytes:
            return orjson.dumps({"type": kind, "data": data, "uid": "spyspyspyspyspy0", "nsp": "/"})

        opts = {"rooms": [], "except": [], "flags": {}}
        await redis.spublish(main, request(7, {"opts": opts, "requestId": "f1"}))
        await redis.spublish(main, request(9, {"requestId": "s1", "packet": ["ask", 1]}))
        packet = {"type": 2, "data": ["poll", b"\x01"]}
        bin_request = {"type": 3, "data": {"packet": packet, "requestId": "b1", "opts": opts}}
        bin_request.update(uid="spyspyspyspyspy0", nsp="/")
        await redis.spublish(main, pack(bin_request))
        await wait_for(lambda: len(seen) == 4, "four responses")
    finally:
        await link.close()
        await redis.link.close()
    answers = {}
    for raw in seen:
        message = orjson.loads(raw) if raw[:1] == b"{" else unpack(raw)
        assert message["uid"] == adapter_of(sio).uid and message["nsp"] == "/"
        answers[message["type"]] = message["data"]
    assert answers[8]["requestId"] == "f1"
    [details] = answers[8]["sockets"]
    assert details["id"] == sid and details["rooms"] == [sid] and details["data"] == {}
    assert details["handshake"]["query"]["EIO"] == "4"
    assert answers[10] == {"requestId": "s1", "packet": ["answer", 1]}
    assert answers[11] == {"requestId": "b1", "clientCount": 1}
    assert answers[12] == {"requestId": "b1", "packet": "pong"}  # the first argument
    ev = await client.expect("event", name="p", event="poll")
    assert client.from_json(ev["args"]) == [b"\x01"]


async def test_own_messages_are_not_decoded(fastsio_sharded, monkeypatch):
    """Redis sends a server its own messages back: they are skipped before decoding."""
    from fastsio.redis import sharded

    decoded = []
    real = sharded.decode
    monkeypatch.setattr(sharded, "decode", lambda raw: decoded.append(raw) or real(raw))
    sio = await fastsio_sharded()
    other = await fastsio_sharded()
    got = []
    other.on_server_event("mark", lambda *args: got.append(args))
    for i in range(20):
        sio.emit("text", i)
        sio.emit("bin", b"\x00")  # MessagePack
    sio.server_side_emit("mark", 1)
    await wait_for(lambda: got == [(1,)], "the mark")
    assert len(decoded) == 41  # what `other` received; `sio` decoded nothing of its own


@pytest.mark.parametrize("mode", ["static", "dynamic", "dynamic-private"])
async def test_room_channels_follow_the_local_rooms(fastsio_sharded, redis, redis_key, node, mode):
    sio = await fastsio_sharded(mode)
    adapter = adapter_of(sio)
    prefix = f"{redis_key}#/#"
    base = {prefix, f"{prefix}{adapter.uid}#"}
    assert await redis.shard_channels(prefix + "*") == base
    c1, id1 = await client_on(node, server_url(sio), "c1")
    c2, id2 = await client_on(node, server_url(sio), "c2")
    sio.sockets[id1].join(["r", 7])
    sio.sockets[id2].join("r")
    await subscribed(sio)
    own = {f"{prefix}{id1}#", f"{prefix}{id2}#"}
    rooms = {f"{prefix}r#", f"{prefix}7#"}
    expected = {
        "static": base,
        "dynamic": base | rooms,
        "dynamic-private": base | rooms | own,
    }[mode]
    assert await redis.shard_channels(prefix + "*") == expected
    # one subscription per channel, however many sockets are in the room
    if mode != "static":
        assert await redis.shard_subscribers(f"{prefix}r#") == 1
    sio.sockets[id1].leave("r")  # r still has a member
    sio.sockets[id1].leave(7)  # 7 is gone
    await subscribed(sio)
    assert await redis.shard_channels(prefix + "*") == expected - {f"{prefix}7#"}
    await c2.call("disconnect", name="c2")  # the last member of r leaves by disconnecting
    await wait_for(lambda: id2 not in sio.sockets, "c2 gone")
    await subscribed(sio)
    expected = {"static": base, "dynamic": base, "dynamic-private": base | {f"{prefix}{id1}#"}}
    assert await redis.shard_channels(prefix + "*") == expected[mode]
    # a numeric room broadcast from another server reaches the socket in it
    sio.sockets[id1].join(7)
    await subscribed(sio)
    wire = {
        "type": 3,
        "data": {"packet": {"type": 2, "data": ["seven"]}, "opts": {"rooms": [7], "except": []}},
        "uid": "someone",
        "nsp": "/",
    }
    target = f"{prefix}7#" if mode != "static" else prefix
    assert await redis.spublish(target, orjson.dumps(wire)) == 1
    await c1.expect("event", name="c1", event="seven")
    # closing unsubscribes everything
    await sio.close()
    assert await redis.shard_channels(prefix + "*") == set()


# -- faults ----------------------------------------------------------------------------------------


async def test_garbage_on_the_channels_is_dropped_and_logged(
    fastsio_sharded, redis, redis_key, node, caplog
):
    sio = await fastsio_sharded()
    other = await fastsio_sharded()
    client, sid = await client_on(node, server_url(sio), "p")
    sio.sockets[sid].join("held")
    await subscribed(sio)
    adapter = adapter_of(sio)
    main = f"{redis_key}#/#"
    mine = f"{main}{adapter.uid}#"
    held = f"{main}held#"

    def msg(kind, data, uid="someone", nsp="/") -> bytes:
        return orjson.dumps({"type": kind, "data": data, "uid": uid, "nsp": nsp})

    opts = {"rooms": [], "except": [], "flags": {}}
    garbage = [
        (main, b"\xc1"),  # not MessagePack
        (main, b"{not json"),
        (main, b"[1, 2]"),  # not a map
        (main, pack([1, 2])),
        (main, b"\x93\x01"),  # truncated
        (held, b"\xff\xff"),
        (main, msg(3, "no map")),
        (main, msg(3, {"packet": "no map", "opts": opts})),
        (main, msg(3, {"packet": {"type": 2, "data": []}, "opts": opts})),
        (main, msg(3, {"packet": {"type": 2, "data": [5]}, "opts": opts})),
        (main, msg(3, {"packet": {"type": 99, "data": ["x"]}, "opts": opts})),
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}})),  # no opts
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}, "opts": {"rooms": 5}})),
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}, "opts": {"rooms": [[1]]}})),
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}, "opts": opts, "requestId": "r"}, 5)),
        (main, msg(4, {"opts": opts, "rooms": {"a": 1}})),
        (main, msg(5, {"opts": 7, "rooms": ["a"]})),
        (main, msg(6, None)),
        (main, msg(7, {"opts": opts, "requestId": "r"}, uid=None)),
        (main, msg(9, {"packet": "no list"})),
        (main, msg(9, {"packet": []})),
        (mine, msg(8, {"requestId": {"x": 1}, "sockets": []})),
        (mine, msg(12, "no map")),
        (mine, b"\x00"),
    ]
    ignored = [
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}, "opts": opts}, nsp="/other")),
        (main, msg(3, {"packet": {"type": 2, "data": ["x"]}, "opts": opts}, uid=adapter.uid)),
        (main, msg(1, None)),
        (main, msg(2, None)),
        (main, msg(13, None)),
        (main, msg(77, {})),
        (mine, msg(8, {"requestId": "unknown", "sockets": []})),
        (mine, msg(11, {"requestId": "unknown"})),
    ]
    with caplog.at_level(logging.WARNING, logger="fastsio.redis"):
        for channel, message in garbage + ignored:
            assert await redis.spublish(channel, message) >= 1
        # a good broadcast after the garbage still arrives: nothing broke
        good = {"packet": {"type": 2, "data": ["after", 1]}, "opts": {"rooms": ["held"]}}
        await redis.spublish(held, msg(3, good))
        ev = await client.expect("event", name="p", event="after")
        assert ev["args"] == [1]
    # each malformed message was counted (and the first ten logged), the others ignored
    assert adapter._drop.count == len(garbage)
    dropped = [r for r in caplog.records if "dropped a malformed" in r.getMessage()]
    assert len(dropped) >= 10, [r.getMessage() for r in caplog.records]
    assert client.seen("event", name="p", event="x") == []
    assert sio.sockets[sid].connected
    # and the cluster still works both ways
    other.on_server_event("still", lambda: "there")
    assert await sio.server_side_emit_with_ack("still") == ["there"]
    other.emit("from_other")
    await client.expect("event", name="p", event="from_other")


async def test_a_server_that_stops_answering_times_out(
    fastsio_sharded, node_redis_server, node, redis_key
):
    sio = await fastsio_sharded()
    js = await node_redis_server(variant="sharded")
    await client_on(node, js.url, "n")
    js.suspend()
    try:
        with pytest.raises(AdapterTimeoutError):
            await sio.timeout(0.3).fetch_sockets()
        with pytest.raises(AckTimeoutError):
            await sio.server_side_emit_with_ack("anyone", timeout=0.3)
    finally:
        js.resume()
    assert len(await sio.fetch_sockets()) == 1


async def test_finished_requests_are_forgotten(mixed):
    sio, _js, pc, _py_id, nc, _node_id = mixed
    adapter = adapter_of(sio)
    await pc.call("ack_policy", name="p", event="q", reply=[1])
    await nc.call("ack_policy", name="n", event="q", reply=[2])
    assert sorted(await sio.timeout(0.2).emit_with_ack("q")) == [1, 2]
    await sio.fetch_sockets()
    assert not adapter.requests._requests
    await asyncio.sleep(0.3)
    assert adapter.ack_requests == {}


def test_subscription_mode_is_checked(redis_url):
    with pytest.raises(ValueError, match="subscription_mode"):
        create_sharded_adapter(redis_url, subscription_mode="sometimes")
    assert unpack(pack({"a": b"\x00"})) == {"a": b"\x00"}


async def test_redis_restart_resubscribes_the_room_channels(server_factory, node):
    from tests.redis.test_redis_faults import free_port, start_redis

    port = free_port()
    redis_server = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        a = await server_factory(adapter=create_sharded_adapter(url, channel_prefix="restart"))
        b = await server_factory(adapter=create_sharded_adapter(url, channel_prefix="restart"))
        client, sid = await client_on(node, server_url(b), "b")
        b.sockets[sid].join("kept")
        await subscribed(b)
        a.to("kept").emit("before", 1)
        await client.expect("event", name="b", event="before")
        redis_server.kill()
        redis_server.wait(5)
        for i in range(100):  # never blocks nor raises while Redis is gone
            a.to("kept").emit("during", i)
        redis_server = start_redis(port)

        async def delivered() -> bool:
            a.to("kept").emit("after", 2)  # the room's own channel: resubscribed
            try:
                await client.expect("event", name="b", event="after", timeout=0.3)
                return True
            except AssertionError:
                return False

        deadline = time.monotonic() + 15
        while not await delivered():
            assert time.monotonic() < deadline, "room broadcasts never resumed after the restart"
        assert await adapter_of(a).server_count() == 2
        b.on_server_event("q", lambda: "b")
        assert await a.server_side_emit_with_ack("q") == ["b"]
    finally:
        redis_server.kill()
        redis_server.wait(5)
