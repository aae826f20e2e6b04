"""What the server logs: connections opened and closed, refused handshakes (CORS with the origin,
allow_request, middleware, protocol version), oversize messages, packets at DEBUG (decided per
connection: nothing per packet when off), the access log."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request

import pytest

import fastsio
from fastsio.engine import EngineSession

from .conftest import server_url


def http(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    """(status, body) of one request, any status (run in a thread: the server is on this loop)."""

    def run() -> tuple[int, bytes]:
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    return asyncio.to_thread(run)


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def messages(caplog, logger: str, level: int | None = None) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger and (level is None or record.levelno == level)
    ]


def handshake(sio, eio: str = "4") -> str:
    return f"{server_url(sio)}/socket.io/?EIO={eio}&transport=polling"


def closed_lines(caplog) -> list[str]:
    return [m for m in messages(caplog, "fastsio.engine") if m.startswith("connection closed")]


# -- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_one_line_per_connection_opened_and_closed_with_reason(
    server_factory, caplog, transport
):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()
    client = fastsio.AsyncClient(server_url(sio), transports=[transport], reconnection=False)
    await client.connect()
    sid = next(iter(sio._clients)).session.sid
    await client.disconnect()
    await until(lambda: closed_lines(caplog), what="the closed line")
    lines = messages(caplog, "fastsio.engine", logging.INFO)
    opened = f"connection opened: sid={sid} address=127.0.0.1 transport={transport} protocol=4"
    assert opened in lines
    (closed,) = closed_lines(caplog)
    assert closed.startswith(
        f"connection closed: sid={sid} address=127.0.0.1 transport={transport}"
    )
    assert "reason='transport close'" in closed


async def test_server_side_close_reason(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()
    sio.on("connection", lambda socket: socket.disconnect(close=True))
    client = fastsio.AsyncClient(server_url(sio), transports=["websocket"], reconnection=False)
    await client.connect()
    await until(lambda: closed_lines(caplog), what="the closed line")
    (closed,) = closed_lines(caplog)
    assert "reason='forced close'" in closed
    await client.disconnect()


# -- refused handshakes ------------------------------------------------------------------------


async def test_cors_refusal_names_the_origin_warned_once_per_origin(server_factory, caplog):
    caplog.set_level(logging.DEBUG, logger="fastsio")
    sio = await server_factory(cors_allowed_origins="http://127.0.0.1:8000")
    for _ in range(3):  # the page retries in a loop
        status, _ = await http(handshake(sio), headers={"Origin": "http://localhost:8000"})
        assert status == 403
    warnings = messages(caplog, "fastsio.engine", logging.WARNING)
    assert len(warnings) == 1
    assert "origin 'http://localhost:8000'" in warnings[0]
    assert "cors_allowed_origins='http://127.0.0.1:8000'" in warnings[0]
    debug = [m for m in messages(caplog, "fastsio.engine", logging.DEBUG) if "origin '" in m]
    assert len(debug) == 2
    # another origin is warned about too
    await http(handshake(sio), headers={"Origin": "http://evil.example"})
    assert len(messages(caplog, "fastsio.engine", logging.WARNING)) == 2


async def test_unsupported_protocol_version_logged_with_the_hint(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()
    status, body = await http(handshake(sio, eio="3"))
    assert status == 400 and b"Unsupported protocol version" in body
    (line,) = messages(caplog, "fastsio.engine", logging.INFO)
    assert "EIO=3" in line and "allow_eio3=True" in line and "127.0.0.1" in line


async def test_allow_request_refusal_logged(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory(allow_request=lambda request: False)
    status, _ = await http(handshake(sio), headers={"Origin": "http://app.example"})
    assert status == 403
    (line,) = messages(caplog, "fastsio.engine", logging.INFO)
    assert "refused by allow_request" in line and "address=127.0.0.1" in line
    assert "origin=http://app.example" in line


async def test_middleware_refusal_logged(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()

    @sio.use
    def refuse(socket):
        raise fastsio.ConnectionRefused("not authorized")

    client = fastsio.AsyncClient(server_url(sio), transports=["websocket"], reconnection=False)
    with pytest.raises(fastsio.ConnectError):
        await client.connect()
    await client.disconnect()
    (line,) = [m for m in messages(caplog, "fastsio", logging.INFO) if "middleware" in m]
    assert "namespace / refused by a middleware" in line
    assert "address=127.0.0.1" in line and "message='not authorized'" in line


# -- oversize messages -------------------------------------------------------------------------


async def test_oversize_polling_post_logged(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory(max_http_buffer_size=1000)
    _, body = await http(handshake(sio))
    sid = body.split(b'"sid":"')[1].split(b'"')[0].decode()
    status, _ = await http(f"{handshake(sio)}&sid={sid}", method="POST", body=b"4" + b"x" * 5000)
    assert status == 413
    (line,) = messages(caplog, "fastsio.engine", logging.WARNING)
    assert f"session {sid}: polling POST of 5001 bytes" in line and "(1000)" in line


async def test_oversize_websocket_message_logged(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory(max_http_buffer_size=1000)
    client = fastsio.AsyncClient(server_url(sio), transports=["websocket"], reconnection=False)
    await client.connect()
    sid = next(iter(sio._clients)).session.sid
    client.emit("big", "x" * 5000)
    await until(lambda: messages(caplog, "fastsio.engine", logging.WARNING), what="the warning")
    (line,) = messages(caplog, "fastsio.engine", logging.WARNING)
    assert f"session {sid}: WebSocket message over max_http_buffer_size (1000 bytes)" in line
    await client.disconnect()


# -- packets at DEBUG --------------------------------------------------------------------------


async def test_debug_shows_packets_both_ways_truncated(server_factory, caplog):
    caplog.set_level(logging.DEBUG, logger="fastsio")
    sio = await server_factory()
    sio.on("echo", lambda socket, value: value)
    client = fastsio.AsyncClient(server_url(sio), transports=["websocket"], reconnection=False)
    await client.connect()
    sid = next(iter(sio._clients)).session.sid
    assert await client.emit_with_ack("echo", "y" * 500, timeout=5) == "y" * 500
    await client.disconnect()
    incoming = [m for m in messages(caplog, "fastsio") if m.startswith(f"session {sid} <- ")]
    outgoing = [m for m in messages(caplog, "fastsio.engine") if m.startswith(f"session {sid} -> ")]
    assert f"session {sid} <- '0'" in incoming  # the CONNECT
    assert any(m.endswith("... (513 characters)") and '\'20["echo","yyy' in m for m in incoming)
    assert any(m.startswith(f'session {sid} -> \'0{{"sid":') for m in outgoing)
    assert any(m.endswith("... (506 characters)") and "'30[\"yyy" in m for m in outgoing)
    assert all(len(m) < 300 for m in incoming + outgoing)


async def test_packet_logging_is_decided_per_connection_and_off_costs_nothing(
    server_factory, caplog
):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()
    client = fastsio.AsyncClient(server_url(sio), transports=["websocket"], reconnection=False)
    await client.connect()
    (sio_client,) = sio._clients
    # the plain classes and methods: not one more call per packet
    assert type(sio_client.session) is EngineSession
    assert sio_client.session.on_message == sio_client._on_message
    await client.disconnect()


def test_binary_packets_described_by_size_and_first_bytes():
    from fastsio.engine.packetlog import describe_packet

    first = " ".join(f"{i:02x}" for i in range(32))
    assert describe_packet(bytes(range(40))) == f"<40 bytes: {first}...>"
    assert describe_packet("2") == "'2'"


# -- the access log ----------------------------------------------------------------------------


async def test_access_log_lines_for_polling_and_the_websocket_upgrade(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory(access_log=True)
    status, _ = await http(f"{server_url(sio)}/nothing-here")
    assert status == 404
    client = fastsio.AsyncClient(server_url(sio), reconnection=False)  # polling, then upgrade
    await client.connect()
    await until(lambda: client.transport == "websocket", what="the upgrade")
    await client.disconnect()
    lines = messages(caplog, "fastsio.http.access", logging.INFO)
    assert any(line.startswith('127.0.0.1 "GET /nothing-here HTTP/1.1" 404 9 ') for line in lines)
    polls = [line for line in lines if '"GET /socket.io/?EIO=4&transport=polling' in line]
    assert any('" 200 ' in line for line in polls)
    assert any("transport=websocket" in line and '" 101 0 ' in line for line in lines)
    assert all(line.endswith("ms") for line in lines)


async def test_no_access_log_by_default(server_factory, caplog):
    caplog.set_level(logging.INFO, logger="fastsio")
    sio = await server_factory()
    await http(handshake(sio))
    assert messages(caplog, "fastsio.http.access") == []
    assert "dispatch" not in vars(sio.http)  # the plain method: nothing per request
