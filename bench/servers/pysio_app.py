"""The benchmark app on python-socketio 5.18 (AsyncServer as an ASGI app) under uvicorn.

"echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all.

Usage: python bench/servers/pysio_app.py HOST PORT [--ws websockets|websockets-sansio|wsproto]

uvicorn runs with uvloop and httptools, one worker, no access log. The WebSocket implementation is
a flag so the driver can compare them; the default is the fastest stock one we measured (see
bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
from importlib.metadata import version

import socketio
import uvicorn

DEFAULT_WS = "websockets-sansio"

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=None)
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def echo(sid, data):
    await sio.emit("echo", data, to=sid)


@sio.on("broadcast")
async def broadcast(sid, data):
    await sio.emit("tick", data)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("host", nargs="?", default="127.0.0.1")
    parser.add_argument("port", nargs="?", type=int, default=3000)
    parser.add_argument("--ws", default=DEFAULT_WS)
    args = parser.parse_args()
    print(
        f"python-socketio {version('python-socketio')} "
        f"on uvicorn {uvicorn.__version__} (uvloop, httptools, ws={args.ws}) "
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
    )


if __name__ == "__main__":
    main()
