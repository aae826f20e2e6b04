"""WebSocket over fastsio.http: handshake, echo, control frames, closing, protocol errors.

The client side is wsproto (an independent implementation) over asyncio streams; malformed frames
are written raw. Every test runs on asyncio and on uvloop.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Any

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import (
    Request as WsRequest,
)

from fastsio.http import HttpServer, Request, WebSocketConnection
from tests.test_http_server import (
    LOOPS,
    TIMEOUT,
    connect,
    read_eof,
    read_response,
    request_bytes,
    run_on,
    serve,
)


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    return lambda coro, timeout=10.0: run_on(LOOPS[request.param], coro, timeout)


class Recorder:
    """A listener that records everything and (optionally) echoes messages back."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.conn: WebSocketConnection | None = None
        self.messages: list[str | bytes] = []
        self.closes: list[tuple[int, str]] = []
        self.drains = 0
        self.closed = asyncio.Event()

    def on_text(self, text: str) -> None:
        self.messages.append(text)
        if text == "raise":
            raise RuntimeError("listener bug")
        if text == "close me":
            self.conn.close(4000, "as you wish")
        elif self.echo:
            self.conn.send_text(text)

    def on_binary(self, data: bytes) -> None:
        self.messages.append(data)
        if self.echo:
            self.conn.send_binary(data)

    def on_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))
        self.closed.set()

    def on_drain(self) -> None:
        self.drains += 1

    async def wait_closed(self) -> tuple[int, str]:
        await asyncio.wait_for(self.closed.wait(), TIMEOUT)
        await asyncio.sleep(0.02)  # a second on_close would show up by now
        assert len(self.closes) == 1, self.closes
        return self.closes[0]


class WsApp:
    """Handler accepting WebSockets at /ws; every accepted connection gets a Recorder."""

    def __init__(self, **accept_options: Any) -> None:
        self.listeners: list[Recorder] = []
        self.requests: list[Request] = []
        self.accept_options = accept_options

    def __call__(self, request: Request) -> None:
        self.requests.append(request)
        if not request.is_websocket and request.path != "/ws/force":
            request.respond(400, [], b"not a websocket")
            return
        listener = Recorder()
        listener.conn = request.accept_websocket(
            listener, [("X-Extra", "yes")], **self.accept_options
        )
        self.listeners.append(listener)

    @property
    def listener(self) -> Recorder:
        return self.listeners[-1]


class WsClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Any] = []
        self.accept: AcceptConnection | None = None
        self.eof = False

    @classmethod
    async def connect(cls, port: int, target: str = "/ws", extra: bytes = b"") -> WsClient:
        reader, writer = await connect(port)
        client = cls(reader, writer)
        writer.write(client.ws.send(WsRequest(host="127.0.0.1", target=target)) + extra)
        event = await client.next_event()
        assert isinstance(event, AcceptConnection), event
        client.accept = event
        return client

    async def next_event(self) -> Any:
        """The next wsproto event; None once the server closed the TCP connection."""
        while not self.events:
            if self.eof:
                return None
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                # wsproto reports a bare TCP close as a 1006 close event: ignore it, None
                # tells the test that the connection is gone.
                self.eof = True
                continue
            self.ws.receive_data(data)
            self.events.extend(self.ws.events())
        return self.events.pop(0)

    async def next_message(self) -> Any:
        while True:
            event = await self.next_event()
            if event is None or isinstance(event, (Message, CloseConnection)):
                return event

    def send(self, event: Any) -> None:
        self.writer.write(self.ws.send(event))

    async def expect_close(self, answer: bool = True) -> CloseConnection:
        """Wait for the server's close frame, answer it, and wait for the TCP close."""
        event = await self.next_message()
        assert isinstance(event, CloseConnection), event
        if answer:
            self.send(event.response())
        assert await self.next_event() is None
        return event

    def close(self) -> None:
        self.writer.close()


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A raw client frame (masked unless told otherwise), for inputs wsproto will not produce."""
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def handshake(
    version: str = "13",
    key: str | None = None,
    method: str = "GET",
    extra: dict[str, str] | None = None,
) -> bytes:
    headers = {
        "Upgrade": "websocket",
        "Connection": "keep-alive, Upgrade",
        "Sec-WebSocket-Version": version,
        "Sec-WebSocket-Key": key if key is not None else base64.b64encode(os.urandom(16)).decode(),
        **(extra or {}),
    }
    return request_bytes(method, "/ws", headers)


# -- handshake ------------------------------------------------------------------------------------


def test_handshake_and_echo(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (server, port):
            client = await WsClient.connect(port, "/ws?EIO=4&transport=websocket")
            assert (b"x-extra", b"yes") in client.accept.extra_headers
            request = app.requests[0]
            assert request.is_websocket and request.responded
            assert request.query == {"EIO": "4", "transport": "websocket"}
            client.send(Message(data="hello"))
            assert (await client.next_message()).data == "hello"
            client.send(Message(data="snowman \u2603"))
            assert (await client.next_message()).data == "snowman \u2603"
            client.send(Message(data=b"\x00\x01binary"))
            assert (await client.next_message()).data == b"\x00\x01binary"
            big = os.urandom(70000)  # 64-bit length on the way back
            client.send(Message(data=big))
            event = await client.next_message()
            received = bytes(event.data)
            while not event.message_finished:
                event = await client.next_message()
                received += bytes(event.data)
            assert received == big
            assert server.connection_count == 1
            assert isinstance(app.listener.conn, WebSocketConnection)
            assert app.listener.conn.write_buffer_size() == 0
            client.send(CloseConnection(code=1000))
            await client.next_message()
            client.close()
            await app.listener.wait_closed()
            assert app.listener.messages[:3] == ["hello", "snowman \u2603", b"\x00\x01binary"]

    run(main())


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (handshake(key=""), 400),
        (handshake(key="not base64!"), 400),
        (handshake(key=base64.b64encode(b"short").decode()), 400),
        (handshake(method="POST"), 400),
        (handshake(version="8"), 426),
        (handshake(version=""), 426),
    ],
    ids=["no-key", "bad-key", "short-key", "post", "version-8", "no-version"],
)
def test_bad_handshake_is_refused_without_calling_the_handler(run, raw, status):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            reader, writer = await connect(port)
            writer.write(raw)
            got, headers, _ = await read_response(reader)
            assert got == status
            if status == 426:
                assert headers["sec-websocket-version"] == "13"
            assert await read_eof(reader) == b""
            writer.close()

    run(main())
    assert app.requests == []


def test_upgrade_header_without_connection_upgrade_is_plain_http(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/ws", {"Upgrade": "websocket"}))
            assert (await read_response(reader))[0] == 400
            writer.close()

    run(main())
    assert len(app.requests) == 1 and not app.requests[0].is_websocket


def test_accept_on_plain_request_is_a_500(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            reader, writer = await connect(port)
            writer.write(request_bytes("GET", "/ws/force"))
            assert (await read_response(reader))[0] == 500
            writer.close()

    run(main())


def test_handler_may_refuse_a_websocket_with_a_normal_response(run):
    def handler(request: Request) -> None:
        assert request.is_websocket
        request.respond(403, [], b"no")

    async def main():
        async with serve({"/ws": handler}) as (_, port):
            reader, writer = await connect(port)
            writer.write(handshake())
            status, headers, body = await read_response(reader)
            assert (status, body, headers["connection"]) == (403, b"no", "close")
            assert await read_eof(reader) == b""
            writer.close()

    run(main())


def test_frames_sent_with_the_handshake_are_delivered_after_accept(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            early = client_frame(1, b"early") + client_frame(2, b"bytes")
            client = await WsClient.connect(port, extra=early)
            assert (await client.next_message()).data == "early"
            assert (await client.next_message()).data == b"bytes"
            client.close()
            await app.listener.wait_closed()

    run(main())


def test_deferred_accept_and_client_gone_before_accept(run):
    listeners: list[Recorder] = []

    def handler(request: Request) -> None:
        def accept() -> None:
            listener = Recorder()
            listener.conn = request.accept_websocket(listener)
            listeners.append(listener)

        asyncio.get_running_loop().call_later(0.1, accept)

    async def main():
        async with serve({"/ws": handler}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Message(data="late"))
            assert (await client.next_message()).data == "late"
            client.close()
            assert await listeners[0].wait_closed() == (1006, "")

            _, writer = await connect(port)
            writer.write(handshake())
            await asyncio.sleep(0.02)
            writer.close()
            while len(listeners) < 2:
                await asyncio.sleep(0.01)
            conn = listeners[1].conn
            assert conn.closed
            conn.send_text("nobody there")  # no-op
            assert await listeners[1].wait_closed() == (1006, "")

    run(main())


# -- control frames and closing ---------------------------------------------------------------


def test_ping_gets_pong(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Ping(payload=b"are you there"))
            event = await client.next_event()
            assert isinstance(event, Pong) and event.payload == b"are you there"
            client.close()
            await app.listener.wait_closed()

    run(main())


def test_fragmented_message_with_ping_between_fragments(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Message(data="hel", message_finished=False))
            client.send(Ping(payload=b"mid"))
            client.send(Message(data="lo \u2603", message_finished=True))
            pong = await client.next_event()
            assert isinstance(pong, Pong) and pong.payload == b"mid"
            assert (await client.next_message()).data == "hello \u2603"
            # a multi-byte character split across raw fragments
            snowman = "\u2603".encode()
            client.writer.write(
                client_frame(1, b"a" + snowman[:1], fin=False) + client_frame(0, snowman[1:])
            )
            assert (await client.next_message()).data == "a\u2603"
            client.close()
            await app.listener.wait_closed()
            assert app.listener.messages == ["hello \u2603", "a\u2603"]

    run(main())


def test_client_initiated_close(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (server, port):
            client = await WsClient.connect(port)
            client.send(CloseConnection(code=4001, reason="bye"))
            event = await client.next_message()
            assert isinstance(event, CloseConnection) and event.code == 4001
            assert await client.next_event() is None  # the server closed TCP
            assert await app.listener.wait_closed() == (4001, "bye")
            assert server.connection_count == 0
            client.close()

    run(main())


def test_close_without_status_code(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.writer.write(client_frame(8, b""))
            event = await client.next_message()
            assert isinstance(event, CloseConnection)
            assert event.code == 1005  # an empty close frame came back
            assert await app.listener.wait_closed() == (1005, "")
            client.close()

    run(main())


def test_server_initiated_close(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Message(data="close me"))
            event = await client.expect_close()
            assert (event.code, event.reason) == (4000, "as you wish")
            assert await app.listener.wait_closed() == (4000, "as you wish")
            conn = app.listener.conn
            assert conn.closed
            conn.send_text("after close")  # no-ops
            conn.send_binary(b"x")
            conn.send_frame(b"\x81\x00")
            conn.close()
            client.close()

    run(main())


def test_close_with_an_invalid_code_raises_and_keeps_the_connection(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            conn = app.listener.conn
            with pytest.raises(ValueError):
                conn.close(1006)
            assert not conn.closed
            conn.close(1000, "x" * 200)  # the reason is cut to fit a control frame
            event = await client.expect_close()
            assert event.code == 1000 and event.reason == "x" * 123
            assert await app.listener.wait_closed() == (1000, "x" * 123)
            client.close()

    run(main())


def test_server_close_times_out_when_peer_does_not_answer(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            await asyncio.sleep(0.01)
            conn = app.listener.conn
            assert conn.close_timeout == 1.0  # the default
            conn.close_timeout = 0.2  # per connection (the compiled class's cannot be patched)
            started = time.monotonic()
            conn.close(1000, "going")
            client.send(Message(data="ignored"))  # data after our close frame is dropped
            event = await client.expect_close(answer=False)
            assert event.code == 1000
            assert 0.15 < time.monotonic() - started < 2
            assert await app.listener.wait_closed() == (1000, "going")
            assert app.listener.messages == []
            client.close()

    run(main())


def test_abrupt_disconnect_reports_1006(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (server, port):
            client = await WsClient.connect(port)
            client.send(Message(data="hi"))
            await client.next_message()
            client.writer.transport.abort()
            assert await app.listener.wait_closed() == (1006, "")
            assert server.connection_count == 0

    run(main())


def test_http_server_close_sends_1001(run):
    app = WsApp()

    async def main():
        server = HttpServer()
        server.mount("/ws", app)
        listener = await server.start("127.0.0.1", 0)
        client = await WsClient.connect(listener.sockets[0].getsockname()[1])
        closing = asyncio.ensure_future(server.close())
        event = await client.expect_close()
        assert event.code == 1001
        await asyncio.wait_for(closing, TIMEOUT)
        assert await app.listener.wait_closed() == (1001, "server shutting down")
        client.close()

    run(main())


# -- protocol errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(3, b"reserved opcode"), 1002),
        (client_frame(1, b"rsv bit", rsv=0x40), 1002),
        (client_frame(1, b"not masked", mask=False), 1002),
        (client_frame(0, b"continuation with nothing to continue"), 1002),
        (client_frame(9, b"fragmented ping", fin=False), 1002),
        (client_frame(9, b"p" * 126), 1002),
        (client_frame(8, b"\x03"), 1002),
        (client_frame(8, b"\x03\xed"), 1002),  # close code 1005 may not be sent
        (client_frame(1, b"\xff\xfe not utf-8"), 1007),
        (client_frame(2, b"x" * 2000), 1009),
        (client_frame(1, b"x" * 600, fin=False) + client_frame(0, b"x" * 600), 1009),
        # ws's default bound (16384 frames per message), on either connection class
        (client_frame(1, b"", fin=False) + client_frame(0, b"", fin=False) * 16384, 1008),
    ],
    ids=[
        "reserved-opcode",
        "rsv",
        "unmasked",
        "orphan-continuation",
        "fragmented-control",
        "long-control",
        "close-1-byte",
        "close-1005",
        "bad-utf8",
        "too-big",
        "too-big-fragmented",
        "too-many-fragments",
    ],
)
def test_protocol_error_closes_with_code(run, frame, code):
    app = WsApp(max_message_size=1000)

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.writer.write(frame + client_frame(1, b"after the error"))
            event = await client.next_message()
            assert isinstance(event, CloseConnection), event
            assert event.code == code
            assert await client.next_event() is None
            got_code, _ = await app.listener.wait_closed()
            assert got_code == code
            assert app.listener.messages == []
            client.close()

    run(main())


def test_listener_exception_closes_with_1011(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Message(data="raise"))
            event = await client.next_message()
            assert isinstance(event, CloseConnection) and event.code == 1011
            assert (await app.listener.wait_closed())[0] == 1011
            client.close()

    run(main())


# -- flow control and listener swap ---------------------------------------------------------------


def test_flow_control_and_listener_swap(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            first = app.listener
            conn = first.conn
            conn.pause_writing()
            assert conn.writing_paused
            conn.resume_writing()
            assert not conn.writing_paused and first.drains == 1

            second = Recorder()
            second.conn = conn
            conn.listener = second
            assert conn.listener is second
            client.send(Message(data="to the second"))
            assert (await client.next_message()).data == "to the second"
            assert second.messages == ["to the second"] and first.messages == []
            client.close()
            assert (await second.wait_closed())[0] == 1006
            assert first.closes == []

    run(main())


async def fill_write_buffer(conn: WebSocketConnection) -> None:
    """Send 64 KB frames to a client that does not read until the transport pauses writing."""
    conn.transport.set_write_buffer_limits(high=65536)
    frame = b"\x82\x7e\xff\xff" + b"x" * 65535
    for _ in range(200):  # ~13 MB: more than the kernel buffers hold
        conn.send_frame(frame)
        await asyncio.sleep(0)  # frames written outside data_received leave at tick end
        if conn.writing_paused:
            break


def test_write_buffer_fills_when_the_client_does_not_read(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            conn = app.listener.conn
            await fill_write_buffer(conn)
            assert conn.writing_paused and conn.write_buffer_size() > 0
            client.writer.transport.abort()
            await app.listener.wait_closed()

    run(main())


def test_protocol_error_with_a_backlog_aborts_after_close_timeout(run):
    """A peer that broke the protocol and does not read: our close frame cannot leave, so the
    connection is aborted close_timeout after the error, not held for ever."""
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            conn = app.listener.conn
            conn.close_timeout = 0.3
            await fill_write_buffer(conn)
            assert conn.write_buffer_size() > 0
            started = time.monotonic()
            client.writer.write(b"\x81\x02hi")  # unmasked: 1002
            code, _ = await app.listener.wait_closed()
            assert code == 1002
            assert 0.2 < time.monotonic() - started < 3
            client.writer.transport.abort()

    run(main())


def test_protocol_error_without_a_backlog_closes_at_once(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            conn = app.listener.conn
            conn.close_timeout = 5.0
            started = time.monotonic()
            client.writer.write(b"\x81\x02hi")  # unmasked: 1002
            assert (await app.listener.wait_closed())[0] == 1002
            assert time.monotonic() - started < 4.0  # not after close_timeout (5 s)
            event = await client.expect_close(answer=False)
            assert event.code == 1002
            client.close()

    run(main())


def test_text_message_type(run):
    app = WsApp()

    async def main():
        async with serve({"/ws": app}) as (_, port):
            client = await WsClient.connect(port)
            client.send(Message(data="typed"))
            event = await client.next_message()
            assert isinstance(event, TextMessage)
            client.close()
            await app.listener.wait_closed()

    run(main())
