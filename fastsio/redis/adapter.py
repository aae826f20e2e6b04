"""The classic Redis adapter, wire-compatible with Node's ``@socket.io/redis-adapter`` 8.3
(``createAdapter``): fastsio and Node servers on one Redis form one cluster.

Channels, per namespace (``key`` defaults to ``"socket.io"``):

- ``{key}#{nsp}#`` broadcasts, and ``{key}#{nsp}#{room}#`` a broadcast to exactly one room
  (subscribed with one pattern, ``{key}#{nsp}#*``): MessagePack ``[uid, packet, opts]``, the
  packet before Socket.IO encoding (``{"type": 2, "data": [event, ...args], "nsp": nsp}``);
- ``{key}-request#{nsp}#`` requests: JSON, except a broadcast with acks (MessagePack);
- ``{key}-response#{nsp}#`` and ``{key}-response#{nsp}#{uid}#`` the answers.

A message for a room channel is dropped before its body is decoded when this server holds no
socket in that room, so a node pays almost nothing for other nodes' rooms; so is this server's
own broadcast coming back from Redis (its body starts with this server's uid). With the compiled
reader (fastsio/redis/_reader.py) both are dropped before the message is even parsed into
Python objects. The number of servers
is ``PUBSUB NUMSUB`` of the request channel (every server subscribes to it once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from .. import _impl
from ..adapter import BroadcastOptions, InMemoryAdapter
from ..cluster import PendingRequests, RemoteSocket, answer_when_done, new_uid, socket_details
from ._codec import json_dumps, json_loads, pack, unpack
from ._connection import CommandLink, SubscribeLink, broadcast_filter, connection_options

__all__ = ["RedisAdapter", "RedisAdapterFactory", "RequestType", "create_adapter"]

logger = logging.getLogger("fastsio.redis")

_EVENT = _impl.socketio.EVENT
_BINARY_EVENT = _impl.socketio.BINARY_EVENT
_Packet = _impl.socketio.Packet


class RequestType:
    """The request types of @socket.io/redis-adapter (``RequestType`` in its lib/index.ts)."""

    SOCKETS = 0
    ALL_ROOMS = 1
    REMOTE_JOIN = 2
    REMOTE_LEAVE = 3
    REMOTE_DISCONNECT = 4
    REMOTE_FETCH = 5
    SERVER_SIDE_EMIT = 6
    BROADCAST = 7
    BROADCAST_CLIENT_COUNT = 8
    BROADCAST_ACK = 9


def create_adapter(
    redis: Any = "redis://127.0.0.1:6379/0",
    *,
    key: str = "socket.io",
    requests_timeout: float = 5.0,
    publish_on_specific_response_channel: bool = False,
) -> RedisAdapterFactory:
    """``fastsio.Server(adapter=create_adapter("redis://..."))``, as Node's
    ``io.adapter(createAdapter(pubClient, subClient, {key, requestsTimeout}))``.

    ``redis``: a ``redis://`` / ``rediss://`` / ``unix://`` URL or a redis-py client (its
    connection settings are used: the adapter keeps two connections of its own, one to publish,
    one subscribed). ``requests_timeout``: seconds to wait for the other servers' answers.
    """
    return RedisAdapterFactory(
        redis,
        key=key,
        requests_timeout=requests_timeout,
        publish_on_specific_response_channel=publish_on_specific_response_channel,
    )


class RedisAdapterFactory:
    """Makes the adapter of each namespace; all of them share two Redis connections, opened by
    the first ``init`` and closed by the last ``close``."""

    adapter_class: type = None  # type: ignore[assignment]  # set below

    def __init__(
        self,
        redis: Any,
        *,
        key: str,
        requests_timeout: float,
        publish_on_specific_response_channel: bool = False,
    ) -> None:
        self.options = connection_options(redis)
        self.key = key
        self.requests_timeout = requests_timeout
        self.publish_on_specific_response_channel = publish_on_specific_response_channel
        self.publisher, self.subscriber = self._make_links()
        self._users = 0
        self._starting: asyncio.Future | None = None

    def _make_links(self) -> tuple[Any, Any]:
        """(the publish link, the subscribe link): fresh ones at each start."""
        return (
            CommandLink(self.options, logger, f"redis adapter {self.key} (publish)"),
            SubscribeLink(self.options, logger, f"redis adapter {self.key} (subscribe)"),
        )

    def __call__(self, nsp: Any) -> RedisAdapter:
        return self.adapter_class(nsp, self)

    async def acquire(self) -> None:
        """Connect both links (once for every adapter of this factory)."""
        self._users += 1
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._connect())
        try:
            await asyncio.shield(self._starting)
        except BaseException:
            self._users -= 1
            if self._users == 0:
                self._starting = None
            raise

    async def _connect(self) -> None:
        try:
            await self.publisher.start()
            if self.subscriber is not self.publisher:
                await self.subscriber.start()
        except (OSError, asyncio.TimeoutError) as exc:
            await self.publisher.close()
            raise ConnectionError(f"cannot connect to Redis at {self.options}: {exc}") from exc

    async def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            self._starting = None
            await self.subscriber.close()
            if self.publisher is not self.subscriber:
                await self.publisher.close()
            # fresh links, should the server start again
            self.publisher, self.subscriber = self._make_links()


class DropLog:
    """Logs malformed messages from the channels, without letting a flood flood the log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0

    def __call__(self, channel: bytes, reason: Any) -> None:
        self.count += 1
        if self.count <= 10 or self.count % 1000 == 0:
            logger.warning(
                "dropped a malformed %s on %r (%s); %d so far",
                self.what,
                channel[:200],
                reason,
                self.count,
            )


