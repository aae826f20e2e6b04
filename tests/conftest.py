"""Shared fixtures.

- ``server`` / ``server_factory``: a fastsio Server started on 127.0.0.1 (free port) in the test's
  own event loop, closed on teardown; tests register handlers on it and inspect its state directly.
- ``node_modules``: makes sure tests/node has its pinned npm dependencies (``npm ci`` once).
- ``node``: starts a Node script from tests/node (``driver.js`` by default) against a URL and talks to
  it in JSON lines (see :class:`NodeProcess`); killed on teardown.

Everything that waits is bounded, so a hang fails the test instead of hanging CI.
"""

from __future__ import annotations

import asyncio
import base64
import faulthandler
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
NODE_DIR = TESTS_DIR / "node"
DEFAULT_TIMEOUT = 10.0  # seconds any single wait may take
WATCHDOG_SECONDS = 90  # a test in tests/interop that blocks the event loop this long kills the run

try:  # the repo is not necessarily installed into the venv
    import fastsio  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the tests are run
    sys.path.insert(0, str(TESTS_DIR.parent))


# --------------------------------------------------------------------------- fastsio server


@pytest.fixture
async def server_factory():
    """``await server_factory(**options)`` -> a started ``fastsio.Server`` (``cors_allowed_origins``
    defaults to ``"*"``). Every server made is closed on teardown."""
    import fastsio

    servers = []

    async def make(**options: Any):
        options.setdefault("cors_allowed_origins", "*")
        sio = fastsio.Server(**options)
        servers.append(sio)
        await asyncio.wait_for(sio.start("127.0.0.1", 0), 5)
        return sio

    yield make
    for sio in reversed(servers):
        await asyncio.wait_for(sio.close(), 5)


@pytest.fixture
async def server(server_factory):
    """A started ``fastsio.Server(cors_allowed_origins="*")`` with default options."""
    return await server_factory()


def server_url(sio) -> str:
    return f"http://127.0.0.1:{sio.port}"


@pytest.fixture
def url(server) -> str:
    """The base URL of the ``server`` fixture, e.g. ``http://127.0.0.1:41234``."""
    return server_url(server)


# --------------------------------------------------------------------------- Node side


def npm_ci(directory: Path, required: tuple[str, ...] = ("socket.io-client",)) -> Path:
    """``directory``/node_modules, installed with ``npm ci`` from its lock file when one of the
    ``required`` packages is missing. Fails the test with a clear message when Node or npm is
    absent or the install fails. Every npm folder of the tests (and the chat demo) goes through
    here."""
    if shutil.which("node") is None:
        pytest.fail("this test needs Node.js (`node`) on PATH", pytrace=False)
    modules = directory / "node_modules"
    if all((modules / name / "package.json").exists() for name in required):
        return modules
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"{modules} is missing and `npm` is not on PATH: install Node.js/npm or run "
            f"`npm ci` in {directory}",
            pytrace=False,
        )
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        check=False,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"`npm ci` in {directory} failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return modules


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/node/node_modules, installed from the lock file if it is missing."""
    return npm_ci(NODE_DIR)


def to_json(value: Any) -> Any:
    """Python -> driver JSON: bytes become ``{"$buffer": base64}`` (a Node Buffer)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$buffer": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    """Driver JSON -> Python: ``$buffer`` / ``$arraybuffer`` / ``$typedarray`` become bytes."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        for key in ("$buffer", "$arraybuffer"):
            if isinstance(value.get(key), str):
                return base64.b64decode(value[key])
        if "$typedarray" in value:
            return base64.b64decode(value["data"])
        return {k: from_json(v) for k, v in value.items()}
    return value


def arraybuffer(data: bytes) -> dict:
    """Marks bytes to arrive in Node as an ``ArrayBuffer`` instead of a ``Buffer``."""
    return {"$arraybuffer": base64.b64encode(data).decode()}


class NodeProcessError(AssertionError):
    pass


