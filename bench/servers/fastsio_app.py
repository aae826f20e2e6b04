"""The benchmark app on fastsio.

"echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all.

Usage: python bench/servers/fastsio_app.py HOST PORT
FASTSIO_NO_EXTENSIONS=1 selects the pure-Python codecs (the driver runs both variants).
"""

from __future__ import annotations

import sys
from pathlib import Path

# benchmark the checkout this file is in, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fastsio
from fastsio import _impl

sio = fastsio.Server()


@sio.on("echo")
def echo(socket, data):
    socket.emit("echo", data)


@sio.on("broadcast")
def broadcast(socket, data):
    sio.emit("tick", data)


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    codecs = "compiled" if _impl.SPEEDUPS else "pure"
    print(f"fastsio ({codecs} codecs) listening on {host}:{port}", flush=True)
    sio.run(host, port)


if __name__ == "__main__":
    main()
