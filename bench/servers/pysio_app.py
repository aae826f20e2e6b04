"""The benchmark app on python-socketio 5.18 (AsyncServer as an ASGI app) under uvicorn.

"echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all;
"join" -> join the room BENCH_ROOM and answer "joined"; "broadcast_room" -> emit "tick" to that room.

Usage: python bench/servers/pysio_app.py HOST PORT [--ws websockets|websockets-sansio|wsproto]

uvicorn runs with uvloop and httptools, one worker, no access log. The WebSocket implementation is
a flag so the driver can compare them; the default is the fastest stock one we measured (see
bench/RESULTS.md).
BENCH_REDIS=redis://... makes the server a cluster node on that Redis (AsyncRedisManager, channel
BENCH_REDIS_KEY, default "socketio"); BENCH_ROOM names the room (default "room").
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version

import socketio
import uvicorn

DEFAULT_WS = "websockets-sansio"
REDIS = os.environ.get("BENCH_REDIS")
KEY = os.environ.get("BENCH_REDIS_KEY", "socketio")
ROOM = os.environ.get("BENCH_ROOM", "room")

manager = socketio.AsyncRedisManager(REDIS, channel=KEY) if REDIS else None
sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=None, client_manager=manager)
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def echo(sid, data):
    await sio.emit("echo", data, to=sid)


@sio.on("broadcast")
async def broadcast(sid, data):
    await sio.emit("tick", data)


@sio.on("join")
async def join(sid):
    await sio.enter_room(sid, ROOM)
    await sio.emit("joined", to=sid)


@sio.on("broadcast_room")
async def broadcast_room(sid, data):
    await sio.emit("tick", data, to=ROOM)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=3000)
    parser.add_argument("--ws", default=DEFAULT_WS)
    args = parser.parse_args()
    cluster = f", AsyncRedisManager on {REDIS} channel {KEY!r}" if REDIS else ""
    print(
        f"python-socketio {version('python-socketio')} "
        f"on uvicorn {uvicorn.__version__} (uvloop, httptools, ws={args.ws}{cluster}) "
        f"listening on {args.host}:{args.port}",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws=args.ws,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=4096,
        # uvicorn's own permessage-deflate (per connection), on for the broadcast-deflate
        # scenario only (BENCH_DEFLATE=1); uvicorn's default would answer any offer
        ws_per_message_deflate=bool(os.environ.get("BENCH_DEFLATE")),
    )


if __name__ == "__main__":
    main()