class NodeProcess:
    """A Node script speaking JSON lines: commands in on stdin, observations out on stdout.

    Every observation is kept in ``messages`` (in arrival order). ``expect`` consumes the first
    not-yet-consumed one that matches, waiting for it if needed (bounded).
    """

    to_json = staticmethod(to_json)
    from_json = staticmethod(from_json)
    arraybuffer = staticmethod(arraybuffer)

    def __init__(self, proc: asyncio.subprocess.Process, script: str) -> None:
        self.proc = proc
        self.script = script
        self.messages: list[dict] = []
        self.stderr = b""
        self._consumed: set[int] = set()
        self._changed = asyncio.Event()
        self._seq = itertools.count(1)
        self._eof = False
        self._tasks = [
            asyncio.ensure_future(self._read_stdout()),
            asyncio.ensure_future(self._read_stderr()),
        ]

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = {"ev": "stdout", "line": line.decode(errors="replace").rstrip()}
                msg["t"] = time.monotonic()
                self.messages.append(msg)
                self._changed.set()
        finally:
            self._eof = True
            self._changed.set()

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            chunk = await self.proc.stderr.read(65536)
            if not chunk:
                break
            self.stderr += chunk

    # -- commands

    async def send(self, op: str, **fields: Any) -> None:
        """Writes one command line without waiting for its answer (bytes anywhere in ``fields``
        become Node Buffers)."""
        assert self.proc.stdin is not None
        if self.proc.returncode is not None or self._eof:
            raise NodeProcessError(f"{self.script} is gone; cannot send {op!r}\n{self.describe()}")
        self.proc.stdin.write(json.dumps(to_json({"op": op, **fields})).encode() + b"\n")
        await asyncio.wait_for(self.proc.stdin.drain(), DEFAULT_TIMEOUT)

    async def call(self, op: str, wait: float = DEFAULT_TIMEOUT, **fields: Any) -> dict:
        """Sends a command with a sequence number and waits (at most ``wait`` s) until the script
        has carried it out. Returns the ``done`` message (``info`` for ``op="info"``)."""
        seq = next(self._seq)
        await self.send(op, seq=seq, **fields)
        done = await self.expect_any(
            lambda m: m.get("seq") == seq and m.get("ev") in ("done", "error"), timeout=wait
        )
        if done["ev"] == "error":
            raise NodeProcessError(f"{op} failed in {self.script}: {done['message']}")
        if op == "info":
            return await self.expect("info", seq=seq, timeout=wait)
        return done

    async def connect(self, name: str = "a", nsp: str = "/", **fields: Any) -> None:
        """Creates a client (``io(url + nsp, opts)``); does not wait for the connection."""
        await self.call("connect", name=name, nsp=nsp, **fields)

    async def emit(self, name: str, event: str, *args: Any) -> None:
        await self.call("emit", name=name, event=event, args=to_json(list(args)))

    async def emit_with_ack(
        self,
        name: str,
        event: str,
        *args: Any,
        timeout_ms: int | None = None,
        wait: float = DEFAULT_TIMEOUT,
    ) -> dict:
        """Emits with an ack callback (``socket.timeout(timeout_ms)`` if given) and returns the
        ``ack`` message (``args`` decoded to Python, bytes for binary) or the ``ack_error`` one."""
        done = await self.call(
            "emit", name=name, event=event, args=to_json(list(args)), ack=True, timeout=timeout_ms
        )
        reply = await self.expect_any(
            lambda m: m.get("seq") == done["seq"] and m.get("ev") in ("ack", "ack_error"),
            timeout=wait,
        )
        if reply["ev"] == "ack":
            reply = dict(reply, args=from_json(reply["args"]))
        return reply

    async def info(self, name: str = "a") -> dict:
        return await self.call("info", name=name)

    # -- observations

    def _match(self, ev: str | None, match: dict) -> Any:
        def pred(m: dict) -> bool:
            if ev is not None and m.get("ev") != ev:
                return False
            return all(m.get(k) == v for k, v in match.items())

        return pred

    def seen(self, ev: str | None = None, **match: Any) -> list[dict]:
        """All observations so far (consumed or not) that match."""
        pred = self._match(ev, match)
        return [m for m in self.messages if pred(m)]

    def events(self, name: str, event: str) -> list[list]:
        """The decoded argument lists of every ``event`` client ``name`` received so far."""
        return [from_json(m["args"]) for m in self.seen("event", name=name, event=event)]

    async def expect(self, ev: str, timeout: float = DEFAULT_TIMEOUT, **match: Any) -> dict:
        """Waits for (and consumes) the first unconsumed observation ``ev`` matching ``match``."""
        return await self.expect_any(self._match(ev, match), timeout=timeout, what=f"{ev} {match}")

    async def expect_any(self, pred, timeout: float = DEFAULT_TIMEOUT, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for i, msg in enumerate(self.messages):
                if i not in self._consumed and pred(msg):
                    self._consumed.add(i)
                    return msg
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0:
                state = "exited" if self._eof else f"timed out after {timeout}s"
                raise NodeProcessError(
                    f"{self.script} {state} waiting for {what or pred}\n{self.describe()}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def expect_count(
        self, ev: str, count: int, timeout: float = DEFAULT_TIMEOUT, **match: Any
    ) -> list[dict]:
        """Waits until at least ``count`` observations match (consumed or not); returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.seen(ev, **match)
            if len(found) >= count:
                return found
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0:
                raise NodeProcessError(
                    f"{self.script}: {len(found)}/{count} x {ev} {match}\n{self.describe()}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def assert_none(self, seconds: float, ev: str, **match: Any) -> None:
        """Waits ``seconds`` and fails if a new (unconsumed) observation ``ev`` matches."""
        await asyncio.sleep(seconds)
        pred = self._match(ev, match)
        unexpected = [m for i, m in enumerate(self.messages) if i not in self._consumed and pred(m)]
        assert not unexpected, f"unexpected {ev}: {unexpected}"

    def describe(self, last: int = 40) -> str:
        lines = [json.dumps(m, default=str)[:400] for m in self.messages[-last:]]
        err = self.stderr.decode(errors="replace")[-3000:]
        return (
            f"--- last {len(lines)} of {len(self.messages)} messages from {self.script} "
            f"(returncode {self.proc.returncode}):\n" + "\n".join(lines) + f"\n--- stderr:\n{err}"
        )

    # -- process control

    def suspend(self) -> None:
        """SIGSTOP: the process (and every client in it) freezes; pings go unanswered."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
            except ProcessLookupError:
                pass
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except asyncio.TimeoutError:  # pragma: no cover
            pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.fixture
async def node(node_modules):
    """``await node(url, script="driver.js", args=None)`` -> a ready :class:`NodeProcess`."""
    procs: list[NodeProcess] = []

    async def start(url: str, script: str = "driver.js", args: dict | None = None) -> NodeProcess:
        proc = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_DIR / script),
            url,
            json.dumps(args or {}),
            cwd=str(NODE_DIR),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        p = NodeProcess(proc, script)
        procs.append(p)
        await p.expect("ready", timeout=DEFAULT_TIMEOUT)
        return p

    yield start
    for p in procs:
        await p.close()


# --------------------------------------------------------------------------- watchdog


@pytest.fixture(autouse=True)
def _interop_watchdog(request):
    """A test in tests/interop that blocks the event loop (no timeout can fire then) dumps every
    thread's stack and ends the run after WATCHDOG_SECONDS instead of hanging CI."""
    if "interop" not in Path(str(request.node.fspath)).parts:
        yield
        return
    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
