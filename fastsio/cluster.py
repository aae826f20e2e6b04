"""What every cluster adapter shares: sockets of other servers, and requests that wait for the
other servers' answers.

A cluster adapter (Redis today, the workers' bus next) keeps the local part of every operation
on :class:`~fastsio.adapter.InMemoryAdapter` (so a broadcast is still encoded once for the local
targets) and turns the rest into messages to the other servers.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from .adapter import BroadcastOptions
from .broadcast import BroadcastOperator, Rooms, as_rooms
from .exceptions import AdapterTimeoutError

__all__ = ["PendingRequests", "RemoteHandshake", "RemoteSocket", "new_uid", "socket_details"]


def new_uid() -> str:
    """A server's or a request's id, as Node's ``uid2(6)``: 12 hex digits."""
    return secrets.token_hex(6)


def socket_details(socket: Any) -> dict:
    """A local socket as another server's ``fetch_sockets`` receives it (Node's shape)."""
    handshake = socket.handshake
    return {
        "id": socket.id,
        "handshake": {
            "headers": handshake.headers,
            "time": handshake.time,
            "address": handshake.address,
            "xdomain": handshake.xdomain,
            "secure": handshake.secure,
            "issued": handshake.issued,
            "url": handshake.url,
            "query": handshake.query,
            "auth": handshake.auth,
        },
        "rooms": list(socket.rooms),
        "data": socket.data,
    }


class RemoteHandshake:
    """The handshake of a socket on another server: the fields it sent, read-only."""

    __slots__ = ("address", "auth", "headers", "issued", "query", "secure", "time", "url", "xdomain")

    def __init__(self, raw: Any) -> None:
        raw = raw if isinstance(raw, dict) else {}
        self.headers: dict = _dict(raw.get("headers"))
        self.query: dict = _dict(raw.get("query"))
        self.auth: dict = _dict(raw.get("auth"))
        self.address: str = str(raw.get("address") or "")
        self.time: str = str(raw.get("time") or "")
        self.issued: Any = raw.get("issued")
        self.url: str = str(raw.get("url") or "")
        self.secure: bool = bool(raw.get("secure"))
        self.xdomain: bool = bool(raw.get("xdomain"))

    def __repr__(self) -> str:
        return f"RemoteHandshake(address={self.address!r}, url={self.url!r})"


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


class RemoteSocket:
    """A socket as ``fetch_sockets`` returns it from another server (Node's ``RemoteSocket``):
    ``id``, ``handshake``, ``rooms``, ``data`` as they were when fetched, and actions that reach
    the socket through the adapter (``emit``, ``join``, ``leave``, ``disconnect``)."""

    __slots__ = ("data", "handshake", "id", "nsp", "rooms")

    def __init__(self, nsp: Any, details: dict) -> None:
        self.nsp = nsp
        self.id: str = details["id"]
        self.handshake = RemoteHandshake(details.get("handshake"))
        rooms = details.get("rooms")
        self.rooms: set = set(rooms) if isinstance(rooms, list) else {self.id}
        self.data: Any = details.get("data")

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id} nsp={self.nsp.name}>"

    @property
    def connected(self) -> bool:
        return True

    def _only_me(self) -> BroadcastOptions:
        return BroadcastOptions(rooms=frozenset((self.id,)))

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        """Send an event to this socket (``ack(err, responses)`` as for a broadcast)."""
        return BroadcastOperator(self.nsp, rooms=frozenset((self.id,))).emit(event, *args, ack=ack)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return BroadcastOperator(self.nsp, rooms=frozenset((self.id,)), timeout=seconds)

    def join(self, rooms: Rooms) -> None:
        self.nsp.adapter.add_sockets(self._only_me(), as_rooms(rooms))

    def leave(self, room: Rooms) -> None:
        self.nsp.adapter.del_sockets(self._only_me(), as_rooms(room))

    def disconnect(self, close: bool = False) -> RemoteSocket:
        self.nsp.adapter.disconnect_sockets(self._only_me(), close)
        return self


class _Request:
    __slots__ = ("expected", "future", "kind", "responses", "timer")

    def __init__(self, kind: Any, expected: int, future: asyncio.Future) -> None:
        self.kind = kind
        self.expected = expected
        self.future = future
        self.responses: list = []
        self.timer: Any = None


class PendingRequests:
    """Requests sent to the other servers, each waiting for ``expected`` answers or a timeout
    (then AdapterTimeoutError, with the answers that came)."""

    def __init__(self) -> None:
        self._requests: dict[str, _Request] = {}

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._requests

    def get(self, request_id: Any) -> _Request | None:
        return self._requests.get(request_id) if type(request_id) is str else None

    def start(self, request_id: str, kind: Any, expected: int, timeout: float, what: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        request = _Request(kind, expected, loop.create_future())
        self._requests[request_id] = request
        request.timer = loop.call_later(timeout, self._timed_out, request_id, what)
        return request.future

    def answer(self, request_id: str, response: Any) -> _Request | None:
        """Count one answer; the request when it is complete (and finished here)."""
        request = self._requests.get(request_id)
        if request is None:
            return None
        request.responses.append(response)
        if len(request.responses) >= request.expected:
            self.finish(request_id)
        return request

    def finish(self, request_id: str) -> None:
        request = self._requests.pop(request_id, None)
        if request is None:
            return
        request.timer.cancel()
        if not request.future.done():
            request.future.set_result(request.responses)

    def _timed_out(self, request_id: str, what: str) -> None:
        request = self._requests.pop(request_id, None)
        if request is None or request.future.done():
            return
        request.future.set_exception(
            AdapterTimeoutError(
                f"timed out waiting for {what}: {len(request.responses)} of "
                f"{request.expected} server(s) answered",
                responses=request.responses,
            )
        )

    def cancel_all(self) -> None:
        requests, self._requests = self._requests, {}
        for request in requests.values():
            request.timer.cancel()
            if not request.future.done():
                request.future.set_exception(AdapterTimeoutError("the adapter was closed"))


def room_list(rooms: Iterable[Any]) -> list:
    return list(rooms)
