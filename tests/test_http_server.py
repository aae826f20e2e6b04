"""fastsio.http over real sockets: requests, keep-alive, pipelining, deferred answers, limits.

Every test runs on a plain asyncio loop and on uvloop (the ``run`` fixture). The helpers here
(``serve``, ``fetch``, ``read_response``...) are also used by the other tests/test_http_* files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

from fastsio.http import HttpServer, Request

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
TIMEOUT = 5.0
TEXT = [("Content-Type", "text/plain")]


def run_on(factory: Callable[[], asyncio.AbstractEventLoop], coro: Any, timeout: float = 10.0):
    """Run ``coro`` to completion on a fresh loop from ``factory`` (bounded by ``timeout``)."""
    loop = factory()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    """``run(coro)``: runs the test body on a plain asyncio loop, then again on uvloop."""
    return lambda coro, timeout=10.0: run_on(LOOPS[request.param], coro, timeout)


@contextlib.asynccontextmanager
async def serve(routes: dict[str, Callable[[Request], None]] | None = None, **options: Any):
    """A started HttpServer on 127.0.0.1 (free port) -> (server, port); closed on exit."""
    server = HttpServer(**options)
    for prefix, handler in (routes or {}).items():
        server.mount(prefix, handler)
    listener = await server.start("127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, port
    finally:
        await server.close()


def request_bytes(
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1"]
    headers = dict(headers or {})
    if body and "Transfer-Encoding" not in headers:
        headers.setdefault("Content-Length", str(len(body)))
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(
    reader: asyncio.StreamReader, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response: (status, headers with lower-case names, body by Content-Length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    length = int(headers.get("content-length", "0"))
    body = b""
    if length and not head_only:
        body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
    return int(status_line.split()[1]), headers, body


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def fetch(
    port: int,
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection."""
    reader, writer = await connect(port)
    try:
        writer.write(request_bytes(method, target, headers, body))
        return await read_response(reader, head_only=method == "HEAD")
    finally:
        writer.close()


