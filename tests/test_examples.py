"""The examples/ apps, run as written, against the official socket.io-client (tests/node/driver.js).

Each app is imported from its file (its module-level ``sio`` started on a free port in the test's
loop), its npm folder installed from its lock file (the bundle it serves), and driven through
what its docstring promises. The chat demo has its own browser tests (tests/browser/).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import jwt
import pytest

from .rawclient import http_get_url as http_get
from .conftest import npm_ci

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
REDIS_URL = "redis://127.0.0.1:6379/0"


def load_example(path: Path, name: str):
    """Import an example's file as a fresh module (its npm folder installed first)."""
    npm_ci(path.parent)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def run_example():
    """``await run_example(path, name)`` -> (module, url); every server closed on teardown."""
    started = []

    async def start(path: Path, name: str):
        module = load_example(path, name)
        await asyncio.wait_for(module.sio.start("127.0.0.1", 0), 10)
        started.append(module.sio)
        return module, f"http://127.0.0.1:{module.sio.port}"

    yield start
    for sio in started:
        await asyncio.wait_for(sio.close(), 5)


async def assert_serves_page_and_client(url: str) -> None:
    status, page = await http_get(url + "/")
    assert status == 200 and b'<script src="/socket.io/socket.io.js">' in page
    status, bundle = await http_get(url + "/socket.io/socket.io.js")
    assert status == 200 and len(bundle) > 10_000


# -- examples/dashboard ---------------------------------------------------------------------------


@pytest.fixture
def fast_dashboard(monkeypatch):
    monkeypatch.setenv("DASHBOARD_INTERVAL", "0.05")


async def test_dashboard_sends_each_metric_to_its_room_only(fast_dashboard, run_example, node):
    _, url = await run_example(EXAMPLES / "dashboard" / "app.py", "example_dashboard")
    await assert_serves_page_and_client(url)
    client = await node(url)
    for name in ("cpu_viewer", "memory_viewer", "idle"):
        await client.connect(name)
        await client.expect("connect", name=name)
        metrics = await client.expect("event", name=name, event="metrics")
        assert [m["name"] for m in metrics["args"][0]] == ["cpu", "memory", "requests"]

    ack = await client.emit_with_ack("cpu_viewer", "subscribe", "cpu")
    assert ack["args"][0]["ok"] is True and isinstance(ack["args"][0]["history"], list)
    ack = await client.emit_with_ack("memory_viewer", "subscribe", "memory")
    assert ack["args"][0]["ok"] is True
    cpu = await client.expect_count("event", 5, name="cpu_viewer", event="sample")
    memory = await client.expect_count("event", 5, name="memory_viewer", event="sample")
    assert {m["args"][0] for m in cpu} == {"cpu"}
    assert {m["args"][0] for m in memory} == {"memory"}
    ticks = [m["args"][1] for m in cpu]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    assert all(0 <= m["args"][2] <= 100 for m in cpu)

    counts = await client.emit_with_ack("idle", "viewers")
    assert counts["args"] == [{"cpu": 1, "memory": 1, "requests": 0}]
    refused = await client.emit_with_ack("idle", "subscribe", "disk")
    assert refused["args"] == [{"ok": False, "error": "unknown metric 'disk'"}]

    ack = await client.emit_with_ack("cpu_viewer", "unsubscribe", "cpu")
    assert ack["args"] == [{"ok": True}]
    seen = len(client.seen("event", name="cpu_viewer", event="sample"))
    await asyncio.sleep(0.4)  # eight ticks
    assert len(client.seen("event", name="cpu_viewer", event="sample")) == seen
    assert not client.seen("event", name="idle", event="sample")
    assert len(client.seen("event", name="memory_viewer", event="sample")) > len(memory)


# -- examples/worker ------------------------------------------------------------------------------


