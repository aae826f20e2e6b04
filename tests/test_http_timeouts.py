"""Slow clients (slowloris): a request head or body that trickles in is answered 408 and its
connection closed at ``headers_timeout`` / ``request_timeout`` counted from the request's first
byte (Node's http server: headersTimeout 60 s, requestTimeout 300 s), however often a byte comes;
a handler taking its time (a held long-poll) is not the client's fault and is never timed out."""

from __future__ import annotations

import asyncio
import time

import pytest

import fastsio
from fastsio.http import HttpServer, Request

from .test_http_server import TEXT, connect, read_eof, read_response, request_bytes, run, serve

__all__ = ["run"]  # the fixture: every test on asyncio's loop and on uvloop

# Every trickle is bounded: it stops once the server has answered, or after this many seconds.
TRICKLE_LIMIT = 20.0


def ok(request: Request) -> None:
    request.respond(200, TEXT, b"ok")


async def trickle(writer: asyncio.StreamWriter, data: bytes, interval: float) -> int:
    """Write ``data`` one byte every ``interval`` seconds until the server closes the
    connection; return how many bytes were written."""
    written = 0
    deadline = time.monotonic() + TRICKLE_LIMIT
    for byte in data:
        if writer.is_closing() or time.monotonic() > deadline:
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, OSError):
            break
        written += 1
        await asyncio.sleep(interval)
    return written


async def timed_out_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The 408 the server sends, then everything to EOF (the connection must close)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TRICKLE_LIMIT)
    rest = await read_eof(reader)
    return int(head.split()[1]), head + rest


def endless_head() -> bytes:
    # a head that never ends: far longer than any of these tests lets it trickle
    return b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100_000


def test_defaults_are_nodes():
    server = HttpServer()
    assert (server.headers_timeout, server.request_timeout) == (60.0, 300.0)
    sio = fastsio.Server()
    assert (sio.headers_timeout, sio.request_timeout) == (60, 300)


@pytest.mark.parametrize(
    "options",
    [
        {"headers_timeout": 0},
        {"request_timeout": -1},
        {"headers_timeout": 10, "request_timeout": 5},
    ],
)
def test_bad_timeouts_are_refused(options):
    with pytest.raises(ValueError, match="timeout"):
        HttpServer(**options)
    with pytest.raises(ValueError, match="timeout"):
        fastsio.Server(**options)


def test_a_head_sent_one_byte_at_a_time_gets_408(run):
    """Each byte arrives well within the timeout; the head as a whole does not."""
    calls: list[str] = []

    def handler(request: Request) -> None:
        calls.append(request.path)
        ok(request)

    async def main():
        options = {"headers_timeout": 0.3, "request_timeout": 1.0}
        async with serve({"/": handler}, **options) as (server, port):
            reader, writer = await connect(port)
            started = time.monotonic()
            sender = asyncio.ensure_future(trickle(writer, endless_head(), 0.02))
            status, data = await timed_out_response(reader)
            elapsed = time.monotonic() - started
            written = await sender
            writer.close()
            assert status == 408 and b"Connection: close" in data
            assert elapsed >= 0.3  # not before the timeout, counted from the first byte
            assert written < len(endless_head())  # stopped by the server, not by the end of data
            assert calls == []
            assert server.connection_count == 0

    run(main(), TRICKLE_LIMIT + 10)


def test_many_slow_heads_are_all_timed_out(run):
    """Fifty slowloris connections at once: each gets its 408, none is left open, and a normal
    request is served meanwhile."""
    count = 50

    async def one_slow_client(port: int) -> int:
        reader, writer = await connect(port)
        sender = asyncio.ensure_future(trickle(writer, endless_head(), 0.05))
        try:
            status, _ = await timed_out_response(reader)
        finally:
            sender.cancel()
            writer.close()
        return status

    async def main():
        async with serve({"/": ok}, headers_timeout=0.4, request_timeout=2.0) as (server, port):
            slow = [asyncio.ensure_future(one_slow_client(port)) for _ in range(count)]
            await asyncio.sleep(0.1)
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/"))
            assert (await read_response(reader))[0] == 200
            writer.close()
            assert await asyncio.gather(*slow) == [408] * count
            for _ in range(100):  # the server side of each close, bounded
                if server.connection_count == 0:
                    break
                await asyncio.sleep(0.02)
            assert server.connection_count == 0

    run(main(), TRICKLE_LIMIT + 20)


def test_a_body_that_trickles_gets_408_at_request_timeout(run):
    calls: list[bytes] = []

    def handler(request: Request) -> None:
        calls.append(request.body)
        ok(request)

    async def main():
        async with serve({"/": handler}, headers_timeout=0.2, request_timeout=0.6) as (_, port):
            reader, writer = await connect(port)
            started = time.monotonic()
            head = request_bytes("POST", "/", {"Content-Length": "100000"})
            writer.write(head)  # the head at once: headers_timeout is met
            sender = asyncio.ensure_future(trickle(writer, b"x" * 100_000, 0.02))
            status, _ = await timed_out_response(reader)
            elapsed = time.monotonic() - started
            await sender
            writer.close()
            assert status == 408
            assert elapsed >= 0.6  # the body had until request_timeout, not headers_timeout
            assert calls == []

    run(main(), TRICKLE_LIMIT + 10)