async def read_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection (fails if it does not)."""
    return await asyncio.wait_for(reader.read(), TIMEOUT)


def echo(request: Request) -> None:
    text = (
        f"{request.method} {request.path} {sorted(request.query.items())} "
        f"{request.query_string} {request.url} {request.http_version} {request.client[0]} "
        f"{request.secure} {request.mount_path}"
    )
    request.respond(200, [*TEXT, ("X-Body-Length", str(len(request.body)))], text.encode())


# -- basics -----------------------------------------------------------------------------------


def test_get_and_post(run):
    seen: list[Request] = []

    def handler(request: Request) -> None:
        seen.append(request)
        request.respond(200, TEXT, b"got " + request.body)

    async def main():
        async with serve({"/": handler}) as (_, port):
            status, headers, body = await fetch(
                port, "GET", "/a%20b/c?x=1&y=%C3%A9&z", {"X-Thing": "One"}
            )
            assert (status, body) == (200, b"got ")
            assert headers["content-length"] == "4"
            status, headers, body = await fetch(port, "POST", "/submit", body=b"payload" * 1000)
            assert (status, body) == (200, b"got " + b"payload" * 1000)

    run(main())
    get, post = seen
    assert get.method == "GET"
    assert get.path == "/a b/c"
    assert get.url == "/a%20b/c?x=1&y=%C3%A9&z"
    assert get.query_string == "x=1&y=%C3%A9&z"
    assert get.query == {"x": "1", "y": "é", "z": ""}
    assert get.headers["x-thing"] == "One"
    assert get.headers["host"] == "127.0.0.1"
    assert get.client[0] == "127.0.0.1" and isinstance(get.client[1], int)
    assert get.secure is False and get.is_websocket is False
    assert get.body == b""
    assert post.method == "POST" and post.body == b"payload" * 1000
    assert get.responded and not get.closed


def test_repeated_headers_are_joined(run):
    seen: list[Request] = []

    def handler(request: Request) -> None:
        seen.append(request)
        request.respond(204)

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 204 and "content-length" not in headers
            writer.close()

    run(main())
    assert seen[0].headers["x-a"] == "1, 2"


def test_chunked_request_body(run):
    async def main():
        async with serve({"/": lambda r: r.respond(200, TEXT, r.body)}) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            )
            assert await read_response(reader) == (
                200,
                {"content-type": "text/plain", "content-length": "7"},
                b"abcdefg",
            )
            writer.close()

    run(main())


def test_keep_alive_serves_many_requests_on_one_connection(run):
    async def main():
        async with serve({"/": echo}) as (server, port):
            reader, writer = await connect(port)
            for i in range(5):
                writer.write(request_bytes("POST", f"/n{i}", body=b"x" * i))
                status, headers, body = await read_response(reader)
                assert status == 200 and body.startswith(f"POST /n{i} ".encode())
                assert headers["x-body-length"] == str(i)
                assert "connection" not in headers
            assert server.connection_count == 1
            writer.close()

    run(main())


def test_pipelined_requests_are_answered_in_order(run):
    def handler(request: Request) -> None:
        if request.path == "/slow":
            asyncio.get_running_loop().call_later(0.05, request.respond, 200, TEXT, b"slow")
        else:
            request.respond(200, TEXT, request.path.encode())

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                request_bytes("GET", "/slow")
                + request_bytes("POST", "/second", body=b"abc")
                + request_bytes("GET", "/slow")
                + request_bytes("GET", "/fourth")
            )
            bodies = [(await read_response(reader))[2] for _ in range(4)]
            assert bodies == [b"slow", b"/second", b"slow", b"/fourth"]
            # and the connection still works afterwards
            writer.write(request_bytes("GET", "/fifth"))
            assert (await read_response(reader))[2] == b"/fifth"
            writer.close()

    run(main())


def test_deferred_respond(run):
    def handler(request: Request) -> None:
        asyncio.get_running_loop().call_later(0.1, request.respond, 200, TEXT, b"late")

    async def main():
        async with serve({"/": handler}) as (_, port):
            started = time.monotonic()
            status, _, body = await fetch(port, "GET", "/poll")
            assert (status, body) == (200, b"late")
            assert time.monotonic() - started >= 0.09

    run(main())


def test_client_disconnect_while_pending_calls_on_close_once(run):
    pending: list[Request] = []
    closes: list[str] = []

    async def main():
        gone = asyncio.Event()

        def on_close() -> None:
            closes.append("closed")
            gone.set()

        def handler(request: Request) -> None:
            request.on_close = on_close
            pending.append(request)

        async with serve({"/": handler}) as (server, port):
            _, writer = await connect(port)
            writer.write(request_bytes("GET", "/poll"))
            while not pending:
                await asyncio.sleep(0.005)
            assert not pending[0].closed
            writer.close()
            await asyncio.wait_for(gone.wait(), TIMEOUT)
            assert pending[0].closed
            pending[0].respond(200, TEXT, b"too late")  # a no-op, no error
            await asyncio.sleep(0.02)
            assert server.connection_count == 0

    run(main())
    assert closes == ["closed"]


def test_respond_twice_is_a_noop(run):
    def handler(request: Request) -> None:
        request.respond(200, TEXT, b"first")
        request.respond(500, TEXT, b"second")

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/") + request_bytes("GET", "/"))
            assert (await read_response(reader))[2] == b"first"
            assert (await read_response(reader))[2] == b"first"
            writer.close()

    run(main())


def test_head_sends_length_without_body(run):
    async def main():
        async with serve({"/": lambda r: r.respond(200, TEXT, b"0123456789")}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("HEAD", "/") + request_bytes("GET", "/"))
            status, headers, _ = await read_response(reader, head_only=True)
            assert status == 200 and headers["content-length"] == "10"
            # the next response follows immediately: no body bytes were sent for HEAD
            assert (await read_response(reader))[2] == b"0123456789"
            writer.close()

    run(main())


def test_content_length_from_the_handler_is_replaced(run):
    def handler(request: Request) -> None:
        request.respond(200, [("content-length", "999"), *TEXT], b"four")

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/") + request_bytes("HEAD", "/"))
            assert (await read_response(reader))[1]["content-length"] == "4"
            # for HEAD the handler may state the length of what GET would send
            assert (await read_response(reader, head_only=True))[1]["content-length"] == "999"
            writer.close()

    run(main())


def test_expect_100_continue(run):
    async def main():
        async with serve({"/": lambda r: r.respond(200, TEXT, r.body)}) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert interim.startswith(b"HTTP/1.1 100 ")
            writer.write(b"hello")
            assert (await read_response(reader))[2] == b"hello"
            writer.close()

    run(main())


# -- connection management ------------------------------------------------------------------------


def test_http10_closes_unless_keep_alive(run):
    async def main():
        async with serve({"/": echo}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/old", version="1.0"))
            status, headers, body = await read_response(reader)
            assert status == 200 and headers["connection"] == "close"
            assert b" 1.0 " in body
            assert await read_eof(reader) == b""
            writer.close()

            reader, writer = await connect(port)
            for _ in range(2):
                writer.write(request_bytes("GET", "/", {"Connection": "keep-alive"}, version="1.0"))
                status, headers, _ = await read_response(reader)
                assert status == 200 and headers["connection"] == "keep-alive"
            writer.close()

    run(main())


def test_connection_close_is_honoured(run):
    async def main():
        async with serve({"/": echo}) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                request_bytes("GET", "/", {"Connection": "close"}) + request_bytes("GET", "/again")
            )
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers["connection"] == "close"
            assert await read_eof(reader) == b""  # the pipelined request is not answered
            writer.close()

    run(main())


def test_idle_keep_alive_connection_is_closed(run):
    async def main():
        async with serve({"/": echo}, keep_alive_timeout=0.1) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/"))
            await read_response(reader)
            started = time.monotonic()
            assert await read_eof(reader) == b""
            assert 0.05 < time.monotonic() - started < 2
            writer.close()

    run(main())


def test_pending_request_is_not_idle(run):
    def handler(request: Request) -> None:
        asyncio.get_running_loop().call_later(0.4, request.respond, 200, TEXT, b"held")

    async def main():
        async with serve({"/": handler}, keep_alive_timeout=0.1) as (_, port):
            assert (await fetch(port, "GET", "/"))[2] == b"held"

    run(main())


def test_server_close_ends_pending_requests(run):
    closes: list[str] = []

    def handler(request: Request) -> None:
        request.on_close = lambda: closes.append(request.path)

    async def main():
        server = HttpServer()
        server.mount("/", handler)
        listener = await server.start("127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        reader, writer = await connect(port)
        writer.write(request_bytes("GET", "/held"))
        await asyncio.sleep(0.05)
        serving = asyncio.ensure_future(server.serve_forever())
        await server.close()
        await asyncio.wait_for(serving, TIMEOUT)
        assert await read_eof(reader) == b""
        assert server.connection_count == 0
        with pytest.raises(OSError):
            await connect(port)
        writer.close()

    run(main())
    assert closes == ["/held"]


# -- errors ---------------------------------------------------------------------------------------


def test_body_too_large_by_content_length(run):
    async def main():
        handler = lambda r: r.respond(200, TEXT, b"%d" % len(r.body))
        async with serve({"/": handler}, max_body_size=1000) as (_, port):
            reader, writer = await connect(port)
            # Only the head is sent: the answer must not wait for the body.
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 413 and headers["connection"] == "close"
            assert await read_eof(reader) == b""
            writer.close()
            # exactly the limit is fine
            assert await fetch(port, "POST", "/", body=b"x" * 1000) == (
                200,
                {"content-type": "text/plain", "content-length": "4"},
                b"1000",
            )

    run(main())


def test_body_too_large_when_chunked(run):
    async def main():
        async with serve({"/": lambda r: r.respond(200)}, max_body_size=1000) as (_, port):
            reader, writer = await connect(port)
            chunk = b"258\r\n" + b"x" * 600 + b"\r\n"
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 2
            )
            assert (await read_response(reader))[0] == 413
            assert await read_eof(reader) == b""
            writer.close()

    run(main())


def test_request_head_too_large(run):
    async def main():
        async with serve({"/": echo}, max_header_size=4096) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/", {"X-Big": "a" * 5000}))
            assert (await read_response(reader))[0] == 431
            assert await read_eof(reader) == b""
            writer.close()
            # a head that never ends, sent in pieces
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nX-Long: ")
            for _ in range(6):
                writer.write(b"b" * 1000)
                await asyncio.sleep(0.01)
            assert (await read_response(reader))[0] == 431
            writer.close()
            assert (await fetch(port, "GET", "/ok"))[0] == 200

    run(main())


def test_garbage_gets_400_and_server_keeps_serving(run):
    async def main():
        async with serve({"/": echo}) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 400 and headers["connection"] == "close"
            assert await read_eof(reader) == b""
            writer.close()

            # a good request followed by garbage on one connection: answered, then 400
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/fine") + b"NOT HTTP AT ALL\r\n\r\n")
            assert (await read_response(reader))[0] == 200
            assert (await read_response(reader))[0] == 400
            writer.close()

            assert (await fetch(port, "GET", "/still"))[0] == 200

    run(main())


def test_handler_exception_gives_500_and_connection_keeps_serving(run, caplog):
    def handler(request: Request) -> None:
        if request.path == "/boom":
            raise RuntimeError("kaboom")
        request.respond(200, TEXT, b"ok")

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/boom"))
            assert (await read_response(reader))[0] == 500
            writer.write(request_bytes("GET", "/fine"))
            assert await read_response(reader) == (
                200,
                {"content-type": "text/plain", "content-length": "2"},
                b"ok",
            )
            writer.close()

    with caplog.at_level(logging.ERROR, logger="fastsio.http"):
        run(main())
    assert any("kaboom" in (record.exc_text or "") for record in caplog.records)


def test_bad_header_value_from_handler_gives_500(run):
    async def main():
        def handler(request: Request) -> None:
            request.respond(200, [("X-Bad", "snowman \u2603")], b"")

        async with serve({"/": handler}) as (_, port):
            assert (await fetch(port, "GET", "/"))[0] == 500

    run(main())


# -- routing --------------------------------------------------------------------------------------


def test_longest_prefix_wins_at_segment_boundaries(run):
    def tagged(tag: str) -> Callable[[Request], None]:
        return lambda r: r.respond(200, TEXT, f"{tag} {r.mount_path}".encode())

    async def main():
        routes = {"/a": tagged("a"), "/a/b/": tagged("ab"), "/socket.io/x.js": tagged("js")}
        async with serve(routes) as (server, port):
            cases = {
                "/a": b"a /a",
                "/a/": b"a /a",
                "/a/bc": b"a /a",
                "/a/b": b"ab /a/b",
                "/a/b/c?q=1": b"ab /a/b",
                "/socket.io/x.js": b"js /socket.io/x.js",
            }
            for target, expected in cases.items():
                assert (await fetch(port, "GET", target))[2] == expected, target
            assert (await fetch(port, "GET", "/ab"))[0] == 404
            assert (await fetch(port, "GET", "/"))[0] == 404
            server.mount("/", tagged("root"))
            assert (await fetch(port, "GET", "/ab"))[2] == b"root "

    run(main())


def test_mount_prefix_must_be_absolute():
    with pytest.raises(ValueError):
        HttpServer().mount("api", echo)


def test_route_remembers_paths_within_bounds():
    server = HttpServer()

    def first(request: Request) -> None:
        pass

    def second(request: Request) -> None:
        pass

    server.mount("/a", first)
    assert server.route("/a/x") == (first, "/a")
    assert server.route("/a/x") == (first, "/a")  # remembered
    # a new mount is seen at once, also for a path remembered before it
    server.mount("/a/x", second)
    assert server.route("/a/x") == (second, "/a/x")
    assert server.route("/a/y") == (first, "/a")
    # no mount: the default handler, never remembered (it may be changed)
    assert server.route("/b") == (server.default_handler, "")
    server.default_handler = second
    assert server.route("/b") == (second, "")
    # clients asking for ever new paths do not grow the memory past its bound
    server.mount("/", first)
    for i in range(2000):
        assert server.route(f"/p{i}") == (first, "")
    assert server.route("/" + "x" * 5000) == (first, "")
    assert 0 < len(server._routes) <= 256
    assert all(len(path) <= 200 for path in server._routes)


def test_prepared_headers_answer_as_a_list_does(run):
    from fastsio.http.request import PreparedHeaders

    prepared = PreparedHeaders([("Content-Type", "text/plain"), ("X-Extra", "1")])
    assert list(prepared) == [("Content-Type", "text/plain"), ("X-Extra", "1")]
    with pytest.raises(ValueError):
        PreparedHeaders([("Content-Length", "3")])

    def handler(request: Request) -> None:
        headers = prepared if request.path == "/prepared" else list(prepared)
        request.respond(200, headers, b"same")

    async def main():
        async with serve({"/": handler}) as (_, port):
            reader, writer = await connect(port)
            raw = []
            for path in ("/prepared", "/list", "/prepared"):
                writer.write(request_bytes("GET", path))
                raw.append(await asyncio.wait_for(reader.readuntil(b"same"), TIMEOUT))
            writer.write(request_bytes("HEAD", "/prepared", version="1.0"))
            status, headers, _ = await read_response(reader, head_only=True)
            writer.close()
        assert raw[0] == raw[1] == raw[2]
        assert raw[0].startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Extra: 1\r\n")
        assert b"Content-Length: 4\r\n" in raw[0]
        assert status == 200 and headers["content-length"] == "4"
        assert headers["x-extra"] == "1" and headers["connection"] == "close"

    run(main())
