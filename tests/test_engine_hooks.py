"""The engine's hooks (Node's ``io.engine``): ``connection_error``, the ``initial_headers`` /
``headers`` listeners, the sid cookie, ``clients_count``, ``generate_id``.

Raw HTTP and a wsproto WebSocket client against a real EngineServer on 127.0.0.1, where the
exact headers and error answers matter.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from fastsio.engine import EngineServer
from fastsio.engine.constants import ERROR_MESSAGES
from fastsio.engine.hooks import SidCookie, sid_cookie
from fastsio.engine.ids import owner_of
from tests.rawclient import WebSocketClient, http_exchange
from tests.test_engine import engine_factory, until  # noqa: F401 (a fixture)

POLLING = "/engine.io/?EIO=4&transport=polling"


@pytest.fixture
def hooked_engine(engine_factory):  # noqa: F811 (the imported fixture)
    """``await hooked_engine(setup, **options)``: test_engine's engine, ``setup(engine)`` run
    before any request (the hooks are set there)."""

    async def make(setup=None, **options):
        engine, app, port = await engine_factory(**options)
        if setup is not None:
            setup(engine)
        return engine, app, port

    return make


def values(headers: list, name: str) -> list[str]:
    return [value for key, value in headers if key == name]


async def open_polling(port: int) -> tuple[str, list]:
    status, headers, body = await http_exchange(port, "GET", POLLING)
    assert status == 200, body
    return json.loads(body[1:])["sid"], headers


# -- connection_error ---------------------------------------------------------------------------

REFUSALS = [
    # (method, query, request headers, status, code, context)
    ("GET", "EIO=4&transport=carrier-pigeon", {}, 400, 0, {"transport": "carrier-pigeon"}),
    ("GET", "EIO=9&transport=polling", {}, 400, 5, {"protocol": "9"}),
    ("GET", "EIO=4&transport=polling&sid=nope", {}, 400, 1, {"sid": "nope"}),
    ("POST", "EIO=4&transport=polling", {}, 400, 2, {"method": "POST"}),
    ("GET", "EIO=4&transport=websocket", {}, 400, 3, {"name": "TRANSPORT_HANDSHAKE_ERROR"}),
    (
        "GET",
        "EIO=4&transport=polling",
        {"Origin": "http://evil.example"},
        403,
        4,
        {"name": "ORIGIN_NOT_ALLOWED", "origin": "http://evil.example"},
    ),
]


@pytest.mark.parametrize(
    "method, query, headers, status, code, context",
    REFUSALS,
    ids=["transport", "protocol", "sid", "method", "websocket-without-upgrade", "origin"],
)
async def test_connection_error_for_each_refusal(
    hooked_engine, method, query, headers, status, code, context
):
    errors = []
    _engine, app, port = await hooked_engine(
        lambda engine: engine.on("connection_error", errors.append),
        cors_allowed_origins=["http://good.example"],
    )
    got_status, _, body = await http_exchange(port, method, f"/engine.io/?{query}", b"", headers)
    assert got_status == status
    assert json.loads(body) == {"code": code, "message": ERROR_MESSAGES[code]}
    assert len(errors) == 1
    error = errors[0]
    assert (error.code, error.message, error.context) == (code, ERROR_MESSAGES[code], context)
    assert error.request.method == method and error.request.query_string == query
    assert not app.sessions


async def test_connection_error_when_allow_request_refuses(hooked_engine):
    errors = []

    async def allow(request):
        await asyncio.sleep(0)
        return request.query.get("token") == "good"

    _, app, port = await hooked_engine(
        lambda engine: engine.on("connection_error", errors.append), allow_request=allow
    )
    status, _, body = await http_exchange(port, "GET", POLLING + "&token=bad")
    assert status == 403 and json.loads(body) == {"code": 4, "message": "Forbidden"}
    assert [(e.code, e.message, e.context) for e in errors] == [(4, "Forbidden", {})]
    await open_polling_with(port, "&token=good")
    assert len(errors) == 1 and len(app.sessions) == 1


async def open_polling_with(port: int, extra: str) -> str:
    status, _, body = await http_exchange(port, "GET", POLLING + extra)
    assert status == 200, body
    return json.loads(body[1:])["sid"]


async def test_connection_error_on_transport_mismatch(hooked_engine):
    errors = []
    _, _app, port = await hooked_engine(lambda engine: engine.on("connection_error", errors.append))
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    sid = json.loads((await ws.recv())[1:])["sid"]
    status, _, _ = await http_exchange(port, "GET", f"{POLLING}&sid={sid}")
    assert status == 400
    assert [(e.code, e.context) for e in errors] == [
        (
            3,
            {
                "name": "TRANSPORT_MISMATCH",
                "transport": "polling",
                "previousTransport": "websocket",
            },
        )
    ]
    await ws.close()


async def test_connection_error_listener_failure_is_logged_and_answer_sent(hooked_engine, caplog):
    def broken(error):
        raise RuntimeError("listener bug")

    calls = []
    _, _, port = await hooked_engine(
        lambda engine: (
            engine.on("connection_error", broken),
            engine.on("connection_error")(calls.append),
        )
    )
    with caplog.at_level(logging.ERROR, "fastsio.engine"):
        status, _, _ = await http_exchange(port, "GET", "/engine.io/?EIO=4&transport=nope")
    assert status == 400 and len(calls) == 1  # the next listener still ran
    assert "listener bug" in caplog.text


async def test_accepted_requests_emit_no_connection_error_and_off_removes(hooked_engine):
    errors = []
    engine, _, port = await hooked_engine(
        lambda engine: engine.on("connection_error", errors.append)
    )
    sid, _ = await open_polling(port)
    status, _, _ = await http_exchange(port, "POST", f"{POLLING}&sid={sid}", b"4hi")
    assert status == 200 and errors == []
    engine.off("connection_error", errors.append)
    await http_exchange(port, "GET", "/engine.io/?EIO=4&transport=nope")
    assert errors == []
    with pytest.raises(ValueError, match="unknown engine event 'conection_error'"):
        engine.on("conection_error", errors.append)


# -- headers hooks ------------------------------------------------------------------------------


def record_headers(engine, seen: list) -> None:
    @engine.on("initial_headers")
    def initial(headers, request):
        seen.append(("initial", request.method, request.query.get("sid")))
        headers["X-Initial"] = "yes"

    @engine.on("headers")
    def every(headers, request):
        seen.append(("every", request.method, request.query.get("sid")))
        headers["X-Every"] = request.method
        headers["X-Twice"] = ["a", "b"]


async def test_header_hooks_on_polling_answers(hooked_engine):
    seen: list = []
    _, _, port = await hooked_engine(lambda engine: record_headers(engine, seen))
    sid, headers = await open_polling(port)
    assert values(headers, "x-initial") == ["yes"] and values(headers, "x-every") == ["GET"]
    assert values(headers, "x-twice") == ["a", "b"]
    assert seen == [("initial", "GET", None), ("every", "GET", None)]
    seen.clear()

    status, headers, _ = await http_exchange(port, "POST", f"{POLLING}&sid={sid}", b"4hello")
    assert (
        status == 200
        and values(headers, "x-every") == ["POST"]
        and not values(headers, "x-initial")
    )
    status, headers, body = await http_exchange(port, "GET", f"{POLLING}&sid={sid}")
    assert body == b"4hello" and values(headers, "x-every") == ["GET"]
    assert not values(headers, "x-initial")
    assert seen == [("every", "POST", sid), ("every", "GET", sid)]
    seen.clear()

    # error answers get none (as Node)
    status, headers, _ = await http_exchange(port, "GET", f"{POLLING}&sid=unknown")
    assert status == 400 and not values(headers, "x-every") and seen == []


async def test_header_hooks_on_websocket_handshake_and_upgrade(hooked_engine):
    seen: list = []
    _, app, port = await hooked_engine(lambda engine: record_headers(engine, seen))
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    headers = ws.response_headers()
    assert values(headers, "x-initial") == ["yes"] and values(headers, "x-twice") == ["a", "b"]
    assert seen == [("initial", "GET", None), ("every", "GET", None)]
    await ws.close()
    seen.clear()

    sid, _ = await open_polling(port)
    seen.clear()
    upgrade = await WebSocketClient.connect(
        port, f"/engine.io/?EIO=4&transport=websocket&sid={sid}"
    )
    headers = upgrade.response_headers()
    assert values(headers, "x-every") == ["GET"] and not values(headers, "x-initial")
    assert seen == [("every", "GET", sid)]
    upgrade.send("2probe")
    assert await upgrade.recv() == "3probe"
    upgrade.send("5")
    await until(lambda: app.sessions[-1].transport_name == "websocket", what="the upgrade")
    await upgrade.close()


async def test_bad_headers_from_a_hook_are_left_out(hooked_engine, caplog):
    def hook(headers, request):
        headers["X-Split"] = "a\r\nSet-Cookie: evil=1"
        headers["Bad Name"] = "x"
        headers["X-Fine"] = "ok"

    def broken(headers, request):
        raise RuntimeError("hook bug")

    _, _, port = await hooked_engine(
        lambda engine: (engine.on("headers", hook), engine.on("initial_headers", broken))
    )
    with caplog.at_level(logging.ERROR, "fastsio.engine"):
        sid, headers = await open_polling(port)
    assert values(headers, "x-fine") == ["ok"]
    assert not values(headers, "x-split") and not values(headers, "set-cookie")
    assert "invalid value of X-Split" in caplog.text and "invalid header name" in caplog.text
    assert "hook bug" in caplog.text
    assert sid


# -- the sid cookie -----------------------------------------------------------------------------


async def test_cookie_on_the_polling_handshake_only(hooked_engine):
    _, _, port = await hooked_engine(cookie=True)
    sid, headers = await open_polling(port)
    assert values(headers, "set-cookie") == [f"io={sid}; Path=/; HttpOnly; SameSite=Lax"]
    _, headers, _ = await http_exchange(port, "POST", f"{POLLING}&sid={sid}", b"4x")
    assert not values(headers, "set-cookie")
    _, headers, _ = await http_exchange(port, "GET", f"{POLLING}&sid={sid}")
    assert not values(headers, "set-cookie")
    # Node's engine sets no cookie on a WebSocket's 101 (nothing to pin on one connection)
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    assert not values(ws.response_headers(), "set-cookie")
    await ws.close()


async def test_cookie_off_by_default(hooked_engine):
    _, _, port = await hooked_engine()
    _, headers = await open_polling(port)
    assert not values(headers, "set-cookie")


async def test_cookie_and_hook_cookies_together(hooked_engine):
    def hook(headers, request):
        headers["Set-Cookie"].append("theme=dark")

    _, _, port = await hooked_engine(
        lambda engine: engine.on("initial_headers", hook),
        cookie={"name": "sticky", "path": "/app", "samesite": "none", "secure": True},
    )
    sid, headers = await open_polling(port)
    assert values(headers, "set-cookie") == [
        f"sticky={sid}; Path=/app; HttpOnly; Secure; SameSite=None",
        "theme=dark",
    ]


@pytest.mark.parametrize(
    "option, expected",
    [
        (True, "io=S; Path=/; HttpOnly; SameSite=Lax"),
        ({"path": False}, "io=S; SameSite=Lax"),  # Node: httpOnly defaults to path !== false
        ({"httponly": False, "samesite": False}, "io=S; Path=/"),
        (
            {"max_age": 3600.7, "domain": "example.com", "samesite": "strict", "priority": "high"},
            (
                "io=S; Max-Age=3600; Domain=example.com; Path=/; HttpOnly; Priority=High; "
                "SameSite=Strict"
            ),
        ),
        (
            {"expires": "Wed, 21 Oct 2026 07:28:00 GMT", "partitioned": True, "secure": True},
            (
                "io=S; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT; HttpOnly; Secure; "
                "Partitioned; SameSite=Lax"
            ),
        ),
    ],
)
def test_cookie_attributes_in_nodes_order(option, expected):
    assert sid_cookie(option).header("S") == expected


@pytest.mark.parametrize(
    "option, problem",
    [
        ({"name": "bad name"}, "not a token"),
        ({"path": "/a;b"}, "cannot carry"),
        ({"samesite": "sometimes"}, "samesite"),
        ({"colour": "blue"}, "colour"),
        ("yes", "must be a bool or a dict"),
    ],
)
def test_bad_cookie_options_are_refused(option, problem):
    with pytest.raises((ValueError, TypeError), match=problem):
        EngineServer(cookie=option)
    assert sid_cookie(False) is None and isinstance(sid_cookie(SidCookie()), SidCookie)


# -- clients_count, connection ------------------------------------------------------------------


async def test_clients_count_and_connection_event(hooked_engine):
    opened = []
    engine, app, port = await hooked_engine(lambda engine: engine.on("connection", opened.append))
    assert engine.clients_count == 0
    sid, _ = await open_polling(port)
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    await ws.recv()
    assert engine.clients_count == 2
    assert [session.sid for session in opened] == [s.sid for s in app.sessions]
    await http_exchange(port, "POST", f"{POLLING}&sid={sid}", b"1")  # the client closes
    await ws.close()
    await until(lambda: engine.clients_count == 0, what="both sessions gone")


# -- generate_id --------------------------------------------------------------------------------


async def test_generate_id_sync_and_async(hooked_engine):
    counter = iter(range(100))

    def custom(request):
        return f"user-{request.query['user']}.{next(counter)}"

    engine, _, port = await hooked_engine(lambda engine: setattr(engine, "generate_id", custom))
    sid = await open_polling_with(port, "&user=ann")
    assert sid == "user-ann.0" and sid in engine.sessions
    status, _, body = await http_exchange(port, "POST", f"{POLLING}&sid={sid}", b"4ping")
    assert status == 200
    _, _, body = await http_exchange(port, "GET", f"{POLLING}&sid={sid}")
    assert body == b"4ping"

    async def slow_custom(request):
        await asyncio.sleep(0.01)
        return "from_db~7"

    engine.generate_id = slow_custom
    ws = await WebSocketClient.connect(port, "/engine.io/?EIO=4&transport=websocket")
    assert json.loads((await ws.recv())[1:])["sid"] == "from_db~7"
    await ws.close()


def _raise(request):
    raise LookupError("no id for you")


async def _raise_later(request):
    await asyncio.sleep(0)
    raise LookupError("no id for you")


@pytest.mark.parametrize(
    "generate, problem",
    [
        (_raise, "no id for you"),
        (_raise_later, "no id for you"),
        (lambda request: 42, "a session id is a str"),
        (lambda request: "", "a session id is a str"),
        (lambda request: "has space", "a session id is a str"),
        (lambda request: "x" * 129, "a session id is a str"),
        (lambda request: "taken", "a session has that id"),
    ],
    ids=["raises", "async-raises", "not-str", "empty", "space", "too-long", "duplicate"],
)
async def test_generate_id_failures_refuse_the_handshake(hooked_engine, generate, problem, caplog):
    errors = []
    engine, app, port = await hooked_engine(
        lambda engine: engine.on("connection_error", errors.append)
    )
    engine.generate_id = lambda request: "taken"
    assert await open_polling_with(port, "") == "taken"
    engine.generate_id = generate
    with caplog.at_level(logging.ERROR, "fastsio.engine"):
        status, _, body = await http_exchange(port, "GET", POLLING)
    assert status == 400 and json.loads(body) == {"code": 3, "message": "Bad request"}
    [error] = errors
    assert error.code == 3 and error.context["name"] == "ID_GENERATION_ERROR"
    assert problem in str(error.context["error"]) and problem in caplog.text
    assert len(app.sessions) == 1 and list(engine.sessions) == ["taken"]


async def test_generate_id_with_several_workers_keeps_the_owner_prefix(hooked_engine):
    class NoHandover:
        def hand_over(self, request, owner):
            return False

        def close(self):
            pass

    def setup(engine):
        engine.use_workers(2, 5, NoHandover())
        engine.generate_id = lambda request: "custom-1"

    engine, _, port = await hooked_engine(setup)
    sid = await open_polling_with(port, "")
    assert sid == "Ccustom-1"  # the worker's index in the id alphabet, then the app's id
    assert owner_of(sid, 5) == 2 == engine.sid_owner(sid)


# -- closing ------------------------------------------------------------------------------------


async def test_close_waits_for_polling_clients_to_collect_the_close_packet(hooked_engine):
    engine, app, port = await hooked_engine()
    sid, _ = await open_polling(port)
    closing = asyncio.ensure_future(engine.close(timeout=3))
    await until(lambda: engine._closing, what="close() under way")
    # new handshakes are refused meanwhile
    status, _, body = await http_exchange(port, "GET", POLLING)
    assert status == 503 and json.loads(body)["code"] == 3
    assert not closing.done()
    status, _, body = await http_exchange(port, "GET", f"{POLLING}&sid={sid}")
    assert (status, body) == (200, b"1")
    await asyncio.wait_for(closing, 3)
    assert app.closed[sid][0] == "server shutting down"
