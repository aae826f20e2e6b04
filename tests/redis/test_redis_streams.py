"""fastsio's Redis Streams adapter in a mixed cluster: a Node socket.io 4.8 server with
@socket.io/redis-streams-adapter 0.3.1 and fastsio servers on one stream, official
socket.io-client 4.8 clients; then connection state recovery across servers (a client cut from
one server comes back through a switching proxy on another: fastsio -> fastsio, Node -> fastsio,
fastsio -> Node), the wire format, garbage on the stream, and Redis restarting."""

from __future__ import annotations

import asyncio
import base64
import logging
import time

import orjson
import pytest

from fastsio.redis import RedisStreamsAdapter, create_streams_adapter
from fastsio.redis._codec import pack, unpack
from fastsio.redis._connection import CommandLink, connection_options
from tests.conftest import server_url
from tests.redis.switch_proxy import SwitchProxy
from tests.redis.test_redis_faults import free_port, start_redis

pytestmark = pytest.mark.interop

BLOB = bytes(range(256))
SLOW_RECONNECT = {"reconnectionDelay": 2000, "reconnectionDelayMax": 2000, "randomizationFactor": 0}


async def wait_for(predicate, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Redis:
    """A raw connection for the tests."""

    def __init__(self, url: str) -> None:
        self.link = CommandLink(connection_options(url), logging.getLogger("test"), "test")

    async def call(self, *args):
        return await asyncio.wait_for(self.link.call(*args), 5)


@pytest.fixture
async def redis(redis_url):
    r = Redis(redis_url)
    await r.link.start()
    yield r
    await r.link.close()


@pytest.fixture
async def fastsio_streams(server_factory, redis_url, redis_key):
    """``await fastsio_streams(**options)`` -> a started fastsio Server with the streams adapter
    on the test's stream (``recovery``: connection_state_recovery, True by default)."""

    async def make(recovery=True, url=None, **options):
        options.setdefault(
            "adapter",
            create_streams_adapter(
                url or redis_url,
                stream_name=redis_key,
                channel_prefix=redis_key,
                session_key_prefix=f"{redis_key}:session:",
                block_time=0.5,
            ),
        )
        sio = await server_factory(connection_state_recovery=recovery, **options)

        @sio.on("join")
        def join(socket, room):
            socket.join(room)
            socket.data = {"joined": room}
            return True

        return sio

    return make


def adapter_of(sio, nsp: str = "/") -> RedisStreamsAdapter:
    adapter = sio.of(nsp).adapter
    assert isinstance(adapter, RedisStreamsAdapter)
    return adapter


async def server_count(sio, count: int) -> None:
    deadline = time.monotonic() + 5
    while (found := await adapter_of(sio).server_count()) != count:
        assert time.monotonic() < deadline, f"server_count stayed {found}, expected {count}"
        await asyncio.sleep(0.05)


async def client_on(node, url: str, name: str, transports=("websocket",), **options) -> tuple:
    client = await node(url, args={"transports": list(transports), **options})
    await client.connect(name)
    connected = await client.expect("connect", name=name)
    assert not connected.get("recovered")
    return client, connected["id"]


def values(client, name: str, event: str) -> list:
    return [args[0] for args in client.events(name, event)]


# -- a mixed cluster ---------------------------------------------------------------------------


@pytest.fixture
async def mixed(fastsio_streams, node_redis_server, node):
    py = await fastsio_streams()
    js = await node_redis_server("streams", serverOptions={"connectionStateRecovery": {}})
    pc, py_id = await client_on(node, server_url(py), "p")
    nc, node_id = await client_on(node, js.url, "n")
    await js.expect("connection", id=node_id)
    await server_count(py, 2)
    return py, js, pc, py_id, nc, node_id


async def test_broadcasts_rooms_and_offsets_both_ways(mixed):
    py, js, pc, py_id, nc, node_id = mixed
    assert (await js.call("server_count"))["result"] == 2
    py.emit("from_py", 1, {"a": BLOB})
    await js.call("emit", event="from_node", args=[2])
    for client, name in ((pc, "p"), (nc, "n")):
        ev = await client.expect("event", name=name, event="from_py")
        assert ev["args"][:2] == [1, {"a": {"$buffer": base64.b64encode(BLOB).decode()}}]
        py_offset = ev["args"][2]
        ev = await client.expect("event", name=name, event="from_node")
        assert ev["args"][0] == 2
        node_offset = ev["args"][1]
        # the same offset on both servers: the stream entry's id
        assert py_offset.count("-") == 1 and node_offset.count("-") == 1
    assert pc.events("p", "from_py")[0][-1] == nc.events("n", "from_py")[0][-1]
    assert pc.events("p", "from_node")[0][-1] == nc.events("n", "from_node")[0][-1]

    await js.call("remote", id=node_id, action="join", room="r1")
    py.in_(py_id).sockets_join("r2")
    await asyncio.sleep(0.3)
    py.to("r1").emit("to_r1")
    await js.call("emit", to=["r2"], event="to_r2")
    await nc.expect("event", name="n", event="to_r1")
    await pc.expect("event", name="p", event="to_r2")
    py.except_("r1").emit("not_r1")
    await pc.expect("event", name="p", event="not_r1")
    py.volatile.emit("fence")
    await nc.expect("event", name="n", event="fence")
    assert nc.events("n", "not_r1") == [] and pc.events("p", "to_r1") == []
    assert nc.events("n", "fence")[0] == []  # volatile: no offset


async def test_fetch_sockets_server_side_emit_and_acks_both_ways(mixed):
    py, js, pc, py_id, nc, node_id = mixed
    ids = sorted(s.id for s in await py.fetch_sockets())
    assert ids == sorted([py_id, node_id])
    fetched = (await js.call("fetch_sockets"))["result"]
    assert sorted(s["id"] for s in fetched) == sorted([py_id, node_id])

    await js.call("on_server_event", event="ping_node", reply=["pong-node"])

    @py.on_server_event("ping_py")
    def ping_py(*args):
        return ["pong-py", *args]

    assert await py.server_side_emit_with_ack("ping_node", 1, timeout=5) == ["pong-node"]
    answer = await js.call("server_side_emit_with_ack", event="ping_py", args=[7])
    assert answer["result"] == [["pong-py", 7]]

    await pc.call("ack_policy", name="p", event="ask", reply=["p-ok"])
    await nc.call("ack_policy", name="n", event="ask", reply=["n-ok"])
    assert sorted(await py.timeout(5).emit_with_ack("ask")) == ["n-ok", "p-ok"]
    assert sorted((await js.call("emit_with_ack", event="ask"))["result"]) == ["n-ok", "p-ok"]
    # a broadcast with acks is not logged: no offset
    assert pc.events("p", "ask") == [[], []]

    py.in_(node_id).disconnect_sockets()
    await nc.expect("disconnect", name="n")


async def test_entry_format_and_garbage_on_the_stream(
    fastsio_streams, redis, redis_key, node, caplog
):
    py = await fastsio_streams(recovery=False)
    other = await fastsio_streams(recovery=False)
    client, _sid = await client_on(node, server_url(other), "a")
    py.emit("plain", 1)
    py.emit("binary", BLOB)
    await client.expect("event", name="a", event="plain")
    await client.expect("event", name="a", event="binary")
    entries = await redis.call("XRANGE", redis_key, "-", "+")
    fields = [dict(zip(f[::2], f[1::2])) for _, f in entries]
    plain = next(f for f in fields if b"plain" in f[b"data"])
    assert list(plain) == [b"uid", b"nsp", b"type", b"data"]
    assert plain[b"nsp"] == b"/" and plain[b"type"] == b"3"
    assert orjson.loads(plain[b"data"]) == {
        "packet": {"type": 2, "data": ["plain", 1]},
        "opts": {"rooms": [], "except": [], "flags": {}},
    }
    binary = fields[-1]
    assert unpack(base64.b64decode(binary[b"data"]))["packet"]["data"] == ["binary", BLOB]
    assert client.events("a", "plain") == [[1]]  # recovery off: no offset

    caplog.set_level(logging.WARNING, logger="fastsio.redis")
    garbage = [
        ("nsp", "/"),  # no uid, no type
        ("uid", "x", "nsp", "/", "type", "three", "data", "{}"),
        ("uid", "x", "nsp", "/", "type", "3", "data", "{not json"),
        ("uid", "x", "nsp", "/", "type", "3", "data", "!!notbase64"),
        ("uid", "x", "nsp", "/", "type", "3", "data", base64.b64encode(b"\xc1").decode()),
        ("uid", "x", "nsp", "/", "type", "3", "data", '{"packet": 5}'),
        ("uid", "x", "nsp", "/", "type", "4", "data", '{"opts": {}, "rooms": [[1]]}'),
        ("uid", "x", "nsp", "/", "type", "99", "data", "{}"),
        ("uid", "x", "nsp", "/nowhere", "type", "3", "data", "{}"),
        ("whatever", "value"),
    ]
    for entry in garbage:
        await redis.call("XADD", redis_key, "*", *entry)
    py.emit("after", 2)
    await client.expect("event", name="a", event="after")
    assert client.events("a", "after") == [[2]]
    dropped = [r for r in caplog.records if "dropped a malformed" in r.getMessage()]
    assert len(dropped) >= 5

    # and the pub/sub channel
    await redis.call("PUBLISH", f"{redis_key}#/#", b"\xc1garbage")
    await redis.call(
        "PUBLISH", f"{redis_key}#/#", pack({"type": 9, "data": "no", "uid": "z", "nsp": "/"})
    )
    assert await other.server_side_emit_with_ack("nothing", timeout=5) == [None]


# -- connection state recovery across servers --------------------------------------------------


async def cut_and_move(proxy: SwitchProxy, client, name: str, to_port: int) -> None:
    proxy.switch(to_port)
    await client.expect("disconnect", name=name)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]], ids=["websocket", "polling"])
