"""End-to-end benchmark: fastsio against python-socketio and Node's socket.io, side by side.

``python -m bench [--quick] [--only SCENARIO] [--servers a,b] [--json FILE]``

Each server runs in its own process pinned to one core (``taskset``); the load generator, a small C
program (bench/loadgen/loadgen.c, built here with ``cc -O2``), runs pinned to the other core. Before
the servers, the load generator is measured against its own raw C server (same protocol subset,
next to no work per message): that is its ceiling, printed first; a server figure within 10% of it
is reported as "load-generator bound", not as the server's speed. Every (scenario, server) pair
gets a fresh server process, and the pairs are interleaved across repeats so that drift on a
shared machine spreads over all servers; each repeat starts the servers' order one further, so no
server always runs first or always right after the same other. Output: one table (median and
min-max of the repeats, ratios to Node and to python-socketio), a JSON file, a markdown copy of
the table and a PNG chart.

The load generator checks every reply and delivery it counts; a run with any error (a wrong or
missing reply, a duplicate delivery, a protocol error, a failed client) is reported as failed and
left out of the medians. The ``cluster`` scenarios run two server processes of one kind on one
Redis (127.0.0.1:6379, a fresh key per run), both pinned to the servers' core.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing only (typing.Self is Python 3.11+)
    from typing_extensions import Self


BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
BUILD = RESULTS / "build"
LOADGEN_SRC = BENCH / "loadgen" / "loadgen.c"
HOST = "127.0.0.1"
SIO_PATH = "/socket.io/"
LG_BOUND = 0.90  # a figure at >= 90% of the load generator's ceiling is not the server's speed
NOISY = 0.10  # other processes used this share of a benchmark core: the run is retried once
REDIS_PORT = 6379  # the cluster scenarios' Redis (on HOST: traffic stays on 127.0.0.1)
REDIS_URL = f"redis://{HOST}:{REDIS_PORT}/0"


# ------------------------------------------------------------------------------------------------
# what is measured


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    unit: str
    higher_is_better: bool
    has_ceiling: bool
    op: str  # what one unit of work is, for "server CPU per op"
    cluster: bool = False  # two server processes on one Redis
    lg_bound_applies: bool = True  # can the load generator's speed limit the figure?


SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in [
        Scenario("echo", "echo, 100 WS clients x 10 in flight, 100 B", "msg/s", True, True, "msg"),
        Scenario("rtt", "round trip, 1 WS client, 1 in flight (p50)", "us", False, True, "msg"),
        Scenario(
            "broadcast", "broadcast to 1,000 WS clients", "deliveries/s", True, True, "delivery"
        ),
        # compression: a 4 KB chat-history-like event (words, not the letter cycle), off / on
        Scenario(
            "broadcast-4k",
            "broadcast of a 4 KB chat event to 1,000 WS clients",
            "deliveries/s",
            True,
            True,
            "delivery",
        ),
        Scenario(
            "broadcast-deflate",
            "broadcast of a 4 KB chat event to 1,000 WS clients, permessage-deflate",
            "deliveries/s",
            True,
            True,
            "delivery",
        ),
        Scenario(
            "idle", "RSS per idle WS client, 5,000 clients", "KB/client", False, False, "client"
        ),
        Scenario(
            "connect",
            "new connections/s (handshake + namespace connect)",
            "conn/s",
            True,
            True,
            "conn",
        ),
        Scenario("poll", "echo over HTTP long-polling, 50 clients", "msg/s", True, True, "msg"),
        Scenario(
            "cluster-broadcast",
            "cluster: broadcast across 2 nodes on Redis, 1,000 WS clients (500 per node)",
            "deliveries/s",
            True,
            True,
            "delivery",
            cluster=True,
        ),
        Scenario(
            "cluster-foreign",
            "cluster: CPU of a node per broadcast to a room it does not hold",
            "us/msg",
            False,
            False,
            "msg",
            cluster=True,
            lg_bound_applies=False,  # CPU per message of the idle node, whatever the rate
        ),
    ]
}
# --only names that stand for several scenarios
SCENARIO_GROUPS = {
    "cluster": ["cluster-broadcast", "cluster-foreign"],
    "compression": ["broadcast-4k", "broadcast-deflate"],
}
# run only when asked for (--only)
OPTIONAL_SCENARIOS = ("broadcast-4k", "broadcast-deflate")
#: the payload of the compression scenarios, and the servers' environment for the deflate one
# (fastsio: per_message_deflate {threshold: 1024}; Node: perMessageDeflate {threshold: 1024};
# python-socketio: uvicorn's own, on whenever offered)
COMPRESSION_SIZE = 4096
SCENARIO_ENV = {"broadcast-deflate": {"BENCH_DEFLATE": "1"}}
#: measurements with a harness of their own rather than the load generator against one server:
#: run only when asked for (--only), fastsio alone, printed after the table
STANDALONE = {
    "handover": "--workers 2: polling echo, every request on the wrong worker vs on its owner",
    "soak": "soak: held WebSocket clients and mixed traffic for --minutes; RSS, fds, sessions",
}
#: the hand-over with one client (each process wakes per request) and with enough client
#: processes to keep both workers busy, as under load
HANDOVER_CLIENTS = (1, 12)


def run_standalone(name: str, st: Settings) -> tuple[dict, str]:
    """One STANDALONE measurement: its JSON and its printed lines."""
    if name == "handover":
        from bench import handover_cost

        rounds = max(500, int(800 * st.duration))  # 4,000 rounds in a default 5 s window
        results = [handover_cost.measure(rounds, st.repeats, n) for n in HANDOVER_CLIENTS]
        text = "\n\n".join(handover_cost.render(r) for r in results)
        return {"title": STANDALONE[name], "runs": results}, f"{STANDALONE[name]}\n{text}"
    if name == "soak":
        from bench import soak

        result = soak.run(st.soak_minutes, st.soak_clients, build_loadgen())
        return {"title": STANDALONE[name], **result}, soak.render(result)
    raise KeyError(name)


@dataclass
class Settings:
    repeats: int = 3
    warmup: float = 1.5
    duration: float = 5.0
    echo_clients: int = 100
    echo_inflight: int = 10
    size: int = 100
    broadcast_clients: int = 1000
    broadcast_window: int = 32
    idle_clients: int = 5000
    connect_concurrency: int = 50
    poll_clients: int = 50
    cluster_clients: int = 1000  # cluster-broadcast: half on each node, the trigger on node A
    cluster_window: int = 32
    foreign_clients: int = 100  # cluster-foreign: clients on node B (none in the room)
    foreign_window: int = 32
    connect_timeout: float = 60.0
    retries: int = 1  # extra attempts for a run disturbed by other processes
    server_cpu: str = "0"
    loadgen_cpu: str = "1"
    soak_minutes: int = 10
    soak_clients: int = 5000


QUICK = {"repeats": 1, "warmup": 0.5, "duration": 2.0}


# ------------------------------------------------------------------------------------------------
# the servers


@dataclass
class ServerSpec:
    key: str
    label: str
    argv: list[str]  # {host} and {port} are filled in
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    check: Callable[[], str | None] | None = None  # -> why it cannot run, or None
    note: str = ""
    # -> why it cannot be a cluster node (BENCH_REDIS set) here, or None if it can; a spec
    # without one has no cluster mode
    cluster_check: Callable[[], str | None] | None = None


def _python_check(code: str, env: dict[str, str] | None = None) -> str | None:
    """Run a snippet in a fresh interpreter (the env decides what fastsio._impl picks)."""
    full_env = dict(os.environ)
    full_env.pop("FASTSIO_NO_EXTENSIONS", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit status {proc.returncode}"
    return None


def check_fastsio(compiled: bool) -> str | None:
    why = _python_check(
        "import fastsio; fastsio.Server", None if compiled else {"FASTSIO_NO_EXTENSIONS": "1"}
    )
    if why:
        return f"fastsio.Server is not usable yet ({why})"
    if compiled:
        why = _python_check("from fastsio import _impl; assert _impl.SPEEDUPS, 'not built'")
        if why:
            return "the compiled speedups are not built (pip install -e . builds them)"
    return None


def check_pysio() -> str | None:
    return _python_check("import socketio, uvicorn, uvloop, httptools, websockets")


def check_fastsio_cluster(compiled: bool) -> str | None:
    why = _python_check(
        "from fastsio.redis import create_adapter",
        None if compiled else {"FASTSIO_NO_EXTENSIONS": "1"},
    )
    return f"fastsio.redis is not usable ({why})" if why else None


def check_pysio_cluster() -> str | None:
    why = _python_check("import redis, socketio; socketio.AsyncRedisManager")
    return f"AsyncRedisManager is not usable ({why}; pip install redis)" if why else None


def check_node_cluster() -> str | None:
    for name in ("@socket.io/redis-adapter", "redis"):
        if not (BENCH / "node_modules" / name).is_dir():
            return f"bench/node_modules/{name} is missing (npm ci in bench/ failed?)"
    return None


def check_node() -> str | None:
    if not shutil.which("node"):
        return "node is not installed"
    if not (BENCH / "node_modules" / "socket.io").is_dir():
        return "bench/node_modules is missing (npm ci in bench/ failed?)"
    return None


PY = sys.executable
SERVERS: dict[str, ServerSpec] = {
    s.key: s
    for s in [
        ServerSpec(
            "fastsio",
            "fastsio (compiled)",
            [PY, "bench/servers/fastsio_app.py", "{host}", "{port}"],
            check=lambda: check_fastsio(True),
            cluster_check=lambda: check_fastsio_cluster(True),
        ),
        ServerSpec(
            "fastsio-pure",
            "fastsio (pure)",
            [PY, "bench/servers/fastsio_app.py", "{host}", "{port}"],
            env={"FASTSIO_NO_EXTENSIONS": "1"},
            check=lambda: check_fastsio(False),
            cluster_check=lambda: check_fastsio_cluster(False),
        ),
        # --workers 2 on the same one core as the others: its CPU per message against
        # fastsio's is what the workers' bus costs (the parent's relay included), i.e. the
        # per-core efficiency that several cores would each get
        ServerSpec(
            "fastsio-2w",
            "fastsio (compiled, 2 workers)",
            [PY, "bench/servers/fastsio_app.py", "{host}", "{port}"],
            env={"BENCH_WORKERS": "2"},
            check=lambda: check_fastsio(True),
            note="--workers 2, both pinned with the parent to the server core",
        ),
        # sio.instrument() on (the Admin UI): against fastsio, what the instrumentation costs
        ServerSpec(
            "fastsio-admin",
            "fastsio (compiled, Admin UI production mode)",
            [PY, "bench/servers/fastsio_app.py", "{host}", "{port}"],
            env={"BENCH_ADMIN": "production"},
            check=lambda: check_fastsio(True),
            note='sio.instrument(auth=None, mode="production")',
        ),
        ServerSpec(
            "fastsio-admin-dev",
            "fastsio (compiled, Admin UI development mode)",
            [PY, "bench/servers/fastsio_app.py", "{host}", "{port}"],
            env={"BENCH_ADMIN": "development"},
            check=lambda: check_fastsio(True),
            note='sio.instrument(auth=None, mode="development"), no admin connected',
        ),
        ServerSpec(
            "pysio",
            "python-socketio",
            [PY, "bench/servers/pysio_app.py", "{host}", "{port}"],
            check=check_pysio,
            note="5.18 ASGI on uvicorn, uvloop+httptools, websockets-sansio",
            cluster_check=check_pysio_cluster,
        ),
        ServerSpec(
            "node",
            "node socket.io",
            ["node", "servers/node_app.js", "{host}", "{port}"],
            cwd=BENCH,
            check=check_node,
            note="4.8.4, ws + bufferutil",
            cluster_check=check_node_cluster,
        ),
        # optional: the other stock WebSocket implementations of uvicorn, for the record
        ServerSpec(
            "pysio-websockets",
            "python-socketio (ws=websockets)",
            [PY, "bench/servers/pysio_app.py", "{host}", "{port}", "--ws", "websockets"],
            check=check_pysio,
            cluster_check=check_pysio_cluster,
        ),
        ServerSpec(
            "pysio-wsproto",
            "python-socketio (ws=wsproto)",
            [PY, "bench/servers/pysio_app.py", "{host}", "{port}", "--ws", "wsproto"],
            check=check_pysio,
            cluster_check=check_pysio_cluster,
        ),
    ]
}
DEFAULT_SERVERS = ["fastsio", "fastsio-pure", "pysio", "node"]
RAW = ServerSpec(
    "raw",
    "load-generator ceiling (raw C server)",
    ["{loadgen}", "server", "--host", "{host}", "--port", "{port}"],
)


class ServerFailed(RuntimeError):
    pass


NICE = 0  # set by --nice


def niced(argv: list[str]) -> list[str]:
    """Run at a higher priority than the rest of the machine (``--nice -10``): on a shared machine
    the neighbours then take less of the benchmark cores (they are slowed down meanwhile)."""
    return ["nice", "-n", str(NICE), *argv] if NICE else argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5 of stat: process group
            pids.append(int(entry))
    return pids


CLK_TCK = os.sysconf("SC_CLK_TCK")


def core_times() -> dict[str, list[int]]:
    """/proc/stat per core: user nice system idle iowait irq softirq steal (in ticks)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                parts = line.split()
                out[parts[0][3:]] = [int(x) for x in parts[1:9]]
    return out