@pytest.fixture
def worker_settings(monkeypatch):
    """A Redis key and queue of the test's own (tests share the machine's Redis)."""
    from tests.redis.conftest import redis_ping

    problem = redis_ping()
    if problem:
        pytest.fail(f"examples/worker needs Redis on 127.0.0.1:6379: {problem}", pytrace=False)
    settings = {
        "REDIS_URL": REDIS_URL,
        "SOCKETIO_KEY": f"sio-example-{uuid.uuid4().hex}",
        "JOBS_QUEUE": f"jobs-{uuid.uuid4().hex}",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
def worker_process(worker_settings):
    """examples/worker/worker.py running as its own process (stopped on teardown)."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker" / "worker.py")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def test_worker_reports_progress_to_the_asking_socket(
    worker_settings, worker_process, run_example, node
):
    _, url = await run_example(EXAMPLES / "worker" / "server.py", "example_worker_server")
    await assert_serves_page_and_client(url)
    client = await node(url)
    for name in ("asker", "other"):
        await client.connect(name)
        await client.expect("connect", name=name)

    bad = await client.emit_with_ack("asker", "start job", "many")
    assert bad["args"][0]["ok"] is False and "integer" in bad["args"][0]["error"]
    ack = await client.emit_with_ack("asker", "start job", 10_000)
    assert ack["args"][0]["ok"] is True
    job_id = ack["args"][0]["id"]

    done = await client.expect("event", name="asker", event="done", timeout=20)
    assert done["args"] == [job_id, {"limit": 10_000, "primes": 1229}]
    progress = [m["args"] for m in client.seen("event", name="asker", event="progress")]
    assert progress == [[job_id, step, 10] for step in range(1, 11)]
    assert not client.seen("event", name="other")  # the room is the asker's only
    assert worker_process.poll() is None


# -- examples/fastapi_jwt -------------------------------------------------------------------------

SERVE_COMMANDS = {
    # Socket.IO served natively by fastsio's own server, every other path bridged to FastAPI
    "fastsio run": ["-m", "fastsio", "run", "examples/fastapi_jwt/app.py:asgi_app"],
    # any ASGI server serving the whole ASGIApp
    "uvicorn": ["-m", "uvicorn", "--app-dir", "examples/fastapi_jwt", "app:asgi_app"],
}


async def http_call(url: str, body: dict | None = None, token: str | None = None):
    """GET (or POST ``body`` as JSON): (status, decoded JSON answer)."""

    def call():
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(call)


@pytest.fixture(params=sorted(SERVE_COMMANDS))
def fastapi_example(request):
    """examples/fastapi_jwt served by ``fastsio run`` or by uvicorn on a free port: the process
    and its URL (stopped on teardown)."""
    from tests.test_cli import environment, free_port

    npm_ci(EXAMPLES / "fastapi_jwt")
    port = free_port()
    command = [sys.executable, *SERVE_COMMANDS[request.param], "--port", str(port)]
    proc = subprocess.Popen(
        [*command, "--log-level", "warning"],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc, f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def wait_until_serving(proc: subprocess.Popen, url: str, timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            status, _ = await http_call(url + "/api/online")
            if status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or asyncio.get_running_loop().time() > deadline:
            proc.kill()
            pytest.fail(f"{proc.args} did not start:\n{proc.communicate()[0]}")
        await asyncio.sleep(0.1)


async def test_fastapi_jwt_login_socketio_and_http_routes(fastapi_example, node):
    proc, url = fastapi_example
    await wait_until_serving(proc, url)
    await assert_serves_page_and_client(url)
    status, answer = await http_call(url + "/login", {"username": "alice", "password": "nope"})
    assert status == 401 and answer["detail"] == "wrong user name or password"
    tokens = {}
    for user, password in (("alice", "wonderland"), ("bob", "builder")):
        status, answer = await http_call(url + "/login", {"username": user, "password": password})
        assert status == 200
        tokens[user] = answer["token"]

    client = await node(url)
    await client.connect("anonymous")
    refused = await client.expect("connect_error", name="anonymous")
    assert refused["message"] == "not authorized" and refused["data"] == {"reason": "no token"}
    forged = jwt.encode({"sub": "alice"}, "not the server's secret, but long enough", "HS256")
    await client.connect("forger", opts={"auth": {"token": forged}})
    refused = await client.expect("connect_error", name="forger")
    assert refused["message"] == "not authorized"
    assert refused["data"]["reason"] == "Signature verification failed"

    for name, user in (("alice", "alice"), ("bob-tab1", "bob"), ("bob-tab2", "bob")):
        await client.connect(name, opts={"auth": {"token": tokens[user]}})
        await client.expect("connect", name=name)
        welcome = await client.expect("event", name=name, event="welcome")
        assert welcome["args"] == [{"user": user}]
    status, answer = await http_call(url + "/api/online")
    assert answer == {"users": ["alice", "bob"]}

    ack = await client.emit_with_ack("alice", "chat message", " hello ")
    assert ack["args"] == [{"ok": True}]
    for name in ("bob-tab1", "bob-tab2"):
        message = await client.expect("event", name=name, event="chat message")
        assert message["args"] == [{"from": "alice", "text": "hello"}]
    ack = await client.emit_with_ack("bob-tab1", "private message", "alice", "psst")
    assert ack["args"] == [{"ok": True}]
    private = await client.expect("event", name="alice", event="private message")
    assert private["args"] == [{"from": "bob", "text": "psst"}]

    status, _ = await http_call(url + "/api/announce", {"text": "deploy at 5"}, token="forged")
    assert status == 401
    status, answer = await http_call(url + "/api/announce", {"text": "deploy at 5"}, tokens["bob"])
    assert status == 200 and answer == {"ok": True, "clients": 3}
    for name in ("alice", "bob-tab1", "bob-tab2"):
        announcement = await client.expect("event", name=name, event="announcement")
        assert announcement["args"] == [{"from": "bob", "text": "deploy at 5"}]
    await client.assert_none(0.2, "event", name="alice", event="chat message")
