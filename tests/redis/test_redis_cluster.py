"""The sharded adapter on a real Redis Cluster (three masters started by the test module, see
tests/redis/redis_cluster.py): two fastsio servers, then a fastsio and a Node server
(``createShardedAdapter`` on node-redis's ``createCluster``), every message routed to the master
owning its channel's slot; a slot moved under running servers; a master killed and replaced by its
replica (a cluster of its own, with replicas)."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest

from fastsio.cluster import RemoteSocket
from fastsio.redis import ShardedRedisAdapter, create_sharded_adapter
from fastsio.redis._cluster import RedisCluster, key_slot
from fastsio.redis._connection import SubscribeLink, connection_options
from tests.conftest import NodeProcessError, server_url
from tests.redis.conftest import start_cluster
from tests.redis.redis_cluster import command

pytestmark = pytest.mark.interop

BLOB = bytes(range(256))


async def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def client_on(node, url: str, name: str) -> tuple:
    client = await node(url)
    await client.connect(name)
    sid = (await client.expect("connect", name=name))["id"]
    return client, sid


def adapter_of(sio) -> ShardedRedisAdapter:
    adapter = sio.main_namespace.adapter
    assert isinstance(adapter, ShardedRedisAdapter)
    return adapter


def links_of(sio) -> RedisCluster:
    links = adapter_of(sio).factory.subscriber
    assert isinstance(links, RedisCluster)
    return links


async def subscribed(sio) -> None:
    await asyncio.wait_for(adapter_of(sio).wait_subscriptions(), 5)


@pytest.fixture
async def cluster_server(server_factory, redis_cluster, redis_key):
    """``await cluster_server(how="url" | "list")`` -> a fastsio server with the sharded adapter
    on the module's Redis Cluster (one node's URL with cluster=True, or every URL)."""

    async def make(how: str = "url", mode: str = "dynamic"):
        target = redis_cluster.urls[0] if how == "url" else redis_cluster.urls
        adapter = create_sharded_adapter(
            target,
            channel_prefix=redis_key,
            subscription_mode=mode,
            requests_timeout=3,
            cluster=how == "url",
        )
        return await server_factory(adapter=adapter)

    return make


def test_key_slot_is_redis_cluster_s(redis_cluster):
    assert key_slot("foo") == 12182
    assert key_slot(b"123456789") == 0x31C3
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") != key_slot("bar")  # an empty first tag: the whole key
    assert key_slot("foo{{bar}}zap") == key_slot("{bar")
    rng = random.Random(5)
    port = redis_cluster.ports[0]
    names = ["socket.io#/#", "socket.io#/chat#room-1#", "a{b}c", "{}", "{a", "}{x}", "é{ü}"]
    names += [
        "".join(rng.choice("ab{}#/é") for _ in range(rng.randrange(1, 12))) for _ in range(60)
    ]
    for name in names:
        assert key_slot(name) == command(port, "CLUSTER", "KEYSLOT", name), name


async def test_two_fastsio_servers(cluster_server, node, redis_cluster):
    a = await cluster_server("url")
    b = await cluster_server("list")
    ca, ida = await client_on(node, server_url(a), "a")
    cb, idb = await client_on(node, server_url(b), "b")
    assert await adapter_of(a).server_count() == 2
    assert await adapter_of(b).server_count() == 2
    # rooms on channels of every master
    rooms = [f"room-{i}" for i in range(12)]
    masters = {redis_cluster.master_of(key_slot(f"{adapter_of(a).channel}{r}#")) for r in rooms}
    assert len(masters) == 3
    for room in rooms:
        b.sockets[idb].join(room)
    await subscribed(b)
    assert len(set(links_of(b)._placed.values())) == 3
    a.emit("hello", 1, BLOB)
    for client, name in ((ca, "a"), (cb, "b")):
        ev = await client.expect("event", name=name, event="hello")
        assert client.from_json(ev["args"]) == [1, BLOB]
    for i, room in enumerate(rooms):
        a.to(room).emit("in_room", i)
    for i in range(len(rooms)):
        ev = await cb.expect("event", name="b", event="in_room", args=[i])
    b.to("room-3").emit("back")  # b's own room, and nobody on a
    await cb.expect("event", name="b", event="back")
    b.emit("fence")
    await ca.expect("event", name="a", event="fence")
    assert ca.seen("event", name="a", event="in_room") == []
    assert ca.seen("event", name="a", event="back") == []
    # requests and answers (on the requester's own channel, another slot)
    sockets = {s.id: s for s in await a.fetch_sockets()}
    assert set(sockets) == {ida, idb}
    assert isinstance(sockets[idb], RemoteSocket)
    assert sockets[idb].rooms == {idb, *rooms}

    @b.on_server_event("ping")
    def ping(value):
        return value + 1

    assert await a.server_side_emit_with_ack("ping", 41, timeout=3) == [42]
    # leaving a room unsubscribes its channel on its master
    for room in rooms:
        b.sockets[idb].leave(room)
    await subscribed(b)
    assert set(links_of(b)._placed) == {
        adapter_of(b).channel.encode(),
        adapter_of(b).response_channel.encode(),
    }


async def test_node_and_fastsio(cluster_server, node_redis_server, node, redis_cluster):
    sio = await cluster_server("url")
    js = await node_redis_server(variant="sharded", cluster=redis_cluster.urls)
    pc, py_id = await client_on(node, server_url(sio), "p")
    nc, node_id = await client_on(node, js.url, "n")
    await js.expect("connection", id=node_id)
    assert await adapter_of(sio).server_count() == 2
    assert (await js.call("server_count"))["result"] == 2
    sio.emit("from_py", "x", BLOB)
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_py")
        assert client.from_json(ev["args"]) == ["x", BLOB]
    await js.call("emit", event="from_node", args=["y"])
    for client, name in ((pc, "p"), (nc, "n")):
        await client.expect("event", name=name, event="from_node", args=["y"])
    # rooms over the three masters, both ways
    rooms = [f"r{i}" for i in range(9)]
    for room in rooms:
        sio.sockets[py_id].join(room)
    await subscribed(sio)
    await js.call("on_client_event", event="join", join="node-room", reply=["ok"])
    assert (await nc.emit_with_ack("n", "join", 1))["args"] == ["ok"]
    for i, room in enumerate(rooms):
        await js.call("emit", to=[room], event="to_py", args=[i])
    for i in range(len(rooms)):
        await pc.expect("event", name="p", event="to_py", args=[i])
    sio.to("node-room").emit("to_node")
    await nc.expect("event", name="n", event="to_node")
    # fetch_sockets and server-side events, both ways
    ids = {s.id for s in await sio.fetch_sockets()}
    assert ids == {py_id, node_id}
    fetched = (await js.call("fetch_sockets"))["result"]
    assert {s["id"] for s in fetched} == {py_id, node_id}
    assert set({s["id"]: s for s in fetched}[py_id]["rooms"]) == {py_id, *rooms}
    await js.call("on_server_event", event="hi", reply="echo")
    assert await sio.server_side_emit_with_ack("hi", 7, timeout=3) == [7]

    @sio.on_server_event("ho")
    def ho(value):
        return [value, "py"]

    result = (await js.call("server_side_emit_with_ack", event="ho", args=[1]))["result"]
    assert result == [[1, "py"]]
    sio.emit("fence")
    await nc.expect("event", name="n", event="fence")
    assert nc.seen("event", name="n", event="to_py") == []
    assert pc.seen("event", name="p", event="to_node") == []


async def test_a_publish_answered_moved_is_sent_again(cluster_server, node):
    """A map that is wrong about a slot (as right after a resharding): the publish goes to the
    old owner, which answers MOVED; it is sent again to the new one, and the map is fixed."""
    a = await cluster_server("url")
    b = await cluster_server("url")
    cb, _ = await client_on(node, server_url(b), "b")
    links = links_of(a)
    slot = key_slot(adapter_of(a).channel)
    right = links.slots[slot]
    wrong = next(address for address in links.nodes if address != right)
    links.slots[slot] = wrong
    reads = links.refreshes
    a.emit("rerouted", 1)
    await cb.expect("event", name="b", event="rerouted", args=[1])
    assert links.slots[slot] == right
    await wait_for(lambda: links.refreshes > reads, "the map to be read again")
    assert links.dropped == 0


def move_slot(redis_cluster, slot: int, target: int) -> None:
    """An empty slot to another master (no keys to MIGRATE): IMPORTING, MIGRATING, then NODE on
    every master."""
    owner = redis_cluster.master_of(slot)
    owner_id, target_id = redis_cluster.node_id(owner), redis_cluster.node_id(target)
    assert command(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", owner_id) == "OK"
    assert command(owner, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id) == "OK"
    for port in (target, owner):
        assert command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id) == "OK"
    for port in redis_cluster.running():
        if port not in (target, owner):
            command(port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
    redis_cluster.wait_ok()


async def test_a_moved_slot_is_followed(cluster_server, node, redis_cluster):
    a = await cluster_server("url")
    b = await cluster_server("list")
    ca, _ = await client_on(node, server_url(a), "a")
    cb, idb = await client_on(node, server_url(b), "b")
    b.sockets[idb].join("moving")
    await subscribed(b)
    channels = [adapter_of(a).channel, f"{adapter_of(a).channel}moving#"]
    reads = links_of(a).refreshes, links_of(b).refreshes
    for channel in channels:
        slot = key_slot(channel)
        owner = redis_cluster.master_of(slot)
        target = next(p for p in redis_cluster.ports if p != owner)
        move_slot(redis_cluster, slot, target)
    # b was told (an unasked sunsubscribe) and subscribes on the new owner; a's next publish
    # is answered MOVED, sent again to the new owner, and makes it read the map
    await wait_for(lambda: links_of(b).refreshes > reads[1], "b to read the map again")

    async def arrives(send, client, name: str, event: str) -> None:
        for attempt in range(100):
            send(attempt)
            try:
                await client.expect("event", name=name, event=event, timeout=0.2)
                return
            except NodeProcessError:
                continue
        raise AssertionError(f"{event} never arrived")

    await arrives(lambda i: a.emit("after_move", i), cb, "b", "after_move")
    await arrives(lambda i: a.to("moving").emit("room_after_move", i), cb, "b", "room_after_move")
    await arrives(lambda i: b.emit("back_after_move", i), ca, "a", "back_after_move")
    assert links_of(a).refreshes > reads[0]
    for sio in (a, b):
        links = links_of(sio)
        for key, where in links._placed.items():
            assert where[1] == redis_cluster.master_of(key_slot(key)), key
    assert await adapter_of(a).server_count() == 2


async def test_a_failed_master_is_replaced(server_factory, node, redis_key):
    """Three masters with a replica each: the master of the main channel is killed; once its
    replica has taken over, broadcasts flow again both ways."""
    cluster = await asyncio.to_thread(start_cluster, 3, 1)
    try:
        servers = []
        for how in ("url", "list"):
            adapter = create_sharded_adapter(
                cluster.urls[0] if how == "url" else cluster.urls,
                channel_prefix=redis_key,
                requests_timeout=3,
                cluster=True,
            )
            servers.append(await server_factory(adapter=adapter))
        a, b = servers
        ca, _ = await client_on(node, server_url(a), "a")
        cb, _ = await client_on(node, server_url(b), "b")
        a.emit("before")
        await cb.expect("event", name="b", event="before")
        slot = key_slot(adapter_of(a).channel)
        owner = cluster.master_of(slot)
        replicas = cluster.replicas_of(owner)
        assert replicas
        cluster.kill(owner)
        # (cluster_state stays ok until the others notice: wait for the replica's promotion)
        await asyncio.to_thread(
            cluster.wait,
            lambda: all(cluster.master_of(slot, port) in replicas for port in cluster.running()),
            "the replica to take over",
            30,
        )
        await asyncio.to_thread(cluster.wait_ok, 30)

        async def arrives(send, client, name: str, event: str) -> None:
            deadline = time.monotonic() + 30
            attempt = 0
            while time.monotonic() < deadline:
                attempt += 1
                send(attempt)
                try:
                    await client.expect("event", name=name, event=event, timeout=0.25)
                    return
                except NodeProcessError:
                    continue
            raise AssertionError(f"{event} never arrived")

        await arrives(lambda i: a.emit("after", i), cb, "b", "after")
        await arrives(lambda i: b.emit("back", i), ca, "a", "back")
        for sio in (a, b):
            await wait_for(lambda sio=sio: links_of(sio).connected, "every master link up", 30)
            assert owner not in {port for _, port in links_of(sio).nodes}
        assert await adapter_of(a).server_count() == 2
    finally:
        await asyncio.to_thread(cluster.stop)


async def test_an_unasked_sunsubscribe_is_told_or_undone():
    """What a subscribe link does with a ``sunsubscribe`` Redis sends by itself: tells the
    cluster (which forgets the channel there), or, alone on one node, subscribes again; a
    confirmation of its own SUNSUBSCRIBE is not taken for one."""
    link = SubscribeLink(connection_options("redis://127.0.0.1:1"), logging.getLogger("t"), "t")
    handler = lambda channel, message: None
    link.shard_channels[b"a"] = handler
    link.shard_channels[b"b"] = handler
    told = []
    link.on_shard_channel_lost = told.append
    link._on_reply([b"sunsubscribe", b"a", 1])
    assert told == [b"a"] and b"a" not in link.shard_channels
    link._confirmations.append((b"sunsubscribe", b"b", None))
    link._on_reply([b"sunsubscribe", b"b", 0])  # ours
    assert told == [b"a"] and not link._confirmations
    link.on_shard_channel_lost = None
    link._on_reply([b"sunsubscribe", b"b", 0])  # not ours: made again (when connected)
    await asyncio.sleep(0)
    assert link.shard_channels == {b"b": handler}
