"""What one idle WebSocket client costs the fastsio server, object by object.

Runs the benchmark app (bench/servers/fastsio_app.py) under tracemalloc, connects N idle
Socket.IO clients with the load generator (`loadgen idle`, as the `idle` scenario does), and
prints the allocations that grew, per client, grouped by the line that made them; with the
server's RSS growth per client beside them (tracemalloc's own bookkeeping inflates that RSS;
`python -m bench --only idle` gives the real figure).

    python bench/idle_memory.py                      # compiled, 2,000 clients
    FASTSIO_NO_EXTENSIONS=1 python bench/idle_memory.py
    python bench/idle_memory.py --clients 5000 --top 40 --frames 3

Python objects only: what C code allocates with malloc (libuv's handles are PyMem_Raw, so they
are counted) is not. The kernel's socket buffers are not in RSS at all.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def serve(port: int, snapshot_dir: str, frames: int) -> None:
    """The server side: the bench app, a snapshot to snapshot_dir/<n>.snap on each SIGUSR1."""
    tracemalloc.start(frames)
    sys.argv = ["fastsio_app.py", "127.0.0.1", str(port)]
    sys.path.insert(0, str(ROOT / "bench" / "servers"))
    import asyncio

    import fastsio_app

    taken = [0]

    def on_signal(*_: object) -> None:
        import gc

        gc.collect()
        taken[0] += 1
        tracemalloc.take_snapshot().dump(os.path.join(snapshot_dir, f"{taken[0]}.snap"))

    signal.signal(signal.SIGUSR1, on_signal)
    del asyncio
    fastsio_app.main()


def wait_port(port: int, deadline: float) -> None:
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def snapshot(pid: int, snapshot_dir: str, n: int) -> tracemalloc.Snapshot:
    path = os.path.join(snapshot_dir, f"{n}.snap")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not os.path.exists(path) or os.path.getsize(path) == 0:
        if time.monotonic() > deadline:
            raise RuntimeError("no snapshot")
        time.sleep(0.2)
    time.sleep(1.0)  # the dump is written in one go; give it time to finish
    return tracemalloc.Snapshot.load(path)


def run_idle(loadgen: Path, port: int, conns: int, hold: float | None) -> subprocess.Popen:
    argv = [str(loadgen), "idle", "--port", str(port), "--conns", str(conns), "--timeout", "60"]
    if hold is not None:
        argv += ["--hold", str(hold)]
    return subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_connected(proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        msg = json.loads(line)
        if msg.get("event") == "connected":
            return
    raise RuntimeError(f"the load generator ended before connecting: {proc.stderr.read()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--frames", type=int, default=1, help="traceback depth to group by")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--snapshots", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.snapshots, args.frames)
        return 0

    from bench import driver

    loadgen = driver.build_loadgen()
    port = driver.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--serve",
                str(port),
                "--snapshots",
                tmp,
                "--frames",
                str(args.frames),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_port(port, time.monotonic() + 30)
            warm = run_idle(loadgen, port, 100, 0.3)  # first-connection imports and caches
            warm.communicate(timeout=60)
            time.sleep(1.0)
            before = snapshot(server.pid, tmp, 1)
            rss0 = rss_kb(server.pid)
            idle = run_idle(loadgen, port, args.clients, None)
            wait_connected(idle)
            time.sleep(1.0)
            after = snapshot(server.pid, tmp, 2)
            rss1 = rss_kb(server.pid)
            idle.stdin.close()  # tells the load generator to let go
            idle.wait(timeout=60)
        finally:
            server.kill()
            server.wait()
    report(before, after, args.clients, args.top, rss1 - rss0)
    return 0


def short(filename: str) -> str:
    """fastsio/x.py for the checkout's files, the base name for the others."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, top: int, rss_growth_kb: int
) -> None:
    stats = after.compare_to(before, "traceback")
    total = sum(s.size_diff for s in stats)
    blocks = sum(s.count_diff for s in stats)
    print(
        f"{n} idle clients; RSS growth (with tracemalloc) {rss_growth_kb / n * 1024:.0f} B/client"
    )
    print(f"traced growth {total / n:.0f} B/client in {blocks / n:.1f} blocks/client\n")
    print(f"{'B/client':>9} {'blocks':>7}  where")
    for s in stats[:top]:
        if abs(s.size_diff) < n * 4:
            break
        where = " <- ".join(f"{short(f.filename)}:{f.lineno}" for f in reversed(s.traceback))
        print(f"{s.size_diff / n:9.0f} {s.count_diff / n:7.2f}  {where}")


if __name__ == "__main__":
    sys.exit(main())
