"""Client benchmark: echo messages/s of ONE client process against one fastsio server.

    python bench/client_echo.py                       # every client, 3 repeats, 5 s each
    python bench/client_echo.py --quick               # 1 repeat, 2 s
    python bench/client_echo.py --clients fastsio,pysio --sockets 50 --inflight 10

The server is fastsio (compiled speedups; bench/servers/fastsio_app.py: "echo" -> "echo" back),
pinned to core 0 with taskset. Each client runs in its own process pinned to core 1: N sockets
(Socket.IO connections over WebSocket), each keeping M "echo" events of a 100-character string
in flight (a reply sends the next one), counted for ``--duration`` seconds after ``--warmup``.
Every reply is checked (it must be the string sent). The clients:

- ``fastsio``: fastsio.AsyncClient on uvloop;
- ``pysio``: python-socketio's AsyncClient (aiohttp) on uvloop;
- ``node``: Node's socket.io-client 4.8 (bench/client_echo.js, ws with bufferutil).

Repeats are interleaved (every client once, then again); the table shows the median and the
min-max, the client process's CPU over the window (100% = one core), its CPU per message and the
ratios. The server's core is shown too (the server process, the kernel's network work on that
core and any neighbour): at 90% or more the server limited the figure, not the client (">=" in
front of it then; the CPU per message still compares the clients).

As a worker (run by the driver): ``--worker fastsio|pysio --url URL``; it prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))  # benchmark this checkout, installed or not

CLIENTS = ("fastsio", "pysio", "node")
#: bare echo loops on other WebSocket clients (same codecs): --clients websockets,aiohttp
LIBRARIES = ("websockets", "aiohttp")


# ------------------------------------------------------------------------------------- workers


def _uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover
        pass


async def _measure(state: dict, warmup: float, duration: float) -> dict:
    await asyncio.sleep(warmup)
    start = state["count"]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.sleep(duration)
    count = state["count"] - start
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    extra = {k: state[k] for k in ("disconnects", "reason", "connect_retries") if k in state}
    return {
        **extra,
        "messages": count,
        "seconds": elapsed,
        "rate": count / elapsed,
        "cpu": cpu / elapsed,
        "mismatches": state["mismatches"],
    }


async def worker_fastsio(args: argparse.Namespace) -> dict:
    import fastsio

    payload = "x" * args.size
    state = {"count": 0, "mismatches": 0}
    clients = []
    for _ in range(args.sockets):
        client = fastsio.AsyncClient(args.url, transports=["websocket"], reconnection=False)

        def on_echo(msg, client=client):
            state["count"] += 1
            if msg != payload:
                state["mismatches"] += 1
            client.emit("echo", msg)

        client.on("echo", on_echo)
        await client.connect()
        clients.append(client)
    for client in clients:
        for _ in range(args.inflight):
            client.emit("echo", payload)
    result = await _measure(state, args.warmup, args.duration)
    result["speedups"] = fastsio.SPEEDUPS
    return result


async def worker_pysio(args: argparse.Namespace) -> dict:
    import socketio

    payload = "x" * args.size
    state = {"count": 0, "mismatches": 0}
    clients = []
    for _ in range(args.sockets):
        client = socketio.AsyncClient(reconnection=False)

        def make_handler(client):
            async def on_echo(msg):
                state["count"] += 1
                if msg != payload:
                    state["mismatches"] += 1
                try:
                    await client.emit("echo", msg)
                except socketio.exceptions.BadNamespaceError:
                    pass  # disconnected meanwhile: counted below

            return on_echo

        def on_disconnect(reason=None):
            state["disconnects"] = state.get("disconnects", 0) + 1
            state["reason"] = str(reason)

        client.on("echo", make_handler(client))
        for _attempt in range(5):
            try:
                await client.connect(args.url, transports=["websocket"], wait_timeout=3)
            except socketio.exceptions.ConnectionError:
                # seen here: now and then connect() misses its namespace's answer and gives up
                # after wait_timeout; such a client is connected again, before the measure
                state["connect_retries"] = state.get("connect_retries", 0) + 1
                await client.disconnect()
                continue
            break
        client.on("disconnect", on_disconnect)
        clients.append(client)
    for client in clients:
        for _ in range(args.inflight):
            await client.emit("echo", payload)
    return await _measure(state, args.warmup, args.duration)


async def worker_library(args: argparse.Namespace) -> dict:
    """The transport question: a bare Socket.IO echo loop (fastsio's compiled codecs, nothing
    else: no namespaces, no handlers) on the ``websockets`` or ``aiohttp`` WebSocket client. An
    upper bound for a client built on that library, to compare with fastsio's own connection."""
    from fastsio import _impl

    codec = _impl.socketio
    payload = "x" * args.size
    state = {"count": 0, "mismatches": 0}
    ws_url = args.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    session = None
    if args.worker == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession()

    async def open_one():
        if session is None:
            from websockets.asyncio.client import connect

            ws = await connect(ws_url, compression=None, max_size=None)
            return ws, ws.send, ws.recv
        ws = await session.ws_connect(ws_url, autoping=True, compress=0)
        return ws, ws.send_str, ws.receive_str

    async def echo_loop(send, recv):
        for _ in range(args.inflight):
            await send("4" + codec.encode_packet(2, "/", ["echo", payload])[0])
        while True:
            text = await recv()
            if text == "2":
                await send("3")
                continue
            packet = codec.decode_packet(text[1:])
            state["count"] += 1
            if packet.data[1] != payload:
                state["mismatches"] += 1
            await send("4" + codec.encode_packet(2, "/", ["echo", packet.data[1]])[0])

    loops = []
    for _ in range(args.sockets):
        _ws, send, recv = await open_one()
        assert (await recv()).startswith("0")  # the open packet
        await send("40")
        assert (await recv()).startswith("40")
        loops.append((send, recv))
    tasks = [asyncio.ensure_future(echo_loop(send, recv)) for send, recv in loops]
    result = await _measure(state, args.warmup, args.duration)
    for task in tasks:
        task.cancel()
    return result


