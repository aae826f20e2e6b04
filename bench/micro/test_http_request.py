"""One keep-alive HTTP request through the native server's HttpProtocol: the head parsed by
httptools, the handler called, the response written (to a transport that only counts bytes).
What every long-polling request pays in the HTTP layer; the request timeouts (headers_timeout,
request_timeout) are set once per request here, so this is where they would show.
"""

from __future__ import annotations

import asyncio

from fastsio.http import HttpServer, Request
from fastsio.http.server import HttpProtocol  # the one the server uses (compiled when built)

REQUEST = (
    b"GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    b"Host: 127.0.0.1:3000\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"Connection: keep-alive\r\n\r\n"
)
POST = (
    b"POST /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA HTTP/1.1\r\n"
    b"Host: 127.0.0.1:3000\r\nContent-Type: text/plain;charset=UTF-8\r\n"
    b'Content-Length: 21\r\n\r\n42["message","hello"]'
)


class CountingTransport:
    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...


def answer(request: Request) -> None:
    request.respond(200, [("Content-Type", "text/plain; charset=UTF-8")], b"ok")


def make_protocol() -> tuple[HttpProtocol, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    server = HttpServer()
    server.mount("/", answer)
    protocol = HttpProtocol(server, loop)
    protocol.connection_made(CountingTransport())
    return protocol, loop


def test_keep_alive_get(benchmark):
    benchmark.group = "http request (HttpProtocol, keep-alive)"
    protocol, loop = make_protocol()
    try:
        benchmark(protocol.data_received, REQUEST)
        assert protocol.transport.written > 0 and protocol._current is None
    finally:
        loop.close()


def test_keep_alive_post(benchmark):
    benchmark.group = "http request (HttpProtocol, keep-alive)"
    protocol, loop = make_protocol()
    try:
        benchmark(protocol.data_received, POST)
        assert protocol.transport.written > 0 and protocol._current is None
    finally:
        loop.close()
