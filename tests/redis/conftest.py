"""Fixtures for the Redis adapter tests (fastsio and Node socket.io servers on one Redis).

- ``redis_url``: ``"redis://127.0.0.1:6379/0"`` once the server there answers PING (checked over a
  raw socket, bounded); the test fails with a clear message otherwise (CI starts Redis).
- ``redis_key``: a key (adapter key / channel prefix) unique to the test, ``sio-test-<hex>``, so
  tests sharing the Redis never see each other's traffic.
- ``node_redis_modules``: tests/node_redis/node_modules, installed from its lock file (``npm ci``)
  once if missing: socket.io 4.8, @socket.io/redis-adapter 8.3, @socket.io/redis-streams-adapter
  0.3, @socket.io/redis-emitter 5.1 and redis (node-redis) 4.
- ``node_redis_server``: ``await node_redis_server(variant="classic", key=None, **opts)`` starts
  tests/node_redis/server.js (a socket.io server with the classic, sharded or streams adapter on
  ``key``, default ``redis_key``) and returns a :class:`tests.conftest.NodeProcess` with ``.port``,
  ``.url``, ``.key`` and ``.variant`` set; ``opts`` go into its JSON options (``requestsTimeout``,
  ``subscriptionMode``, ``publishOnSpecificResponseChannel``, ``serverOptions``). See server.js
  for its command protocol.
- ``node_redis_emitter``: ``await node_redis_emitter(key=None)`` starts tests/node_redis/emitter.js
  (the @socket.io/redis-emitter on ``key``, default ``redis_key``); a NodeProcess with ``.key``.
- ``redis_cluster``: a Redis Cluster of three masters started for the test module
  (tests/redis/redis_cluster.py: ``redis-server --cluster-enabled yes`` on free ports, own temp
  dirs, ``redis-cli --cluster create``), torn down after it; ``.urls``, ``.ports``. A Node server
  joins it with ``node_redis_server("sharded", cluster=redis_cluster.urls)``.

Both kill their processes on teardown. The ``node`` fixture of tests/conftest.py (the official
socket.io-client, tests/node/driver.js) connects clients to any of these servers, and
``server_factory`` starts fastsio servers.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import socket
import uuid
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_TIMEOUT, NodeProcess, npm_ci
from tests.redis.redis_cluster import LocalRedisCluster

NODE_REDIS_DIR = Path(__file__).resolve().parents[1] / "node_redis"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
REQUIRED = (
    "socket.io",
    "@socket.io/redis-adapter",
    "@socket.io/redis-streams-adapter",
    "@socket.io/redis-emitter",
    "redis",
)
WATCHDOG_SECONDS = 90


def redis_ping(host: str = REDIS_HOST, port: int = REDIS_PORT, timeout: float = 3.0) -> str:
    """Sends PING over a raw socket; returns what went wrong ("" when Redis answered +PONG)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"PING\r\n")
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if not reply.startswith(b"+PONG"):
        return f"unexpected answer to PING: {reply[:200]!r}"
    return ""


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = redis_ping()
    if problem:
        pytest.fail(
            f"these tests need a Redis server (>= 7 for the sharded adapter) on "
            f"{REDIS_HOST}:{REDIS_PORT}, which did not answer PING ({problem}); "
            f"start one, e.g. `redis-server --port {REDIS_PORT}`",
            pytrace=False,
        )
    return REDIS_URL


@pytest.fixture
def redis_key() -> str:
    return f"sio-test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def node_redis_modules() -> Path:
    return npm_ci(NODE_REDIS_DIR, REQUIRED)


async def _start(script: str, options: dict) -> NodeProcess:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_REDIS_DIR / script),
        json.dumps(options),
        cwd=str(NODE_REDIS_DIR),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    return NodeProcess(proc, f"node_redis/{script}")


@pytest.fixture
async def node_redis_server(node_redis_modules, redis_url, redis_key):
    procs: list[NodeProcess] = []

    async def start(variant: str = "classic", key: str | None = None, **opts) -> NodeProcess:
        options = dict(opts, redis=redis_url, key=key or redis_key, variant=variant)
        p = await _start("server.js", options)
        procs.append(p)
        ready = await p.expect("ready", timeout=DEFAULT_TIMEOUT)
        p.port = ready["port"]
        p.url = f"http://127.0.0.1:{p.port}"
        p.key = options["key"]
        p.variant = variant
        return p

    yield start
    for p in procs:
        await p.close()


@pytest.fixture
async def node_redis_emitter(node_redis_modules, redis_url, redis_key):
    procs: list[NodeProcess] = []

    async def start(key: str | None = None) -> NodeProcess:
        options = {"redis": redis_url, "key": key or redis_key}
        p = await _start("emitter.js", options)
        procs.append(p)
        await p.expect("ready", timeout=DEFAULT_TIMEOUT)
        p.key = options["key"]
        return p

    yield start
    for p in procs:
        await p.close()


def start_cluster(masters: int = 3, replicas: int = 0) -> LocalRedisCluster:
    cluster = LocalRedisCluster(masters, replicas)
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001 - reported as the test's failure
        cluster.stop()
        pytest.fail(f"could not start a Redis Cluster: {exc}", pytrace=False)
    return cluster


@pytest.fixture(scope="module")
def redis_cluster():
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _watchdog():
    """A test that blocks the event loop (no timeout can fire then) dumps the stacks and ends the
    run instead of hanging CI."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