class RedisAdapter(InMemoryAdapter):
    """The adapter of one namespace on a Redis cluster (see the module's doc)."""

    def __init__(self, nsp: Any, factory: RedisAdapterFactory) -> None:
        super().__init__(nsp)
        self.factory = factory
        self.uid = new_uid()
        key = factory.key
        name = nsp.name
        self.channel = f"{key}#{name}#"
        self.request_channel = f"{key}-request#{name}#"
        self.response_channel = f"{key}-response#{name}#"
        self.specific_response_channel = f"{self.response_channel}{self.uid}#"
        self._channel_prefix = self.channel.encode()
        self._response_prefix = self.response_channel.encode()
        self._prefix_length = len(self._channel_prefix)
        # how this server's own broadcasts begin ([uid, packet, opts] in MessagePack)
        self._own_prefix = b"\x93" + pack(self.uid)
        self.requests = PendingRequests()
        # broadcasts with acks this server sent: request id -> (client count callback, ack)
        self.ack_requests: dict[str, tuple[Callable, Callable]] = {}
        self._drop_broadcast = DropLog("broadcast")
        self._drop_request = DropLog("request")
        self._initialised = False

    def __repr__(self) -> str:
        return f"<RedisAdapter {self.nsp.name} uid={self.uid} key={self.factory.key}>"

    # -- lifecycle -------------------------------------------------------------------------------

    async def init(self) -> None:
        await self.factory.acquire()
        subscriber = self.factory.subscriber
        await subscriber.psubscribe(
            self.channel + "*",
            self._on_broadcast,
            wants=broadcast_filter(self._prefix_length, self._rooms, self._own_prefix),
        )
        for channel in (
            self.request_channel,
            self.response_channel,
            self.specific_response_channel,
        ):
            await subscriber.subscribe(channel, self._on_request_or_response)
        self._initialised = True

    async def close(self) -> None:
        if not self._initialised:
            return
        self._initialised = False
        subscriber = self.factory.subscriber
        try:
            await subscriber.punsubscribe(self.channel + "*")
            for channel in (
                self.request_channel,
                self.response_channel,
                self.specific_response_channel,
            ):
                await subscriber.unsubscribe(channel)
        except (ConnectionError, OSError):
            pass
        self.requests.cancel_all()
        self.ack_requests.clear()
        await self.factory.release()

    async def server_count(self) -> int:
        """``PUBSUB NUMSUB`` of the request channel: every server (Node's included) counts."""
        reply = await self.factory.publisher.call("PUBSUB", "NUMSUB", self.request_channel)
        return int(reply[1])

    # -- publishing --------------------------------------------------------------------------------

    def _publish(self, channel: str, message: bytes) -> None:
        self.factory.publisher.publish(channel, message)

    def _publish_request(self, request: dict, binary: bool = False) -> None:
        self._publish(self.request_channel, pack(request) if binary else json_dumps(request))

    def _publish_response(self, request: dict, response: bytes) -> None:
        channel = self.response_channel
        if self.factory.publish_on_specific_response_channel:
            channel = f"{channel}{request.get('uid')}#"
        self._publish(channel, response)

    @staticmethod
    def _wire_packet(packet: Any, nsp: str) -> dict:
        # the packet before encoding, as Node's adapter publishes it (binary stays inline)
        kind = packet.type
        return {"type": _EVENT if kind == _BINARY_EVENT else kind, "data": packet.data, "nsp": nsp}

    # -- broadcasting ------------------------------------------------------------------------------

    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        if not opts.local:
            message = pack([self.uid, self._wire_packet(packet, self.nsp.name), opts.to_wire()])
            channel = self.channel
            if len(opts.rooms) == 1:
                for room in opts.rooms:
                    channel = f"{channel}{room}#"
            self._publish(channel, message)
        InMemoryAdapter.broadcast(self, packet, opts)

    def _on_broadcast(self, channel: bytes, message: bytes) -> None:
        """A message on the broadcast channel or a room channel."""
        prefix_length = self._prefix_length
        if len(channel) > prefix_length + 1:
            # a room channel: dropped unless a local socket is in the room, before decoding
            try:
                room = channel[prefix_length:-1].decode()
            except UnicodeDecodeError:
                return
            rooms = self._rooms
            if room not in rooms and not (room.isascii() and room.isdigit() and int(room) in rooms):
                return
        elif channel != self._channel_prefix:
            return
        if message.startswith(self._own_prefix):
            return  # our own, back from Redis
        try:
            uid, raw_packet, raw_opts = unpack(message)
            if uid == self.uid:
                return
            packet = self._packet_from_wire(raw_packet)
            if packet is None:
                return  # another namespace's
            opts = BroadcastOptions.from_wire(raw_opts)
        except (ValueError, TypeError, KeyError) as exc:
            self._drop_broadcast(channel, exc)
            return
        InMemoryAdapter.broadcast(self, packet, opts)

    def _packet_from_wire(self, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise TypeError("the packet is not a map")
        if raw.get("nsp", "/") != self.nsp.name:
            return None
        kind = raw.get("type")
        data = raw.get("data")
        if kind not in (_EVENT, _BINARY_EVENT):
            raise ValueError(f"packet type {kind!r} cannot be broadcast")
        if type(data) is not list or not data or type(data[0]) is not str:
            raise ValueError("the packet's data is not [event, ...args]")
        return _Packet(_EVENT, self.nsp.name, data)

    def broadcast_with_ack(
        self,
        packet: Any,
        opts: BroadcastOptions,
        client_count_callback: Callable[[int], None],
        ack: Callable[[list], None],
        ack_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        if not opts.local:
            request_id = new_uid()
            request = {
                "uid": self.uid,
                "requestId": request_id,
                "type": RequestType.BROADCAST,
                "packet": self._wire_packet(packet, self.nsp.name),
                "opts": opts.to_wire(),
            }
            self._publish_request(request, binary=True)
            self.ack_requests[request_id] = (client_count_callback, ack)
            # nothing says when every remote ack is in: forget the request after the timeout
            timeout = opts.timeout if opts.timeout is not None else self.factory.requests_timeout
            asyncio.get_running_loop().call_later(timeout, self.ack_requests.pop, request_id, None)
        InMemoryAdapter.broadcast_with_ack(
            self, packet, opts, client_count_callback, ack, ack_failed
        )

    # -- acting on every server's sockets --------------------------------------------------------

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if not opts.local:
            self._publish_request(
                {
                    "uid": self.uid,
                    "type": RequestType.REMOTE_JOIN,
                    "opts": _select_wire(opts),
                    "rooms": rooms,
                }
            )
        InMemoryAdapter.add_sockets(self, opts, rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        if not opts.local:
            self._publish_request(
                {
                    "uid": self.uid,
                    "type": RequestType.REMOTE_LEAVE,
                    "opts": _select_wire(opts),
                    "rooms": rooms,
                }
            )
        InMemoryAdapter.del_sockets(self, opts, rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool = False) -> None:
        if not opts.local:
            self._publish_request(
                {
                    "uid": self.uid,
                    "type": RequestType.REMOTE_DISCONNECT,
                    "opts": _select_wire(opts),
                    "close": bool(close),
                }
            )
        InMemoryAdapter.disconnect_sockets(self, opts, close)

    async def fetch_sockets(self, opts: BroadcastOptions) -> list:
        """The local sockets and, unless ``opts.local``, those of every other server (as
        :class:`~fastsio.cluster.RemoteSocket`). Raises AdapterTimeoutError when a server does
        not answer within ``opts.timeout`` (else the adapter's ``requests_timeout``)."""
        local = self.select(opts)
        if opts.local:
            return local
        timeout = opts.timeout if opts.timeout is not None else self.factory.requests_timeout
        answers = await self._ask_others(
            RequestType.REMOTE_FETCH, timeout, "fetch_sockets", {"opts": _select_wire(opts)}
        )
        return local + [RemoteSocket(self.nsp, details) for answer in answers for details in answer]

    async def all_rooms(self) -> set:
        """The rooms of every server (Node's ``adapter.allRooms()``)."""
        rooms = set(self._rooms)
        answers = await self._ask_others(
            RequestType.ALL_ROOMS, self.factory.requests_timeout, "all_rooms", {}
        )
        for answer in answers:
            rooms.update(answer)
        return rooms

    def server_side_emit(
        self,
        event: str,
        args: list,
        ack: Callable[[BaseException | None, list], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        data = [event, *args]
        if ack is None:
            self._publish_request(
                {"uid": self.uid, "type": RequestType.SERVER_SIDE_EMIT, "data": data}
            )
            return
        timeout = timeout if timeout is not None else self.factory.requests_timeout
        answers = self._ask_others(
            RequestType.SERVER_SIDE_EMIT, timeout, f"server_side_emit {event!r}", {"data": data}
        )
        answer_when_done(answers, ack)

    def _ask_others(self, kind: int, timeout: float, what: str, fields: dict) -> Any:
        def send(request_id: str) -> None:
            self._publish_request(
                {"uid": self.uid, "requestId": request_id, "type": kind, **fields}
            )

        return self.requests.ask_others(self.server_count, kind, timeout, what, send, new_uid)

    # -- requests and responses from the other servers ---------------------------------------------

    def _on_request_or_response(self, channel: bytes, message: bytes) -> None:
        try:
            body = json_loads(message) if message[:1] == b"{" else unpack(message)
            if not isinstance(body, dict):
                raise TypeError("not a map")
            if channel.startswith(self._response_prefix):
                self._on_response(body)
            else:
                self._on_request(body)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._drop_request(channel, exc)

    def _on_request(self, request: dict) -> None:
        kind = request.get("type")
        handler = self._request_handlers.get(kind)
        if handler is None:
            logger.debug("ignored a request of unknown type %r", kind)
            return
        handler(self, request)

    def _own(self, request: dict) -> bool:
        return request.get("uid") == self.uid

    def _answer_sockets(self, request: dict) -> None:
        if request.get("requestId") in self.requests:
            return
        rooms = request.get("rooms") or []
        sockets = self.sockets(rooms) if isinstance(rooms, list) else set()
        self._publish_response(
            request, json_dumps({"requestId": request.get("requestId"), "sockets": list(sockets)})
        )

    def _answer_all_rooms(self, request: dict) -> None:
        if request.get("requestId") in self.requests:
            return
        self._publish_response(
            request, json_dumps({"requestId": request.get("requestId"), "rooms": list(self._rooms)})
        )

    def _apply_join(self, request: dict) -> None:
        self._apply_room_change(request, InMemoryAdapter.add_sockets, "join")

    def _apply_leave(self, request: dict) -> None:
        self._apply_room_change(request, InMemoryAdapter.del_sockets, "leave")

    def _apply_room_change(self, request: dict, apply: Callable, method: str) -> None:
        if self._own(request):
            return  # applied locally when sent
        if "opts" in request:
            rooms = request.get("rooms")
            if not isinstance(rooms, list):
                raise ValueError("rooms must be a list")
            apply(self, BroadcastOptions.from_wire(request["opts"]), rooms)
            return
        # the older form: one socket (by id), one room, answered
        socket = self.nsp.sockets.get(request.get("sid"))
        if socket is not None:
            getattr(socket, method)(request.get("room"))
            self._publish_response(request, json_dumps({"requestId": request.get("requestId")}))

    def _apply_disconnect(self, request: dict) -> None:
        if self._own(request):
            return
        close = bool(request.get("close"))
        if "opts" in request:
            InMemoryAdapter.disconnect_sockets(
                self, BroadcastOptions.from_wire(request["opts"]), close
            )
            return
        socket = self.nsp.sockets.get(request.get("sid"))
        if socket is not None:
            socket.disconnect(close)
            self._publish_response(request, json_dumps({"requestId": request.get("requestId")}))

    def _answer_fetch(self, request: dict) -> None:
        if request.get("requestId") in self.requests:
            return
        opts = BroadcastOptions.from_wire(request.get("opts"))
        sockets = [socket_details(socket) for socket in self.select(opts)]
        try:
            body = json_dumps({"requestId": request.get("requestId"), "sockets": sockets})
        except TypeError as exc:
            logger.warning("fetch_sockets: socket.data not serialisable (%s); sent without it", exc)
            for details in sockets:
                details["data"] = None
            body = json_dumps({"requestId": request.get("requestId"), "sockets": sockets})
        self._publish_response(request, body)

    def _on_server_side_emit(self, request: dict) -> None:
        if self._own(request):
            return
        data = request.get("data")
        if type(data) is not list or not data or type(data[0]) is not str:
            raise ValueError("server-side event data must be [event, ...args]")
        request_id = request.get("requestId")
        if request_id is None:
            self.nsp.handle_server_event(data[0], data[1:])
            return

        def answer(result: Any) -> None:
            # always on the shared response channel, as Node's adapter does
            body = {"type": RequestType.SERVER_SIDE_EMIT, "requestId": request_id, "data": result}
            try:
                message = json_dumps(body)
            except TypeError as exc:
                logger.warning(
                    "the answer to server-side event %r is not serialisable: %s", data[0], exc
                )
                message = json_dumps(dict(body, data=None))
            self._publish(self.response_channel, message)

        self.nsp.handle_server_event(data[0], data[1:], answer)

    def _on_remote_broadcast_with_ack(self, request: dict) -> None:
        request_id = request.get("requestId")
        if request_id in self.ack_requests:
            return  # our own
        packet = self._packet_from_wire(request.get("packet"))
        if packet is None:
            return
        raw_opts = request.get("opts") or {}
        # Node passes only rooms and except on (no flags) to the local broadcast
        opts = BroadcastOptions.from_wire(
            {"rooms": raw_opts.get("rooms"), "except": raw_opts.get("except")}
        )

        def client_count(count: int) -> None:
            body = {
                "type": RequestType.BROADCAST_CLIENT_COUNT,
                "requestId": request_id,
                "clientCount": count,
            }
            self._publish_response(request, json_dumps(body))

        def client_ack(args: list) -> None:
            body = {
                "type": RequestType.BROADCAST_ACK,
                "requestId": request_id,
                "packet": args[0] if args else None,
            }
            self._publish_response(request, pack(body))

        InMemoryAdapter.broadcast_with_ack(self, packet, opts, client_count, client_ack)

    _request_handlers: ClassVar[dict] = {
        RequestType.SOCKETS: _answer_sockets,
        RequestType.ALL_ROOMS: _answer_all_rooms,
        RequestType.REMOTE_JOIN: _apply_join,
        RequestType.REMOTE_LEAVE: _apply_leave,
        RequestType.REMOTE_DISCONNECT: _apply_disconnect,
        RequestType.REMOTE_FETCH: _answer_fetch,
        RequestType.SERVER_SIDE_EMIT: _on_server_side_emit,
        RequestType.BROADCAST: _on_remote_broadcast_with_ack,
    }

    def _on_response(self, response: dict) -> None:
        request_id = response.get("requestId")
        callbacks = self.ack_requests.get(request_id) if type(request_id) is str else None
        if callbacks is not None:
            kind = response.get("type")
            if kind == RequestType.BROADCAST_CLIENT_COUNT:
                count = response.get("clientCount")
                if type(count) is not int or count < 0:
                    raise ValueError(f"invalid client count {count!r}")
                callbacks[0](count)
            elif kind == RequestType.BROADCAST_ACK:
                callbacks[1]([response.get("packet")])
            return
        request = self.requests.get(request_id)
        if request is None:
            return  # another server's, or too late
        kind = request.kind
        if kind == RequestType.REMOTE_FETCH:
            sockets = response.get("sockets")
            if not isinstance(sockets, list):
                return
            valid = [d for d in sockets if isinstance(d, dict) and isinstance(d.get("id"), str)]
            self.requests.answer(request_id, valid)
        elif kind == RequestType.ALL_ROOMS:
            rooms = response.get("rooms")
            if isinstance(rooms, list):
                self.requests.answer(request_id, [r for r in rooms if isinstance(r, (str, int))])
        elif kind == RequestType.SERVER_SIDE_EMIT:
            self.requests.answer(request_id, response.get("data"))


RedisAdapterFactory.adapter_class = RedisAdapter


def _select_wire(opts: BroadcastOptions) -> dict:
    """The socket selection of ``opts`` (no flags), as Node's requests carry it."""
    return {"rooms": list(opts.rooms), "except": list(opts.except_rooms)}
