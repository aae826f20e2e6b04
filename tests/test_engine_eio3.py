"""Engine.IO v3 (``allow_eio3``) at the wire: handshake, length-prefixed polling, client pings,
binary (base64, XHR2 payloads, WebSocket type byte), upgrade, and bad input closing only its session.

Raw HTTP requests and a wsproto WebSocket client talk to a real EngineServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from fastsio.engine import EngineServer
from fastsio.protocol import engineio3 as eio3
from tests.rawclient import WebSocketClient, http_request
from tests.test_engine import UNKNOWN_SID, EchoApp, until

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def engine_factory():
    started = []

    async def make(**options):
        options.setdefault("allow_eio3", True)
        app = EchoApp()
        engine = EngineServer(on_connection=app.on_connection, **options)
        server = await engine.start("127.0.0.1", 0)
        started.append(engine)
        return engine, app, server.sockets[0].getsockname()[1]

    yield make
    for engine in started:
        await engine.close()


def polling(sid=None, b64=True, eio=3) -> str:
    target = f"/engine.io/?EIO={eio}&transport=polling"
    if b64:
        target += "&b64=1"
    if sid:
        target += f"&sid={sid}"
    return target


async def handshake(port, b64=True):
    status, headers, body = await http_request(port, "GET", polling(b64=b64))
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    [(packet_type, data)] = eio3.decode_payload(body)
    assert packet_type == eio3.OPEN
    return json.loads(data), body


# --------------------------------------------------------------------------- handshake


async def test_eio3_refused_when_the_option_is_off(engine_factory):
    _, app, port = await engine_factory(allow_eio3=False)
    status, _, body = await http_request(port, "GET", polling())
    assert status == 400
    assert json.loads(body) == {"code": 5, "message": "Unsupported protocol version"}
    assert app.sessions == []


async def test_handshake_is_a_v3_payload_without_max_payload(engine_factory):
    _, app, port = await engine_factory(ping_interval=1.5, ping_timeout=0.5)
    info, body = await handshake(port)
    assert body.startswith(f"{len(body) - body.index(b':') - 1}:0".encode())
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout"}
    assert info["upgrades"] == ["websocket"]
    assert (info["pingInterval"], info["pingTimeout"]) == (1500, 500)
    assert app.sessions[0].protocol == 3
    # v4 still works on the same server, with its own open packet
    status, _, body = await http_request(port, "GET", "/engine.io/?EIO=4&transport=polling")
    assert status == 200 and json.loads(body[1:])["maxPayload"] == 1_000_000


async def test_jsonp_polling_is_refused_explicitly(engine_factory):
    _, app, port = await engine_factory()
    status, _, body = await http_request(port, "GET", polling() + "&j=0")
    assert status == 400 and json.loads(body)["code"] == 0
    assert app.sessions == []


async def test_other_protocol_on_an_open_session_is_a_bad_request(engine_factory):
    _, _app, port = await engine_factory()
    info, _ = await handshake(port)
    status, _, body = await http_request(port, "GET", polling(info["sid"], eio=4))
    assert status == 400 and json.loads(body)["code"] == 3


# --------------------------------------------------------------------------- polling


async def test_polling_messages_with_utf16_lengths(engine_factory):
    _, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    text = "h\u00e9llo \U0001f600 \u2028:1:2"
    body = eio3.encode_payload(["4" + text, "4second"]).encode()
    status, _, reply = await http_request(port, "POST", polling(sid), body)
    assert (status, reply) == (200, b"ok")
    assert app.received == [text, "second"]
    status, _headers, reply = await http_request(port, "GET", polling(sid))
    assert reply.decode() == eio3.encode_payload(["4" + text, "4second"])
    assert reply.startswith(b"15:4h")  # 15 UTF-16 units: the emoji counts 2


async def test_client_ping_gets_a_pong(engine_factory):
    _, app, port = await engine_factory()
    sid = (await handshake(port))[0]["sid"]
    await http_request(port, "POST", polling(sid), b"1:25:2ping")
    _, _, reply = await http_request(port, "GET", polling(sid))
    assert eio3.decode_payload(reply) == [(3, ""), (3, "ping")]
    assert app.sessions[0].closed is False


async def test_missing_pings_close_the_session_promptly(engine_factory):
    # v3: no ping within pingInterval + pingTimeout (0.3 + 0.2 s) closes it, to the timer
    _, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    start = time.monotonic()
    sid = (await handshake(port))[0]["sid"]
    await until(lambda: sid in app.closed)
    reason, when = app.closed[sid]
    assert reason == "ping timeout"
    assert 0.45 <= when - start < 0.7


async def test_pings_keep_the_session_alive(engine_factory):
    _, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    sid = (await handshake(port))[0]["sid"]
    for _ in range(4):  # 1.0 s in all, twice the deadline
        await asyncio.sleep(0.25)
        await http_request(port, "POST", polling(sid), b"1:2")
    assert sid not in app.closed
    # a pong from a v3 client is a protocol error (the server never pings in v3)
    await http_request(port, "POST", polling(sid), b"1:3")
    await until(lambda: sid in app.closed)
    assert app.closed[sid][0] == "parse error"


# Closing as Node's engine.io does for v3 too: a close packet from the client, a parse error or a
# ping timeout end the session at once (the next request with its sid is "Session ID unknown").


async def test_ping_timeout_forgets_the_session_at_once(engine_factory):
    engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    started = time.monotonic()
    sid = (await handshake(port))[0]["sid"]
    while time.monotonic() - started < 0.4:  # the client has pingInterval + pingTimeout to ping
        assert sid in engine.sessions and sid not in app.closed
        await asyncio.sleep(0.01)
    await until(lambda: sid in app.closed)
    reason, closed_at = app.closed[sid]
    assert reason == "ping timeout" and closed_at - started < 0.5 + 0.5
    status, _, body = await http_request(port, "GET", polling(sid))
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    status, _, body = await http_request(port, "POST", polling(sid), b"1:2")
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


@pytest.mark.parametrize("held_get", [False, True], ids=["idle", "get-held"])
async def test_invalid_post_payload_forgets_the_session_at_once(engine_factory, held_get):
    engine, app, port = await engine_factory()
    sid = (await handshake(port))[0]["sid"]
    if held_get:
        held = asyncio.ensure_future(http_request(port, "GET", polling(sid)))
        await until(lambda: app.sessions[0].writable)
    status, _, _ = await http_request(port, "POST", polling(sid), b"abc")
    assert status == 400 and app.closed[sid][0] == "parse error"
    if held_get:
        assert (await held)[:3:2] == (200, b"1:1")
    status, _, body = await http_request(port, "GET", polling(sid))
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    assert sid not in engine.sessions


@pytest.mark.parametrize("held_get", [False, True], ids=["idle", "get-held"])
async def test_client_close_packet_forgets_the_session_at_once(engine_factory, held_get):
    engine, app, port = await engine_factory()
    sid = (await handshake(port))[0]["sid"]
    if held_get:
        held = asyncio.ensure_future(http_request(port, "GET", polling(sid)))
        await until(lambda: app.sessions[0].writable)
    assert (await http_request(port, "POST", polling(sid), b"1:1"))[:3:2] == (200, b"ok")
    if held_get:
        assert (await held)[:3:2] == (200, b"1:6")  # a noop, as Node
    assert app.closed[sid][0] == "transport close"
    status, _, body = await http_request(port, "GET", polling(sid))
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    assert sid not in engine.sessions


async def test_server_close_waits_for_the_client_to_collect_the_close_packet(engine_factory):
    engine, app, port = await engine_factory()
    sid = (await handshake(port))[0]["sid"]
    app.sessions[0].send("bye")
    app.sessions[0].close()
    assert sid in engine.sessions
    assert (await http_request(port, "GET", polling(sid)))[2] == b"4:4bye"
    assert (await http_request(port, "GET", polling(sid)))[2] == b"1:1"
    status, _, body = await http_request(port, "GET", polling(sid))
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


async def test_binary_as_base64_when_the_client_asks(engine_factory):
    _, app, port = await engine_factory()
    sid = (await handshake(port, b64=True))[0]["sid"]
    await http_request(port, "POST", polling(sid), b"6:b4AAH/")
    assert app.received == [b"\x00\x01\xff"]
    _, headers, reply = await http_request(port, "GET", polling(sid))
    assert headers["content-type"].startswith("text/plain")
    assert reply == b"6:b4AAH/"


async def test_binary_payloads_for_xhr2_clients(engine_factory):
    _, app, port = await engine_factory()
    sid = (await handshake(port, b64=False))[0]["sid"]
    body = eio3.encode_payload(["4text", b"\x00\x01\xff"], supports_binary=True)
    status, _, reply = await http_request(port, "POST", polling(sid, b64=False), body, OCTET)
    assert (status, reply) == (200, b"ok")
    assert app.received == ["text", b"\x00\x01\xff"]
    _, headers, reply = await http_request(port, "GET", polling(sid, b64=False))
    assert headers["content-type"] == "application/octet-stream"
    assert eio3.decode_payload(reply, binary=True) == [(4, "text"), (4, b"\x00\x01\xff")]
    # text only: a text payload
    app.sessions[0].send("plain")
    _, headers, reply = await http_request(port, "GET", polling(sid, b64=False))
    assert headers["content-type"].startswith("text/plain") and reply == b"6:4plain"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"5:4hello", {}),  # length one short
        (b"99:4", {}),
        (b"x:4", {}),
        ("2:4\U0001f600".encode(), {}),  # splits the surrogate pair
        (b"\x00\x09\xff4", OCTET),  # past the end
        (b"\x01\x02\xff\x02a", OCTET),  # binary non-message
        (b"\xff\xfe", {}),
    ],
)
async def test_bad_payload_closes_only_that_session(engine_factory, body, headers):
    _, app, port = await engine_factory()
    bad = (await handshake(port))[0]["sid"]
    good = (await handshake(port))[0]["sid"]
    status, _, _ = await http_request(port, "POST", polling(bad), body, headers)
    assert status == 400
    await until(lambda: bad in app.closed)
    assert app.closed[bad][0] == "parse error"
    await http_request(port, "POST", polling(good), b"3:4ok")
    _, _, reply = await http_request(port, "GET", polling(good))
    assert reply == b"3:4ok" and good not in app.closed


# --------------------------------------------------------------------------- WebSocket


async def test_websocket_binary_carries_the_type_byte(engine_factory):
    _, app, port = await engine_factory()
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=3&transport=websocket")
    try:
        opened = await ws.recv()
        assert opened.startswith("0") and "maxPayload" not in opened
        ws.send("2")
        assert await ws.recv() == "3"
        ws.send("2probe")
        assert await ws.recv() == "3probe"
        ws.send(b"\x04\x00\xff")
        assert await ws.recv() == b"\x04\x00\xff"
        assert app.received == [b"\x00\xff"]
        ws.send("4hi")
        assert await ws.recv() == "4hi"
        ws.send("b4AQ==")  # a base64 message is accepted on a WebSocket too
        assert await ws.recv() == b"\x04\x01"
        ws.send(b"\x02oops")  # binary that is not a message: closes the session
        assert await ws.wait_closed() == 1000
        assert app.closed[app.sessions[0].sid][0] == "parse error"
    finally:
        await ws.close()


async def test_websocket_base64_mode(engine_factory):
    _, _app, port = await engine_factory()
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=3&transport=websocket&b64=1")
    try:
        await ws.recv()
        ws.send("b4AAE=")
        assert await ws.recv() == "b4AAE="
    finally:
        await ws.close()


async def test_upgrade_keeps_order_and_binary_framing(engine_factory):
    _, app, port = await engine_factory()
    sid = (await handshake(port, b64=False))[0]["sid"]
    session = app.sessions[0]
    ws = await WebSocketClient.connect(port, f"/engine.io/?EIO=3&transport=websocket&sid={sid}")
    try:
        ws.send("2probe")
        assert await ws.recv() == "3probe"
        # queued for polling while upgrading: leaves over the WebSocket, v3-framed, in order
        session.send("before")
        session.send(b"\x07")
        ws.send("5")
        assert await ws.recv() == "4before"
        assert await ws.recv() == b"\x04\x07"
        assert session.transport_name == "websocket"
        ws.send("2")
        assert await ws.recv() == "3"
        session.send(b"\x08")
        assert await ws.recv() == b"\x04\x08"
    finally:
        await ws.close()
