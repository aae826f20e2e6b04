"""Server options and lifecycle: start/serve/close/run over the real engine and HTTP server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastsio

from .rawclient import WebSocketClient, http_request

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIST = (
    Path(__file__).resolve().parent / "node" / "node_modules" / "socket.io-client" / "dist"
)


@pytest.fixture
async def started():
    servers = []

    async def start(**options):
        sio = fastsio.Server(**options)
        await sio.start("127.0.0.1", 0)
        servers.append(sio)
        return sio

    yield start
    for sio in servers:
        await asyncio.wait_for(sio.close(), 5)


async def open_websocket(sio, query=""):
    ws = await WebSocketClient.connect(sio.port, f"{sio.path}/?EIO=4&transport=websocket{query}")
    opening = await ws.recv()
    assert opening.startswith("0{")
    return ws, json.loads(opening[1:])


def test_options_are_kept():
    sio = fastsio.Server(path="/custom/", ping_interval=1, connect_timeout=3)
    assert sio.path == "/custom" and sio.ping_interval == 1 and sio.connect_timeout == 3
    assert sio.port is None and sio.http is None and sio.engine.clients_count == 0
    assert sio.of("/") is sio.main_namespace
    with pytest.raises(TypeError):
        sio.of(42)
    assert "/" in sio.namespaces
    assert fastsio.__version__


async def test_start_binds_port_and_echoes_over_websocket(started):
    sio = await started(ping_interval=5)

    @sio.on("echo")
    def echo(socket, *args):
        return args

    assert isinstance(sio.port, int) and sio.port > 0
    ws, opening = await open_websocket(sio)
    assert opening["pingInterval"] == 5000
    ws.send("40")
    connect_reply = await ws.recv()
    assert re.fullmatch(r'40\{"sid":"[\w-]{20}"\}', connect_reply)
    ws.send('421["echo","hi",{"n":1}]')
    assert await ws.recv() == '431["hi",{"n":1}]'
    sio.emit("broadcast", 1)
    assert await ws.recv() == '42["broadcast",1]'
    await ws.close()


async def test_binary_over_websocket(started):
    sio = await started()
    sio.on("up", lambda socket, data: data[::-1])
    ws, _ = await open_websocket(sio)
    ws.send("40")
    await ws.recv()
    ws.send('451-1["up",{"_placeholder":true,"num":0}]')
    ws.send(b"\x01\x02\x03")
    assert await ws.recv() == '461-1[{"_placeholder":true,"num":0}]'
    assert await ws.recv() == b"\x03\x02\x01"
    await ws.close()


async def test_polling_handshake_and_connect(started):
    sio = await started()
    status, _, body = await http_request(sio.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200
    sid = json.loads(body[1:])["sid"]
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    status, _, body = await http_request(sio.port, "POST", target, b"40")
    assert status == 200
    status, _, body = await http_request(sio.port, "GET", target)
    assert body.startswith(b'40{"sid":')
    assert len(sio.sockets) == 1


async def test_close_disconnects_clients(started):
    sio = await started()
    reasons = []
    sio.on("disconnect", lambda socket, reason: reasons.append(reason))
    ws, _ = await open_websocket(sio)
    ws.send("40")
    await ws.recv()
    await sio.close()
    assert reasons == ["server shutting down"]
    assert sio.http is None and sio.engine.clients_count == 0
    await ws.close()


async def test_serve_returns_after_close():
    sio = fastsio.Server()
    task = asyncio.ensure_future(sio.serve("127.0.0.1", 0))
    for _ in range(100):
        if sio.port:
            break
        await asyncio.sleep(0.01)
    assert sio.port
    await sio.close()
    await asyncio.wait_for(task, 5)


async def test_serve_cancelled_closes():
    sio = fastsio.Server()
    task = asyncio.ensure_future(sio.serve("127.0.0.1", 0))
    for _ in range(100):
        if sio.http is not None:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sio.http is None


async def test_start_twice_is_an_error(started):
    sio = await started()
    with pytest.raises(RuntimeError):
        await sio.start("127.0.0.1", 0)


async def test_connect_timeout_over_the_wire(started):
    sio = await started(connect_timeout=0.05)
    ws, _ = await open_websocket(sio)
    assert sio._clients
    assert await ws.wait_closed(2) == 1000
    assert not sio._clients


async def test_serve_client_directory(started, node_modules):  # node_modules: npm ci if missing
    sio = await started(serve_client=str(CLIENT_DIST))
    for name in ("socket.io.js", "socket.io.min.js", "socket.io.esm.min.js", "socket.io.js.map"):
        status, _headers, body = await http_request(sio.port, "GET", f"/socket.io/{name}")
        assert status == 200, name
        assert body == (CLIENT_DIST / name).read_bytes()
    status, _, _ = await http_request(sio.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200


async def test_serve_client_true_searches_upward(started, monkeypatch, node_modules):
    # from tests/node/node_modules/socket.io-client, tests/node/node_modules/... is found upward
    monkeypatch.chdir(CLIENT_DIST.parent)
    sio = await started(serve_client=True)
    status, headers, _ = await http_request(sio.port, "GET", "/socket.io/socket.io.min.js")
    assert status == 200 and "javascript" in headers["content-type"]


async def test_serve_client_true_without_bundle_warns(started, monkeypatch, tmp_path, caplog):
    monkeypatch.chdir(tmp_path)
    sio = await started(serve_client=True)
    status, _, _ = await http_request(sio.port, "GET", "/socket.io/socket.io.js")
    assert status != 200
    assert "serve_client" in caplog.text


async def test_serve_client_missing_directory(tmp_path):
    sio = fastsio.Server(serve_client=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError):
        await sio.start("127.0.0.1", 0)


async def test_static_files(started, tmp_path):
    (tmp_path / "index.html").write_text("<h1>chat</h1>")
    sio = await started(static_files=tmp_path)
    status, _, body = await http_request(sio.port, "GET", "/")
    assert status == 200 and body == b"<h1>chat</h1>"
    status, _, _ = await http_request(sio.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200


def test_run_stops_cleanly_on_sigint(tmp_path):
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import fastsio

            sio = fastsio.Server()
            sio.on("disconnect", lambda socket, reason: None)
            original_start = sio.start

            async def start(host, port, **options):
                server = await original_start(host, port, **options)
                print("listening", sio.port, flush=True)
                return server

            sio.start = start
            sio.run("127.0.0.1", 0)
            print("stopped", flush=True)
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening"), (line, proc.stderr.read() if proc.poll() else "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err


def test_bad_transports_are_refused_early():
    with pytest.raises(ValueError):
        fastsio.Server(transports=("carrier pigeon",))
    with pytest.raises(ValueError):
        fastsio.Server(transports=())
