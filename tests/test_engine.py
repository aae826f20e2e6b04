"""Engine.IO v4 on its own: handshake, polling, WebSocket, upgrade, heartbeat, errors.

Raw HTTP requests and a wsproto WebSocket client talk to a real EngineServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from fastsio.engine import EngineServer
from tests.rawclient import WebSocketClient, http_request


class EchoApp:
    """Echoes every message; records sessions and close reasons."""

    def __init__(self) -> None:
        self.sessions = []
        self.closed: dict[str, tuple[str, float]] = {}
        self.received: list = []

    def on_connection(self, session) -> None:
        self.sessions.append(session)

        def on_message(data):
            self.received.append(data)
            session.send(data)

        def on_close(reason):
            self.closed[session.sid] = (reason, time.monotonic())

        session.on_message = on_message
        session.on_close = on_close


@pytest.fixture
async def engine_factory():
    started = []

    async def make(**options):
        app = EchoApp()
        engine = EngineServer(on_connection=app.on_connection, **options)
        server = await engine.start("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started.append(engine)
        return engine, app, port

    yield make
    for engine in started:
        await engine.close()


async def until(predicate, timeout=5.0, what="the condition"):
    """Wait (bounded) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


UNKNOWN_SID = {"code": 1, "message": "Session ID unknown"}


async def handshake(port, path="/engine.io/", extra=""):
    status, headers, body = await http_request(
        port, "GET", f"{path}?EIO=4&transport=polling{extra}"
    )
    assert status == 200, body
    assert body[:1] == b"0"
    return json.loads(body[1:]), headers


async def test_polling_handshake_open_packet(engine_factory):
    _engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    info, headers = await handshake(port)
    assert set(info) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
    assert info["upgrades"] == ["websocket"]
    assert info["pingInterval"] == 300 and info["pingTimeout"] == 200
    assert info["maxPayload"] == 1_000_000
    assert headers["content-type"].startswith("text/plain")
    assert [s.sid for s in app.sessions] == [info["sid"]]


