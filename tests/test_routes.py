"""@sio.route: plain HTTP routes on the native server (and under ASGI, see test_asgi.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import fastsio
from tests.rawclient import http_request


@pytest.fixture
async def routed(server_factory):
    sio = fastsio.Server()

    @sio.route("/health")
    def health(request):
        return {"status": "ok", "query": request.query}

    @sio.route("/text")
    def text(request):
        return "plain"

    @sio.route("/page")
    def page(request):
        return "<h1>hi</h1>"

    @sio.route("/bytes")
    def raw(request):
        return b"\x00\x01"

    @sio.route("/empty")
    def empty(request):
        return None

    @sio.route("/login", methods=["POST"])
    async def login(request):
        await asyncio.sleep(0)
        user = request.json()
        if user.get("password") != "secret":
            return fastsio.Response(
                {"error": "bad password"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return {"token": "t-" + user["name"]}

    @sio.route("/broken")
    def broken(request):
        raise ValueError("handler bug")

    @sio.route("/not-json")
    def not_json(request):
        return {"a": object()}

    @sio.route("/file")
    def file(request):
        return Path(__file__)

    @sio.route("/async-broken")
    async def async_broken(request):
        raise KeyError("async bug")

    await sio.start("127.0.0.1", 0)
    yield sio
    await sio.close()


async def test_return_values(routed):
    port = routed.port
    status, headers, body = await http_request(port, "GET", "/health?a=1")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "query": {"a": "1"}}
    status, headers, body = await http_request(port, "GET", "/text")
    assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"plain")
    status, headers, _ = await http_request(port, "GET", "/page")
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, body = await http_request(port, "GET", "/bytes")
    assert (headers["content-type"], body) == ("application/octet-stream", b"\x00\x01")
    status, _, body = await http_request(port, "GET", "/empty")
    assert (status, body) == (204, b"")
    status, headers, body = await http_request(port, "GET", "/file")
    assert status == 200 and body == Path(__file__).read_bytes() and "etag" in headers


async def test_methods_head_and_405(routed):
    status, headers, body = await http_request(routed.port, "HEAD", "/health")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = await http_request(routed.port, "POST", "/health", b"{}")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, _ = await http_request(routed.port, "GET", "/login")
    assert status == 405 and headers["allow"] == "POST"


async def test_async_handler_with_a_json_body_and_a_response(routed):
    status, _, body = await http_request(
        routed.port, "POST", "/login", b'{"name": "ann", "password": "secret"}'
    )
    assert (status, json.loads(body)) == (200, {"token": "t-ann"})
    status, headers, body = await http_request(
        routed.port, "POST", "/login", b'{"name": "ann", "password": "no"}'
    )
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert json.loads(body) == {"error": "bad password"}


async def test_handler_errors_are_500_and_logged(routed, caplog):
    for path in ("/broken", "/async-broken", "/not-json"):
        status, _, body = await http_request(routed.port, "GET", path)
        assert (status, body) == (500, b"Internal Server Error"), path
    assert "handler bug" in caplog.text and "async bug" in caplog.text
    assert "route /not-json" in caplog.text
    # a bad body to an async handler is its exception too: 500, and the server goes on
    status, _, _ = await http_request(routed.port, "POST", "/login", b"not json")
    assert status == 500
    assert (await http_request(routed.port, "GET", "/text"))[0] == 200


async def test_routes_leave_socketio_static_files_and_404_alone(server_factory, tmp_path):
    (tmp_path / "index.html").write_text("<p>static</p>")
    sio = fastsio.Server(static_files=tmp_path)
    sio.route("/api", lambda request: {"api": True})
    await sio.start("127.0.0.1", 0)
    try:
        assert (await http_request(sio.port, "GET", "/"))[2] == b"<p>static</p>"
        assert json.loads((await http_request(sio.port, "GET", "/api"))[2]) == {"api": True}
        assert (await http_request(sio.port, "GET", "/api/more"))[0] == 404
        status, _, body = await http_request(sio.port, "GET", "/socket.io/?EIO=4&transport=polling")
        assert status == 200 and body.startswith(b"0{")
    finally:
        await sio.close()


def test_bad_route_and_response():
    sio = fastsio.Server()
    with pytest.raises(ValueError):
        sio.route("health", lambda request: "")
    with pytest.raises(ValueError):
        fastsio.Response(status=99)
