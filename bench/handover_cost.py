"""The cost of the hand-over (issue 10): long-polling echo with every request landing on the
worker that owns the session, against every request landing on the other worker, which hands
the connection over (fastsio/http/handover.py).

    python bench/handover_cost.py [--rounds 4000] [--repeat 3] [--clients 1]
    python -m bench --only handover      (1 and 12 clients, beside the other scenarios)

Two worker processes (``WorkerInfo(i, 2, dir)``, uvloop, each on a port of its own) and raw
blocking HTTP clients (this process, or ``--clients`` processes at once, each with its own
session). One round = POST ``42<n>["echo",n]`` ("ok") then GET (``43<n>[n]``), each on a new
connection with ``Connection: close``: that is how a request lands on the wrong worker (a
kept-alive connection is the owner's after its first hand-over). Figures: the CPU time both
workers spent per request (utime + stime from /proc, summed over the two processes: the owner's
and the giver's share), the clients' wall time per round and the request rate. The owner over
kept-alive connections is shown for reference.

With one client every process sleeps and wakes up once per request, and a wake-up is dear in a
VM (``finish_task_switch``): a request landing on the wrong worker wakes a third process. Several
clients keep the workers busy, as under load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def worker_main(index: int, count: int, directory: str) -> None:
    import asyncio

    import uvloop

    import fastsio
    from fastsio.workers import WorkerInfo

    sio = fastsio.Server(ping_interval=600, ping_timeout=600)
    sio.worker = WorkerInfo(index, count, directory)

    @sio.on("echo")
    def echo(socket, *args):
        return args

    async def serve() -> None:
        await sio.start("127.0.0.1", 0)
        print(sio.port, flush=True)
        await asyncio.Event().wait()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def read_response(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    status = int(head.split(b" ", 2)[1])
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(buffer) < end + length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buffer += chunk
    body = bytes(buffer[end : end + length])
    del buffer[: end + length]
    return status, body


def request(method: str, target: str, body: bytes = b"", close: bool = True) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "POST":
        head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode() + body


def one_shot(port: int, data: bytes) -> tuple[int, bytes]:
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(data)
        return read_response(sock, bytearray())
    finally:
        sock.close()


class Session:
    """An Engine.IO polling session opened on ``owner_port``, connected to namespace "/"."""

    def __init__(self, owner_port: int) -> None:
        status, body = one_shot(owner_port, request("GET", "/socket.io/?EIO=4&transport=polling"))
        assert status == 200, body
        self.sid = json.loads(body[1:])["sid"]
        self.target = f"/socket.io/?EIO=4&transport=polling&sid={self.sid}"
        assert one_shot(owner_port, request("POST", self.target, b"40")) == (200, b"ok")
        status, body = one_shot(owner_port, request("GET", self.target))
        assert body.startswith(b"40"), body


def client_loop(mode: str, ports: list[int], rounds: int) -> None:
    """One client: a session owned by worker 0, ``rounds`` echo rounds (see the module doc)."""
    session = Session(ports[0])
    port = ports[0] if mode.startswith("owner") else ports[1]
    target = session.target
    if mode == "owner-keepalive":
        post_sock = socket.create_connection(("127.0.0.1", port))
        get_sock = socket.create_connection(("127.0.0.1", port))
        post_buf, get_buf = bytearray(), bytearray()
        for i in range(rounds):
            post_sock.sendall(request("POST", target, f'42{i}["echo",{i}]'.encode(), False))
            assert read_response(post_sock, post_buf) == (200, b"ok")
            get_sock.sendall(request("GET", target, close=False))
            assert read_response(get_sock, get_buf) == (200, f"43{i}[{i}]".encode())
        post_sock.close()
        get_sock.close()
    else:
        for i in range(rounds):
            data = request("POST", target, f'42{i}["echo",{i}]'.encode())
            assert one_shot(port, data) == (200, b"ok")
            assert one_shot(port, request("GET", target)) == (200, f"43{i}[{i}]".encode())


def run_mode(mode: str, ports: list[int], pids: list[int], rounds: int, clients: int = 1) -> dict:
    """``clients`` clients (this process, or as many processes) x ``rounds`` rounds each."""
    before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    if clients == 1:
        client_loop(mode, ports, rounds)
    else:
        script = os.path.abspath(__file__)
        procs = [
            subprocess.Popen(
                [sys.executable, script, "--client", mode, str(rounds), *map(str, ports)],
                env=dict(os.environ, PYTHONPATH=ROOT),
            )
            for _ in range(clients)
        ]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"a client failed ({mode})")
    wall = time.perf_counter() - started
    after = [cpu_seconds(pid) for pid in pids]
    requests = 2 * rounds * clients
    cpu = [(a - b) / requests * 1e6 for a, b in zip(after, before)]
    return {
        "mode": mode,
        "cpu_us_per_request": sum(cpu),
        "owner_us": cpu[0],
        "giver_us": cpu[1],
        "wall_us_per_round": wall / rounds * 1e6,
        "requests_per_s": requests / wall,
    }


MODES = ("owner", "wrong", "owner-keepalive")
FIGURES = ("cpu_us_per_request", "owner_us", "giver_us", "wall_us_per_round", "requests_per_s")


def start_workers(directory: str) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    script = os.path.abspath(__file__)
    return [
        subprocess.Popen(
            [sys.executable, script, "--worker", str(i), "2", directory],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]


def measure(rounds: int = 4000, repeat: int = 3, clients: int = 1) -> dict:
    """Start two workers, run every mode ``repeat`` times, stop them; the medians per mode and
    the wrong-worker / owner ratios (``python -m bench --only handover`` calls this too)."""
    directory = tempfile.mkdtemp(prefix="fsio-bench-")
    procs = start_workers(directory)
    try:
        ports = [int(proc.stdout.readline()) for proc in procs]  # type: ignore[union-attr]
        pids = [proc.pid for proc in procs]
        run_mode("owner", ports, pids, 300)  # warm-up
        run_mode("wrong", ports, pids, 300)
        runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
        for _ in range(repeat):
            for mode in MODES:
                runs[mode].append(run_mode(mode, ports, pids, rounds, clients))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
    median = {
        mode: {key: statistics.median(run[key] for run in runs[mode]) for key in FIGURES}
        for mode in MODES
    }
    wrong, owner = median["wrong"], median["owner"]
    return {
        "rounds": rounds,
        "repeat": repeat,
        "clients": clients,
        "median": median,
        "cpu_ratio": wrong["cpu_us_per_request"] / owner["cpu_us_per_request"],
        "wall_ratio": wrong["wall_us_per_round"] / owner["wall_us_per_round"],
    }


def render(result: dict) -> str:
    lines = [
        f"{result['clients']} client(s) x {result['rounds']} rounds (POST + GET) x "
        f"{result['repeat']}, medians",
        f"{'mode':<18}{'workers CPU/request':>22}{'owner':>10}{'giver':>10}"
        f"{'wall/round':>14}{'requests/s':>12}",
    ]
    for mode, row in result["median"].items():
        lines.append(
            f"{mode:<18}{row['cpu_us_per_request']:>19.1f} us{row['owner_us']:>7.1f} us"
            f"{row['giver_us']:>7.1f} us{row['wall_us_per_round']:>11.1f} us"
            f"{row['requests_per_s']:>12.0f}"
        )
    lines.append(
        f"wrong worker / owner: {result['cpu_ratio']:.2f}x CPU, {result['wall_ratio']:.2f}x wall"
        " time (goal: under 2x)"
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        client_loop(sys.argv[2], [int(sys.argv[4]), int(sys.argv[5])], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--clients", type=int, default=1, help="client processes at once (1: in this process)"
    )
    args = parser.parse_args()
    print(render(measure(args.rounds, args.repeat, args.clients)))


if __name__ == "__main__":
    main()
