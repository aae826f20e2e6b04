"""Fake Engine.IO sessions for testing the Socket.IO layer without sockets.

A ``FakeSession`` implements the engine contract (docs/architecture.md): ``sid``, ``request``,
``closed``, ``loop``, ``on_message``, ``on_close``, ``send``, ``send_prepared``, ``close``, ``writable``,
``write_buffer_size``. It records what the server sent, as Socket.IO packets (text without the
Engine.IO ``4`` prefix, binary attachments as bytes), and checks that prepared broadcast frames
match their packets.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from fastsio import _impl
from fastsio.protocol.socketio import Packet, decode_packet

_sids = itertools.count(1)


class FakeRequest:
    """The handshake request, as the engine's ``session.request`` shows it."""

    def __init__(
        self,
        headers: dict | None = None,
        query: dict | None = None,
        client: tuple = ("127.0.0.1", 50000),
        url: str = "/socket.io/?EIO=4&transport=polling",
        secure: bool = False,
    ) -> None:
        self.headers = headers if headers is not None else {"host": "localhost"}
        self.query = query if query is not None else {"EIO": "4", "transport": "polling"}
        self.client = client
        self.url = url
        self.secure = secure
        self.path = "/socket.io/"
        self.method = "GET"


class FakeSession:
    def __init__(self, request: FakeRequest | None = None) -> None:
        self.sid = f"eio{next(_sids)}"
        self.request = request if request is not None else FakeRequest()
        self.transport_name = "websocket"
        self.closed = False
        self.close_reason: str | None = None
        self.on_message: Any = lambda data: None
        self.on_close: Any = lambda reason: None
        #: Socket.IO packets sent (text without "4", or attachment bytes), in order
        self.sent: list = []
        #: how many of them came through send_prepared (broadcast fan-out)
        self.prepared = 0
        self.writable = True
        self.buffered = 0
        self.deflater = None  # no permessage-deflate (the broadcast fan-out reads it)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    # -- the engine contract (server -> client) --------------------------------------------------

    def send(self, data: Any, compress: bool = True) -> None:
        if self.closed:
            return
        assert isinstance(data, (str, bytes)), data
        self.sent.append(data)

    def send_prepared(self, packet: Any, frame: bytes) -> None:
        if self.closed:
            return
        websocket = _impl.websocket
        if isinstance(packet, str):
            assert packet.startswith("4"), packet
            assert frame == websocket.build_text_frame(packet)
            self.sent.append(packet[1:])
        else:
            assert frame == websocket.build_frame(websocket.OP_BINARY, packet)
            self.sent.append(packet)
        self.prepared += 1

    def write_buffer_size(self) -> int:
        return self.buffered

    def close(self, reason: str = "forced close") -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.on_close(reason)

    # -- test helpers (client -> server) ---------------------------------------------------------

    def receive(self, *messages: Any) -> None:
        """Deliver Socket.IO packets (text) or attachments (bytes) from the client."""
        for message in messages:
            self.on_message(message)

    def drop(self, reason: str = "transport close") -> None:
        """The transport goes away (client side)."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.on_close(reason)

    def take(self) -> list:
        """What was sent since the last take(), and forget it."""
        sent, self.sent = self.sent, []
        return sent

    def packets(self) -> list:
        """``take()``, text packets decoded (attachments left as bytes)."""
        return [decode_packet(item) if isinstance(item, str) else item for item in self.take()]

    def events(self) -> list:
        """``take()``, keeping EVENT payloads only (``[name, *args]``), attachments put back."""
        decoder = _impl.socketio.PacketDecoder()
        out = []
        for item in self.take():
            packet = decoder.feed(item)
            if packet is not None and packet.type in (2, 5):
                out.append(packet.data)
        return out


class FakeEngine:
    """Opens fake sessions and hands them to a Server, as the EngineServer's on_connection."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.sessions: list = []

    def open(self, **request: Any) -> FakeSession:
        session = FakeSession(FakeRequest(**request) if request else None)
        self.sessions.append(session)
        self.server.handle_engine_session(session)
        return session

    def connect(
        self,
        nsp: str = "/",
        auth: dict | None = None,
        session: FakeSession | None = None,
        **request: Any,
    ) -> tuple:
        """Open a session (or reuse ``session``) and connect it to ``nsp``: (session, socket id).
        Fails if the server does not answer with CONNECT."""
        if session is None:
            session = self.open(**request)
        session.receive(connect_packet(nsp, auth))
        reply = session.packets()
        assert reply and isinstance(reply[0], Packet) and reply[0].type == 0, reply
        return session, reply[0].data["sid"]


def connect_packet(nsp: str = "/", auth: dict | None = None) -> str:
    import json

    prefix = "0" if nsp == "/" else f"0{nsp},"
    if auth is None:
        return prefix if nsp != "/" else "0"
    return prefix + json.dumps(auth, separators=(",", ":"))
