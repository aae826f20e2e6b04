"""fastsio.ASGIApp, both ways: under uvicorn (the ASGI server serves everything, Socket.IO
included) and under ``fastsio run`` (Socket.IO native, every other path bridged to the wrapped
app), with FastAPI and Starlette apps that have a route, a lifespan and a WebSocket route of
their own (tests/asgi_apps.py), and the official socket.io-client on polling and WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fastsio
from tests.rawclient import WebSocketClient, http_request
from tests.test_cli import environment, free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0


class Served:
    """An ASGI app of tests/asgi_apps.py served on a free port by uvicorn or by fastsio run."""

    def __init__(self, kind: str, attr: str, events: Path, *extra: str) -> None:
        self.port = free_port()
        self.events = events
        if kind == "uvicorn":
            command = [sys.executable, "-m", "uvicorn", f"tests.asgi_apps:{attr}"]
            command += ["--port", str(self.port), "--log-level", "warning"]
            # a held long-polling GET is a request in progress to uvicorn: without a bound, its
            # shutdown waits for it (up to ping_interval) before the lifespan shutdown
            command += ["--timeout-graceful-shutdown", "2"]
        elif kind == "hypercorn":
            command = [sys.executable, "-m", "hypercorn", f"tests.asgi_apps:{attr}"]
            command += ["--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "2"]
        else:
            command = [sys.executable, "-m", "fastsio", "run", f"tests/asgi_apps.py:{attr}"]
            command += ["--port", str(self.port), "--log-level", "warning", *extra]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=environment(ASGI_TEST_EVENTS=str(events)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                status, _, _ = await http_request(self.port, "GET", "/health")
                if status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {self.stop()}")
            await asyncio.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM (the lifespan shutdown runs), then the output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None
        return self.process.stdout.read()

    def lifespan_events(self) -> list[str]:
        return self.events.read_text().splitlines() if self.events.exists() else []


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    async def start(kind: str, attr: str, *extra: str) -> Served:
        served = Served(kind, attr, tmp_path / f"events-{len(started)}", *extra)
        started.append(served)
        await served.ready()
        return served

    yield start
    for served in started:
        served.stop()


SERVERS = ["uvicorn", "fastsio"]


@pytest.mark.interop
@pytest.mark.parametrize("kind", [*SERVERS, "hypercorn"])
async def test_fastapi_routes_lifespan_and_socketio(kind, serve, node):
    served = await serve(kind, "fastapi_app")
    assert served.lifespan_events() == ["fastapi startup"]
    # the app's route, with the lifespan's app.state and its state dict
    status, headers, body = await http_request(served.port, "GET", "/items/7?q=x")
    assert status == 200 and "json" in headers["content-type"]
    assert json.loads(body) == {
        "item_id": 7,
        "q": "x",
        "greeting": "hello from the lifespan",
        "state": True,
    }
    # a path the app does not know: its own 404
    status, _, body = await http_request(served.port, "GET", "/nowhere")
    assert status == 404 and json.loads(body) == {"detail": "Not Found"}

    # the official client: polling then upgraded, and WebSocket only
    client = await node(served.url)
    await client.connect("a")
    await client.connect("b", opts={"transports": ["websocket"]})
    for name in ("a", "b"):
        await client.expect("connect", name=name)
        reply = await client.emit_with_ack(name, "echo", 1, "two", {"three": [3]})
        assert reply["args"] == [1, "two", {"three": [3]}]
    await client.expect("upgrade", name="a")
    reply = await client.emit_with_ack("a", "echo", "after the upgrade")
    assert reply["args"] == ["after the upgrade"]
    # the app emits to the Socket.IO clients from its own route
    status, _, _ = await http_request(served.port, "GET", "/broadcast?message=hi")
    assert status == 200
    for name in ("a", "b"):
        event = await client.expect("event", name=name, event="news")
        assert event["args"] == ["hi"]
    status, _, body = await http_request(served.port, "GET", "/health")
    assert json.loads(body) == {"status": "ok", "clients": 2}

    output = served.stop()
    assert served.lifespan_events() == ["fastapi startup", "fastapi shutdown"], output
    await client.expect("disconnect", name="a")


@pytest.mark.parametrize("kind", SERVERS)
async def test_fastapi_websocket_route_of_the_app(kind, serve):
    served = await serve(kind, "fastapi_app")
    ws = await WebSocketClient.connect(served.port, "/ws")
    for text in ("one", "two", "x" * 70_000):
        ws.send(text)
        assert await ws.recv() == f"echo: {text}"
    await ws.close()


@pytest.mark.interop
@pytest.mark.parametrize("kind", SERVERS)
async def test_starlette_route_lifespan_websocket_and_socketio(kind, serve, node):
    served = await serve(kind, "starlette_app")
    status, _, body = await http_request(served.port, "GET", "/")
    assert (status, body) == (200, b"starlette home, started=True")
    status, _, body = await http_request(served.port, "GET", "/json?a=1")
    assert json.loads(body) == {"path": "/json", "query": {"a": "1"}}
    ws = await WebSocketClient.connect(served.port, "/ws")
    ws.send(b"\x01\x02\x03")
    assert await ws.recv() == b"\x03\x02\x01"
    await ws.close()

    client = await node(served.url)
    await client.connect("a", opts={"transports": ["polling"]})
    await client.expect("connect", name="a")
    reply = await client.emit_with_ack("a", "echo", "starlette")
    assert reply["args"] == ["starlette"]
    output = served.stop()
    assert served.lifespan_events() == ["starlette startup", "starlette shutdown"], output


@pytest.mark.interop
async def test_fastsio_run_workers_bridge_in_every_worker(serve, node):
    served = await serve("fastsio", "fastapi_app", "--workers", "2")
    for _ in range(6):  # connections land on either worker: each runs the app and its lifespan
        status, _, body = await http_request(served.port, "GET", "/items/1")
        assert status == 200 and json.loads(body)["greeting"] == "hello from the lifespan"
    deadline = time.monotonic() + 15  # the other worker may still be starting
    while served.lifespan_events() != ["fastapi startup"] * 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert served.lifespan_events() == ["fastapi startup"] * 2
    client = await node(served.url)
    await client.connect("a")
    await client.expect("connect", name="a")
    await client.expect("upgrade", name="a")
    reply = await client.emit_with_ack("a", "echo", "across workers")
    assert reply["args"] == ["across workers"]
    output = served.stop()
    assert sorted(served.lifespan_events()) == ["fastapi shutdown"] * 2 + ["fastapi startup"] * 2, (
        output
    )


async def test_uvicorn_socketio_refuses_bad_websockets(serve):
    served = await serve("uvicorn", "fastapi_app")
    with pytest.raises((ConnectionRefusedError, ConnectionError)):
        await WebSocketClient.connect(served.port, "/socket.io/?EIO=4&transport=websocket&sid=nope")
    status, _, body = await http_request(served.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200 and body.startswith(b"0{")
    # a message past max_http_buffer_size over the ASGI server's WebSocket: closed with 1009
    ws = await WebSocketClient.connect(served.port, "/socket.io/?EIO=4&transport=websocket")
    assert (await ws.recv()).startswith("0{")
    ws.send("4" + "x" * 1_200_000)
    assert await ws.wait_closed(10) == 1009
    # and the server goes on
    status, _, _ = await http_request(served.port, "GET", "/health")
    assert status == 200


# -- the native bridge's edges, in process --------------------------------------------------


async def start_bridged(app, **options) -> fastsio.Server:
    sio = fastsio.ASGIApp(fastsio.Server(), app, **options).native()
    await sio.start("127.0.0.1", 0)
    return sio


def raw_app(handler):
    """A raw ASGI app (no lifespan) answering HTTP with ``handler(scope, receive, send)``."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await handler(scope, receive, send)

    return app