async def test_polling_echo_text_binary_and_batching(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
    payload = "4hello\x1e4wörld\x1eb" + base64.b64encode(b"\x00\x01\xff").decode()
    status, _, body = await http_request(port, "POST", target, payload.encode())
    assert (status, body) == (200, b"ok")
    assert app.received == ["hello", "wörld", b"\x00\x01\xff"]
    status, _, body = await http_request(port, "GET", target)
    assert status == 200
    assert body.decode() == payload


async def test_pending_get_is_answered_when_a_message_is_sent(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
    poll = asyncio.ensure_future(http_request(port, "GET", target))
    await asyncio.sleep(0.1)
    assert not poll.done()
    app.sessions[0].send("late")
    app.sessions[0].send("later")
    _status, _, body = await poll
    assert body == b"4late\x1e4later"


@pytest.mark.parametrize(
    "query, method, status, code",
    [
        ("EIO=4&transport=carrier-pigeon", "GET", 400, 0),
        ("EIO=4&transport=polling&sid=nope", "GET", 400, 1),
        ("EIO=4&transport=polling", "POST", 400, 2),
        ("EIO=4&transport=websocket", "GET", 400, 3),
        ("EIO=3&transport=polling", "GET", 400, 5),
        ("transport=polling", "GET", 400, 5),
    ],
)
async def test_error_codes(engine_factory, query, method, status, code):
    engine, _app, port = await engine_factory()
    got_status, headers, body = await http_request(port, method, f"/engine.io/?{query}")
    assert got_status == status
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == code and isinstance(error["message"], str)
    assert engine.sessions == {}


async def test_allow_request_refusal_is_403_forbidden(engine_factory):
    _engine, _app, port = await engine_factory(allow_request=lambda request: "ok" in request.query)
    status, _, body = await http_request(port, "GET", "/engine.io/?EIO=4&transport=polling")
    assert status == 403 and json.loads(body) == {"code": 4, "message": "Forbidden"}
    await handshake(port, extra="&ok=1")


async def test_async_allow_request(engine_factory):
    async def allow(request):
        await asyncio.sleep(0.01)
        return request.headers.get("x-token") == "secret"

    _engine, _app, port = await engine_factory(allow_request=allow)
    status, _, _ = await http_request(port, "GET", "/engine.io/?EIO=4&transport=polling")
    assert status == 403
    status, _, body = await http_request(
        port, "GET", "/engine.io/?EIO=4&transport=polling", headers={"X-Token": "secret"}
    )
    assert status == 200 and body.startswith(b"0{")


async def test_second_pending_get_closes_the_session(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
    first = asyncio.ensure_future(http_request(port, "GET", target))
    await asyncio.sleep(0.05)
    status, _, body = await http_request(port, "GET", target)
    assert status == 400 and json.loads(body)["code"] == 3
    assert (await first)[2] == b"1"
    assert app.closed[info["sid"]][0] == "transport error"
    status, _, body = await http_request(port, "GET", target)
    assert json.loads(body)["code"] == 1


async def test_oversized_post_is_refused_and_only_that_session_closes(engine_factory):
    _engine, app, port = await engine_factory(max_http_buffer_size=1000)
    victim, _ = await handshake(port)
    healthy, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={victim['sid']}"
    status, _, _ = await http_request(port, "POST", target, b"4" + b"x" * 1500)
    assert status == 413
    assert victim["sid"] in app.closed and healthy["sid"] not in app.closed
    healthy_target = f"/engine.io/?EIO=4&transport=polling&sid={healthy['sid']}"
    await http_request(port, "POST", healthy_target, b"4still here")
    assert (await http_request(port, "GET", healthy_target))[2] == b"4still here"


async def test_huge_post_is_refused_by_the_http_layer(engine_factory):
    _engine, _app, port = await engine_factory(max_http_buffer_size=1000)
    victim, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={victim['sid']}"
    status, _, _ = await http_request(port, "POST", target, b"4" + b"x" * 100_000)
    assert status == 413
    await http_request(port, "POST", target, b"4small")
    assert (await http_request(port, "GET", target))[2] == b"4small"


async def test_malformed_polling_payload_closes_only_that_session(engine_factory):
    engine, app, port = await engine_factory()
    victim, _ = await handshake(port)
    healthy, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={victim['sid']}"
    status, _, body = await http_request(port, "POST", target, b"9nonsense")
    assert status == 400 and json.loads(body)["code"] == 3
    assert app.closed[victim["sid"]][0] == "parse error"
    assert healthy["sid"] in engine.sessions


async def test_heartbeat_closes_a_silent_polling_session_promptly(engine_factory):
    _engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    started = time.monotonic()
    info, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
    _status, _, body = await http_request(port, "GET", target)
    assert body == b"2"
    assert 0.25 <= time.monotonic() - started <= 0.45
    for _ in range(50):
        if info["sid"] in app.closed:
            break
        await asyncio.sleep(0.02)
    reason, closed_at = app.closed[info["sid"]]
    assert reason == "ping timeout"
    # interval 300 ms + timeout 200 ms: gone at ~500 ms, not at some later sweep.
    assert 0.45 <= closed_at - started <= 0.7


# -- closing: which closes forget the session at once (Node's engine.io rules) -------------------
#
# Node forgets a session the moment it closes, unless the server itself closed it: a close packet
# from the client, a parse error or a ping timeout end it at once (a held GET is released, and the
# next request with that sid is "Session ID unknown"); only a server-side close() waits for the
# client to collect the close packet.


async def test_ping_timeout_forgets_a_polling_session_at_once(engine_factory):
    engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    started = time.monotonic()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    # The client never polls: the ping waits in the queue, unanswered. Not gone before the ping
    # is due (0.3 s) plus most of the timeout...
    while time.monotonic() - started < 0.4:
        assert sid in engine.sessions and sid not in app.closed
        await asyncio.sleep(0.01)
    # ...and gone at interval + timeout (0.5 s; a generous margin for a busy machine).
    await until(lambda: sid in app.closed, what="the ping timeout")
    reason, closed_at = app.closed[sid]
    assert reason == "ping timeout"
    assert closed_at - started < 0.5 + 0.5
    # Forgotten with the close: the queued ping is not served, the sid is unknown.
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    assert sid not in engine.sessions


async def test_ping_timeout_releases_a_held_get_with_the_close_packet(engine_factory):
    _engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    assert (await http_request(port, "GET", target))[2] == b"2"  # the ping, never answered
    status, _, body = await http_request(port, "GET", target)  # held until the timeout
    assert (status, body) == (200, b"1")
    assert app.closed[sid][0] == "ping timeout"
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


@pytest.mark.parametrize("held_get", [False, True], ids=["idle", "get-held"])
async def test_invalid_post_payload_forgets_the_session_at_once(engine_factory, held_get):
    engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    if held_get:
        held = asyncio.ensure_future(http_request(port, "GET", target))
        await until(lambda: app.sessions[0].writable, what="the GET to be held")
    status, _, body = await http_request(port, "POST", target, b"abc")
    assert status == 400 and json.loads(body)["code"] == 3
    assert app.closed[sid][0] == "parse error"
    if held_get:
        assert (await held)[:3:2] == (200, b"1")  # as Node: the held GET gets the close packet
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    assert sid not in engine.sessions


@pytest.mark.parametrize("held_get", [False, True], ids=["idle", "get-held"])
async def test_client_close_packet_forgets_the_session_at_once(engine_factory, held_get):
    engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    if held_get:
        held = asyncio.ensure_future(http_request(port, "GET", target))
        await until(lambda: app.sessions[0].writable, what="the GET to be held")
    assert (await http_request(port, "POST", target, b"1"))[:3:2] == (200, b"ok")
    if held_get:
        # as Node: the client closed the transport, so its held GET is answered with a noop
        assert (await held)[:3:2] == (200, b"6")
    assert app.closed[sid][0] == "transport close"
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)
    assert sid not in engine.sessions


async def test_server_close_waits_for_the_client_to_collect_the_close_packet(engine_factory):
    engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    session = app.sessions[0]
    session.send("last words")
    session.close()
    assert app.closed[sid][0] == "forced close"
    assert sid in engine.sessions  # kept so the client can learn why
    # what was queued leaves first, then the close packet, then the session is gone
    assert (await http_request(port, "GET", target))[2] == b"4last words"
    assert (await http_request(port, "GET", target))[2] == b"1"
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


async def test_server_close_releases_a_held_get_with_the_close_packet(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    held = asyncio.ensure_future(http_request(port, "GET", target))
    await until(lambda: app.sessions[0].writable, what="the GET to be held")
    app.sessions[0].close()
    assert (await held)[:3:2] == (200, b"1")
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


async def test_server_close_forgets_an_uncollected_session_after_ping_timeout(engine_factory):
    engine, app, port = await engine_factory(ping_interval=5, ping_timeout=0.2)
    info, _ = await handshake(port)
    sid = info["sid"]
    app.sessions[0].close()
    assert sid in engine.sessions
    await until(lambda: sid not in engine.sessions, what="the closed session to be forgotten")


async def test_aborted_get_forgets_the_session_at_once(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await until(lambda: app.sessions[0].writable, what="the GET to be held")
    writer.close()  # the tab is closed with its GET held: Node's "transport error"
    await until(lambda: sid in app.closed, what="the session to end")
    assert app.closed[sid][0] == "transport error"
    status, _, body = await http_request(port, "GET", target)
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


@pytest.mark.parametrize("case", ["client-close", "parse-error", "ping-timeout"])
async def test_websocket_session_is_forgotten_when_it_ends(engine_factory, case):
    engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    sid = json.loads((await ws.recv())[1:])["sid"]
    if case == "client-close":
        # Node ignores a close packet on a WebSocket (its session ends at the ping timeout);
        # fastsio ends it at once, as the protocol's test suite expects
        ws.send("1")
    elif case == "parse-error":
        ws.send("abc")
    assert await ws.wait_closed() == 1000
    reason = {"client-close": "transport close", "parse-error": "parse error"}.get(
        case, "ping timeout"
    )
    assert app.closed[sid][0] == reason
    assert sid not in engine.sessions
    status, _, body = await http_request(
        port, "GET", f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    )
    assert (status, json.loads(body)) == (400, UNKNOWN_SID)


async def test_heartbeat_answered_keeps_the_session(engine_factory):
    _engine, app, port = await engine_factory(ping_interval=0.2, ping_timeout=0.15)
    info, _ = await handshake(port)
    target = f"/engine.io/?EIO=4&transport=polling&sid={info['sid']}"
    deadline = time.monotonic() + 1.0
    pings = 0
    while time.monotonic() < deadline:
        _, _, body = await http_request(port, "GET", target)
        if body == b"2":
            pings += 1
            await http_request(port, "POST", target, b"3")
    assert pings >= 3
    assert info["sid"] not in app.closed


async def test_websocket_only_session(engine_factory):
    _engine, app, port = await engine_factory(ping_interval=0.3, ping_timeout=0.2)
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    opened = await ws.recv()
    assert opened[0] == "0"
    info = json.loads(opened[1:])
    assert info["upgrades"] == [] and info["pingInterval"] == 300
    ws.send("4héllo")
    assert await ws.recv() == "4héllo"
    ws.send(b"\x01\x02")
    assert await ws.recv() == b"\x01\x02"
    # Heartbeat over WebSocket: answer one ping, then go silent.
    assert await ws.recv() == "2"
    ws.send("3")
    assert await ws.recv() == "2"
    assert await ws.wait_closed() == 1000
    assert app.closed[info["sid"]][0] == "ping timeout"


async def test_bad_websocket_packet_closes_only_that_session(engine_factory):
    _engine, app, port = await engine_factory()
    bad = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    good = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    bad_sid = json.loads((await bad.recv())[1:])["sid"]
    await good.recv()
    bad.send("x-garbage")
    await bad.wait_closed()
    assert app.closed[bad_sid][0] == "parse error"
    good.send("4fine")
    assert await good.recv() == "4fine"
    await good.close()


async def test_upgrade_loses_nothing_and_keeps_order(engine_factory):
    """Messages sent every 2 ms before, during and after the upgrade all arrive, once, in order.
    Counted, not timed: at least 10 go out while polling and 10 more after the upgrade, however
    slow the machine."""
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    session = app.sessions[0]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    loop = asyncio.get_running_loop()
    sent = 0
    ticking = True

    def tick():
        nonlocal sent
        if ticking and not session.closed:
            session.send(str(sent))
            sent += 1
            loop.call_later(0.002, tick)

    tick()
    received: list[str] = []

    async def poll_until_noop():
        while True:
            _, _, body = await http_request(port, "GET", target)
            packets = body.decode().split("\x1e")
            for packet in packets:
                if packet.startswith("4"):
                    received.append(packet[1:])
            if "6" in packets:
                return

    poller = asyncio.ensure_future(poll_until_noop())
    await until(lambda: sent >= 10, what="10 messages sent while polling")
    ws = await WebSocketClient.connect(port, f"/engine.io/?EIO=4&transport=websocket&sid={sid}")
    ws.send("2probe")
    assert await ws.recv() == "3probe"
    await asyncio.wait_for(poller, 5)
    ws.send("5")
    upgraded_after = sent
    await until(
        lambda: session.transport_name == "websocket" and sent >= upgraded_after + 10,
        what="the upgrade and 10 messages after it",
    )
    ticking = False
    while len(received) < sent:
        message = await ws.recv()
        assert isinstance(message, str) and message.startswith("4"), message
        received.append(message[1:])
    assert [int(x) for x in received] == list(range(sent))
    # The old transport is gone: polling on an upgraded session is a bad request.
    status, _, body = await http_request(port, "GET", target)
    assert status == 400 and json.loads(body)["code"] == 3
    await ws.close()


async def test_abandoned_upgrade_leaves_the_session_on_polling(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    session = app.sessions[0]
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    ws = await WebSocketClient.connect(port, f"/engine.io/?EIO=4&transport=websocket&sid={sid}")
    ws.send("2probe")
    assert await ws.recv() == "3probe"
    # the client pauses polling: a GET is answered at once, with a noop
    assert (await http_request(port, "GET", target))[2] == b"6"
    await ws.close()  # and gives the WebSocket up
    # polling goes on: once the server has seen the WebSocket go, GETs are held again
    deadline = time.monotonic() + 5
    while True:
        poll = asyncio.ensure_future(http_request(port, "GET", target))
        await until(
            lambda poll=poll: poll.done() or session.writable, what="the GET to be answered"
        )
        if not poll.done():
            break
        assert (await poll)[2] == b"6"  # not yet: still answered with a noop
        assert time.monotonic() < deadline, "polling did not resume"
    session.send("still polling")
    assert (await poll)[2] == b"4still polling"
    assert session.transport_name == "polling" and not session.closed


async def test_session_closed_during_an_upgrade_closes_the_probe(engine_factory):
    _engine, app, port = await engine_factory()
    info, _ = await handshake(port)
    sid = info["sid"]
    ws = await WebSocketClient.connect(port, f"/engine.io/?EIO=4&transport=websocket&sid={sid}")
    ws.send("2probe")
    assert await ws.recv() == "3probe"
    app.sessions[0].close()
    assert await ws.wait_closed() == 1000


async def test_upgrade_for_unknown_sid_is_refused(engine_factory):
    _engine, _app, port = await engine_factory()
    with pytest.raises(ConnectionRefusedError):
        await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket&sid=nope")


async def test_server_close_tells_sessions(engine_factory):
    engine, app, port = await engine_factory()
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    sid = json.loads((await ws.recv())[1:])["sid"]
    await engine.close()
    assert app.closed[sid][0] == "server shutting down"
    assert await ws.wait_closed() is not None


async def test_cors_headers_and_forbidden_origin(engine_factory):
    _engine, _app, port = await engine_factory(cors_allowed_origins=["http://good.example"])
    status, headers, _ = await http_request(
        port,
        "GET",
        "/engine.io/?EIO=4&transport=polling",
        headers={"Origin": "http://good.example"},
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://good.example"
    assert headers["access-control-allow-credentials"] == "true"
    status, headers, body = await http_request(
        port,
        "GET",
        "/engine.io/?EIO=4&transport=polling",
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403 and json.loads(body)["code"] == 4
    assert "access-control-allow-origin" not in headers