async def test_recovered_on_another_fastsio_server(fastsio_streams, node, transports):
    a = await fastsio_streams(ping_interval=0.5, ping_timeout=0.5)
    b = await fastsio_streams(ping_interval=0.5, ping_timeout=0.5)
    proxy = await SwitchProxy(a.port).start()
    try:
        # it comes back after the old server has seen it gone (a polling client that is cut
        # between two requests is only noticed at the ping timeout)
        client, sid = await client_on(node, proxy.url, "c", transports, **SLOW_RECONNECT)
        assert (await client.emit_with_ack("c", "join", "room1"))["args"] == [True]
        a.to("room1").emit("news", 0)
        await client.expect("event", name="c", event="news")

        await cut_and_move(proxy, client, "c", b.port)
        await wait_for(lambda: sid not in a.sockets, "a to see the socket gone", 5)
        a.to("room1").emit("news", 1)  # from the old server
        b.emit("news", 2)  # from the new one, to everyone
        a.to("other").emit("news", -1)
        a.volatile.emit("news", -2)
        b.to(sid).emit("news", 3)

        again = await client.expect("connect", name="c", timeout=15)
        assert again["recovered"] is True and again["id"] == sid
        await wait_for(lambda: sid in b.sockets, "the socket on b")
        socket = b.sockets[sid]
        assert socket.recovered and "room1" in socket.rooms and socket.data == {"joined": "room1"}
        a.to("room1").emit("news", 4)
        await client.expect_count("event", 5, name="c", event="news")
        await asyncio.sleep(0.3)
        assert values(client, "c", "news") == [0, 1, 2, 3, 4]
        offsets = [args[-1] for args in client.events("c", "news")]
        assert offsets == sorted(offsets, key=lambda o: tuple(map(int, o.split("-"))))
    finally:
        await proxy.close()


