"""Soak: many clients and mixed traffic for minutes; does the server's memory, its open files and
its session count stay flat, and is every session gone once the clients are?

    python -m bench --only soak [--minutes 10] [--soak-clients 5000]
    python bench/soak.py --minutes 10 --clients 5000

One fastsio server process (the app below, uvloop, compiled codecs unless FASTSIO_NO_EXTENSIONS=1;
ping_interval 10 s, ping_timeout 5 s so that a client that stops answering is gone within 15 s).
The C load generator holds ``clients`` WebSocket clients for the whole run (answering pings) and,
one minute after another, drives in turn, each with fresh connections (so every minute also
connects and disconnects a few hundred clients):

- echo: 100 clients x 4 in flight, 15 s;
- rooms: 50 clients, broadcasts to a room ("join", then "broadcast_room"), 8 s;
- broadcasts to everyone (the held clients too), 2 in flight, 4 s;
- long-polling echo: 20 clients, 8 s;
- reconnects: full handshakes + namespace connects, closed at once, 20 at a time, 8 s;
- acks: 300 acked events over long-polling from this process, each answer checked;
- slow readers: 5 WebSocket clients that connect, join everyone's broadcasts and never read
  again (nor answer pings): the server must drop them (ping timeout or max_buffered_bytes).

At the start of every minute the server's RSS and open file descriptors (from /proc) and its own
count of Engine.IO sessions and sockets are sampled. The verdict compares the samples from the
second minute on (the first one fills caches and pools): "steady within 5%" when RSS and fds
stay within 5% of their median, and "no leaked sessions" when, after every client has gone, the
server counts no session and its fds are back to what it had before the first client. Every
phase is bounded in time; the machine is shared, so the traffic phases' figures are not the
point, the curve is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SIO_PATH = "/socket.io/"
SLOW_READERS = 5
ACKS_PER_MINUTE = 300
STEADY = 0.05


# -- the server ------------------------------------------------------------------------------------


def serve(port: int) -> None:
    sys.path.insert(0, str(ROOT))
    import uvloop

    import fastsio

    sio = fastsio.Server(ping_interval=10, ping_timeout=5)

    @sio.on("echo")
    def echo(socket, data):
        socket.emit("echo", data)

    @sio.on("broadcast")
    def broadcast(socket, data):
        sio.emit("tick", data)

    @sio.on("join")
    def join(socket):
        socket.join("room")
        socket.emit("joined")

    @sio.on("broadcast_room")
    def broadcast_room(socket, data):
        sio.to("room").emit("tick", data)

    @sio.on("ack")
    def ack(socket, data):
        return data

    async def main() -> None:
        await sio.start(HOST, port)
        print(json.dumps({"event": "listening"}), flush=True)
        # stats on request: one line on stdin -> one JSON line on stdout
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while await reader.readline():
            stats = {
                "sessions": len(sio.engine.sessions),
                "sockets": len(sio.main_namespace.sockets),
                "namespaces": len(sio.namespaces),
                "connections": sio.http.connection_count,
            }
            print(json.dumps(stats), flush=True)
        await sio.close()

    uvloop.run(main())


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"the soak server did not start: {line!r}")
        self.lock = threading.Lock()

    def stats(self) -> dict:
        with self.lock:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            stats = json.loads(self.proc.stdout.readline())
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
        stats["rss_mb"] = round(rss_kb / 1024, 1)
        stats["fds"] = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return stats

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- clients ---------------------------------------------------------------------------------------


def loadgen(binary: Path, port: int, mode: str, *args: str, timeout: float = 120) -> dict:
    """One run of the load generator to its end: its result object (or the error)."""
    argv = [str(binary), mode, "--host", HOST, "--port", str(port), "--path", SIO_PATH, *args]
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{mode}: timed out"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{") and '"event"' not in line:
            return json.loads(line)
    return {"error": f"{mode}: exit {done.returncode}: {done.stderr[-300:]}"}


def http(port: int, method: str, target: str, body: bytes = b"") -> bytes:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2]


def acked_events(port: int, count: int) -> int:
    """``count`` acked events over long-polling, one at a time; how many acks came back right."""
    base = f"{SIO_PATH}?EIO=4&transport=polling"
    sid = json.loads(http(port, "GET", base)[1:])["sid"]
    target = f"{base}&sid={sid}"
    http(port, "POST", target, b"40")
    http(port, "GET", target)
    good = 0
    for n in range(count):
        http(port, "POST", target, f'42{n}["ack",{n}]'.encode())
        if f"43{n}[{n}]".encode() in http(port, "GET", target).split(b"\x1e"):
            good += 1
    http(port, "POST", target, b"1")
    return good


def slow_reader(port: int) -> socket.socket:
    """A WebSocket client that connects to "/" and then reads nothing, ever."""
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        (
            f"GET {SIO_PATH}?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    time.sleep(0.05)
    sock.sendall(bytes([0x81, 0x82, 0, 0, 0, 0]) + b"40")  # CONNECT "/", masked with zeros
    return sock


def minute_of_traffic(binary: Path, port: int, deadline: float) -> dict:
    timing = ["--warmup", "0.5", "--timeout", "30"]
    phases = {
        "echo": ("echo", "--conns", "100", "--inflight", "4", "--size", "100", "--duration", "15"),
        "rooms": ("broadcast", "--conns", "50", "--window", "8", "--room", "--duration", "8"),
        "broadcast": ("broadcast", "--conns", "50", "--window", "2", "--duration", "4"),
        "poll": ("poll", "--conns", "20", "--inflight", "2", "--duration", "8"),
        "reconnect": ("connect", "--concurrency", "20", "--duration", "8"),
    }
    results: dict = {}
    for name, (mode, *args) in phases.items():
        if time.monotonic() > deadline:
            break
        result = loadgen(binary, port, mode, *args, *timing)
        results[name] = result.get("error") or {
            key: result.get(key) for key in ("value", "count", "errors") if key in result
        }
    if time.monotonic() < deadline:
        results["acks"] = f"{acked_events(port, ACKS_PER_MINUTE)}/{ACKS_PER_MINUTE} right"
    return results


# -- the run ---------------------------------------------------------------------------------------


def verdict(samples: list[dict], baseline: dict, after: dict) -> tuple[bool, str]:
    steady = samples[1:] or samples
    lines = []
    ok = True
    for key in ("rss_mb", "fds"):
        values = [s[key] for s in steady]
        middle = statistics.median(values)
        spread = max(abs(v - middle) for v in values) / middle if middle else 0.0
        within = spread <= STEADY
        ok &= within
        lines.append(
            f"{key}: {min(values)}..{max(values)} from minute 2 on, at most {spread:.1%} "
            f"off the median ({'within' if within else 'NOT within'} {STEADY:.0%})"
        )
    leaked = after["sessions"] or after["sockets"]
    fds_back = after["fds"] <= baseline["fds"] + 2
    ok &= not leaked and fds_back
    lines.append(
        f"after the clients: {after['sessions']} sessions, {after['sockets']} sockets, "
        f"{after['fds']} fds (before any client: {baseline['fds']}), RSS {after['rss_mb']} MB"
    )
    head = "steady within 5%, no leaked sessions" if ok else "NOT steady or leaking: see the curve"
    return ok, "\n".join([head, *lines])


def run(minutes: int, clients: int, binary: Path) -> dict:
    from bench.driver import free_port, raise_nofile

    nofile = raise_nofile()
    if clients + 1000 > nofile:
        clients = max(100, nofile - 1000)
        print(f"soak: open-file limit {nofile}: holding {clients} clients", flush=True)
    port = free_port()
    server = Server(port)
    samples: list[dict] = []
    traffic: list[dict] = []
    readers: list[socket.socket] = []
    holders = None
    try:
        baseline = server.stats()
        # held until stdin closes (below, or when this process ends: never longer than the run)
        holders = subprocess.Popen(
            [str(binary), "idle", "--host", HOST, "--port", str(port), "--path", SIO_PATH,
             "--conns", str(clients), "--timeout", "120"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        connected = False
        for line in holders.stdout:  # bounded by --timeout
            if '"connected"' in line:
                connected = True
                break
        if not connected:
            raise RuntimeError(f"the load generator did not hold {clients} clients")
        started = time.monotonic()
        for minute in range(minutes):
            minute_start = started + minute * 60
            time.sleep(max(0.0, minute_start - time.monotonic()))
            sample = {"minute": minute, **server.stats()}
            samples.append(sample)
            print(f"soak: {json.dumps(sample)}", flush=True)
            readers += [slow_reader(port) for _ in range(SLOW_READERS)]
            results = minute_of_traffic(binary, port, minute_start + 55)
            traffic.append(results)
            print(f"soak: minute {minute + 1}: {json.dumps(results)}", flush=True)
        time.sleep(max(0.0, started + minutes * 60 - time.monotonic()))
        samples.append({"minute": minutes, **server.stats()})
        print(f"soak: {json.dumps(samples[-1])}", flush=True)
        holders.stdin.close()  # the load generator lets its clients go
        holders.wait(60)
        for sock in readers:
            sock.close()
        after = server.stats()
        for _ in range(60):  # a closed client's session ends at once; a vanished one's at its ping
            if not after["sessions"] and after["fds"] <= baseline["fds"] + 2:
                break
            time.sleep(1)
            after = server.stats()
    finally:
        for sock in readers:
            sock.close()
        if holders is not None and holders.poll() is None:
            holders.kill()
            holders.wait()
        server.close()
    ok, text = verdict(samples, baseline, after)
    return {
        "minutes": minutes,
        "clients": clients,
        "baseline": baseline,
        "samples": samples,
        "traffic": traffic,
        "after": after,
        "ok": ok,
        "verdict": text,
    }


def render(result: dict) -> str:
    lines = [
        (
            f"soak: {result['clients']} held WebSocket clients + mixed traffic, "
            f"{result['minutes']} minutes (shared machine)"
        ),
        "minute  RSS MB    fds  sessions  sockets",
    ]
    for s in result["samples"]:
        lines.append(
            f"{s['minute']:>6}  {s['rss_mb']:>6}  {s['fds']:>5}  {s['sessions']:>8}  {s['sockets']:>7}"
        )
    lines.append(result["verdict"])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    sys.path.insert(0, str(ROOT))
    from bench.driver import build_loadgen

    result = run(args.minutes, args.clients, build_loadgen())
    print(render(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
