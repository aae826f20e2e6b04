"""Instructions per echo message and per broadcast delivery of the bench app, counted by
callgrind: a measure the machine's load does not move (the end-to-end figures of
``python -m bench`` do, a lot, on a shared machine).

The server (bench/servers/fastsio_app.py of a checkout, with the environment given) runs under
``valgrind --tool=callgrind``; a small client here, outside valgrind, sends an exact number of
messages over raw WebSockets and waits for every answer. Each case runs twice, with ``small`` and
``large`` counts; the difference of the two totals over the difference of the counts is the cost
of one more operation (start-up, connections and shutdown cancel out)::

    python bench/instructions.py                          # this checkout, off / production / dev
    python bench/instructions.py --checkout ../old --env ""   # another build, instrument() off
    python bench/instructions.py --env BENCH_ADMIN=production --only echo

Echo: 20 connections, 10 messages in flight each, a 100-byte payload ("echo" answered by the
sender's socket.emit). Broadcast: 100 connections, one of them asks for broadcasts ("broadcast"
-> sio.emit to all), 4 in flight; every connection counts its deliveries.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = "x" * 100
#: case -> (small count, large count, clients)
CASES = {"echo": (2_000, 6_000, 20), "broadcast": (20, 60, 100)}
DEFAULT_ENVS = ["", "BENCH_ADMIN=production", "BENCH_ADMIN=development"]
MASK = b"\x01\x02\x03\x04"


def frame(text: str) -> bytes:
    """A masked client text frame."""
    data = text.encode()
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(data))
    n = len(data)
    head = b"\x81" + (bytes([0x80 | n]) if n < 126 else bytes([0xFE]) + n.to_bytes(2, "big"))
    return head + MASK + masked


class Conn:
    """A raw Engine.IO v4 WebSocket client connected to namespace "/"."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        self.buffer = self.buffer.split(b"\r\n\r\n", 1)[1]
        self.expect(lambda t: t.startswith("0"))  # open
        self.sock.sendall(frame("40"))
        self.expect(lambda t: t.startswith("40"))  # connected to "/"
        self.sock.setblocking(False)

    def texts(self) -> list[str]:
        """The whole text frames in the buffer (pings answered)."""
        out = []
        buf = self.buffer
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            start = 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, start = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, start = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < start + n:
                break
            text = buf[start : start + n].decode()
            buf = buf[start + n :]
            if text == "2":
                self.sock.sendall(frame("3"))
            else:
                out.append(text)
        self.buffer = buf
        return out

    def expect(self, pred) -> str:
        while True:
            for text in self.texts():
                if pred(text):
                    return text
            self.buffer += self.sock.recv(65536)


def run_echo(conns: list[Conn], total: int, inflight: int = 10) -> None:
    message = frame(f'42["echo","{PAYLOAD}"]')
    sel = selectors.DefaultSelector()
    left = {c: total // len(conns) for c in conns}
    pending = dict.fromkeys(conns, 0)
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
        first = min(inflight, left[c])
        c.sock.sendall(message * first)
        left[c] -= first
        pending[c] = first
    while any(pending.values()):
        for key, _ in sel.select():
            c = key.data
            c.buffer += c.sock.recv(65536)
            answers = sum(1 for t in c.texts() if t.startswith('42["echo"'))
            pending[c] -= answers
            more = min(answers, left[c])
            if more:
                c.sock.sendall(message * more)
                left[c] -= more
                pending[c] += more
    sel.close()


def run_broadcast(conns: list[Conn], total: int, inflight: int = 4) -> None:
    message = frame(f'42["broadcast","{PAYLOAD}"]')
    sender = conns[0]
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    got = dict.fromkeys(conns, 0)
    sent = min(inflight, total)
    sender.sock.sendall(message * sent)
    while min(got.values()) < total:
        for key, _ in sel.select():
            c = key.data
            c.buffer += c.sock.recv(65536)
            ticks = sum(1 for t in c.texts() if t.startswith('42["tick"'))
            got[c] += ticks
            if c is sender and ticks and sent < total:
                more = min(ticks, total - sent)
                sender.sock.sendall(message * more)
                sent += more
    sel.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def instructions(checkout: Path, env: dict, case: str, count: int, clients: int) -> int:
    """Total instructions of one server run that handled ``count`` operations."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(checkout / "bench" / "servers" / "fastsio_app.py"),
            "127.0.0.1",
            str(port),
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        # the Admin UI's server_stats timer: every 2 s is ~50x more often per message under
        # valgrind than at full speed (one server_stats costs the same at any rate)
        full_env["BENCH_ADMIN_INTERVAL"] = "3600"
        full_env.update(env)
        proc = subprocess.Popen(
            cmd, cwd=checkout, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            line = proc.stdout.readline().decode()
            if "listening" not in line:
                raise RuntimeError(f"the server did not start: {line!r}")
            deadline = time.monotonic() + 120
            while True:
                try:
                    conns = [Conn(port) for _ in range(clients)]
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            if case == "echo":
                run_echo(conns, count)
            else:
                run_broadcast(conns, count)
            for c in conns:
                c.sock.close()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)
        text = out.read_text(errors="replace")
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if not match:
        raise RuntimeError("no total in the callgrind output")
    return int(match.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", default=str(ROOT), help="the tree whose bench app runs")
    p.add_argument(
        "--env",
        action="append",
        help='server environment, "K=V[,K=V]" ("" = none); repeat for several (default: '
        "instrument() off, production, development)",
    )
    p.add_argument("--only", action="append", choices=sorted(CASES))
    args = p.parse_args()
    envs = args.env if args.env is not None else DEFAULT_ENVS
    for case in args.only or list(CASES):
        small, large, clients = CASES[case]
        per = "message" if case == "echo" else "delivery"
        ops = 1 if case == "echo" else clients
        for spec in envs:
            env = dict(item.split("=", 1) for item in spec.split(",") if item)
            low = instructions(Path(args.checkout), env, case, small, clients)
            high = instructions(Path(args.checkout), env, case, large, clients)
            per_op = (high - low) / ((large - small) * ops)
            print(
                f"{case:9} {spec or 'instrument() off':28} {per_op:10,.0f} instructions per {per}"
                f"  ({low:,} / {high:,} for {small} / {large})",
                flush=True,
            )


if __name__ == "__main__":
    main()