async def test_recovered_across_node_and_fastsio(fastsio_streams, node_redis_server, node):
    py = await fastsio_streams()
    js = await node_redis_server(
        "streams", serverOptions={"connectionStateRecovery": {"maxDisconnectionDuration": 60000}}
    )
    await js.call("on_client_event", event="join", join="room1", reply=[True])
    await server_count(py, 2)
    proxy = await SwitchProxy(js.port).start()
    try:
        # Node -> fastsio (it comes back after what is sent meanwhile)
        client, sid = await client_on(node, proxy.url, "c", **SLOW_RECONNECT)
        await js.expect("connection", id=sid)
        assert (await client.emit_with_ack("c", "join", "room1"))["args"] == [True]
        await js.call("set_data", id=sid, data={"from": "node"})
        await js.call("emit", to=["room1"], event="news", args=[0])
        await client.expect("event", name="c", event="news")
        await cut_and_move(proxy, client, "c", py.port)
        await js.expect("disconnect", id=sid)
        await js.call("emit", to=["room1"], event="news", args=[1])
        await js.call("emit", event="news", args=[-2], volatile=True)
        py.volatile.emit("news", -3)
        py.emit("news", 2)  # (Node's restoreSession replays volatile broadcasts, fastsio's not)
        again = await client.expect("connect", name="c", timeout=15)
        assert again["recovered"] is True and again["id"] == sid
        socket = py.sockets[sid]
        assert "room1" in socket.rooms and socket.data == {"from": "node"}
        await client.expect_count("event", 3, name="c", event="news")

        # fastsio -> Node
        await cut_and_move(proxy, client, "c", js.port)
        await wait_for(lambda: sid not in py.sockets, "fastsio to see the socket gone")
        py.to("room1").emit("news", 3)
        await asyncio.sleep(0.1)  # in Redis before Node's next one
        await js.call("emit", event="news", args=[4])
        again = await client.expect("connect", name="c", timeout=15)
        assert again["recovered"] is True and again["id"] == sid
        ev = await js.expect("connection", id=sid, recovered=True)
        assert "room1" in ev["rooms"] and ev["data"] == {"from": "node"}
        await js.call("emit", to=["room1"], event="news", args=[5])
        await client.expect_count("event", 6, name="c", event="news")
        await asyncio.sleep(0.3)
        assert values(client, "c", "news") == [0, 1, 2, 3, 4, 5], client.events("c", "news")
    finally:
        await proxy.close()


