"""Emit to the clients of a Socket.IO cluster from any Python process (a Celery task, a Django
view, a cron job), wire-compatible with Node's ``@socket.io/redis-emitter`` 5.1: what it
publishes reaches the clients of fastsio servers and of Node servers alike.

::

    from fastsio.redis import Emitter
    emitter = Emitter("redis://127.0.0.1:6379/0")          # key="socket.io", as the servers'
    emitter.emit("news", {"title": "..."})
    emitter.to("room1").except_("room2").emit("hello")
    emitter.of("/admin").sockets_join("vip")

``Emitter`` blocks until Redis has taken each message; ``AsyncEmitter`` is the asyncio twin
(``await emitter.emit(...)``). Neither subscribes to anything, so neither counts as a server.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import hiredis

from ..broadcast import check_event_name
from ._codec import json_dumps, pack
from ._connection import CONNECT_TIMEOUT, CommandLink, connection_options, encode_command
from .adapter import RequestType, logger

__all__ = ["AsyncEmitter", "Emitter"]

#: the uid Node's emitter puts in its messages (servers never ignore it as their own)
EMITTER_UID = "emitter"

_EVENT = 2


def _rooms(rooms: Any) -> tuple:
    if isinstance(rooms, (str, int)):
        return (rooms,)
    return tuple(rooms)


class _Operator:
    """Where to emit (namespace, rooms, excepted rooms) and how (volatile); immutable."""

    __slots__ = ("_except", "_flags", "_key", "_nsp", "_publish", "_rooms")

    def __init__(
        self,
        publish: Any,
        key: str,
        nsp: str = "/",
        rooms: tuple = (),
        except_rooms: tuple = (),
        flags: dict | None = None,
    ) -> None:
        self._publish = publish
        self._key = key
        self._nsp = nsp
        self._rooms = rooms
        self._except = except_rooms
        self._flags = flags or {}

    def _with(self, **changes: Any) -> Any:
        values = {
            "nsp": self._nsp,
            "rooms": self._rooms,
            "except_rooms": self._except,
            "flags": self._flags,
        }
        values.update(changes)
        return self._derive(values)

    def _derive(self, values: dict) -> Any:
        return _Operator(self._publish, self._key, **values)

    def of(self, nsp: str) -> Any:
        """The same emitter for namespace ``nsp``."""
        return self._with(nsp=nsp if nsp.startswith("/") else "/" + nsp, rooms=(), except_rooms=())

    def to(self, rooms: Any) -> Any:
        """Only the sockets in ``rooms`` (a union across calls)."""
        return self._with(
            rooms=self._rooms + tuple(r for r in _rooms(rooms) if r not in self._rooms)
        )

    in_ = to

    def except_(self, rooms: Any) -> Any:
        """Leave out the sockets in ``rooms``."""
        return self._with(except_rooms=self._except + _rooms(rooms))

    @property
    def volatile(self) -> Any:
        """The same selection, sent volatile: dropped for clients not ready to receive it."""
        return self._with(flags={**self._flags, "volatile": True})

    def compress(self, compress: bool = True) -> Any:
        """The same selection, with the servers' compression on (``True``) or off."""
        return self._with(flags={**self._flags, "compress": bool(compress)})

    # -- what is published --------------------------------------------------------------------

    def _selection(self) -> dict:
        return {"rooms": list(self._rooms), "except": list(self._except)}

    def _request_channel(self) -> str:
        return f"{self._key}-request#{self._nsp}#"

    def emit(self, event: str, *args: Any) -> Any:
        """Send ``event`` to the selected sockets of every server (no acks: nobody to wait
        for, as with Node's emitter)."""
        check_event_name(event)
        packet = {"type": _EVENT, "data": [event, *args], "nsp": self._nsp}
        opts = {"rooms": list(self._rooms), "flags": self._flags, "except": list(self._except)}
        channel = f"{self._key}#{self._nsp}#"
        if len(self._rooms) == 1:
            channel = f"{channel}{self._rooms[0]}#"
        return self._publish(channel, pack([EMITTER_UID, packet, opts]))

    def sockets_join(self, rooms: Any) -> Any:
        """Make the selected sockets join ``rooms``."""
        request = {
            "type": RequestType.REMOTE_JOIN,
            "opts": self._selection(),
            "rooms": list(_rooms(rooms)),
        }
        return self._publish(self._request_channel(), json_dumps(request))

    def sockets_leave(self, rooms: Any) -> Any:
        """Make the selected sockets leave ``rooms``."""
        request = {
            "type": RequestType.REMOTE_LEAVE,
            "opts": self._selection(),
            "rooms": list(_rooms(rooms)),
        }
        return self._publish(self._request_channel(), json_dumps(request))

    def disconnect_sockets(self, close: bool = False) -> Any:
        """Disconnect the selected sockets (``close``: their connections too)."""
        request = {
            "type": RequestType.REMOTE_DISCONNECT,
            "opts": self._selection(),
            "close": bool(close),
        }
        return self._publish(self._request_channel(), json_dumps(request))

    def server_side_emit(self, event: str, *args: Any) -> Any:
        """Send ``event`` to every server (their ``on_server_event`` handlers; no acks)."""
        check_event_name(event)
        request = {"uid": EMITTER_UID, "type": RequestType.SERVER_SIDE_EMIT, "data": [event, *args]}
        return self._publish(self._request_channel(), json_dumps(request))


