"""Background jobs with live progress: the server queues a job, a separate worker process runs
it and reports through the Redis emitter straight to the browser that asked.

From the repository root, with Redis on 127.0.0.1:6379 and ``pip install 'fastsio[redis]' redis``:

    npm ci --prefix examples/worker        # the browser client, served at /socket.io/socket.io.js
    fastsio run examples/worker/server.py:sio
    python examples/worker/worker.py       # in another terminal; start as many as you like

then open http://127.0.0.1:8000 and start a job.

What it shows:
- the server uses the Redis adapter (``create_adapter``), so anything published with the same
  ``key`` reaches its clients;
- ``start job`` puts the job on a Redis list (the queue; Celery or RQ would do the same with their
  own) and puts the asking socket in the room ``job:<id>``; the ack carries the job's id;
- the worker (worker.py) is not a Socket.IO server: it emits ``progress`` and ``done`` to that
  room with ``fastsio.redis.Emitter``, which every server of the cluster delivers.

Settings (environment): REDIS_URL, SOCKETIO_KEY (the adapter's and emitter's channel prefix,
default ``socket.io``), JOBS_QUEUE (the list's name, default ``jobs``).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import redis.asyncio

import fastsio
from fastsio.redis import create_adapter

HERE = Path(__file__).parent
CLIENT_BUNDLE = HERE / "node_modules" / "socket.io-client" / "dist"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = os.environ.get("SOCKETIO_KEY", "socket.io")
QUEUE = os.environ.get("JOBS_QUEUE", "jobs")
MAX_LIMIT = 2_000_000  # the largest job accepted: count the primes below this

if not CLIENT_BUNDLE.is_dir():
    raise SystemExit(
        f"The browser client is missing ({CLIENT_BUNDLE}): run `npm ci --prefix {HERE}` first."
    )

sio = fastsio.Server(
    adapter=create_adapter(REDIS_URL, key=KEY),
    serve_client=CLIENT_BUNDLE,
    static_files=HERE / "public",
)
queue = redis.asyncio.Redis.from_url(REDIS_URL)


class CloseQueue:
    """Closes the queue's connection with the server (``sio.add_service``)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self.closing = asyncio.ensure_future(queue.aclose())


sio.add_service(CloseQueue())


@sio.on("start job")
async def start_job(socket, limit):
    """Queue "count the primes below ``limit``"; the ack is the job's id (or an error)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 2 <= limit <= MAX_LIMIT:
        return {"ok": False, "error": f"limit must be an integer from 2 to {MAX_LIMIT}"}
    # Before Python 3.12 an async handler's first step runs outside any asyncio Task (fastsio
    # starts handlers eagerly), and redis-py's asyncio.timeout() needs one: yield once first.
    await asyncio.sleep(0)
    job = {"id": uuid.uuid4().hex[:12], "limit": limit}
    socket.join(f"job:{job['id']}")  # before queueing: no progress can be missed
    await queue.rpush(QUEUE, json.dumps(job))
    return {"ok": True, "id": job["id"]}
