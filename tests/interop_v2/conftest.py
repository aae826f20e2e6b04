"""Fixtures for the Socket.IO v2 (Engine.IO v3) and msgpack interop tests.

- ``node_v2_modules``: tests/node_v2/node_modules, installed from its lock file (``npm ci``) once
  if missing: socket.io-client 2.0.4, 2.5.0 and 4.8.x side by side (npm aliases), and
  socket.io-msgpack-parser 3.x and 2.x.
- ``node2``: ``await node2(url, client="sio2", **defaults)`` starts tests/node_v2/driver.js and
  returns a :class:`tests.conftest.NodeProcess` (same line protocol as tests/node/driver.js).

The ``server_factory`` fixture of tests/conftest.py starts the fastsio servers.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
from pathlib import Path

import pytest

from tests.conftest import DEFAULT_TIMEOUT, NodeProcess, npm_ci

NODE_V2_DIR = Path(__file__).resolve().parents[1] / "node_v2"
WATCHDOG_SECONDS = 90
REQUIRED = ("sio2", "sio2-last", "sio4", "socket.io-msgpack-parser", "msgpack-parser-2")


@pytest.fixture(scope="session")
def node_v2_modules() -> Path:
    return npm_ci(NODE_V2_DIR, REQUIRED)


@pytest.fixture
async def node2(node_v2_modules):
    procs: list[NodeProcess] = []

    async def start(url: str, **defaults) -> NodeProcess:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_V2_DIR / "driver.js"),
            url,
            json.dumps(defaults),
            cwd=str(NODE_V2_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        p = NodeProcess(proc, "node_v2/driver.js")
        procs.append(p)
        await p.expect("ready", timeout=DEFAULT_TIMEOUT)
        return p

    yield start
    for p in procs:
        await p.close()


@pytest.fixture(autouse=True)
def _watchdog():
    """A test that blocks the event loop (no timeout can fire then) dumps the stacks and ends the
    run instead of hanging CI."""
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
