"""What every cluster adapter shares: sockets of other servers, and requests that wait for the
other servers' answers.

A cluster adapter (Redis today, the workers' bus next) keeps the local part of every operation
on :class:`~fastsio.adapter.InMemoryAdapter` (so a broadcast is still encoded once for the local
targets) and turns the rest into messages to the other servers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from . import _impl
from .adapter import BroadcastOptions, InMemoryAdapter
from .broadcast import BroadcastOperator, Rooms, as_rooms
from .exceptions import AckTimeoutError, AdapterTimeoutError

__all__ = [
    "MALFORMED",
    "ClusterAdapter",
    "MessageType",
    "PendingRequests",
    "RemoteHandshake",
    "RemoteSocket",
    "has_binary",
    "new_request_id",
    "new_uid",
    "socket_details",
]


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

    __slots__ = (
        "address",
        "auth",
        "headers",
        "issued",
        "query",
        "secure",
        "time",
        "url",
        "xdomain",
    )

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

    def start(
        self, request_id: str, kind: Any, expected: int, timeout: float, what: str
    ) -> asyncio.Future:
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

    async def ask_others(
        self,
        server_count: Callable[[], Any],
        kind: Any,
        timeout: float,
        what: str,
        send: Callable[[str], None],
        new_id: Callable[[], str],
    ) -> list:
        """Ask every other server: ``send(request_id)`` publishes the request, and the answers
        come back through :meth:`answer` (one per other server; AdapterTimeoutError after
        ``timeout`` seconds). [] at once when there is no other server."""
        others = await server_count() - 1
        if others <= 0:
            return []
        request_id = new_id()
        answers = self.start(request_id, kind, others, timeout, what)
        send(request_id)
        return await answers

    def cancel_all(self) -> None:
        requests, self._requests = self._requests, {}
        for request in requests.values():
            request.timer.cancel()
            if not request.future.done():
                request.future.set_exception(AdapterTimeoutError("the adapter was closed"))


def room_list(rooms: Iterable[Any]) -> list:
    return list(rooms)


# -- Node's ClusterAdapter (socket.io-adapter 2.5 cluster-adapter.ts) ------------------------------

logger = logging.getLogger("fastsio.cluster")

_EVENT = _impl.socketio.EVENT
_BINARY_EVENT = _impl.socketio.BINARY_EVENT
_Packet = _impl.socketio.Packet

#: what a message handler raises for a message of the wrong shape (a transport catches these,
#: logs and drops the message)
MALFORMED = (ValueError, TypeError, KeyError, AttributeError)


def new_request_id() -> str:
    """A cluster adapter's uid or request id, as Node's ``randomId()``: 16 hex digits."""
    return secrets.token_hex(8)


class MessageType:
    """The message types of socket.io-adapter's ``ClusterAdapter`` (``MessageType`` in its
    cluster-adapter.ts). 1, 2 and 13 belong to ``ClusterAdapterWithHeartbeat`` and are ignored."""

    INITIAL_HEARTBEAT = 1
    HEARTBEAT = 2
    BROADCAST = 3
    SOCKETS_JOIN = 4
    SOCKETS_LEAVE = 5
    DISCONNECT_SOCKETS = 6
    FETCH_SOCKETS = 7
    FETCH_SOCKETS_RESPONSE = 8
    SERVER_SIDE_EMIT = 9
    SERVER_SIDE_EMIT_RESPONSE = 10
    BROADCAST_CLIENT_COUNT = 11
    BROADCAST_ACK = 12
    ADAPTER_CLOSE = 13


#: the types whose ``data`` may carry user values (and so binary), as Node's sharded adapter lists
#: them to choose between JSON and MessagePack
MAY_CONTAIN_BINARY = frozenset(
    (
        MessageType.BROADCAST,
        MessageType.BROADCAST_ACK,
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
    )
)

_RESPONSE_TYPES = frozenset(
    (
        MessageType.FETCH_SOCKETS_RESPONSE,
        MessageType.SERVER_SIDE_EMIT_RESPONSE,
        MessageType.BROADCAST_CLIENT_COUNT,
        MessageType.BROADCAST_ACK,
    )
)


def has_binary(value: Any) -> bool:
    """Whether ``value`` holds bytes anywhere (Node's ``hasBinary``)."""
    kind = type(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return True
    if kind is list or kind is tuple:
        return any(has_binary(item) for item in value)
    if kind is dict:
        return any(has_binary(item) for item in value.values())
    return isinstance(value, (bytes, bytearray, memoryview))


def _message_data(message: dict) -> dict:
    data = message.get("data")
    if type(data) is not dict:
        raise ValueError(f"message type {message.get('type')!r} without a data map")
    return data


def _message_opts(data: dict) -> BroadcastOptions:
    raw = data.get("opts")
    if not isinstance(raw, dict):
        raise TypeError("the message has no opts map")
    return BroadcastOptions.from_wire(raw)


def _message_rooms(data: dict) -> list:
    rooms = data.get("rooms")
    if isinstance(rooms, (str, int)) and not isinstance(rooms, bool):
        return [rooms]
    if not isinstance(rooms, list):
        raise TypeError(f"rooms must be a list, not {type(rooms).__name__}")
    for room in rooms:
        if not isinstance(room, (str, int)) or isinstance(room, bool):
            raise TypeError(f"invalid room name {room!r}")
    return rooms


def _requester(message: dict) -> str:
    uid = message.get("uid")
    if type(uid) is not str or not uid:
        raise ValueError(f"a request needs the sender's uid, not {uid!r}")
    return uid


def _event_data(packet: Any) -> list:
    if type(packet) is not list or not packet or type(packet[0]) is not str:
        raise ValueError("the event is not [event, ...args]")
    return packet


class ClusterAdapter(InMemoryAdapter):
    """Node's ``ClusterAdapter`` (socket.io-adapter 2.5): the message protocol a cluster of
    servers speaks over any transport, independent of it.

    Every message is a map ``{"type": MessageType, "data": {...}, "uid": sender, "nsp": name}``:

    ===========================  =============================================================
    BROADCAST (3)                ``{packet: {type: 2, data: [event, ...args]}, opts}``, and
                                 ``requestId`` when acks are wanted (then every server answers
                                 one BROADCAST_CLIENT_COUNT ``{requestId, clientCount}`` and a
                                 BROADCAST_ACK ``{requestId, packet: first ack arg}`` per ack)
    SOCKETS_JOIN / _LEAVE (4/5)  ``{opts, rooms: [...]}``
    DISCONNECT_SOCKETS (6)       ``{opts, close}``
    FETCH_SOCKETS (7)            ``{opts, requestId}`` -> (8) ``{requestId, sockets: [...]}``
    SERVER_SIDE_EMIT (9)         ``{packet: [event, ...args]}``, with ``requestId`` when an
                                 answer is wanted -> (10) ``{requestId, packet: answer}``
    ===========================  =============================================================

    ``opts`` is :meth:`BroadcastOptions.to_wire` (``{rooms, except, flags}``). Requests that
    expect answers carry ``data.requestId`` (16 hex digits) and are answered to the requester
    alone (:meth:`publish_response`); answers may also arrive as messages. The local part of
    every operation stays on :class:`~fastsio.adapter.InMemoryAdapter` (a broadcast is encoded
    once for the local targets); this server's own requests are applied locally when made, and
    their echoes (a transport may deliver a server its own messages) are ignored by ``uid``.

    A transport subclass implements :meth:`publish_message` (to every server of the namespace),
    :meth:`publish_response` (to one server), :meth:`server_count`, ``init``/``close``, and hands
    what it receives to :meth:`on_message` / :meth:`on_response`, which raise one of
    :data:`MALFORMED` for a message of the wrong shape (the transport logs and drops it).
    """

    def __init__(self, nsp: Any, requests_timeout: float = 5.0) -> None:
        super().__init__(nsp)
        self.uid = new_request_id()
        self.requests_timeout = requests_timeout
        self.requests = PendingRequests()
        # broadcasts with acks this server sent: request id -> (client count callback, ack)
        self.ack_requests: dict[str, tuple[Callable, Callable]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.nsp.name} uid={self.uid}>"

    # -- the transport's part ----------------------------------------------------------------------

    def publish_message(self, message: dict) -> None:
        """Send ``message`` (uid and nsp set) to every other server of this namespace; returns
        at once. Raises TypeError when the message cannot be serialised."""
        raise NotImplementedError

    def publish_response(self, requester_uid: str, message: dict) -> None:
        """Send ``message`` (a response: uid and nsp set) to the server ``requester_uid``."""
        raise NotImplementedError

    async def server_count(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        """Fail the requests still waiting (the transport closes first, then calls this)."""
        self.requests.cancel_all()
        self.ack_requests.clear()

    # -- publishing ------------------------------------------------------------------------------

    def _publish(self, kind: int, data: dict) -> None:
        # Node's key order: type, data, uid, nsp
        self.publish_message({"type": kind, "data": data, "uid": self.uid, "nsp": self.nsp.name})

    def _respond(self, requester_uid: str, kind: int, data: dict) -> None:
        self.publish_response(
            requester_uid, {"type": kind, "data": data, "uid": self.uid, "nsp": self.nsp.name}
        )

    @staticmethod
    def _wire_packet(packet: Any) -> dict:
        # as Node publishes it: before the namespace and the ack id are set, binary inline
        kind = packet.type
        return {"type": _EVENT if kind == _BINARY_EVENT else kind, "data": packet.data}

    def _timeout(self, timeout: float | None) -> float:
        return timeout if timeout is not None else self.requests_timeout

    # -- operations on every server's sockets --------------------------------------------------

    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        if not opts.local:
            self._publish(
                MessageType.BROADCAST, {"packet": self._wire_packet(packet), "opts": opts.to_wire()}
            )
        InMemoryAdapter.broadcast(self, packet, opts)

    def broadcast_with_ack(
        self,
        packet: Any,
        opts: BroadcastOptions,
        client_count_callback: Callable[[int], None],
        ack: Callable[[list], None],
        ack_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not opts.local:
            request_id = new_request_id()
            self.ack_requests[request_id] = (client_count_callback, ack)
            self._publish(
                MessageType.BROADCAST,
                {
                    "packet": self._wire_packet(packet),
                    "requestId": request_id,
                    "opts": opts.to_wire(),
                },
            )
            # nothing says when every remote ack is in: forget the request after the timeout
            asyncio.get_running_loop().call_later(
                self._timeout(opts.timeout), self.ack_requests.pop, request_id, None
            )
        InMemoryAdapter.broadcast_with_ack(
            self, packet, opts, client_count_callback, ack, ack_failed
        )

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if not opts.local:
            self._publish(MessageType.SOCKETS_JOIN, {"opts": opts.to_wire(), "rooms": rooms})
        InMemoryAdapter.add_sockets(self, opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if not opts.local:
            self._publish(MessageType.SOCKETS_LEAVE, {"opts": opts.to_wire(), "rooms": rooms})
        InMemoryAdapter.del_sockets(self, opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool = False) -> None:
        if not opts.local:
            self._publish(
                MessageType.DISCONNECT_SOCKETS, {"opts": opts.to_wire(), "close": bool(close)}
            )
        InMemoryAdapter.disconnect_sockets(self, opts, close)

    async def fetch_sockets(self, opts: BroadcastOptions) -> list:
        """The local sockets and, unless ``opts.local``, those of every other server (as
        :class:`RemoteSocket`). Raises AdapterTimeoutError when a server does not answer within
        ``opts.timeout`` (else the adapter's ``requests_timeout``)."""
        local = self.select(opts)
        if opts.local:
            return local

        def send(request_id: str) -> None:
            self._publish(
                MessageType.FETCH_SOCKETS, {"opts": opts.to_wire(), "requestId": request_id}
            )

        answers = await self.requests.ask_others(
            self.server_count,
            MessageType.FETCH_SOCKETS,
            self._timeout(opts.timeout),
            "fetch_sockets",
            send,
            new_request_id,
        )
        return local + [RemoteSocket(self.nsp, details) for answer in answers for details in answer]

    def server_side_emit(
        self,
        event: str,
        args: list,
        ack: Callable[[BaseException | None, list], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        packet = [event, *args]
        if ack is None:
            self._publish(MessageType.SERVER_SIDE_EMIT, {"packet": packet})
            return

        def send(request_id: str) -> None:
            self._publish(MessageType.SERVER_SIDE_EMIT, {"requestId": request_id, "packet": packet})

        answers = self.requests.ask_others(
            self.server_count,
            MessageType.SERVER_SIDE_EMIT,
            self._timeout(timeout),
            f"server_side_emit {event!r}",
            send,
            new_request_id,
        )
        answer_when_done(answers, ack)

    # -- what the other servers send ---------------------------------------------------------------

    def on_message(self, message: Any) -> None:
        """A message from the cluster (Node's ``onMessage``): requests are carried out here and
        answered; responses go to :meth:`on_response`. Raises one of :data:`MALFORMED`."""
        if type(message) is not dict:
            raise ValueError(f"a cluster message must be a map, not {type(message).__name__}")
        if message.get("uid") == self.uid:
            return  # our own, applied when sent
        if message.get("nsp") != self.nsp.name:
            return  # another namespace's (socket.io-adapter >= 2.5.6 checks this too)
        kind = message.get("type")
        handler = self._handlers.get(kind) if type(kind) is int else None
        if handler is None:
            logger.debug("[%s] ignored a message of type %r", self.uid, kind)
            return
        handler(self, message)

    def _on_broadcast(self, message: dict) -> None:
        data = _message_data(message)
        packet = self._packet_from_wire(data.get("packet"))
        opts = _message_opts(data)
        request_id = data.get("requestId")
        if request_id is None:
            InMemoryAdapter.broadcast(self, packet, opts)
            return
        requester = _requester(message)

        def client_count(count: int) -> None:
            self._respond(
                requester,
                MessageType.BROADCAST_CLIENT_COUNT,
                {"requestId": request_id, "clientCount": count},
            )

        def client_ack(args: list) -> None:
            # socket.io hands the ack's first argument on, and only that
            self._respond_safely(
                requester,
                MessageType.BROADCAST_ACK,
                {"requestId": request_id, "packet": args[0] if args else None},
                "packet",
                "a client's ack",
            )

        InMemoryAdapter.broadcast_with_ack(self, packet, opts, client_count, client_ack)

    def _packet_from_wire(self, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise TypeError("the packet is not a map")
        kind = raw.get("type")
        if type(kind) is not int or kind not in (_EVENT, _BINARY_EVENT):
            raise ValueError(f"packet type {kind!r} cannot be broadcast")
        return _Packet(_EVENT, self.nsp.name, _event_data(raw.get("data")))

    def _on_sockets_join(self, message: dict) -> None:
        data = _message_data(message)
        InMemoryAdapter.add_sockets(self, _message_opts(data), _message_rooms(data))

    def _on_sockets_leave(self, message: dict) -> None:
        data = _message_data(message)
        InMemoryAdapter.del_sockets(self, _message_opts(data), _message_rooms(data))

    def _on_disconnect_sockets(self, message: dict) -> None:
        data = _message_data(message)
        InMemoryAdapter.disconnect_sockets(self, _message_opts(data), bool(data.get("close")))

    def _on_fetch_sockets(self, message: dict) -> None:
        data = _message_data(message)
        requester = _requester(message)
        opts = _message_opts(data)
        sockets = [socket_details(socket) for socket in self.select(opts)]
        body = {"requestId": data.get("requestId"), "sockets": sockets}
        try:
            self._respond(requester, MessageType.FETCH_SOCKETS_RESPONSE, body)
        except TypeError as exc:
            logger.warning("fetch_sockets: socket.data not serialisable (%s); sent without it", exc)
            for details in sockets:
                details["data"] = None
            self._respond(requester, MessageType.FETCH_SOCKETS_RESPONSE, body)

    def _on_server_side_emit(self, message: dict) -> None:
        data = _message_data(message)
        packet = _event_data(data.get("packet"))
        request_id = data.get("requestId")
        if request_id is None:
            self.nsp.handle_server_event(packet[0], packet[1:])
            return
        requester = _requester(message)
        answered = False

        def answer(result: Any) -> None:
            nonlocal answered
            if answered:
                return  # only one answer per server
            answered = True
            self._respond_safely(
                requester,
                MessageType.SERVER_SIDE_EMIT_RESPONSE,
                {"requestId": request_id, "packet": result},
                "packet",
                f"the answer to server-side event {packet[0]!r}",
            )

        self.nsp.handle_server_event(packet[0], packet[1:], answer)

    def _respond_safely(self, requester: str, kind: int, data: dict, key: str, what: str) -> None:
        try:
            self._respond(requester, kind, data)
        except TypeError as exc:
            logger.warning("%s is not serialisable (%s); sent None instead", what, exc)
            self._respond(requester, kind, dict(data, **{key: None}))

    def _on_response_message(self, message: dict) -> None:
        # responses may come on the common channel too (Node's onMessage forwards them)
        self.on_response(message)

    _handlers: ClassVar[dict] = {
        MessageType.BROADCAST: _on_broadcast,
        MessageType.SOCKETS_JOIN: _on_sockets_join,
        MessageType.SOCKETS_LEAVE: _on_sockets_leave,
        MessageType.DISCONNECT_SOCKETS: _on_disconnect_sockets,
        MessageType.FETCH_SOCKETS: _on_fetch_sockets,
        MessageType.SERVER_SIDE_EMIT: _on_server_side_emit,
        MessageType.FETCH_SOCKETS_RESPONSE: _on_response_message,
        MessageType.SERVER_SIDE_EMIT_RESPONSE: _on_response_message,
        MessageType.BROADCAST_CLIENT_COUNT: _on_response_message,
        MessageType.BROADCAST_ACK: _on_response_message,
    }

    def on_response(self, message: Any) -> None:
        """An answer to one of this server's requests (Node's ``onResponse``); answers to
        requests that are over (or never were) are ignored. Raises one of :data:`MALFORMED`."""
        if type(message) is not dict:
            raise ValueError(f"a cluster response must be a map, not {type(message).__name__}")
        kind = message.get("type")
        if kind not in _RESPONSE_TYPES or type(kind) is not int:
            logger.debug("[%s] ignored a response of type %r", self.uid, kind)
            return
        data = _message_data(message)
        request_id = data.get("requestId")
        if type(request_id) is not str:
            raise ValueError(f"invalid request id {request_id!r}")
        if kind == MessageType.BROADCAST_CLIENT_COUNT or kind == MessageType.BROADCAST_ACK:
            callbacks = self.ack_requests.get(request_id)
            if callbacks is None:
                return  # another server's, or too late
            if kind == MessageType.BROADCAST_CLIENT_COUNT:
                count = data.get("clientCount")
                if type(count) is not int or count < 0:
                    raise ValueError(f"invalid client count {count!r}")
                callbacks[0](count)
            else:
                callbacks[1]([data.get("packet")])
            return
        request = self.requests.get(request_id)
        if request is None:
            return
        if kind == MessageType.FETCH_SOCKETS_RESPONSE:
            if request.kind != MessageType.FETCH_SOCKETS:
                return
            sockets = data.get("sockets")
            if not isinstance(sockets, list):
                raise ValueError("a fetch_sockets answer without a sockets list")
            valid = [d for d in sockets if isinstance(d, dict) and isinstance(d.get("id"), str)]
            self.requests.answer(request_id, valid)
        elif request.kind == MessageType.SERVER_SIDE_EMIT:
            self.requests.answer(request_id, data.get("packet"))


_answering: set = set()  # the tasks of answer_when_done, referenced until they end


def answer_when_done(answers: Any, ack: Callable[[BaseException | None, list], None]) -> None:
    """Run ``answers`` (an awaitable of the other servers' answers) in the background and hand
    the outcome to ``ack(err, responses)``: the answers, or an AckTimeoutError with those that
    came (server_side_emit_with_ack's contract), or the error."""

    async def run() -> None:
        try:
            responses = await answers
        except AdapterTimeoutError as exc:
            ack(AckTimeoutError(str(exc), responses=exc.responses), exc.responses)
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            ack(exc, [])
        else:
            ack(None, responses)

    task = asyncio.ensure_future(run())
    _answering.add(task)
    task.add_done_callback(_answering.discard)