async def test_bridge_app_that_returns_without_answering_is_500():
    async def handler(scope, receive, send):
        return None

    sio = await start_bridged(raw_app(handler))
    try:
        status, _, body = await http_request(sio.port, "GET", "/x")
        assert status == 500 and b"returned without an answer" in body
    finally:
        await sio.close()


async def test_bridge_app_that_raises_is_500_and_the_server_goes_on():
    async def handler(scope, receive, send):
        if scope["path"] == "/raise":
            raise ValueError("broken app")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    sio = await start_bridged(raw_app(handler))
    try:
        status, _, body = await http_request(sio.port, "GET", "/raise")
        assert status == 500 and b"application failed" in body
        assert (await http_request(sio.port, "GET", "/ok"))[::2] == (200, b"fine")
    finally:
        await sio.close()


async def test_bridge_app_that_never_answers_is_500_after_the_timeout():
    cancelled = asyncio.Event()

    async def handler(scope, receive, send):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sio = await start_bridged(raw_app(handler), response_timeout=0.3)
    try:
        status, _, body = await http_request(sio.port, "GET", "/hang")
        assert status == 500 and b"did not answer within 0.3 s" in body
        await asyncio.wait_for(cancelled.wait(), 5)
    finally:
        await sio.close()


async def test_bridge_oversized_body_is_413_and_never_reaches_the_app():
    called = []

    async def handler(scope, receive, send):
        called.append(scope["path"])

    sio = await start_bridged(raw_app(handler), max_body_size=10_000)
    try:
        # the head announces more than the limit: answered before any of the body is read
        reader, writer = await asyncio.open_connection("127.0.0.1", sio.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10001\r\n\r\n")
        head = await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 413 ") and called == []
    finally:
        await sio.close()


async def test_bridge_streams_a_large_body_to_the_app_as_it_arrives():
    """3 MB (past max_http_buffer_size, the bound of Socket.IO's own requests) reach the app in
    parts, the first before the client has sent the rest."""
    parts = []
    first_part = asyncio.Event()
    rest_sent = asyncio.Event()

    async def handler(scope, receive, send):
        while True:
            message = await receive()
            parts.append((len(message["body"]), rest_sent.is_set()))
            first_part.set()
            if not message["more_body"]:
                break
        total = sum(size for size, _ in parts)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % total})

    sio = await start_bridged(raw_app(handler))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sio.port)
        size = 3_000_000
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"a" * 100_000)
        await asyncio.wait_for(first_part.wait(), 5)  # the app reads before the rest is sent
        writer.write(b"b" * (size - 100_000))
        await writer.drain()
        rest_sent.set()
        answer = await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n3000000")
        assert len(parts) > 1 and parts[0] == (100_000, False)
    finally:
        await sio.close()


