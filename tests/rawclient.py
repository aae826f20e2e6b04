"""Minimal raw HTTP and WebSocket clients for protocol-level tests (no socket.io client involved).

The WebSocket side uses wsproto, an independent implementation, so a test cannot pass because the
server and the client share a bug.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

TIMEOUT = 5.0


async def http_request(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> tuple[int, dict[str, str], bytes]:
    """One request on its own connection; returns (status, headers with lower-case names, body)."""
    status, header_list, payload = await http_exchange(port, method, target, body, headers, timeout)
    return status, dict(header_list), payload


async def http_exchange(
    port: int,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """``http_request``, with every response header in order (lower-case names), repeated
    ones included."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        raw = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status, header_list = parse_head(head)
    return status, header_list, payload


def parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """A response head (status line and headers, without the blank line): the status and the
    headers in order, names lower-cased."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    parsed = []
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.append((name.strip().lower(), value.strip()))
    return status, parsed


class WebSocketClient:
    """A WebSocket client over asyncio streams, framing by wsproto."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: asyncio.Queue = asyncio.Queue()
        self.close_code: int | None = None
        self.rejected_status: int | None = None
        #: every byte received (the 101 included), for frame-level checks (``frames()``)
        self.raw = bytearray()
        #: the extensions the server accepted (wsproto objects)
        self.extensions: list = []
        self._pump_task: asyncio.Task | None = None
        self._text_parts: list[str] = []
        self._bytes_parts: list[bytes] = []

    @classmethod
    async def connect(cls, port: int, target: str, headers=(), extensions=()) -> WebSocketClient:
        """``extensions``: wsproto extension objects to offer (e.g. its PerMessageDeflate)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        request = Request(
            host="127.0.0.1",
            target=target,
            extra_headers=list(headers),
            extensions=list(extensions),
        )
        writer.write(client.ws.send(request))
        await client._handshake()
        return client

    def response_headers(self) -> list[tuple[str, str]]:
        """The headers of the server's 101, in order (lower-case names)."""
        head = bytes(self.raw).partition(b"\r\n\r\n")[0]
        return parse_head(head)[1]

    def frames(self) -> list[tuple[int, bytes]]:
        """The server frames received so far: (first byte, payload as sent, compressed or not)."""
        data = bytes(self.raw)
        pos = data.index(b"\r\n\r\n") + 4
        out = []
        while len(data) - pos >= 2:
            b0, n = data[pos], data[pos + 1] & 0x7F
            head = 2
            if n == 126:
                n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
            elif n == 127:
                n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
            if pos + head + n > len(data):
                break
            out.append((b0, data[pos + head : pos + head + n]))
            pos += head + n
        return out

    async def _handshake(self) -> None:
        while True:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                raise ConnectionError("closed during handshake")
            self.raw += data
            self.ws.receive_data(data)
            accepted = False
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = True
                    self.extensions = list(event.extensions)
                elif isinstance(event, (RejectConnection, RejectData)):
                    self.rejected_status = getattr(event, "status_code", None)
                    raise ConnectionRefusedError(f"rejected: {self.rejected_status}")
                else:  # frames that came in the same read as the 101
                    self._handle(event)
            if accepted:
                self._pump_task = asyncio.ensure_future(self._pump())
                return

    async def _pump(self) -> None:
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    self.ws.receive_data(None)
                else:
                    self.raw += data
                    self.ws.receive_data(data)
                for event in self.ws.events():
                    self._handle(event)
                if not data:
                    break
        except (OSError, LocalProtocolError, RemoteProtocolError):
            pass  # the connection is gone: the None below tells the reader
        finally:
            await self.messages.put(None)

    def _handle(self, event) -> None:
        if isinstance(event, TextMessage):
            self._text_parts.append(event.data)
            if event.message_finished:
                self.messages.put_nowait("".join(self._text_parts))
                self._text_parts = []
        elif isinstance(event, BytesMessage):
            self._bytes_parts.append(bytes(event.data))
            if event.message_finished:
                self.messages.put_nowait(b"".join(self._bytes_parts))
                self._bytes_parts = []
        elif isinstance(event, Ping):
            self.writer.write(self.ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.close_code is None:  # wsproto reports 1006 again at EOF after a close frame
                self.close_code = event.code
            with contextlib.suppress(OSError, LocalProtocolError):
                self.writer.write(self.ws.send(event.response()))

    def send(self, data: str | bytes) -> None:
        self.writer.write(self.ws.send(Message(data=data)))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv(self, timeout: float = TIMEOUT) -> str | bytes | None:
        """The next whole message, or None once the connection is closed."""
        return await asyncio.wait_for(self.messages.get(), timeout)

    async def wait_closed(self, timeout: float = TIMEOUT) -> int | None:
        while await self.recv(timeout) is not None:
            pass
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(OSError, LocalProtocolError):
            self.writer.write(self.ws.send(CloseConnection(code=1000)))
        self.writer.close()
        if self._pump_task is not None:
            self._pump_task.cancel()


async def http_get_url(url: str) -> tuple[int, bytes]:
    """GET ``url`` (urllib, in a thread): the status and the body."""

    def get():
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()

    return await asyncio.to_thread(get)