def test_a_slow_body_within_request_timeout_is_served(run):
    """The head timeout is over once the head is complete: a body that takes longer than
    headers_timeout but arrives within request_timeout is served."""

    def handler(request: Request) -> None:
        request.respond(200, TEXT, request.body)

    async def main():
        async with serve({"/": handler}, headers_timeout=0.2, request_timeout=5.0) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("POST", "/", {"Content-Length": "20"}))
            await trickle(writer, b"0123456789" * 2, 0.03)  # ~0.6 s, past headers_timeout
            status, _, body = await read_response(reader)
            writer.close()
            assert (status, body) == (200, b"0123456789" * 2)

    run(main())


def test_a_handler_that_holds_the_request_is_not_timed_out(run):
    """A long-poll is held by the server, not sent slowly by the client."""

    def held(request: Request) -> None:
        asyncio.get_running_loop().call_later(0.8, request.respond, 200, TEXT, b"held")

    async def main():
        options = {"headers_timeout": 0.1, "request_timeout": 0.2, "keep_alive_timeout": 0.2}
        async with serve({"/": held}, **options) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/"))
            status, _, body = await read_response(reader)
            writer.close()
            assert (status, body) == (200, b"held")

    run(main())


def test_a_slow_second_request_on_a_kept_alive_connection(run):
    """After a response the keep-alive timeout applies; once the next request's first byte has
    come, its own head timeout does (not the keep-alive one, not pushed back by later bytes)."""

    async def main():
        options = {"keep_alive_timeout": 5.0, "headers_timeout": 0.3, "request_timeout": 1.0}
        async with serve({"/": ok}, **options) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/"))
            assert (await read_response(reader))[0] == 200
            sender = asyncio.ensure_future(trickle(writer, endless_head(), 0.02))
            status, _ = await timed_out_response(reader)
            await sender
            writer.close()
            assert status == 408

    run(main(), TRICKLE_LIMIT + 10)


def test_a_slow_request_behind_a_pipelined_one(run):
    """A complete request is answered first, then the slow one behind it gets its 408."""

    async def main():
        async with serve({"/": ok}, headers_timeout=0.3, request_timeout=1.0) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/first") + b"GET /second HTTP/1.1\r\n")
            assert (await read_response(reader))[:3:2] == (200, b"ok")
            sender = asyncio.ensure_future(trickle(writer, b"Host: x\r\n" * 1000, 0.02))
            status, _ = await timed_out_response(reader)
            await sender
            writer.close()
            assert status == 408

    run(main(), TRICKLE_LIMIT + 10)


def test_timeouts_can_be_disabled(run):
    async def main():
        options = {"headers_timeout": None, "request_timeout": None, "keep_alive_timeout": 0.1}
        async with serve({"/": ok}, **options) as (server, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # half a head
            await asyncio.sleep(0.5)  # well past the keep-alive timeout: not idle, not timed out
            assert server.connection_count == 1
            writer.write(b"\r\n")
            assert (await read_response(reader))[0] == 200
            writer.close()

    run(main())


async def test_socketio_server_times_out_a_slow_head():
    sio = fastsio.Server(headers_timeout=0.3, request_timeout=1.0)
    await sio.start("127.0.0.1", 0)
    try:
        reader, writer = await connect(sio.port)
        head = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Slow: "
        sender = asyncio.ensure_future(trickle(writer, head + b"a" * 100_000, 0.02))
        status, _ = await timed_out_response(reader)
        await sender
        writer.close()
        assert status == 408
    finally:
        await sio.close()


def test_a_slow_request_behind_a_held_one_gets_408_after_it(run):
    """The 408 of a request trickling in behind one the server holds comes after that one's
    answer, in order."""

    def handler(request: Request) -> None:
        asyncio.get_running_loop().call_later(0.8, request.respond, 200, TEXT, b"held")

    async def main():
        async with serve({"/": handler}, headers_timeout=0.2, request_timeout=1.0) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/held") + b"GET /slow HTTP/1.1\r\n")
            await asyncio.sleep(0.5)  # the second head is overdue while the first is held
            assert (await read_response(reader))[::2] == (200, b"held")
            status, _ = await timed_out_response(reader)
            writer.close()
            assert status == 408

    run(main())


def test_a_streamed_body_that_trickles_is_cut_at_request_timeout(run):
    """A body streamed to its handler as it comes (the ASGI bridge's way): past request_timeout
    the connection is closed and the handler sees the client leave."""
    left: list[str] = []

    def handler(request: Request) -> None:
        request.on_close = lambda: left.append(request.path)

    async def main():
        async with serve({"/": handler}, headers_timeout=0.2, request_timeout=0.6) as (
            server,
            port,
        ):
            server.body_streamer = lambda request: True
            reader, writer = await connect(port)
            started = time.monotonic()
            writer.write(request_bytes("POST", "/up", {"Content-Length": "100000"}))
            sender = asyncio.ensure_future(trickle(writer, b"x" * 100_000, 0.02))
            try:
                assert await read_eof(reader) == b""
            except ConnectionResetError:
                # also closed: a trickled byte that reached the server after its last read
                # turns its close into a reset (TCP's rule for unread data; a busy machine)
                pass
            elapsed = time.monotonic() - started
            sender.cancel()
            writer.close()
            assert left == ["/up"] and elapsed >= 0.6

    run(main())
