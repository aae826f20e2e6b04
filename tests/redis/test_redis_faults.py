"""The Redis adapter under faults: garbage on its channels, a server that stops answering while a
request waits, and Redis itself restarted under two fastsio servers."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time

import pytest

from fastsio.exceptions import AdapterTimeoutError
from fastsio.redis import create_adapter
from fastsio.redis._codec import pack
from fastsio.redis._connection import CommandLink, connection_options
from tests.conftest import server_url
from tests.redis.test_redis_adapter import client_on, wait_for

pytestmark = pytest.mark.interop


async def publish_raw(redis_url: str, channel: str, message: bytes) -> None:
    link = CommandLink(connection_options(redis_url), logging.getLogger("test"), "test")
    await link.start()
    try:
        await link.call("PUBLISH", channel, message)
    finally:
        await link.close()


async def test_garbage_on_every_channel_is_dropped_and_logged(
    server_factory, redis_url, redis_key, node, caplog
):
    sio = await server_factory(adapter=create_adapter(redis_url, key=redis_key))
    client, sid = await client_on(node, server_url(sio), "p")
    sio.sockets[sid].join("held")
    garbage = [
        (f"{redis_key}#/#", b"\xc1"),  # not MessagePack
        (f"{redis_key}#/#", pack(["uid", {"type": 2, "data": ["x"]}])),  # two elements
        (f"{redis_key}#/#", pack(["uid", "not a packet", {}])),
        (f"{redis_key}#/#", pack(["uid", {"type": 99, "data": ["x"], "nsp": "/"}, {}])),
        (f"{redis_key}#/#", pack(["uid", {"type": 2, "data": [], "nsp": "/"}, {}])),
        (f"{redis_key}#/#", pack(["uid", {"type": 2, "data": ["x"], "nsp": "/"}, {"rooms": 5}])),
        (f"{redis_key}#/#held#", b"\x93\x01"),  # truncated
        (f"{redis_key}-request#/#", b"{not json"),
        (f"{redis_key}-request#/#", b"[1, 2]"),
        (f"{redis_key}-request#/#", b'{"type": 2, "opts": {"rooms": [[]]}, "rooms": ["r"]}'),
        (f"{redis_key}-request#/#", b'{"type": 6, "data": "no list"}'),
        (f"{redis_key}-request#/#", b'{"type": 5, "requestId": "r1", "opts": 7}'),
        (f"{redis_key}-response#/#", b"\xff\xff"),
        (f"{redis_key}-response#/#", b'{"requestId": {"x": 1}}'),
    ]
    with caplog.at_level(logging.WARNING, logger="fastsio.redis"):
        for channel, message in garbage:
            await publish_raw(redis_url, channel, message)
        # a good broadcast after the garbage still arrives: nothing broke
        await publish_raw(
            redis_url,
            f"{redis_key}#/#held#",
            pack(
                [
                    "other",
                    {"type": 2, "data": ["after", 1], "nsp": "/"},
                    {"rooms": ["held"], "except": [], "flags": {}},
                ]
            ),
        )
        ev = await client.expect("event", name="p", event="after")
        assert ev["args"] == [1]
    dropped = [r for r in caplog.records if "dropped a malformed" in r.getMessage()]
    assert len(dropped) >= 10, [r.getMessage() for r in caplog.records]
    assert client.seen("event", name="p", event="x") == []
    assert sio.sockets[sid].connected


async def test_a_server_that_stops_answering_times_fetch_sockets_out(
    server_factory, node_redis_server, redis_url, redis_key, node
):
    sio = await server_factory(adapter=create_adapter(redis_url, key=redis_key, requests_timeout=1))
    js = await node_redis_server(variant="classic")
    _, node_id = await client_on(node, js.url, "n")
    assert {s.id for s in await sio.fetch_sockets()} == {node_id}
    js.suspend()  # its Redis connections stay open: it still counts, but answers nothing
    try:
        started = time.monotonic()
        with pytest.raises(AdapterTimeoutError) as info:
            await sio.fetch_sockets()
        assert 0.9 <= time.monotonic() - started < 5
        assert info.value.responses == []
        with pytest.raises(Exception, match="timed out|1 server"):
            await sio.server_side_emit_with_ack("anyone", timeout=0.5)
    finally:
        js.resume()
    await js.close()  # killed: Redis drops its subscriptions, it no longer counts
    await wait_for_count(sio, 1)
    assert await sio.fetch_sockets() == []


async def wait_for_count(sio, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (found := await sio.main_namespace.adapter.server_count()) != count:
        if time.monotonic() > deadline:
            raise AssertionError(f"server_count stayed {found}, expected {count}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("this test needs redis-server on PATH (.ci/run installs it)", pytrace=False)
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"redis-server did not start on port {port}", pytrace=False)


async def test_redis_restart_resubscribes_and_broadcasts_resume(server_factory, node, caplog):
    port = free_port()
    redis = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        a = await server_factory(adapter=create_adapter(url, key="restart"))
        b = await server_factory(adapter=create_adapter(url, key="restart"))
        client, _ = await client_on(node, server_url(b), "b")
        a.emit("before", 1)
        await client.expect("event", name="b", event="before")

        with caplog.at_level(logging.WARNING, logger="fastsio.redis"):
            redis.kill()
            redis.wait(5)
            await wait_for(
                lambda: any("lost" in r.getMessage() for r in caplog.records), "the lost log"
            )
            started = time.monotonic()
            for i in range(1000):  # never blocks nor raises while Redis is gone: dropped, logged
                a.emit("during", i)
            assert time.monotonic() - started < 1
            redis = start_redis(port)

            async def delivered() -> bool:
                a.emit("after", 2)
                try:
                    await client.expect("event", name="b", event="after", timeout=0.3)
                    return True
                except AssertionError:
                    return False

            deadline = time.monotonic() + 15
            while not await delivered():
                assert time.monotonic() < deadline, "broadcasts never resumed after the restart"
        assert any("reconnected" in r.getMessage() for r in caplog.records)
        assert any("dropped so far" in r.getMessage() for r in caplog.records)
        assert await a.main_namespace.adapter.server_count() == 2
    finally:
        redis.kill()
        redis.wait(5)


async def test_an_unreachable_redis_fails_the_start_clearly():
    import fastsio

    port = free_port()  # nothing listens there
    sio = fastsio.Server(adapter=create_adapter(f"redis://127.0.0.1:{port}/0"))
    with pytest.raises(
        ConnectionError, match=f"cannot connect to Redis at <Redis 127.0.0.1:{port}>"
    ):
        await asyncio.wait_for(sio.start("127.0.0.1", 0), 10)
    assert sio.http is None
    await sio.close()


def test_bad_redis_targets_are_refused():
    with pytest.raises(ValueError, match="not a Redis URL"):
        create_adapter("http://127.0.0.1:6379")
    with pytest.raises(TypeError, match="redis:// URL or a redis-py client"):
        create_adapter(42)


def test_redis_py_client_settings_are_reused():
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=6390, username="u", password="p")
    options = create_adapter(client).options
    assert (options.host, options.port, options.username, options.password) == (
        "127.0.0.1",
        6390,
        "u",
        "p",
    )


async def test_closing_a_link_releases_a_subscribe_waiting_for_its_confirmation():
    from fastsio.redis._connection import ConnectionOptions, SubscribeLink

    async def silent(reader, writer):  # a "Redis" that accepts and never answers
        await reader.read()
        writer.close()

    mute = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = mute.sockets[0].getsockname()[1]
    link = SubscribeLink(ConnectionOptions(port=port), logging.getLogger("test"), "test")
    try:
        await link.start()
        waiting = asyncio.ensure_future(link.subscribe("some-channel", lambda ch, msg: None))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await link.close()
        await asyncio.wait_for(waiting, 2)
    finally:
        mute.close()