async def test_forged_expired_or_unknown_offset_gives_a_fresh_socket(
    fastsio_streams, node, redis, redis_key
):
    py = await fastsio_streams(recovery={"max_disconnection_duration": 0.5})
    client = await node(server_url(py), args={"transports": ["websocket"]})
    for name, auth in [
        ("forged", {"pid": "not-a-session", "offset": "1-0"}),
        ("bad-offset", {"pid": "x", "offset": "$"}),
        ("types", {"pid": 7, "offset": ["nope"]}),
    ]:
        await client.connect(name, opts={"auth": auth})
        assert (await client.expect("connect", name=name))["recovered"] is False

    real, sid = await client_on(node, server_url(py), "real")
    py.emit("hello")
    await real.expect("event", name="real", event="hello")
    real.suspend()  # frozen: it cannot come back before the session expires
    py.sockets[sid].conn.close("transport close")
    await wait_for(lambda: sid not in py.sockets, "the disconnect")
    deadline = time.monotonic() + 5
    while not await redis.call("KEYS", f"{redis_key}:session:*"):
        assert time.monotonic() < deadline, "the session was never saved"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.8)  # the key expired in Redis
    assert await redis.call("KEYS", f"{redis_key}:session:*") == []
    real.resume()
    again = await real.expect("connect", name="real", timeout=15)
    assert again["recovered"] is False and again["id"] != sid


async def test_redis_restart(server_factory, node):
    port = free_port()
    proc = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        factory = lambda: create_streams_adapter(url, stream_name="restart", block_time=0.2)
        a = await server_factory(adapter=factory(), connection_state_recovery=True)
        b = await server_factory(adapter=factory(), connection_state_recovery=True)
        client, _sid = await client_on(node, server_url(b), "c")
        a.emit("before")
        await client.expect("event", name="c", event="before")
        proc.terminate()
        proc.wait(10)
        a.emit("while_down")  # served locally only; nothing crashes
        await asyncio.sleep(0.5)
        proc = start_redis(port)
        deadline = time.monotonic() + 20
        while not client.events("c", "after"):
            assert time.monotonic() < deadline, "broadcasts never resumed after the restart"
            a.emit("after")
            await asyncio.sleep(0.3)
        assert client.events("c", "while_down") == []
    finally:
        proc.kill()
        proc.wait(10)


async def test_recovery_during_a_steady_stream_is_exactly_once(fastsio_streams, node):
    """Broadcasts keep coming from both servers while the client moves: every one arrives once,
    none lost, whether it was replayed, held for the socket while it connected, or live."""
    a = await fastsio_streams()
    b = await fastsio_streams()
    proxy = await SwitchProxy(a.port).start()
    count = 400
    try:
        client, sid = await client_on(node, proxy.url, "c")

        async def stream() -> None:
            for i in range(count):
                (a if i % 2 else b).emit("tick", i)
                await asyncio.sleep(0.005)

        sending = asyncio.ensure_future(stream())
        await asyncio.sleep(0.3)
        await cut_and_move(proxy, client, "c", b.port)
        again = await client.expect("connect", name="c", timeout=15)
        assert again["recovered"] is True and again["id"] == sid
        await sending
        await client.expect_count("event", count, name="c", event="tick", timeout=15)
        await asyncio.sleep(0.3)
        assert sorted(values(client, "c", "tick")) == list(range(count))
        offsets = [tuple(map(int, args[-1].split("-"))) for args in client.events("c", "tick")]
        assert len(set(offsets)) == count
    finally:
        await proxy.close()
