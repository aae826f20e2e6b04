"""Client: one per Engine.IO session; multiplexes its namespaces, reassembles binary packets.

Socket.IO v2 clients (Engine.IO v3 sessions, ``Server(allow_eio3=True)``) speak protocol v4, which
differs from v5 only in connecting: "/" is connected without a CONNECT packet (the server does it
when the session opens), a CONNECT for another namespace carries the client's query in the
namespace string (``/admin?token=x``), the server's CONNECT answer has no payload (the client makes
its socket id itself, ``nsp#sid``), and CONNECT_ERROR carries a plain string. Events, acks and
binary attachments are the same, so one encoded broadcast serves both kinds of clients.

Also compiled by Cython, unchanged, as ``fastsio._speedups.client_c`` with the augmenting
``client_c.pxd`` (``Client`` a ``cdef class``); ``fastsio._impl`` picks one (``_impl.clients``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

# absolute, not relative: this file is also compiled as fastsio._speedups.client_c
from fastsio import _eager, _impl
from fastsio.engine.packetlog import describe_packet
from fastsio.protocol.errors import ProtocolError

if TYPE_CHECKING:  # pragma: no cover
    from fastsio.server import Server

__all__ = ["Client"]

_sio = _impl.socketio
_CONNECT = _sio.CONNECT
_DISCONNECT = _sio.DISCONNECT
_EVENT = _sio.EVENT
_ACK = _sio.ACK
_CONNECT_ERROR = _sio.CONNECT_ERROR
_BINARY_EVENT = _sio.BINARY_EVENT
_BINARY_ACK = _sio.BINARY_ACK

_PENDING = None  # placeholder in Client._connecting while a dynamic namespace is being checked


class Client:
    """The Socket.IO side of one Engine.IO session.

    ``sockets``: the connected Socket of each namespace (by namespace name). Packets for a
    namespace the client has not connected are ignored.
    """

    __slots__ = (
        "__weakref__",
        "_connect_timer",
        "_connecting",
        "closed",
        "decoder",
        "encode",
        "protocol",
        "server",
        "session",
        "sockets",
    )

    def __init__(self, server: Server, session: Any) -> None:
        self.server: Server = server
        #: the Engine.IO session (an EngineSession, or EngineSession3 for a v2 client)
        self.session: Any = session
        #: the Engine.IO protocol revision of the session: 4, or 3 for a Socket.IO v2 client
        self.protocol: int = getattr(session, "protocol", 4)
        #: the server's parser: ``encode(type, nsp, data, ack_id) -> parts`` and a decoder
        if self.protocol == 3:
            self.encode = server._encode3
            self.decoder = server._parser3.decoder()
        else:
            self.encode = server.encode_packet
            self.decoder = server.parser.decoder()
        self.sockets: dict = {}
        self.closed = False
        # namespace name -> Socket whose middleware runs (or _PENDING during a dynamic check)
        self._connecting: dict = {}
        self._connect_timer: Any = None
        timeout = server.connect_timeout
        if timeout:
            self._connect_timer = session.loop.call_later(timeout, self._connect_timed_out)
        if server.logger.isEnabledFor(logging.DEBUG):
            # incoming packets logged: decided once per connection, nothing per packet when off
            session.on_message = self._on_message_logged
        else:
            session.on_message = self._on_message
        session.on_close = self._on_close
        # the Socket.IO server's bound on what may wait to be sent to this client
        session.max_buffered_bytes = server.max_buffered_bytes

    def __repr__(self) -> str:
        return f"<Client {getattr(self.session, 'sid', '?')} namespaces={list(self.sockets)}>"

    # -- incoming --------------------------------------------------------------------------------

    def _on_message_logged(self, data: Any) -> None:
        self.server.logger.debug(
            "session %s <- %s", getattr(self.session, "sid", "?"), describe_packet(data)
        )
        self._on_message(data)

    def _on_message(self, data: Any) -> None:
        """An Engine.IO message: a Socket.IO text packet or a binary attachment."""
        if self.closed:
            return
        try:
            packet = self.decoder.feed(data)
        except (ProtocolError, TypeError, ValueError) as exc:
            self.server.logger.info(
                "session %s: invalid Socket.IO packet (%s); closing it",
                getattr(self.session, "sid", "?"),
                exc,
            )
            self._on_close("parse error")
            self.session.close("parse error")
            return
        if packet is None:
            return  # a binary packet waiting for its attachments
        kind = packet.type
        if kind == _EVENT or kind == _BINARY_EVENT:
            socket = self.sockets.get(packet.nsp)
            if socket is not None:
                socket._on_event(packet)
        elif kind == _ACK or kind == _BINARY_ACK:
            socket = self.sockets.get(packet.nsp)
            if socket is not None:
                socket._on_ack(packet)
        elif kind == _CONNECT:
            if self.protocol == 3:
                # v2: "/admin?token=x" -> namespace "/admin", auth {"token": "x"} (as Node)
                name, _, query = packet.nsp.partition("?")
                self._connect(name, dict(parse_qsl(query, keep_blank_values=True)))
            else:
                self._connect(packet.nsp, packet.data)
        elif kind == _DISCONNECT:
            socket = self.sockets.get(packet.nsp)
            if socket is None:
                # gave up while its middleware runs: it must not connect after all
                socket = self._connecting.pop(packet.nsp, None)
            if socket is not None:
                socket._on_close("client namespace disconnect")
        # CONNECT_ERROR from a client means nothing: ignored, as Node does

    # -- connecting to namespaces ----------------------------------------------------------------

    def _connect(self, name: str, auth: dict | None) -> None:
        if name in self.sockets or name in self._connecting:
            self.server.logger.debug("namespace %s already connected or connecting", name)
            return
        limit = self.server.max_namespaces_per_client
        if limit is not None and len(self.sockets) + len(self._connecting) >= limit:
            self.server.logger.debug(
                "session %s: namespace %s refused, already %d namespaces",
                getattr(self.session, "sid", "?"),
                name,
                limit,
            )
            self._send_connect_error(
                name, {"message": f"Too many namespaces: at most {limit} per connection"}
            )
            return
        nsp = self.server._namespaces.get(name)
        if nsp is not None:
            nsp._add(self, auth)
        else:
            self._check_dynamic(name, auth, 0)

    def _check_dynamic(self, name: str, auth: dict | None, index: int) -> None:
        """Ask the dynamic (parent) namespaces, in order, whether one accepts ``name``."""
        parents = self.server._parent_list
        if index >= len(parents):
            self._connecting.pop(name, None)
            self._send_connect_error(name, {"message": "Invalid namespace"})
            return
        parent = parents[index]
        self._connecting[name] = _PENDING

        def done(accepted: Any, exc: BaseException | None) -> None:
            if exc is not None:
                if isinstance(exc, asyncio.CancelledError):
                    return
                self.server.logger.error(
                    "dynamic namespace check failed for %s", name, exc_info=exc
                )
                accepted = False
            if self.closed or self._connecting.get(name, 0) is not _PENDING:
                return
            if not accepted:
                self._check_dynamic(name, auth, index + 1)
                return
            del self._connecting[name]
            nsp = self.server._namespaces.get(name)
            if nsp is None:
                nsp = self.server._add_child_namespace(parent, name)
            nsp._add(self, auth)

        done.server = self.server  # type: ignore[attr-defined]  # whose task (_eager.finish_tasks)
        _eager.call(parent.matches, (name, auth if auth is not None else {}), done)

    def _on_connected(self, socket: Any) -> None:
        self.sockets[socket.nsp.name] = socket
        timer = self._connect_timer
        if timer is not None:
            self._connect_timer = None
            timer.cancel()

    def _remove(self, socket: Any) -> None:
        name = socket.nsp.name
        if self.sockets.get(name) is socket:
            del self.sockets[name]

    def _connect_timed_out(self) -> None:
        self._connect_timer = None
        if not self.sockets and not self.closed:
            self.server.logger.debug(
                "session %s joined no namespace in time; closing it",
                getattr(self.session, "sid", "?"),
            )
            self.close()

    def _eio3_socket_id(self, name: str) -> str:
        """The socket id a Socket.IO v2 client computes itself (Node's, for protocol 3)."""
        sid = self.session.sid
        return sid if name == "/" else f"{name}#{sid}"

    # -- outgoing --------------------------------------------------------------------------------

    def _send_connect(self, socket: Any) -> None:
        """The server's CONNECT: ``{"sid": id}`` in v5; nothing in v4 (v2 clients)."""
        if self.protocol == 3:
            data = None
        elif socket.pid is not None:
            data = {"sid": socket.id, "pid": socket.pid}  # connection state recovery is on
        else:
            data = {"sid": socket.id}
        self._send(self.encode(_CONNECT, socket.nsp.name, data, None))

    def _send_connect_error(self, name: str, payload: dict) -> None:
        """CONNECT_ERROR ``{"message": ..., "data": ...}``; a v2 client gets a plain value instead:
        ``data`` if truthy (in JavaScript's sense), else the message, as Node does."""
        if self.protocol == 3:
            data = payload.get("data")
            truthy = data is not None and data is not False and data != 0 and data != ""
            payload = data if truthy else payload.get("message", "")
        self._send(self.encode(_CONNECT_ERROR, name, payload, None))

    def _send(self, parts: list) -> None:
        """Send an encoded Socket.IO packet (text, then its binary attachments)."""
        if self.closed:
            return
        session = self.session
        session.send(parts[0])
        if len(parts) > 1:
            for attachment in parts[1:]:
                session.send(attachment)

    # -- closing ---------------------------------------------------------------------------------

    def close(self, reason: str = "forced server close") -> None:
        """Close the Engine.IO session; every socket disconnects with ``reason``."""
        if self.closed:
            return
        self._on_close(reason)
        self.session.close()

    def _disconnect_all(self) -> None:
        """``socket.disconnect(close=True)``: every namespace is told, then the session closes."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self.close()

    def _on_close(self, reason: str) -> None:
        """The Engine.IO session closed (or is being closed): disconnect every socket."""
        if self.closed:
            return
        self.closed = True
        timer = self._connect_timer
        if timer is not None:
            self._connect_timer = None
            timer.cancel()
        connecting = self._connecting
        self._connecting = {}
        for socket in connecting.values():
            if socket is not _PENDING:
                socket._on_close(reason)
        for socket in list(self.sockets.values()):
            socket._on_close(reason)
        reset = getattr(self.decoder, "reset", None)
        if reset is not None:
            reset()
        self.server._clients.discard(self)