async def test_bridge_chunked_body_past_the_limit_closes_and_the_app_sees_disconnect():
    seen = []

    async def handler(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    sio = await start_bridged(raw_app(handler), max_body_size=50_000)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", sio.port)
        writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (20_000, b"z" * 20_000)
        writer.write(chunk)
        for _ in range(100):  # the app has its first part
            if seen:
                break
            await asyncio.sleep(0.02)
        assert seen == ["http.request"]
        writer.write(chunk * 3)
        assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed, no answer
        writer.close()
        for _ in range(100):
            if seen and seen[-1] == "http.disconnect":
                break
            await asyncio.sleep(0.02)
        assert seen[-1] == "http.disconnect", seen
    finally:
        await sio.close()


async def test_bridge_streams_a_response_and_a_body_as_received():
    async def handler(scope, receive, send):
        message = await receive()
        body = message["body"]
        await send({"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": body + b"%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    sio = await start_bridged(raw_app(handler))
    try:
        status, headers, body = await http_request(sio.port, "POST", "/s", b"ab")
        assert status == 201 and headers["transfer-encoding"] == "chunked"
        assert headers["x-a"] == "1"
        assert body == b"4\r\nab0;\r\n4\r\nab1;\r\n4\r\nab2;\r\n3\r\nend\r\n0\r\n\r\n"
    finally:
        await sio.close()


async def test_bridge_failure_in_the_middle_of_a_body_closes_the_connection():
    async def handler(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("gave up")

    sio = await start_bridged(raw_app(handler))
    try:
        status, _, body = await http_request(sio.port, "GET", "/p")
        assert status == 200 and body.startswith(b"7\r\npartial\r\n")
        assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the client sees it cut
    finally:
        await sio.close()


async def test_bridge_websocket_refused_by_the_app_is_403():
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.close", "code": 1000})

    sio = await start_bridged(app)
    try:
        with pytest.raises(ConnectionRefusedError):
            await WebSocketClient.connect(sio.port, "/ws")
    finally:
        await sio.close()


async def test_bridge_lifespan_failure_stops_the_start():
    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    sio = fastsio.ASGIApp(fastsio.Server(), app).native()
    with pytest.raises(RuntimeError, match="no database"):
        await sio.start("127.0.0.1", 0)
    assert sio.http is None