def run_worker(args: argparse.Namespace) -> None:
    _uvloop()
    worker = {"fastsio": worker_fastsio, "pysio": worker_pysio}.get(args.worker, worker_library)

    async def main() -> None:
        result = await asyncio.wait_for(worker(args), args.warmup + args.duration + 60)
        print(json.dumps(result), flush=True)
        os._exit(0)  # no teardown of the connections (python-socketio's takes ~30 s)

    asyncio.run(main())


# ------------------------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(argv: list[str], cpu: str) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cpu, *argv]
    return argv


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on {port} within {timeout}s")


def process_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_busy(cpu: int) -> tuple[float, float]:
    """(busy, total) jiffies of one core so far (/proc/stat)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]  # idle + iowait
                total = sum(values[:8])
                return total - idle, total
    return 0.0, 0.0


def ensure_node_client() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (BENCH / "node_modules" / "socket.io-client" / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            return "npm is not installed"
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            check=False,
            cwd=BENCH,
            capture_output=True,
            timeout=300,
        )
        if proc.returncode != 0:
            return f"npm ci failed in bench/: {proc.stderr.decode()[-500:]}"
    return None


def check_client(kind: str) -> str | None:
    if kind == "node":
        return ensure_node_client()
    module = {"fastsio": "fastsio", "pysio": "socketio, aiohttp"}.get(kind, kind)
    code = f"import {module}"
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, cwd=ROOT)
    if proc.returncode != 0:
        return f"cannot import ({proc.stderr.decode().strip().splitlines()[-1]}); pip install -e '.[bench]'"
    return None


def run_client(kind: str, url: str, args: argparse.Namespace, server_pid: int) -> dict:
    if kind == "node":
        argv = [
            "node",
            str(BENCH / "client_echo.js"),
            url,
            str(args.sockets),
            str(args.inflight),
            str(args.warmup),
            str(args.duration),
            str(args.size),
        ]
    else:
        argv = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--url", url]
        for name in ("sockets", "inflight", "warmup", "duration", "size"):
            argv += [f"--{name}", str(getattr(args, name))]
    proc = subprocess.Popen(
        pinned(argv, "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True
    )
    # the server's CPU over (about) the client's measured window
    time.sleep(args.connect_time + args.warmup)
    cpu0 = process_cpu(server_pid)
    core0 = core_busy(1)
    server_core0 = core_busy(0)
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=args.warmup + args.duration + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"error": "timed out", "stderr": err[-2000:]}
    elapsed = time.monotonic() - t0
    server_cpu = (process_cpu(server_pid) - cpu0) / elapsed if elapsed > 0 else None
    core1 = core_busy(1)
    core_load = (core1[0] - core0[0]) / (core1[1] - core0[1]) if core1[1] > core0[1] else None
    server_core1 = core_busy(0)
    server_core_load = (
        (server_core1[0] - server_core0[0]) / (server_core1[1] - server_core0[1])
        if server_core1[1] > server_core0[1]
        else None
    )
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}", "stderr": err[-2000:]}
    result = json.loads(lines[-1])
    result["server_cpu"] = server_cpu
    # what else ran on the client's core: its load over (about) the window minus the client's
    if core_load is not None:
        result["foreign_cpu"] = max(0.0, core_load - result["cpu"])
    if server_core_load is not None and server_cpu is not None:
        result["server_foreign_cpu"] = max(0.0, server_core_load - server_cpu)
    if result.get("mismatches"):
        result["error"] = f"{result['mismatches']} replies did not match"
    elif result.get("disconnects"):
        result["error"] = f"{result['disconnects']} sockets disconnected ({result.get('reason')})"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=("fastsio", "pysio", *LIBRARIES))
    parser.add_argument("--url")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--sockets", type=int, default=50)
    parser.add_argument("--inflight", type=int, default=10)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 0.5 s warm-up, 2 s")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
        return
    if args.quick:
        args.repeats, args.warmup, args.duration = 1, 0.5, 2.0
    args.connect_time = 1.0  # a generous bound on connecting the sockets before the warm-up
    kinds = [k.strip() for k in args.clients.split(",") if k.strip()]
    for kind in kinds:
        if kind not in CLIENTS and kind not in LIBRARIES:
            parser.error(f"unknown client {kind!r} (one of {', '.join(CLIENTS + LIBRARIES)})")
    available = []
    for kind in kinds:
        problem = check_client(kind)
        if problem:
            print(f"skipping {kind}: {problem}", file=sys.stderr)
        else:
            available.append(kind)

    port = free_port()
    server = subprocess.Popen(
        pinned(
            [sys.executable, str(BENCH / "servers" / "fastsio_app.py"), "127.0.0.1", str(port)], "0"
        ),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    runs: dict[str, list[dict]] = {kind: [] for kind in available}
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        print(
            f"echo: {args.sockets} sockets x {args.inflight} in flight, {args.size}-character "
            f"string, {args.duration:g} s after {args.warmup:g} s warm-up, {args.repeats} "
            f"repeat(s); server fastsio (compiled) on core 0, each client on core 1",
            flush=True,
        )
        for repeat in range(args.repeats):
            for kind in available:
                result = run_client(kind, url, args, server.pid)
                runs[kind].append(result)
                if "error" in result:
                    print(f"  {kind} run {repeat + 1}: FAILED {result['error']}", flush=True)
                    if result.get("stderr"):
                        print(result["stderr"], flush=True)
                else:
                    print(
                        f"  {kind} run {repeat + 1}: {result['rate']:,.0f} msg/s "
                        f"(client CPU {result['cpu']:.0%}, server CPU {result['server_cpu']:.0%}, "
                        f"others on the client's core {result.get('foreign_cpu', 0):.0%}, "
                        f"on the server's {result.get('server_foreign_cpu', 0):.0%})",
                        flush=True,
                    )
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()

    medians = {}
    print()
    print(
        "| client | echo msg/s (median) | min-max | client CPU | client CPU/msg | server core "
        "| x py-sio | x Node | CPU/msg x py-sio | CPU/msg x Node |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_message = {}
    for kind in available:
        good = [r for r in runs[kind] if "error" not in r]
        if not good:
            continue
        medians[kind] = statistics.median(r["rate"] for r in good)
        per_message[kind] = statistics.median(r["cpu"] / r["rate"] * 1e6 for r in good)
    for kind in available:
        good = [r for r in runs[kind] if "error" not in r]
        if not good:
            print(f"| {kind} | FAILED | | | | | | | | |")
            continue
        rate = medians[kind]
        # the server's core (the server, its network softirq, any neighbour) at 90%: the
        # server limited the figure, not the client
        core = [(r["server_cpu"] or 0) + r.get("server_foreign_cpu", 0) for r in good]
        bound = statistics.median(core) >= 0.9
        mark = ">=" if bound else ""
        cpu = statistics.median(r["cpu"] for r in good)
        low = min(r["rate"] for r in good)
        high = max(r["rate"] for r in good)
        ratios = []
        for other in ("pysio", "node"):
            if other in medians and other != kind:
                ratios.append(f"{mark}{rate / medians[other]:.2f}")
            else:
                ratios.append("")
        for other in ("pysio", "node"):
            if other in per_message and other != kind:
                ratios.append(f"{per_message[other] / per_message[kind]:.2f}")
            else:
                ratios.append("")
        print(
            f"| {kind} | {mark}{rate:,.0f} | {low:,.0f}-{high:,.0f} | {cpu:.0%} | "
            f"{per_message[kind]:.1f} us | {statistics.median(core):.0%} | "
            + " | ".join(ratios)
            + " |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {
            k: getattr(args, k)
            for k in ("sockets", "inflight", "size", "warmup", "duration", "repeats")
        }
        args.json.write_text(
            json.dumps({"settings": settings, "runs": runs, "medians": medians}, indent=1)
        )


if __name__ == "__main__":
    main()