def core_usage(
    before: dict[str, list[int]], after: dict[str, list[int]], core: str | None
) -> dict | None:
    """Busy and softirq share of one core between two samples (fractions of the core)."""
    if core is None or core not in before or core not in after:
        return None
    d = [a - b for a, b in zip(after[core], before[core])]
    total = sum(d)
    if total <= 0:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = d
    return {
        "busy": (total - idle - iowait) / total,
        "process": (user + nice + system) / total,  # what processes were charged
        "softirq": (irq + softirq) / total,  # network stack work, charged to no process
        "steal": steal / total,
        "seconds": total / CLK_TCK,
    }


class ServerProcess:
    """A server under test: started in its own session (process group) pinned to a core, waited
    for until it answers an Engine.IO handshake, killed with its whole group on exit."""

    def __init__(
        self,
        spec: ServerSpec,
        port: int,
        log_path: Path,
        cpu: str | None,
        loadgen: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.port = port
        self.log_path = log_path
        self.cpu = cpu
        self.loadgen = loadgen
        self.env = env or {}  # on top of the spec's (the cluster scenarios' BENCH_REDIS...)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        argv = [a.format(host=HOST, port=self.port, loadgen=self.loadgen) for a in self.spec.argv]
        if self.cpu is not None:
            argv = ["taskset", "-c", self.cpu, *argv]
        argv = niced(argv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
        env.update({**self.spec.env, **self.env})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if "FASTSIO_NO_EXTENSIONS" not in self.spec.env:
            env.pop("FASTSIO_NO_EXTENSIONS", None)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=self.spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready(20.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"{self.spec.label} exited with status {self.proc.returncode}"
                    f" before serving:\n{self.log_tail()}"
                )
            try:
                body = http_get(self.port, f"{SIO_PATH}?EIO=4&transport=polling", timeout=5.0)
                if body.startswith(b"0{") and b'"sid"' in body:
                    return
                last = f"unexpected handshake answer {body[:200]!r}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.05)
        raise ServerFailed(
            f"{self.spec.label} did not answer an Engine.IO handshake on port "
            f"{self.port} within {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 15) -> str:
        try:
            self._log.flush()
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in text[-lines:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        total = 0
        for pid in _group_pids(self.proc.pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / CLK_TCK

    def rss_kb(self) -> int:
        total = 0
        for pid in _group_pids(self.proc.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                continue
        return total

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=5)
        if self.proc is not None:
            try:  # anything the server left in its group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self._log.close()


class Redis:
    """The cluster scenarios' Redis: reachable?, and its process (for its CPU time) when it runs
    on this machine. A few commands over RESP, no client library needed."""

    def __init__(self, port: int = REDIS_PORT) -> None:
        self.port = port
        self.pid: int | None = None
        self.version = ""

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """One command; returns the raw reply (enough for PING and INFO)."""
        req = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
        )
        with socket.create_connection((HOST, self.port), timeout=timeout) as s:
            s.sendall(req)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
                if data[:1] in (b"+", b"-", b":") and data.endswith(b"\r\n"):
                    break
                if data[:1] == b"$":
                    head, _, rest = data.partition(b"\r\n")
                    if int(head[1:]) < 0 or len(rest) >= int(head[1:]) + 2:
                        break
        return data

    def check(self) -> str | None:
        """None when Redis answers PING on 127.0.0.1; finds its pid for the CPU figures."""
        try:
            if not self.command("PING").startswith(b"+PONG"):
                return f"Redis on {HOST}:{self.port} did not answer PING"
            info = self.command("INFO", "server").decode(errors="replace")
        except OSError as exc:
            return f"Redis is not reachable on {HOST}:{self.port} ({exc})"
        fields = dict(
            line.split(":", 1) for line in info.splitlines() if ":" in line and "#" not in line
        )
        self.version = fields.get("redis_version", "").strip()
        try:
            pid = int(fields.get("process_id", ""))
            with open(f"/proc/{pid}/comm") as f:
                if "redis" in f.read():
                    self.pid = pid  # on this machine, in our pid namespace
        except (ValueError, OSError):
            self.pid = None
        return None

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                stat = f.read()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def http_get(port: int, target: str, timeout: float) -> bytes:
    """A minimal HTTP/1.1 GET; returns the body (good enough for a handshake check)."""
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    return body[:length]
    head, _, body = data.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            out, rest = out + rest[:size], rest[size + 2 :]
        return out
    return body


# ------------------------------------------------------------------------------------------------
# the load generator


class LoadgenFailed(RuntimeError):
    pass


def build_loadgen(force: bool = False) -> Path:
    out = BUILD / "loadgen"
    if not force and out.exists() and out.stat().st_mtime >= LOADGEN_SRC.stat().st_mtime:
        return out
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        sys.exit("bench: a C compiler (cc) is needed to build the load generator")
    BUILD.mkdir(parents=True, exist_ok=True)
    log(f"building the load generator: {cc} -O2 {LOADGEN_SRC.relative_to(ROOT)} -lz")
    subprocess.run([cc, "-O2", "-Wall", "-o", str(out), str(LOADGEN_SRC), "-lz"], check=True)
    return out


def run_loadgen(
    loadgen: Path,
    cpu: str | None,
    args: list[str],
    timeout: float,
    server: ServerProcess | list[ServerProcess],
    on_event: Callable[[dict, subprocess.Popen], None] | None = None,
    stdin_pipe: bool = False,
) -> dict:
    """Run the load generator to completion; call on_event(msg, process) per progress line."""
    servers = server if isinstance(server, list) else [server]

    def server_gone() -> str | None:
        for srv in servers:
            if not srv.alive():
                return (
                    f"{srv.spec.label} on port {srv.port} exited (status {srv.proc.returncode})"
                    f":\n{srv.log_tail()}"
                )
        return None

    argv = [str(loadgen), *args]
    if cpu is not None:
        argv = ["taskset", "-c", cpu, *argv]
    argv = niced(argv)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def pump_out() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def pump_err() -> None:
        for line in proc.stderr:
            errors.append(line.rstrip())

    threads = [
        threading.Thread(target=pump_out, daemon=True),
        threading.Thread(target=pump_err, daemon=True),
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    result: dict | None = None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LoadgenFailed(f"load generator timed out after {timeout:.0f}s")
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                gone = server_gone()
                if gone:
                    raise LoadgenFailed(f"during the run, {gone}")
                continue
            if line is None:
                break
            line = line.strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                errors.append(line)
                continue
            if "event" in msg:
                if on_event:
                    on_event(msg, proc)
            elif "error" in msg:
                detail = msg["error"]
                time.sleep(0.2)
                gone = server_gone()
                if gone:
                    detail += f"; {gone}"
                else:  # what the load generator printed before (offending packets...)
                    before = [e for e in errors if e != f"loadgen: {msg['error']}"]
                    if before:
                        detail += "; " + "; ".join(before[-3:])
                raise LoadgenFailed(detail)
            else:
                result = msg
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for t in threads:
            t.join(timeout=2)
    if result is None:
        detail = "; ".join(errors[-5:]) or f"exit status {proc.returncode}"
        gone = server_gone()
        if gone:
            detail += f"\n  {gone}"
        raise LoadgenFailed(detail)
    result["stderr"] = errors[-10:]
    return result


# ------------------------------------------------------------------------------------------------
# one measurement


def loadgen_args(scenario: str, st: Settings, port: int, port2: int | None = None) -> list[str]:
    common = [
        "--host",
        HOST,
        "--port",
        str(port),
        "--path",
        SIO_PATH,
        "--timeout",
        str(st.connect_timeout),
    ]
    timing = ["--warmup", str(st.warmup), "--duration", str(st.duration)]
    if scenario == "echo":
        return [
            "echo",
            *common,
            *timing,
            "--conns",
            str(st.echo_clients),
            "--inflight",
            str(st.echo_inflight),
            "--size",
            str(st.size),
        ]
    if scenario == "rtt":
        return ["echo", *common, *timing, "--conns", "1", "--inflight", "1", "--size", str(st.size)]
    if scenario == "broadcast":
        return [
            "broadcast",
            *common,
            *timing,
            "--conns",
            str(st.broadcast_clients),
            "--window",
            str(st.broadcast_window),
            "--size",
            str(st.size),
        ]
    if scenario in ("broadcast-4k", "broadcast-deflate"):
        return [
            "broadcast",
            *common,
            *timing,
            "--conns",
            str(st.broadcast_clients),
            "--window",
            str(st.broadcast_window),
            "--size",
            str(COMPRESSION_SIZE),
            "--words",
            *(["--deflate"] if scenario == "broadcast-deflate" else []),
        ]
    if scenario == "connect":
        return ["connect", *common, *timing, "--concurrency", str(st.connect_concurrency)]
    if scenario == "cluster-broadcast":  # half the clients on node B, the rest and the trigger on A
        return [
            "broadcast",
            *common,
            *timing,
            "--port2",
            str(port2),
            "--conns",
            str(st.cluster_clients),
            "--conns2",
            str(st.cluster_clients // 2),
            "--window",
            str(st.cluster_window),
            "--size",
            str(st.size),
        ]
    if scenario == "cluster-foreign":  # node A: the trigger alone, in the room; node B: the others
        return [
            "broadcast",
            *common,
            *timing,
            "--room",
            "--port2",
            str(port2),
            "--conns",
            str(st.foreign_clients + 1),
            "--conns2",
            str(st.foreign_clients),
            "--window",
            str(st.foreign_window),
            "--size",
            str(st.size),
        ]
    if scenario == "poll":
        return [
            "poll",
            *common,
            *timing,
            "--conns",
            str(st.poll_clients),
            "--inflight",
            "1",
            "--size",
            str(st.size),
        ]
    raise ValueError(scenario)


def measure(
    scenario: str,
    servers: list[ServerProcess],
    st: Settings,
    loadgen: Path,
    redis: Redis | None = None,
) -> dict:
    """One run of one scenario against started servers (one; for a cluster scenario two: node A,
    node B; or the raw server alone, standing for both); returns the figures of the run."""
    scen = SCENARIOS[scenario]
    server = servers[0]
    timeout = st.connect_timeout + st.warmup + st.duration + 60
    if scen.cluster:  # + the probing and the join, each bounded by the same timeout
        timeout += 2 * st.connect_timeout
    if scenario == "idle":
        return measure_idle(server, st, loadgen, timeout)
    marks: dict[str, Any] = {}

    def sample(name: str) -> None:
        marks[name] = [srv.cpu_seconds() for srv in servers]
        marks[name + "_redis"] = redis.cpu_seconds() if redis else None
        marks[name + "_cores"] = core_times()

    def on_event(msg: dict, proc: subprocess.Popen) -> None:
        if msg["event"] in ("measure_start", "measure_end"):
            sample(msg["event"])

    port2 = (servers[-1].port if len(servers) > 1 else server.port) if scen.cluster else None
    res = run_loadgen(
        loadgen,
        st.loadgen_cpu,
        loadgen_args(scenario, st, server.port, port2),
        timeout,
        servers,
        on_event,
    )
    if "measure_end" not in marks:
        sample("measure_end")
    start = marks.get("measure_start", marks["measure_end"])
    node_cpu = [end - begin for begin, end in zip(start, marks["measure_end"])]
    srv_cpu = sum(node_cpu)
    redis_cpu = None
    if marks.get("measure_start_redis") is not None and marks["measure_end_redis"] is not None:
        redis_cpu = marks["measure_end_redis"] - marks["measure_start_redis"]
    elapsed = res["elapsed"]
    count = res["count"]
    value = res["p50_us"] if scenario == "rtt" else res["rate"]
    cores = marks.get("measure_start_cores"), marks["measure_end_cores"]
    srv_core = core_usage(cores[0], cores[1], st.server_cpu) if cores[0] else None
    lg_core = core_usage(cores[0], cores[1], st.loadgen_cpu) if cores[0] else None
    srv_foreign = srv_core and max(0.0, srv_core["process"] - srv_cpu / srv_core["seconds"])
    lg_foreign = lg_core and max(0.0, lg_core["process"] - res["lg_cpu"] / lg_core["seconds"])
    if redis_cpu and srv_core:
        # Redis is not pinned: it ran on either core, and is ours, not a neighbour's
        share = redis_cpu / srv_core["seconds"]
        if (srv_foreign or 0) >= (lg_foreign or 0):
            take = min(srv_foreign or 0, share)
            srv_foreign, share = (srv_foreign or 0) - take, share - take
            lg_foreign = lg_foreign and max(0.0, lg_foreign - share)
        else:
            take = min(lg_foreign or 0, share)
            lg_foreign, share = (lg_foreign or 0) - take, share - take
            srv_foreign = srv_foreign and max(0.0, srv_foreign - share)
    run = {
        "value": value,
        "rate": res["rate"],
        "count": count,
        "elapsed": elapsed,
        "p50_us": res["p50_us"],
        "p99_us": res["p99_us"],
        "max_us": res["max_us"],
        "server_cpu_s": round(srv_cpu, 3),
        "server_cpu_util": round(srv_cpu / elapsed, 3) if elapsed > 0 else None,
        "server_cpu_per_op_us": round(srv_cpu / count * 1e6, 3) if count else None,
        "loadgen_cpu_util": res["lg_cpu_util"],
        # the cores as a whole: busy = processes + the network stack's softirq work; "foreign" is
        # what processes other than ours used on the core (a noisy neighbour)
        "server_core_foreign": _r(srv_foreign),
        "loadgen_core_foreign": _r(lg_foreign),
        # the load generator's share of its core: its process + softirq (not the neighbours')
        "loadgen_core_busy": _r(lg_core and lg_core["busy"] - (lg_foreign or 0)),
        "steal": _r(srv_core and max(srv_core["steal"], lg_core["steal"] if lg_core else 0)),
        # what the load generator found wrong (every counted reply / delivery is checked)
        "errors": res["errors"],
        "mismatches": res.get("mismatches", 0),
        "protocol_errors": res.get("protocol_errors", 0),
        "lost": res.get("lost", 0),
        "failed_clients": res.get("failed", 0),
        "server_rss_kb": sum(srv.rss_kb() for srv in servers),
    }
    if "rx_bytes" in res:  # --deflate: what the clients read, per delivery
        run["rx_bytes_per_op"] = round(res["rx_bytes"] / count, 1) if count else None
    if scen.cluster:
        run.update(cluster_figures(scenario, res, node_cpu, redis_cpu, elapsed, count))
    if res["errors"]:
        run["error"] = describe_errors(res)
    return run


def cluster_figures(
    scenario: str,
    res: dict,
    node_cpu: list[float],
    redis_cpu: float | None,
    elapsed: float,
    count: int,
) -> dict:
    """The figures of a cluster run: per node, Redis, node B's deliveries on their own."""
    a_cpu = node_cpu[0]
    b_cpu = node_cpu[1] if len(node_cpu) > 1 else None  # the raw server (ceiling) is both
    out: dict[str, Any] = {
        "node_a_cpu_s": round(a_cpu, 3),
        "node_b_cpu_s": _r(b_cpu),
        "node_a_cpu_util": round(a_cpu / elapsed, 3) if elapsed > 0 else None,
        "node_b_cpu_util": round(b_cpu / elapsed, 3) if elapsed > 0 and b_cpu is not None else None,
        "redis_cpu_s": _r(redis_cpu),
        "redis_cpu_util": round(redis_cpu / elapsed, 3)
        if redis_cpu is not None and elapsed > 0
        else None,
        "node_b_clients": res.get("conns2"),
        "probes": res.get("probes"),
    }
    if scenario == "cluster-broadcast":
        broadcasts = res.get("broadcasts") or 0
        out.update(
            {
                "broadcasts": broadcasts,
                "node_b_deliveries": res.get("count_2"),
                "node_b_p50_us": res.get("p50_us_2"),
                "node_b_p99_us": res.get("p99_us_2"),
                "redis_cpu_per_broadcast_us": round(redis_cpu / broadcasts * 1e6, 3)
                if redis_cpu is not None and broadcasts
                else None,
            }
        )
    else:  # cluster-foreign: count = messages node A published to the room (its one member's)
        out.update(
            {
                "published": count,
                "published_rate": res["rate"],
                "node_a_cpu_per_msg_us": round(a_cpu / count * 1e6, 3) if count else None,
                "node_b_cpu_per_msg_us": round(b_cpu / count * 1e6, 3)
                if count and b_cpu is not None
                else None,
                "redis_cpu_per_msg_us": round(redis_cpu / count * 1e6, 3)
                if redis_cpu is not None and count
                else None,
            }
        )
        # the figure: node B's CPU per message, and its share of a core
        out["value"] = out["node_b_cpu_per_msg_us"]
        out["server_cpu_util"] = out["node_b_cpu_util"]
        out["server_cpu_per_op_us"] = out["node_b_cpu_per_msg_us"]
    return out


def describe_errors(res: dict) -> str:
    parts = [
        f"{res.get(key, 0)} {label}"
        for key, label in (
            ("mismatches", "mismatches"),
            ("protocol_errors", "protocol errors"),
            ("lost", "lost"),
            ("failed", "failed clients"),
        )
        if res.get(key)
    ]
    text = f"{res['errors']} errors ({', '.join(parts) or 'see the load generator output'})"
    shown = [line for line in res.get("stderr", []) if line.startswith("loadgen:")]
    if shown:
        text += ": " + " | ".join(shown[:2])
    return text


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def measure_idle(server: ServerProcess, st: Settings, loadgen: Path, timeout: float) -> dict:
    common = [
        "--host",
        HOST,
        "--port",
        str(server.port),
        "--path",
        SIO_PATH,
        "--timeout",
        str(st.connect_timeout),
    ]
    # warm the server up (first-connection imports and caches), then take the baseline
    run_loadgen(
        loadgen,
        st.loadgen_cpu,
        ["idle", *common, "--conns", "100", "--hold", "0.3"],
        timeout,
        server,
    )
    time.sleep(1.0)
    baseline = server.rss_kb()
    cpu0 = server.cpu_seconds()
    state: dict[str, Any] = {}

    def on_event(msg: dict, proc: subprocess.Popen) -> None:
        if msg["event"] == "connected":
            time.sleep(1.0)  # let the server settle (lazy allocations; first pings are 25 s away)
            state["rss"] = server.rss_kb()
            state["cpu"] = server.cpu_seconds() - cpu0
            proc.stdin.close()  # tells the load generator to let go

    res = run_loadgen(
        loadgen,
        st.loadgen_cpu,
        ["idle", *common, "--conns", str(st.idle_clients)],
        timeout,
        server,
        on_event,
        stdin_pipe=True,
    )
    if "rss" not in state:
        raise LoadgenFailed("the idle clients never all connected")
    per_client = (state["rss"] - baseline) / st.idle_clients
    run = {
        "value": round(per_client, 2),
        "baseline_rss_kb": baseline,
        "loaded_rss_kb": state["rss"],
        "clients": st.idle_clients,
        "connect_s": res.get("connect_s"),
        "rate": res.get("rate"),
        "p50_us": None,
        "p99_us": None,
        "server_cpu_s": round(state["cpu"], 3),
        "server_cpu_util": None,
        "server_cpu_per_op_us": round(state["cpu"] / st.idle_clients * 1e6, 1),
        "loadgen_cpu_util": None,
        "errors": res["errors"],
        "mismatches": res.get("mismatches", 0),
        "protocol_errors": res.get("protocol_errors", 0),
        "failed_clients": res.get("failed", 0),
        "server_rss_kb": state["rss"],
    }
    if res["errors"]:
        run["error"] = describe_errors(res)
    return run


# ------------------------------------------------------------------------------------------------
# set-up: peers, machine


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_requirements() -> list[str]:
    """The [bench] extra of pyproject.toml (the single list of the Python peers)."""
    try:
        import tomllib  # type: ignore[import-not-found]

        with open(ROOT / "pyproject.toml", "rb") as f:
            return list(tomllib.load(f)["project"]["optional-dependencies"]["bench"])
    except (ImportError, OSError, KeyError):  # Python < 3.11 or no such table: the list by hand
        return [
            "pytest-benchmark>=4",
            "python-socketio==5.18.*",
            "uvicorn[standard]>=0.30",
            "wsproto>=1.2",
            "matplotlib>=3.7",
            "redis>=5",
            "hiredis",
        ]


def ensure_python_peers() -> None:
    missing = _python_check(
        "import socketio, engineio, uvicorn, uvloop, httptools, websockets, wsproto, matplotlib,"
        " redis, hiredis"
    )
    if not missing:
        return
    reqs = bench_requirements()
    log(f"installing the Python peers ({missing}): pip install {' '.join(reqs)}")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *reqs], check=False)
    if proc.returncode != 0:
        log("bench: pip install failed; the python-socketio rows will be skipped")


def ensure_node_peers() -> None:
    if not shutil.which("node"):
        return
    modules = BENCH / "node_modules"
    lock = BENCH / "package-lock.json"
    marker = modules / ".package-lock.json"
    if (
        marker.exists()
        and marker.stat().st_mtime >= lock.stat().st_mtime
        and (modules / "socket.io").is_dir()
        and (modules / "@socket.io" / "redis-adapter").is_dir()
    ):
        return
    npm = shutil.which("npm")
    if not npm:
        log("bench: npm not found; the Node row will be skipped")
        return
    log(
        "installing the Node peer: npm ci in bench/ (socket.io 4.8.4 + bufferutil,"
        " @socket.io/redis-adapter 8.3.0 + redis 4.7.1)"
    )
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH, check=False
    )
    if proc.returncode != 0:
        log("bench: npm ci failed; the Node row will be skipped")


def machine_info() -> dict:
    def first(path: str, prefix: str) -> str:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(prefix):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return ""

    cpu = first("/proc/cpuinfo", "model name")
    mem_kb = first("/proc/meminfo", "MemTotal:").split()
    mem = int(mem_kb[0]) // 1024 if mem_kb else 0

    def version(cmd: list[str]) -> str:
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
            return proc.stdout.strip()
        except OSError:
            return ""

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mb": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": version(["node", "--version"]),
        "cc": version(["cc", "--version"]).splitlines()[0] if shutil.which("cc") else "",
    }


def machine_busy(seconds: float = 1.0) -> float:
    """The share of all cores that was busy over a short sample (before we start anything)."""
    before = core_times()
    time.sleep(seconds)
    after = core_times()
    busy = [core_usage(before, after, core) for core in after]
    values = [b["busy"] for b in busy if b]
    return sum(values) / len(values) if values else 0.0


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


# ------------------------------------------------------------------------------------------------
# the run


def summarise(runs: list[dict]) -> dict:
    """Medians and ranges over the runs that succeeded; a failed run (an error of the server or
    the load generator, or errors found in the replies) is kept in "runs" but not counted."""
    ok = [r for r in runs if "error" not in r]
    out: dict[str, Any] = {"runs": runs, "ok": len(ok)}
    out["failed"] = sum(1 for r in runs if "error" in r and not r.get("skipped"))
    if not ok:
        out["error"] = runs[-1]["error"] if runs else "not run"
        out["skipped"] = bool(runs) and all(r.get("skipped") for r in runs)
        return out
    for key in (
        "value",
        "p50_us",
        "p99_us",
        "server_cpu_util",
        "server_cpu_per_op_us",
        "loadgen_cpu_util",
        "rate",
        "loadgen_core_busy",
        "server_core_foreign",
        "loadgen_core_foreign",
        "steal",
        # cluster scenarios
        "node_b_p50_us",
        "node_b_p99_us",
        "node_a_cpu_util",
        "node_b_cpu_util",
        "redis_cpu_util",
        "redis_cpu_per_broadcast_us",
        "published_rate",
        "node_a_cpu_per_msg_us",
        "redis_cpu_per_msg_us",
    ):
        vals = [r[key] for r in ok if r.get(key) is not None and r[key] >= 0]
        if vals:
            out[key] = statistics.median(vals)
            out[key + "_min"] = min(vals)
            out[key + "_max"] = max(vals)
    out["errors"] = sum(r.get("errors", 0) for r in ok)
    return out


def bound_flags(results: dict, ceiling: dict) -> None:
    """Mark the figures that are the load generator's limit, not the server's."""
    for scen_key, per_server in results.items():
        scen = SCENARIOS[scen_key]
        ceil = ceiling.get(scen_key, {})
        for summary in per_server.values():
            if "value" not in summary:
                continue
            reasons = []
            if not scen.lg_bound_applies:
                summary["lg_bound"] = ""
                continue
            if scen.has_ceiling and "value" in ceil:
                if scen.higher_is_better and summary["value"] >= LG_BOUND * ceil["value"]:
                    reasons.append(f">= {LG_BOUND:.0%} of the ceiling")
                if not scen.higher_is_better and summary["value"] <= ceil["value"] / LG_BOUND:
                    reasons.append(f"within {1 / LG_BOUND - 1:.0%} of the ceiling's latency")
            if (summary.get("loadgen_core_busy") or 0) >= LG_BOUND:
                reasons.append(f"load generator's core {summary['loadgen_core_busy']:.0%} busy")
            summary["lg_bound"] = "; ".join(reasons)


RUN_IDS = itertools.count(1)


def start_servers(
    stack: contextlib.ExitStack,
    scen: str,
    spec: ServerSpec,
    log_path: Path,
    st: Settings,
    loadgen: Path,
) -> list[ServerProcess]:
    """The server(s) of one run: one; for a cluster scenario two nodes of the same kind on one
    Redis with a key (channel prefix) of their own, both on the servers' core. The raw server
    (ceiling) is alone even then: the load generator's two ports both point at it."""
    if not SCENARIOS[scen].cluster or spec is RAW:
        env = SCENARIO_ENV.get(scen)
        return [
            stack.enter_context(
                ServerProcess(spec, free_port(), log_path, st.server_cpu, loadgen, env=env)
            )
        ]
    key = f"fastsio-bench-{os.getpid()}-{next(RUN_IDS)}-{spec.key}"
    env = {"BENCH_REDIS": REDIS_URL, "BENCH_REDIS_KEY": key, "BENCH_ROOM": f"{key}-room"}
    nodes = []
    for node in ("a", "b"):  # B's port is chosen once A is listening: never the same one
        path = log_path.with_name(f"{log_path.stem}-{node}.log")
        nodes.append(
            stack.enter_context(
                ServerProcess(spec, free_port(), path, st.server_cpu, loadgen, env=env)
            )
        )
    return nodes


def run_all(
    servers: list[ServerSpec], scenarios: list[str], st: Settings, loadgen: Path, logdir: Path
) -> tuple:
    results: dict[str, dict[str, list[dict]]] = {s: {} for s in scenarios}
    ceiling_runs: dict[str, list[dict]] = {s: [] for s in scenarios if SCENARIOS[s].has_ceiling}
    dead: dict[str, str] = {}
    # the cluster scenarios: Redis first, then who can be a cluster node
    redis: Redis | None = None
    cluster_skip: dict[str, str] = {}  # server key (or "*": every server) -> why not
    if any(SCENARIOS[s].cluster for s in scenarios):
        redis = Redis()
        why = redis.check()
        if why:
            log(f"bench: skipping the cluster scenarios: {why}")
            cluster_skip["*"] = why
        else:
            cpu = "its CPU time is read from /proc" if redis.pid else "its CPU time is not known"
            log(f"bench: Redis {redis.version} on {HOST}:{REDIS_PORT} for the cluster ({cpu})")
            for spec in servers:
                why = spec.cluster_check() if spec.cluster_check else "it has no cluster mode"
                if why:
                    log(f"bench: {spec.label} skips the cluster scenarios: {why}")
                    cluster_skip[spec.key] = why
    for rep in range(1, st.repeats + 1):
        for scen in scenarios:
            cluster = SCENARIOS[scen].cluster
            if cluster and "*" in cluster_skip:
                for spec in servers:
                    results[scen].setdefault(spec.key, []).append(
                        {"error": cluster_skip["*"], "skipped": True, "repeat": rep}
                    )
                continue
            # each repeat starts one server further: with a fixed order, B always ran right
            # after A, and any effect of the order (a warm-up, a drift) became a difference
            # between A and B on every repeat
            shift = (rep - 1) % len(servers) if servers else 0
            order = servers[shift:] + servers[:shift]
            targets = ([RAW] if SCENARIOS[scen].has_ceiling else []) + order
            for spec in targets:
                if spec.key in dead:
                    continue
                if cluster and (spec.key in cluster_skip or f"{spec.key}@cluster" in dead):
                    why = cluster_skip.get(spec.key) or dead[f"{spec.key}@cluster"]
                    results[scen].setdefault(spec.key, []).append(
                        {"error": why, "skipped": True, "repeat": rep}
                    )
                    continue
                tag = f"[{rep}/{st.repeats}] {scen:<9} {spec.label:<36}"
                log_path = logdir / f"{spec.key}-{scen}-{rep}.log"
                logs = rel(log_path)
                if cluster and spec is not RAW:
                    logs = rel(log_path.with_name(f"{log_path.stem}-{{a,b}}.log"))
                run: dict | None = None
                for attempt in range(1 + st.retries):
                    if attempt:
                        log(f"{tag} retrying: the machine was busy with other work")
                    try:
                        with contextlib.ExitStack() as stack:
                            nodes = start_servers(stack, scen, spec, log_path, st, loadgen)
                            again = measure(scen, nodes, st, loadgen, redis if cluster else None)
                    except ServerFailed as exc:
                        first = str(exc).splitlines()[0]
                        run = {"error": first}
                        # a server that cannot be a cluster node may still serve on its own
                        dead[f"{spec.key}@cluster" if cluster and spec is not RAW else spec.key] = (
                            first
                        )
                        log(f"{tag} SKIPPED: {exc}")
                        break
                    except LoadgenFailed as exc:
                        log(f"{tag} FAILED: {exc} (server log: {logs})")
                        if run is None or "error" in run:
                            run = {"error": str(exc).splitlines()[0]}
                        break
                    if "error" in again:  # the load generator found errors: a failed run
                        log(
                            f"{tag} FAILED: {again['error']} (would have been "
                            f"{fmt_value(scen, again['value'])} {SCENARIOS[scen].unit}; "
                            f"server log: {logs})"
                        )
                        run = again
                        break
                    log(
                        f"{tag} {fmt_value(scen, again['value'])} {SCENARIOS[scen].unit}"
                        f"{describe(again)}"
                    )
                    if run is None or "error" in run or noise(again) < noise(run):
                        run = again  # keep the quietest attempt
                    if noise(run) < NOISY:
                        break
                assert run is not None
                run["repeat"] = rep
                if spec is RAW:
                    ceiling_runs[scen].append(run)
                else:
                    results[scen].setdefault(spec.key, []).append(run)
    summary = {s: {k: summarise(v) for k, v in per.items()} for s, per in results.items()}
    ceiling = {s: summarise(v) for s, v in ceiling_runs.items()}
    bound_flags(summary, ceiling)
    redis_info = {}
    if redis is not None:
        redis_info = {
            "url": REDIS_URL,
            "version": redis.version,
            "cpu_known": redis.pid is not None,
            "error": cluster_skip.get("*"),
        }
    return summary, ceiling, {k: v for k, v in dead.items() if "@" not in k}, redis_info


def noise(run: dict) -> float:
    return max(run.get("server_core_foreign") or 0, run.get("loadgen_core_foreign") or 0)


def describe(run: dict) -> str:
    parts = []
    if run.get("p50_us") is not None and run.get("p50_us", -1) >= 0:
        parts.append(f"p50 {fmt_us(run['p50_us'])} p99 {fmt_us(run['p99_us'])}")
    if run.get("server_cpu_util") is not None:
        parts.append(f"server CPU {run['server_cpu_util']:.0%}")
    if run.get("server_cpu_per_op_us") is not None:
        parts.append(f"{run['server_cpu_per_op_us']:.1f} us CPU/op")
    if run.get("loadgen_core_busy") is not None:
        parts.append(f"load gen core {run['loadgen_core_busy']:.0%} busy")
    foreign = max(run.get("server_core_foreign") or 0, run.get("loadgen_core_foreign") or 0)
    if foreign >= NOISY:
        parts.append(f"NOISY: other processes took {foreign:.0%} of a core")
    if run.get("node_b_p50_us") is not None and run["node_b_p50_us"] >= 0:
        parts.append(
            f"node B p50 {fmt_us(run['node_b_p50_us'])} p99 {fmt_us(run['node_b_p99_us'])}"
        )
    if run.get("node_b_cpu_util") is not None:
        parts.append(f"CPU A {run['node_a_cpu_util']:.0%} B {run['node_b_cpu_util']:.0%}")
    if run.get("published_rate") is not None:
        parts.append(f"A published {run['published_rate']:,.0f} msg/s")
    if run.get("node_a_cpu_per_msg_us") is not None:
        parts.append(f"A {run['node_a_cpu_per_msg_us']:.2f} us/msg")
    if run.get("redis_cpu_util") is not None:
        parts.append(f"Redis CPU {run['redis_cpu_util']:.0%}")
    if run.get("errors"):
        parts.append(f"{run['errors']} errors")
    return ("  (" + ", ".join(parts) + ")") if parts else ""


# ------------------------------------------------------------------------------------------------
# presentation


def fmt_us(us: float | None) -> str:
    if us is None or us < 0:
        return "-"
    if us >= 10_000:
        return f"{us / 1000:.0f} ms"
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.0f} us"


def fmt_value(scen: str, v: float | None) -> str:
    if v is None:
        return "-"
    if scen == "rtt":
        return f"{v:,.0f}"
    if scen == "idle":
        return f"{v:,.1f}"
    if scen == "cluster-foreign":
        return f"{v:,.2f}"
    return f"{v:,.0f}"


def ratio(scen: Scenario, ours: dict, ref: dict | None) -> str:
    if (
        not ref
        or "value" not in ref
        or "value" not in ours
        or not ref["value"]
        or not ours["value"]
    ):
        return "-"
    r = ours["value"] / ref["value"] if scen.higher_is_better else ref["value"] / ours["value"]
    if ours is ref:
        return "1.00"
    prefix = ""
    if ours.get("lg_bound") and not ref.get("lg_bound"):
        prefix = ">="
    elif ref.get("lg_bound") and not ours.get("lg_bound"):
        prefix = "<="
    elif ours.get("lg_bound") and ref.get("lg_bound"):
        return "?"
    return f"{prefix}{r:.2f}"


COLUMNS = [
    "scenario",
    "server",
    "median",
    "min-max",
    "p50",
    "p99",
    "srv CPU",
    "CPU/op",
    "LG core",
    "x Node",
    "x py-sio",
    "note",
]


def table_rows(summary: dict, ceiling: dict, servers: list[ServerSpec]) -> list[list[str]]:
    rows = []
    for scen_key, per_server in summary.items():
        scen = SCENARIOS[scen_key]
        node, pysio = per_server.get("node"), per_server.get("pysio")
        first = True
        entries = []
        ceil = ceiling.get(scen_key)
        if ceil and "value" in ceil:
            entries.append(("ceiling", "load-gen ceiling", ceil))
        entries += [(s.key, s.label, per_server[s.key]) for s in servers if s.key in per_server]
        for key, label, summ in entries:
            name = f"{scen.title} [{scen.unit}]" if first else ""
            first = False
            if "value" not in summ:
                rows.append(
                    [
                        name,
                        label,
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        "-",
                        (
                            "skipped: "
                            if summ.get("skipped") or not summ.get("failed")
                            else f"FAILED ({summ['failed']} of {len(summ['runs'])} runs): "
                        )
                        + summ.get("error", "")[:90],
                    ]
                )
                continue
            med = fmt_value(scen_key, summ["value"])
            if summ.get("lg_bound") and key != "ceiling":
                med = ">= " + med if scen.higher_is_better else "<= " + med
            rng = (
                f"{fmt_value(scen_key, summ['value_min'])}-{fmt_value(scen_key, summ['value_max'])}"
                if summ.get("ok", 0) > 1
                else ""
            )
            util = summ.get("server_cpu_util")
            lg = summ.get("loadgen_core_busy")
            per_op = summ.get("server_cpu_per_op_us")
            note = []
            if key != "ceiling" and summ.get("lg_bound"):
                note.append("load-generator bound (" + summ["lg_bound"] + ")")
            if summ.get("errors"):
                note.append(f"{summ['errors']} errors")
            foreign = max(
                summ.get("server_core_foreign") or 0, summ.get("loadgen_core_foreign") or 0
            )
            if foreign >= NOISY:
                note.append(f"noisy: other processes took {foreign:.0%} of a core")
            if summ.get("failed"):
                note.append(f"{summ['failed']} FAILED runs (not counted)")
            note += cluster_notes(scen_key, summ)
            is_ref = key == "ceiling"
            rows.append(
                [
                    name,
                    label,
                    med,
                    rng,
                    fmt_us(summ.get("p50_us")) if scen_key != "idle" else "-",
                    fmt_us(summ.get("p99_us")) if scen_key != "idle" else "-",
                    f"{util:.0%}" if util is not None else "-",
                    f"{per_op:.1f} us" if per_op is not None and not is_ref else "-",
                    f"{lg:.0%}" if lg is not None else "-",
                    "-" if is_ref else ratio(scen, summ, node),
                    "-" if is_ref else ratio(scen, summ, pysio),
                    "; ".join(note),
                ]
            )
    return rows


def cluster_notes(scen_key: str, summ: dict) -> list[str]:
    """What the cluster rows carry beside the figure."""
    out = []
    if scen_key == "cluster-broadcast":
        if summ.get("node_b_p50_us") is not None:
            out.append(
                f"node B's clients p50 {fmt_us(summ['node_b_p50_us'])}"
                f" p99 {fmt_us(summ.get('node_b_p99_us'))}"
            )
        if summ.get("node_a_cpu_util") is not None and summ.get("node_b_cpu_util") is not None:
            out.append(f"CPU A {summ['node_a_cpu_util']:.0%} B {summ['node_b_cpu_util']:.0%}")
    elif scen_key == "cluster-foreign":
        if summ.get("published_rate") is not None:
            out.append(f"A published {summ['published_rate']:,.0f} msg/s")
        if summ.get("node_a_cpu_per_msg_us") is not None:
            out.append(f"A {summ['node_a_cpu_per_msg_us']:.1f} us/msg")
    if summ.get("redis_cpu_util") is not None:
        out.append(f"Redis CPU {summ['redis_cpu_util']:.0%}")
    return out


def render_text(rows: list[list[str]]) -> str:
    widths = [
        max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) if rows else len(COLUMNS[i])
        for i in range(len(COLUMNS))
    ]
    widths[0] = min(widths[0], 52)
    numeric = {2, 3, 4, 5, 6, 7, 8, 9, 10}

    def line(cells: list[str]) -> str:
        out = []
        for i, c in enumerate(cells):
            c = c if len(c) <= widths[i] else c[: widths[i] - 1] + "~"
            out.append(c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]))
        return "  ".join(out).rstrip()

    sep = "  ".join("-" * w for w in widths)
    lines = [line(COLUMNS), sep]
    for r in rows:
        if r[0] and len(lines) > 2:
            lines.append("")
        lines.append(line(r))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---:" if 2 <= i <= 10 else "---" for i in range(len(COLUMNS))) + "|",
    ]
    for r in rows:
        out.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(out)


