"""Engine.IO v4 client (engine.io-client 6's behaviour): the handshake on HTTP long-polling or
WebSocket, the upgrade from polling to WebSocket (probe, pause, ``5``), the server's heartbeat,
and the closing reasons socket.io-client reports ("transport close", "transport error",
"ping timeout", "parse error", "forced close").

The layer above (the Manager) is the ``listener``: ``on_engine_message(str | bytes)``,
``on_engine_close(reason, description)`` (once), ``on_engine_upgrade(name)`` and
``on_engine_ping()``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson

from .. import _impl
from ..protocol.errors import ProtocolError
from ._transport import (
    HttpConnection,
    TransportError,
    Url,
    WebSocketClient,
    connect_http,
    connect_websocket,
    header_lines,
    query_string,
)

__all__ = ["EIO3Error", "EngineClient"]

logger = logging.getLogger("fastsio.client")

_engineio = _impl.engineio
_encode_payload = _engineio.encode_payload
_decode_payload = _engineio.decode_payload
_decode_packet = _engineio.decode_packet
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = range(7)

# an Engine.IO v3 polling payload: "<length>:<packet>" (text) or the binary form starting \x00/\x01
_EIO3_TEXT = re.compile(r"^\d+:")

EIO3_MESSAGE = (
    "the server speaks the Socket.IO 2.x protocol (Engine.IO v3); this client speaks Socket.IO "
    "v5 / Engine.IO v4 (socket.io 3 and later): upgrade the server (Node socket.io >= 3, "
    "python-socketio >= 5, fastsio)"
)


class EIO3Error(TransportError):
    """The server only speaks the 2.x protocol."""

    def __init__(self) -> None:
        super().__init__(EIO3_MESSAGE, "Engine.IO v3 handshake")


def _error_description(response: Any) -> str:
    body = response.body.decode("utf-8", "replace")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {response.status}: {body[:200]}"
    if isinstance(data, dict) and "message" in data:
        return f"HTTP {response.status}: {data.get('message')} (code {data.get('code')})"
    return f"HTTP {response.status}: {body[:200]}"


class EngineClient:
    """One Engine.IO session from the client side."""

    def __init__(
        self,
        listener: Any,
        url: Url,
        path: str,
        query: dict,
        headers: dict | None,
        transports: tuple,
        upgrade: bool,
        ssl: Any,
        max_message_size: int = 100_000_000,
    ) -> None:
        self.listener = listener
        self.url = url
        self.path = path
        self.query = dict(query)
        self._base_headers = header_lines(headers)
        #: cookies the server set (sticky sessions behind a load balancer), sent back on every
        #: request of this session, as engine.io-client does in Node with withCredentials
        self.cookies: dict[str, str] = {}
        self.transports = transports
        self.upgrade = upgrade
        self.ssl = ssl
        self.max_message_size = max_message_size
        self.loop = asyncio.get_running_loop()
        self.state = "opening"  # -> "open" -> "closed"
        self.sid: str | None = None
        self.transport_name: str | None = None
        self.ping_interval = 25.0
        self.ping_timeout = 20.0
        self.max_payload = 1_000_000
        self.upgrades: list = []
        self.upgrading = False
        # WebSocket transport (after an upgrade, or from the start)
        self.ws: WebSocketClient | None = None
        # polling transport
        self._get: HttpConnection | None = None
        self._post: HttpConnection | None = None
        self._posting = False
        self._polling = False
        self._poll_paused = False
        self._pause_waiter: asyncio.Future | None = None
        self._write_buffer: list = []
        self._flush_handle: Any = None
        self._tasks: set = set()
        self._ping_timer: Any = None
        self._closed_waiter: asyncio.Future = self.loop.create_future()
        # what the session does once the layer above is ready for its messages (see start())
        self._on_start: Any = None

    # -- helpers

    @property
    def headers(self) -> str:
        if not self.cookies:
            return self._base_headers
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        return f"{self._base_headers}Cookie: {cookie}\r\n"

    def _store_cookies(self, response: Any) -> None:
        for header in response.cookies:
            pair = header.split(";", 1)[0]
            name, sep, value = pair.partition("=")
            if sep and name.strip():
                self.cookies[name.strip()] = value.strip()

    def _target(self, transport: str) -> str:
        params = {"EIO": "4", "transport": transport}
        if self.sid is not None:
            params["sid"] = self.sid
        params.update(self.query)
        return f"{self.path}?{query_string(params)}"

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def writable(self) -> bool:
        if self.state != "open":
            return False
        ws = self.ws
        if ws is not None and not self.upgrading:
            return ws.writable
        return not self._posting and not self.upgrading

    # -- opening

    async def open(self) -> None:
        """Handshake on the first transport; TransportError (or EIO3Error) when it fails.

        Nothing reaches the listener before :meth:`start`: a server may send messages right
        behind its open packet, and the listener may not be ready for them yet.
        """
        try:
            if self.transports[0] == "websocket":
                await self._open_websocket()
            else:
                await self._open_polling()
        except BaseException:
            self._abort_transports()
            self.state = "closed"
            raise

    def _handshake(self, data: Any) -> None:
        if not isinstance(data, str):
            raise TransportError("the server's open packet is binary", data)
        try:
            info = orjson.loads(data)
            self.sid = info["sid"]
            self.upgrades = list(info.get("upgrades") or ())
            self.ping_interval = info["pingInterval"] / 1000
            self.ping_timeout = info["pingTimeout"] / 1000
            self.max_payload = info.get("maxPayload") or 1_000_000
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TransportError(f"bad open packet from the server: {data[:200]!r}", exc) from None
        if not isinstance(self.sid, str):
            raise TransportError(f"bad open packet from the server: {data[:200]!r}")

    async def _open_polling(self) -> None:
        self._get = await connect_http(self.url, self.ssl)
        response = await self._get.request("GET", self._target("polling"), self.headers)
        self._store_cookies(response)
        body = response.body
        if response.status != 200:
            raise TransportError(
                f"the server refused the connection ({_error_description(response)})",
                {"status": response.status, "body": body.decode("utf-8", "replace")},
            )
        if body[:1] in (b"\x00", b"\x01") or _EIO3_TEXT.match(body[:12].decode("latin-1")):
            raise EIO3Error()
        try:
            packets = _decode_payload(body)
        except ProtocolError as exc:
            raise TransportError(f"bad handshake from the server: {exc}", exc) from None
        if not packets or packets[0][0] != OPEN:
            raise TransportError(f"bad handshake from the server: {body[:200]!r}")
        self._handshake(packets[0][1])
        self.transport_name = "polling"
        self.state = "open"
        self._reset_ping_timer()
        self._on_start = lambda: self._start_polling(packets[1:])

    def _start_polling(self, packets: list) -> None:
        if packets:
            self._on_packets(packets)
        if self.state != "open":
            return
        self._spawn(self._poll_loop())
        if self.upgrade and "websocket" in self.upgrades and "websocket" in self.transports:
            self._spawn(self._probe())

    async def _open_websocket(self) -> None:
        ws = await connect_websocket(
            self.url, self._target("websocket"), self.headers, self.ssl, self.max_message_size
        )
        self.ws = ws
        opened = self.loop.create_future()

        class _First:
            def on_ws_text(self, text: str) -> None:
                if not opened.done():
                    opened.set_result(text)
                else:
                    ws.pending.append(text)

            def on_ws_binary(self, data: bytes) -> None:
                if not opened.done():
                    opened.set_exception(TransportError("binary message before the open packet"))
                else:
                    ws.pending.append(data)

            def on_ws_close(self, code: int, reason: str) -> None:
                if not opened.done():
                    opened.set_exception(
                        TransportError(f"WebSocket closed before the open packet ({code})")
                    )
                else:
                    engine.loop.call_soon(engine.on_ws_close, code, reason)

        engine = self
        ws.set_listener(_First())
        text = await opened
        if not text or text[0] != "0":
            if text == "40" or text.startswith("40"):
                raise EIO3Error()
            raise TransportError(f"bad open packet from the server: {text[:200]!r}")
        self._handshake(text[1:])
        self.transport_name = "websocket"
        self.state = "open"
        self._reset_ping_timer()
        self._on_start = lambda: ws.set_listener(self)

    def start(self) -> None:
        """Deliver what came after the open packet, and what comes next, to the listener."""
        on_start, self._on_start = self._on_start, None
        if on_start is not None and self.state == "open":
            on_start()

    # -- heartbeat

    def _reset_ping_timer(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._ping_timer = self.loop.call_later(
            self.ping_interval + self.ping_timeout, self._on_ping_timeout
        )

    def _on_ping_timeout(self) -> None:
        self._ping_timer = None
        if self.state == "open":
            self._on_close("ping timeout", None)

    # -- receiving

    def _on_packets(self, packets: list) -> None:
        for packet_type, data in packets:
            if self.state != "open":
                return
            if packet_type == MESSAGE:
                self.listener.on_engine_message(data)
            else:
                self._on_control(packet_type, data)

    def _on_control(self, packet_type: int, data: Any) -> None:
        if packet_type == PING:
            self._reset_ping_timer()
            self._send_packet("3")
            self.listener.on_engine_ping()
        elif packet_type == CLOSE:
            self._on_close("transport close", None)
        elif packet_type == NOOP or packet_type == PONG:
            pass
        else:
            logger.debug("ignored Engine.IO packet %r", packet_type)

    # WebSocket listener
    def on_ws_text(self, text: str) -> None:
        if text and text[0] == "4":
            self.listener.on_engine_message(text[1:])
            return
        try:
            packet_type, data = _decode_packet(text)
        except ProtocolError:
            self._on_close("parse error", text[:200])
            return
        self._on_control(packet_type, data)

    def on_ws_binary(self, data: bytes) -> None:
        self.listener.on_engine_message(data)

    def on_ws_close(self, code: int, reason: str) -> None:
        self._on_close("transport close", {"code": code, "reason": reason})

    # -- polling

    async def _poll_loop(self) -> None:
        while self.state == "open" and not self._poll_paused:
            conn = self._get
            try:
                if conn is None or conn.closed:
                    conn = self._get = await connect_http(self.url, self.ssl)
                self._polling = True
                response = await conn.request("GET", self._target("polling"), self.headers)
            except TransportError as exc:
                self._polling = False
                self._on_close("transport error", exc)
                return
            self._polling = False
            if self.state != "open":
                return
            if response.cookies:
                self._store_cookies(response)
            if response.status != 200:
                self._on_close("transport error", _error_description(response))
                return
            try:
                packets = _decode_payload(response.body)
            except ProtocolError as exc:
                self._on_close("parse error", exc)
                return
            self._on_packets(packets)
            self._check_paused()

    async def _post_packets(self, packets: list) -> None:
        self._posting = True
        try:
            conn = self._post
            if conn is None or conn.closed:
                conn = self._post = await connect_http(self.url, self.ssl)
            body = _encode_payload(packets).encode("utf-8")
            response = await conn.request("POST", self._target("polling"), self.headers, body)
        except TransportError as exc:
            self._posting = False
            self._on_close("transport error", exc)
            return
        self._posting = False
        if response.status != 200:
            self._on_close("transport error", _error_description(response))
            return
        self._check_paused()
        self._flush()

    def _check_paused(self) -> None:
        waiter = self._pause_waiter
        if waiter is not None and not self._polling and not self._posting and not waiter.done():
            waiter.set_result(None)

    # -- the upgrade

    async def _probe(self) -> None:
        try:
            ws = await asyncio.wait_for(
                connect_websocket(
                    self.url,
                    self._target("websocket"),
                    self.headers,
                    self.ssl,
                    self.max_message_size,
                ),
                self.ping_interval + self.ping_timeout,
            )
        except (TransportError, asyncio.TimeoutError) as exc:
            logger.debug("WebSocket upgrade failed: %r", exc)
            return
        try:
            if self.state != "open":
                ws.abort()
                return
            answered = self.loop.create_future()

            class _Probe:
                def on_ws_text(self, text: str) -> None:
                    if not answered.done():
                        answered.set_result(text)

                def on_ws_binary(self, data: bytes) -> None:
                    if not answered.done():
                        answered.set_result(None)

                def on_ws_close(self, code: int, reason: str) -> None:
                    if not answered.done():
                        answered.set_result(None)

            ws.set_listener(_Probe())
            ws.send_text("2probe")
            try:
                reply = await asyncio.wait_for(answered, self.ping_interval + self.ping_timeout)
            except asyncio.TimeoutError:
                reply = None
            if reply != "3probe" or self.state != "open":
                logger.debug("WebSocket probe failed: %r", reply)
                ws.abort()
                return
            # pause polling: no new GET, and wait for the GET and POST in flight
            self.upgrading = True
            self._poll_paused = True
            self._pause_waiter = self.loop.create_future()
            self._check_paused()
            try:
                await asyncio.wait_for(self._pause_waiter, self.ping_interval + self.ping_timeout)
            except asyncio.TimeoutError:
                self.upgrading = False
                self._on_close("transport error", "the upgrade's pause timed out")
                ws.abort()
                return
            if self.state != "open":
                ws.abort()
                return
            self.ws = ws
            self.transport_name = "websocket"
            ws.set_listener(self)
            ws.send_text("5")
            self.upgrading = False
            self._close_polling()
            self.listener.on_engine_upgrade("websocket")
            self._flush()
        except BaseException:
            if self.ws is not ws:
                ws.abort()
            raise

    def _close_polling(self) -> None:
        for conn in (self._get, self._post):
            if conn is not None:
                conn.close()
        self._get = self._post = None

    # -- sending

    def send(self, data: str | bytes) -> None:
        """One message (a Socket.IO packet or binary attachment)."""
        ws = self.ws
        if ws is not None and not self.upgrading:
            if type(data) is str:
                ws.send_text("4" + data)
            else:
                ws.send_binary(data)
            return
        self._send_packet("4" + data if type(data) is str else data)

    def _send_packet(self, packet: str | bytes) -> None:
        if self.state != "open":
            return
        ws = self.ws
        if ws is not None and not self.upgrading:
            if type(packet) is str:
                ws.send_text(packet)
            else:
                ws.send_binary(packet)
            return
        self._write_buffer.append(packet)
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        buffer = self._write_buffer
        if not buffer or self.state != "open" or self.upgrading:
            return
        ws = self.ws
        if ws is not None:
            self._write_buffer = []
            for packet in buffer:
                if type(packet) is str:
                    ws.send_text(packet)
                else:
                    ws.send_binary(packet)
            return
        if self._posting:
            return
        # as many packets as fit in the server's maxPayload (at least one)
        size = 0
        count = 0
        for packet in buffer:
            size += (len(packet) if type(packet) is str else len(packet) * 4 // 3 + 4) + 1
            if count and size > self.max_payload:
                break
            count += 1
        batch = buffer[:count]
        del buffer[:count]
        self._posting = True  # now: a close() right after must wait for this POST
        self._spawn(self._post_packets(batch))

    # -- closing

    def _abort_transports(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._close_polling()
        for task in tuple(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        if self.ws is not None:
            self.ws.abort()

    def _on_close(self, reason: str, description: Any) -> None:
        """The session ended by anything but our close(): tell the listener once."""
        if self.state == "closed":
            return
        self.state = "closed"
        self._abort_transports()
        if not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        self.listener.on_engine_close(reason, description)

    def close(self) -> asyncio.Future:
        """Close from the client side (reason "forced close"): what is buffered leaves first, then
        the close packet (polling) or the WebSocket close frame. Returns a future done once the
        connection is closed (bounded: 1 s for the server to answer)."""
        if self.state == "closed":
            return self._closed_waiter
        was_open = self.state == "open"
        self.state = "closed"
        if self._flush_handle is not None:  # what is buffered leaves with the close packet
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        self._spawn(self._close(was_open))
        self.listener.on_engine_close("forced close", None)
        return self._closed_waiter

    async def _close(self, was_open: bool) -> None:
        try:
            ws = self.ws
            if was_open and ws is not None and not self.upgrading:
                buffer = self._write_buffer
                self._write_buffer = []
                for packet in buffer:
                    ws.send_text(packet) if type(packet) is str else ws.send_binary(packet)
                ws.close()
                if not ws.closed:
                    waiter = self.loop.create_future()

                    class _Closed:
                        def on_ws_text(self, text: str) -> None:
                            pass

                        def on_ws_binary(self, data: bytes) -> None:
                            pass

                        def on_ws_close(self, code: int, reason: str) -> None:
                            if not waiter.done():
                                waiter.set_result(None)

                    ws.listener = _Closed()
                    try:
                        await asyncio.wait_for(waiter, 1.0)
                    except asyncio.TimeoutError:
                        pass
            elif was_open:
                # wait for a POST in flight, then send what is left and the close packet
                for _ in range(100):
                    if not self._posting:
                        break
                    await asyncio.sleep(0.01)
                # as engine.io-client: the buffer drains first, then the close packet in a POST
                # of its own (Node's server handles a DISCONNECT a tick late: in one payload
                # with the close packet it would come after the transport closed)
                batches = [self._write_buffer, ["1"]] if self._write_buffer else [["1"]]
                self._write_buffer = []
                for packets in batches:
                    conn = self._post
                    try:
                        if conn is None or conn.closed:
                            conn = self._post = await connect_http(self.url, self.ssl)
                        body = _encode_payload(packets).encode("utf-8")
                        await asyncio.wait_for(
                            conn.request("POST", self._target("polling"), self.headers, body), 1.0
                        )
                    except (TransportError, asyncio.TimeoutError):
                        break
        finally:
            self._abort_transports()
            if not self._closed_waiter.done():
                self._closed_waiter.set_result(None)