class _BlockingConnection:
    """One blocking connection for PUBLISH, reconnected once when it broke; thread-safe."""

    def __init__(self, target: Any) -> None:
        self.options = connection_options(target)
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> None:
        options = self.options
        if options.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(options.path)
        else:
            sock = socket.create_connection((options.host, options.port), CONNECT_TIMEOUT)
            if options.ssl is not None:
                sock = options.ssl.wrap_socket(sock, server_hostname=options.host)
        self._sock = sock
        self._reader = hiredis.Reader()
        if options.password is not None:
            login = (
                (options.username, options.password) if options.username else (options.password,)
            )
            self._call(("AUTH", *login))

    def _call(self, args: tuple) -> Any:
        assert self._sock is not None
        self._sock.sendall(encode_command(args))
        while True:
            reply = self._reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise reply
                return reply
            data = self._sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self._reader.feed(data)

    def call(self, *args: Any) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._sock is None:
                        self._connect()
                    return self._call(args)
                except (OSError, ConnectionError):
                    self._close()
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self) -> None:
        with self._lock:
            self._close()


class Emitter(_Operator):
    """Blocking emitter (see the module's doc): each call returns once Redis has the message
    (the number of servers subscribed to its channel), and raises ConnectionError/OSError when
    Redis cannot be reached."""

    def __init__(
        self, redis: Any = "redis://127.0.0.1:6379/0", *, key: str = "socket.io", **kwargs: Any
    ) -> None:
        publish = kwargs.pop("publish", None)
        if publish is None:
            connection = _BlockingConnection(redis)
            publish = lambda channel, message: connection.call("PUBLISH", channel, message)
            publish.connection = connection  # type: ignore[attr-defined]
        super().__init__(publish, key, **kwargs)

    def _derive(self, values: dict) -> Emitter:
        return Emitter(key=self._key, publish=self._publish, **values)

    def close(self) -> None:
        """Close the connection to Redis (``with Emitter(...) as emitter:`` does it)."""
        connection = getattr(self._publish, "connection", None)
        if connection is not None:
            connection.close()

    def __enter__(self) -> Emitter:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncEmitter(_Operator):
    """asyncio emitter: ``await emitter.emit(...)`` returns once Redis has the message. Connects
    on first use (or ``await emitter.connect()``); ``await emitter.close()`` at the end."""

    def __init__(
        self, redis: Any = "redis://127.0.0.1:6379/0", *, key: str = "socket.io", **kwargs: Any
    ) -> None:
        link = kwargs.pop("link", None)
        if link is None:
            link = CommandLink(connection_options(redis), logger, f"emitter {key}")
        super().__init__(_AsyncPublish(link), key, **kwargs)

    def _derive(self, values: dict) -> AsyncEmitter:
        return AsyncEmitter(key=self._key, link=self._publish.link, **values)

    async def connect(self) -> None:
        """Connect to Redis now rather than on the first emit (fails if Redis is not there)."""
        await self._publish.ensure_connected()

    async def close(self) -> None:
        """Close the connection to Redis."""
        await self._publish.link.close()


class _AsyncPublish:
    __slots__ = ("_connecting", "link")

    def __init__(self, link: CommandLink) -> None:
        self.link = link
        self._connecting: Any = None

    async def ensure_connected(self) -> None:
        if self.link.connected:
            return
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self.link.start())
        await self._connecting

    def __call__(self, channel: str, message: bytes) -> Any:
        return self._publish(channel, message)

    async def _publish(self, channel: str, message: bytes) -> int:
        await self.ensure_connected()
        return await self.link.call("PUBLISH", channel, message)