LEGEND = (
    "median of the repeats, min-max beside it. p50/p99: per-message round trip (echo, rtt, poll),\n"
    "delivery latency from the broadcast request (broadcast), full handshake (connect).\n"
    "srv CPU: server process CPU time / wall time of the measured window (1 core = 100%; the\n"
    "kernel's network softirq work is not in it); CPU/op: that per message, delivery, connection\n"
    "or idle client. LG core: the load generator's share of its core (its process + softirq).\n"
    "x Node, x py-sio: how many times better than that server (throughput ratio; for latency and\n"
    "memory the inverse), '>=' when our figure is load-generator bound, '<=' when theirs is.\n"
    "Every counted reply / delivery is checked; a run with any error is FAILED and not counted.\n"
    "cluster: two nodes of the server on one Redis, both on the servers' core. broadcast: srv CPU\n"
    "and CPU/op are both nodes' together; p50/p99 over all deliveries (node B's in the note).\n"
    "foreign: node A publishes to a room held only on A; the figure, srv CPU and CPU/op are node\n"
    "B's (no socket of the room) CPU per message published; p50/p99: the room member's round trip."
)


def write_chart(path: Path, summary: dict, ceiling: dict, servers: list[ServerSpec]) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        log("bench: matplotlib is missing; no chart (pip install matplotlib)")
        return False
    colours = {
        "fastsio": "#d62728",
        "fastsio-pure": "#ff9896",
        "fastsio-2w": "#8c564b",
        "fastsio-admin": "#17becf",
        "fastsio-admin-dev": "#9edae5",
        "pysio": "#1f77b4",
        "node": "#2ca02c",
        "pysio-websockets": "#aec7e8",
        "pysio-wsproto": "#9edae5",
    }
    scen_keys = list(summary)
    ncols = min(3, len(scen_keys))
    nrows = (len(scen_keys) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 4.2 * nrows), squeeze=False)
    for idx, scen_key in enumerate(scen_keys):
        ax = axes[idx // ncols][idx % ncols]
        scen = SCENARIOS[scen_key]
        labels, values, lo, hi, cols, hatches = [], [], [], [], [], []
        for spec in servers:
            summ = summary[scen_key].get(spec.key)
            if not summ or "value" not in summ:
                continue
            labels.append(spec.label.replace(" (", "\n("))
            v = summ["value"]
            values.append(v)
            lo.append(v - summ["value_min"])
            hi.append(summ["value_max"] - v)
            cols.append(colours.get(spec.key, "#7f7f7f"))
            hatches.append("//" if summ.get("lg_bound") else "")
        if values:
            bars = ax.bar(range(len(values)), values, yerr=[lo, hi], color=cols, capsize=4)
            for bar, hatch in zip(bars, hatches):
                bar.set_hatch(hatch)
            ax.set_xticks(range(len(values)))
            ax.set_xticklabels(labels, fontsize=8)
            for i, v in enumerate(values):
                ax.annotate(  # above the whisker, so the two do not overlap
                    fmt_value(scen_key, v),
                    (i, v + hi[i]),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        else:
            ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
        ceil = ceiling.get(scen_key)
        if ceil and "value" in ceil:
            text = f"load-gen ceiling {fmt_value(scen_key, ceil['value'])}"
            top = max([v + h for v, h in zip(values, hi)] or [0])
            if values and scen.higher_is_better and ceil["value"] > 2.5 * top:
                # drawing it would flatten the bars: say it instead
                ax.text(
                    0.01, 0.98, text + " (off scale)", transform=ax.transAxes, fontsize=7, va="top"
                )
                ax.set_ylim(0, top * 1.15)
            else:
                ax.axhline(ceil["value"], color="black", linestyle="--", linewidth=1)
                ax.annotate(
                    text,
                    (0.01, ceil["value"]),
                    xycoords=("axes fraction", "data"),
                    fontsize=7,
                    va="bottom",
                )
        ax.yaxis.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 10 or v == 0 else f"{v:g}")
        )
        better = "higher is better" if scen.higher_is_better else "lower is better"
        ax.set_title(f"{scen.title}\n{scen.unit}, {better}", fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    for idx in range(len(scen_keys), nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    fig.suptitle(
        "fastsio vs python-socketio vs Node socket.io (median, min-max bars; hatched ="
        " load-generator bound)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------------
# entry point


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="1 repeat, 0.5 s warm-up, 2 s per measurement (a few minutes in all)",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SCENARIO",
        help=f"run only these scenarios ({', '.join([*SCENARIOS, *STANDALONE])}; cluster = both"
        " cluster ones, compression = both compression ones; handover and soak run fastsio alone);"
        " repeatable or comma-separated",
    )
    p.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated, from: {', '.join(SERVERS)} (default: %(default)s)",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="where to write the JSON (the PNG and .md go "
        "beside it); default bench/results/bench-<time>.json",
    )
    p.add_argument(
        "--repeats", type=int, help="repeats per measurement (default 3, 1 with --quick)"
    )
    p.add_argument("--duration", type=float, help="seconds per measurement (default 5)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per measurement (default 1.5)")
    p.add_argument("--idle-clients", type=int, help="clients of the idle scenario (default 5000)")
    p.add_argument("--minutes", type=int, help="length of the soak scenario (default 10)")
    p.add_argument("--soak-clients", type=int, help="clients the soak holds (default 5000)")
    p.add_argument("--server-cpu", default="0", help="core for the servers (default 0)")
    p.add_argument("--loadgen-cpu", default="1", help="core for the load generator (default 1)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--no-install", action="store_true", help="do not pip/npm install missing peers")
    p.add_argument(
        "--replot",
        metavar="JSON",
        help="run nothing: print the table of a saved run and redraw its chart and .md",
    )
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run servers and load generator at this nice level (e.g. -10, needs root): less "
        "noise from other processes on a shared machine, at their expense (default 0)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="re-run a measurement disturbed by other processes up to N times, keeping the "
        "quietest (default 1)",
    )
    return p.parse_args(argv)


def replot(path: Path) -> int:
    """Print the table of a saved run again and rewrite its .md and .png."""
    report = json.loads(path.read_text())
    specs = [SERVERS[k] for k in report["servers"] if k in SERVERS]
    rows = table_rows(report["results"], report["ceiling"], specs)
    print(render_text(rows))
    print()
    print(LEGEND)
    md = path.with_suffix(".md")
    head = md.read_text().split("\n\n| scenario")[0] if md.exists() else report["command"]
    md.write_text(f"{head}\n\n{render_markdown(rows)}\n\n{LEGEND}\n")
    if write_chart(path.with_suffix(".png"), report["results"], report["ceiling"], specs):
        print(f"\nchart: {path.with_suffix('.png')}")
    return 0


def run_standalone_only(
    names: list[str], st: Settings, args: argparse.Namespace, argv: list[str] | None
) -> int:
    """``--only handover`` (and the like) alone: no servers, no table; JSON beside the others."""
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    busy = machine_busy()
    print(f"fastsio benchmark, {started}; {command.strip()}")
    print(f"other processes used {busy:.0%} of the machine's CPU when it started")
    report: dict = {"started": started, "command": command.strip(), "standalone": {}}
    for name in names:
        report["standalone"][name], lines = run_standalone(name, st)
        print()
        print(lines)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else RESULTS / f"bench-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    report["machine"], report["machine_busy_at_start"] = machine_info(), round(busy, 3)
    json_path.write_text(json.dumps(report, indent=2))
    print(f"\nJSON: {json_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.replot:
        return replot(Path(args.replot))
    st = Settings(**(QUICK if args.quick else {}))
    for name in ("repeats", "duration", "warmup", "idle_clients"):
        if getattr(args, name) is not None:
            setattr(st, name, getattr(args, name))
    if args.minutes is not None:
        st.soak_minutes = max(1, args.minutes)
    if args.soak_clients is not None:
        st.soak_clients = args.soak_clients
    st.server_cpu, st.loadgen_cpu = args.server_cpu, args.loadgen_cpu
    st.retries = max(0, args.retries)
    global NICE
    NICE = args.nice
    if args.no_pin or not shutil.which("taskset"):
        if not args.no_pin:
            log("bench: taskset not found; running unpinned (figures will be noisier)")
        st.server_cpu = st.loadgen_cpu = None  # type: ignore[assignment]
    elif (os.cpu_count() or 1) < 2:
        log("bench: fewer than 2 cores; server and load generator will share one")
        st.server_cpu = st.loadgen_cpu = "0"

    asked = [s for item in args.only for s in item.split(",") if s] or [
        s for s in SCENARIOS if s not in OPTIONAL_SCENARIOS
    ]
    scenarios: list[str] = []
    for s in asked:
        if s not in SCENARIOS and s not in SCENARIO_GROUPS and s not in STANDALONE:
            choices = ", ".join([*SCENARIOS, *SCENARIO_GROUPS, *STANDALONE])
            sys.exit(f"bench: unknown scenario {s!r}; choose from {choices}")
        for one in SCENARIO_GROUPS.get(s, [s]):
            if one not in scenarios:
                scenarios.append(one)
    standalone = [s for s in scenarios if s in STANDALONE]
    scenarios = [s for s in scenarios if s not in STANDALONE]
    if not scenarios:
        return run_standalone_only(standalone, st, args, argv)
    server_keys = [s for s in args.servers.split(",") if s]
    for s in server_keys:
        if s not in SERVERS:
            sys.exit(f"bench: unknown server {s!r}; choose from {', '.join(SERVERS)}")

    nofile = raise_nofile()
    if "idle" in scenarios and nofile < st.idle_clients + 200:
        log(
            f"bench: open-file limit {nofile} is too low for {st.idle_clients} idle clients; "
            f"using {nofile - 200}"
        )
        st.idle_clients = max(100, nofile - 200)

    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = Path(args.json) if args.json else RESULTS / f"bench-{stamp}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / "logs" / stamp

    if not args.no_install:
        if any(SERVERS[k].argv[0] == PY for k in server_keys):
            ensure_python_peers()
        if "node" in server_keys:
            ensure_node_peers()
    loadgen = build_loadgen()

    servers: list[ServerSpec] = []
    skipped: dict[str, str] = {}
    for key in server_keys:
        spec = SERVERS[key]
        why = spec.check() if spec.check else None
        if why:
            skipped[key] = why
            log(f"bench: skipping {spec.label}: {why}")
        else:
            servers.append(spec)
    log(
        f"bench: {len(scenarios)} scenarios x {len(servers)} servers x {st.repeats} repeats "
        f"({st.warmup:g} s warm-up + {st.duration:g} s each); servers on core {st.server_cpu}, "
        f"load generator on core {st.loadgen_cpu}"
    )

    busy = machine_busy()
    if busy >= NOISY:
        log(
            f"bench: WARNING: other processes are using {busy:.0%} of the machine's CPU right now;"
            " the figures will be noisy (runs disturbed by them are retried and marked)"
        )
    t0 = time.monotonic()
    summary, ceiling, dead, redis = run_all(servers, scenarios, st, loadgen, logdir)
    skipped.update({k: v for k, v in dead.items() if k not in skipped})
    # rows for skipped servers, so the table says why they are missing
    all_specs = [SERVERS[k] for k in server_keys]
    for key, why in skipped.items():
        for scen in summary:
            summary[scen].setdefault(key, {"error": why, "runs": [], "ok": 0})

    rows = table_rows(summary, ceiling, all_specs)
    text = render_text(rows)
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (
        f"fastsio benchmark, {started}; {command.strip()}\n"
        f"{st.repeats} repeat(s), {st.warmup:g} s warm-up + {st.duration:g} s per measurement;"
        f" servers pinned to core {st.server_cpu}, load generator to core {st.loadgen_cpu}"
        + (f"; nice {NICE}" if NICE else "")
        + (
            f"\ncluster: both nodes pinned to core {st.server_cpu}, Redis {redis['version']} on"
            f" {HOST}:{REDIS_PORT} not pinned"
            if redis.get("version")
            else ""
        )
        + f"\nother processes used {busy:.0%} of the machine's CPU when it started"
    )
    ceiling_line = "load-generator ceiling (raw C server): " + ", ".join(
        f"{k} {fmt_value(k, v['value'])} {SCENARIOS[k].unit}"
        + (
            f" (load gen core {v['loadgen_core_busy']:.0%} busy)"
            if v.get("loadgen_core_busy")
            else ""
        )
        for k, v in ceiling.items()
        if "value" in v
    )
    print()
    print(header)
    print(ceiling_line)
    print()
    print(text)
    print()
    print(LEGEND)

    extra = {}
    for name in standalone:
        extra[name], lines = run_standalone(name, st)
        print()
        print(lines)

    report = {
        "standalone": extra,
        "started": started,
        "command": command.strip(),
        "duration_s": round(time.monotonic() - t0, 1),
        "machine": machine_info(),
        "settings": {**st.__dict__, "nice": NICE},
        "machine_busy_at_start": round(busy, 3),
        "servers": {s.key: {"label": s.label, "note": s.note} for s in all_specs},
        "skipped": skipped,
        "redis": redis,
        "ceiling": ceiling,
        "results": summary,
    }
    json_path.write_text(json.dumps(report, indent=2))
    md_path = json_path.with_suffix(".md")
    md_path.write_text(f"{header}\n\n{ceiling_line}\n\n{render_markdown(rows)}\n\n{LEGEND}\n")
    png_path = json_path.with_suffix(".png")
    charted = write_chart(png_path, summary, ceiling, all_specs)
    print()
    print(f"JSON: {json_path}")
    print(f"table (markdown): {md_path}")
    if charted:
        print(f"chart: {png_path}")
    print(f"server logs: {logdir}")
    return 0
