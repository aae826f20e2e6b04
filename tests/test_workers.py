"""``fastsio run --workers N``: official socket.io-client clients spread over real worker
processes on one port; rooms, broadcasts, fetch_sockets, server-side events and broadcast acks
across workers; a killed worker restarted; SIGTERM and SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.test_cli import ServerProcess, free_port

pytestmark = pytest.mark.interop

TESTS_DIR = Path(__file__).resolve().parent
WS_ONLY = {"transports": ["websocket"]}


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(p) for p in text.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_workers(app: str, count: int):
    """``fastsio run <app> --workers <count>`` on a free port: (process, url)."""
    port = free_port()
    process = ServerProcess(
        ["run", app, "--workers", str(count), "--port", str(port)], cwd=TESTS_DIR.parent
    )
    try:
        await asyncio.to_thread(process.wait_for, rf"running on .* with {count} worker")
        await until(lambda: len(children(process.process.pid)) == count, f"{count} workers")
        yield process, f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(process.stop)


@pytest.fixture
async def workers(request):
    """A ``fastsio run tests.workers_app:sio --workers N`` process (N = 2, or the test's
    parameter): (process, url)."""
    async with running_workers("tests.workers_app:sio", getattr(request, "param", 2)) as running:
        yield running


async def ask(client, name: str, event: str, *args):
    reply = await client.emit_with_ack(name, event, *args)
    assert reply["ev"] == "ack", reply
    return reply["args"][0] if reply["args"] else None


async def clients_on_both(node, url: str, limit: int = 24) -> dict:
    """Connects WebSocket clients until two of them sit on different workers: {pid: name}."""
    client = await node(url, args=WS_ONLY)
    on: dict = {}
    for i in range(limit):
        name = f"c{i}"
        await client.connect(name)
        await client.expect("connect", name=name)
        await client.call("ack_policy", name=name, event="poll", reply=[name])
        pid = await ask(client, name, "whoami")
        on.setdefault(pid, name)
        if len(on) == 2:
            return client, on
    raise AssertionError(f"{limit} connections all landed on one worker")


@pytest.mark.parametrize("workers", [2, 3], indirect=True)
async def test_rooms_broadcasts_and_requests_span_the_workers(workers, node):
    process, url = workers
    client, on = await clients_on_both(node, url)
    (pid_a, a), (pid_b, b) = sorted(on.items())
    all_workers = children(process.process.pid)
    assert {pid_a, pid_b} <= all_workers

    await client.emit(a, "shout", "hello")
    for name in (a, b):
        ev = await client.expect("event", name=name, event="heard")
        assert ev["args"] == ["hello", pid_a]

    assert await ask(client, b, "join", "room-b") == pid_b
    await client.emit(a, "to_room", "room-b", "for b")
    ev = await client.expect("event", name=b, event="room_msg")
    assert ev["args"] == ["for b"]
    await client.emit(b, "shout", "fence")
    await client.expect("event", name=a, event="heard")
    assert client.seen("event", name=a, event="room_msg") == []

    ids = {name: (await client.info(name))["id"] for name in (a, b)}
    everyone = await ask(client, a, "fetch")
    assert set(ids.values()) <= set(everyone)
    assert await ask(client, a, "fetch", "room-b") == [ids[b]]
    await client.emit(a, "everyone_join", "all")
    await until_async(
        lambda: ask(client, b, "fetch", "all"), lambda got: ids[a] in got and ids[b] in got
    )

    assert await ask(client, a, "servers") == sorted(all_workers - {pid_a})
    assert await ask(client, b, "servers") == sorted(all_workers - {pid_b})

    answers = await ask(client, a, "poll_all")
    assert set(answers) >= {a, b}

    await client.emit(a, "kick", ids[b])
    await client.expect("disconnect", name=b)


async def until_async(get, check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = await get()
        if check(value):
            return value
        assert time.monotonic() < deadline, f"never true: {value}"
        await asyncio.sleep(0.05)


async def test_a_killed_worker_is_restarted_and_the_other_is_untouched(workers, node):
    process, url = workers
    client, on = await clients_on_both(node, url)
    (pid_a, a), (pid_b, b) = sorted(on.items())
    os.kill(pid_b, signal.SIGKILL)
    await until(lambda: pid_b not in children(process.process.pid), "the dead worker reaped")
    await until(lambda: len(children(process.process.pid)) == 2, "a new worker")
    await asyncio.to_thread(
        process.wait_for, rf"worker \d \(pid {pid_b}\) died \(killed by SIGKILL\)"
    )
    await client.expect("disconnect", name=b)
    await client.expect("connect", name=b, timeout=15)  # socket.io-client reconnects by itself
    assert await ask(client, b, "whoami") in children(process.process.pid)
    assert client.seen("disconnect", name=a) == []
    assert await ask(client, a, "whoami") == pid_a
    # the restarted worker is on the bus again: the cluster answers across it
    assert sorted(await ask(client, a, "servers")) == sorted(
        children(process.process.pid) - {pid_a}
    )


async def test_sigterm_stops_every_worker_cleanly(workers, node):
    process, url = workers
    client, on = await clients_on_both(node, url)
    pids = children(process.process.pid)
    process.process.send_signal(signal.SIGTERM)
    for name in on.values():
        ev = await client.expect("disconnect", name=name)
        assert ev["reason"] in ("io server disconnect", "transport close")
    assert await asyncio.to_thread(process.process.wait, 15) == 0
    assert not any(alive(pid) for pid in pids)


async def test_sighup_restarts_the_workers_one_at_a_time(workers, node):
    process, url = workers
    parent = process.process.pid
    before = children(parent)
    process.process.send_signal(signal.SIGHUP)
    await until(
        lambda: len(children(parent)) == 2 and not (children(parent) & before),
        "two new workers",
        20,
    )
    client = await node(url, args=WS_ONLY)
    await client.connect("late")
    await client.expect("connect", name="late")
    assert await ask(client, "late", "whoami") in children(parent)
    assert process.process.poll() is None


def test_run_from_code_with_workers_and_usage_errors(tmp_path):
    import subprocess
    import sys

    port = free_port()
    script = tmp_path / "app.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS_DIR.parent)!r})\n"
        f"from tests.workers_app import sio\nsio.run('127.0.0.1', {port}, workers=2)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while len(children(proc.pid)) < 2:
            assert time.monotonic() < deadline, "sio.run(workers=2) started no workers"
            time.sleep(0.05)
        pids = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not any(alive(pid) for pid in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    bad = subprocess.run(
        [sys.executable, "-m", "fastsio", "run", "tests.workers_app:sio", "--workers", "many"],
        cwd=TESTS_DIR.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode == 2
    assert "--workers 'many': must be a number >= 1, 0 or 'auto'" in bad.stderr


@pytest.mark.parametrize(
    "transports", [["polling"], ["polling", "websocket"]], ids=["polling", "upgrade"]
)
async def test_polling_sessions_span_the_workers_without_sticky_sessions(workers, node, transports):
    """Each polling request is a new TCP connection that SO_REUSEPORT gives to any worker: the
    workers hand the requests for another's session over, and every client works."""
    process, url = workers
    client = await node(url, args={"transports": transports})
    names = [f"p{i}" for i in range(6)]
    for name in names:
        await client.connect(name)
    pids = set()
    for name in names:
        await client.expect("connect", name=name)
        for _ in range(5):
            pids.add(await ask(client, name, "whoami"))
    assert pids <= children(process.process.pid)
    await client.emit(names[0], "shout", "to all")
    for name in names:
        ev = await client.expect("event", name=name, event="heard")
        assert ev["args"][0] == "to all"
    assert client.seen("connect_error") == []
    assert all(m.get("name") not in names for m in client.seen("disconnect"))
