"""The benchmark app on fastsio.

"echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all;
"join" -> join the room BENCH_ROOM and answer "joined"; "broadcast_room" -> emit "tick" to that room.

Usage: python bench/servers/fastsio_app.py HOST PORT
FASTSIO_NO_EXTENSIONS=1 selects the pure-Python codecs (the driver runs both variants).
BENCH_WORKERS=N runs N worker processes on the port (fastsio.workers; the driver's fastsio-2w).
BENCH_REDIS=redis://... makes the server a cluster node on that Redis (fastsio's Redis adapter,
key BENCH_REDIS_KEY, default "socket.io"); BENCH_ROOM names the room (default "room").
BENCH_DEFLATE=1 turns permessage-deflate on (threshold 1024 bytes, as Node's perMessageDeflate with
{threshold: 1024}); the driver's broadcast-deflate scenario sets it.
BENCH_ADMIN=production|development instruments the server for the Admin UI
(``sio.instrument(auth=None, mode=...)``; the driver's fastsio-admin and fastsio-admin-dev);
BENCH_ADMIN_INTERVAL=S sends its server_stats every S seconds instead of 2 (bench/instructions.py
sets it high: under valgrind a timer fires 50 times more often per message than at full speed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# benchmark the checkout this file is in, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fastsio
from fastsio import _impl

REDIS = os.environ.get("BENCH_REDIS")
KEY = os.environ.get("BENCH_REDIS_KEY", "socket.io")
ROOM = os.environ.get("BENCH_ROOM", "room")
WORKERS = int(os.environ.get("BENCH_WORKERS", "1"))
OPTIONS = {"per_message_deflate": {"threshold": 1024}} if os.environ.get("BENCH_DEFLATE") else {}
ADMIN = os.environ.get("BENCH_ADMIN")

if REDIS:
    from fastsio.redis import create_adapter

    sio = fastsio.Server(adapter=create_adapter(REDIS, key=KEY), **OPTIONS)
else:
    sio = fastsio.Server(**OPTIONS)
if ADMIN:
    if os.environ.get("BENCH_ADMIN_INTERVAL"):
        import fastsio.admin

        fastsio.admin.STATS_INTERVAL = float(os.environ["BENCH_ADMIN_INTERVAL"])
    sio.instrument(auth=None, mode=ADMIN)


@sio.on("echo")
def echo(socket, data):
    socket.emit("echo", data)


@sio.on("broadcast")
def broadcast(socket, data):
    sio.emit("tick", data)


@sio.on("join")
def join(socket):
    socket.join(ROOM)
    socket.emit("joined")


@sio.on("broadcast_room")
def broadcast_room(socket, data):
    sio.to(ROOM).emit("tick", data)


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    codecs = "compiled" if _impl.SPEEDUPS else "pure"
    cluster = f", Redis adapter on {REDIS} key {KEY!r}" if REDIS else ""
    workers = f", {WORKERS} workers" if WORKERS != 1 else ""
    deflate = ", permessage-deflate" if OPTIONS else ""
    admin = f", Admin UI instrumentation in {ADMIN} mode" if ADMIN else ""
    print(
        f"fastsio ({codecs} codecs{cluster}{workers}{deflate}{admin}) listening on {host}:{port}",
        flush=True,
    )
    sio.run(host, port, workers=WORKERS)


if __name__ == "__main__":
    main()
