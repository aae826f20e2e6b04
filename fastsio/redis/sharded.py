"""The sharded Redis adapter, wire-compatible with Node's ``createShardedAdapter`` of
``@socket.io/redis-adapter`` 8.3 (on socket.io-adapter 2.5's ``ClusterAdapter``): fastsio and
Node servers on one Redis 7 form one cluster over sharded pub/sub (SPUBLISH / SSUBSCRIBE).

Channels, per namespace (``channel_prefix`` defaults to ``"socket.io"``):

- ``{prefix}#{nsp}#``: every message of the cluster protocol (:class:`~fastsio.cluster.MessageType`),
  a map ``{"type", "data", "uid", "nsp"}``; every server subscribes to it, which is what
  ``PUBSUB SHARDNUMSUB`` counts as the number of servers;
- ``{prefix}#{nsp}#{uid}#``: the answers to this server's requests;
- ``{prefix}#{nsp}#{room}#``: a broadcast (without acks) to exactly one room, with
  ``subscription_mode="dynamic"`` (the default; not for a room that looks like a socket id,
  i.e. 20 characters long) or ``"dynamic-private"`` (every room, socket ids included). A server
  subscribes to the channel of a room when the room's first local socket joins it and
  unsubscribes when its last one leaves, so it never receives other servers' room traffic. With
  ``"static"`` everything goes to the main channel.

Messages are JSON, or MessagePack (notepack.io's) when their data holds binary; what arrives may
be either (the first byte tells). Malformed messages are logged and dropped.

On one Redis 7 node, two connections (one to publish, one subscribed). On a Redis Cluster
(``cluster=True``, or a list of startup nodes), a publish and a subscribe connection per master:
SPUBLISH and SSUBSCRIBE go to the master that owns the channel's slot, following the map through
reshardings and failovers (fastsio/redis/_cluster.py), and the number of servers is
``PUBSUB SHARDNUMSUB`` summed over the masters, as Node's adapter does on a node-redis cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import hiredis
import orjson

from ..adapter import InMemoryAdapter
from ..cluster import MALFORMED, MAY_CONTAIN_BINARY, ClusterAdapter, MessageType, has_binary
from ._cluster import RedisCluster
from ._codec import json_dumps, json_loads, pack, unpack
from ._connection import CommandLink, SubscribeLink, connection_options
from .adapter import DropLog, RedisAdapterFactory

__all__ = [
    "SUBSCRIPTION_MODES",
    "ShardedRedisAdapter",
    "ShardedRedisAdapterFactory",
    "create_sharded_adapter",
]

logger = logging.getLogger("fastsio.redis")

SUBSCRIPTION_MODES = ("static", "dynamic", "dynamic-private")

_SPUBLISH = b"SPUBLISH"
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS


def create_sharded_adapter(
    redis: Any = "redis://127.0.0.1:6379/0",
    *,
    channel_prefix: str = "socket.io",
    subscription_mode: str = "dynamic",
    requests_timeout: float = 5.0,
    cluster: bool = False,
) -> ShardedRedisAdapterFactory:
    """``fastsio.Server(adapter=create_sharded_adapter("redis://..."))``, as Node's
    ``io.adapter(createShardedAdapter(pubClient, subClient, {channelPrefix, subscriptionMode}))``.

    ``redis``: a ``redis://`` / ``rediss://`` / ``unix://`` URL or a redis-py client (its
    connection settings are used: the adapter keeps two connections of its own), Redis >= 7.
    A Redis Cluster: ``cluster=True`` with the URL of any of its nodes, or a list of URLs (the
    startup nodes: the first that answers gives the slot map; credentials and TLS are those of
    the first URL, for every node). ``subscription_mode``: ``"static"``, ``"dynamic"`` or
    ``"dynamic-private"`` (see the module's doc); use the same on every server.
    ``requests_timeout``: seconds to wait for the other servers' answers (Node waits 5 s).
    """
    return ShardedRedisAdapterFactory(
        redis,
        channel_prefix=channel_prefix,
        subscription_mode=subscription_mode,
        requests_timeout=requests_timeout,
        cluster=cluster,
    )


class ShardedRedisAdapterFactory(RedisAdapterFactory):
    """Makes the adapter of each namespace; all of them share the Redis connections (one to
    publish and one subscribed, per master on a Redis Cluster), opened by the first ``init`` and
    closed by the last ``close``. On a cluster, ``publisher`` and ``subscriber`` are one
    :class:`~fastsio.redis._cluster.RedisCluster`."""

    def __init__(
        self,
        redis: Any,
        *,
        channel_prefix: str,
        subscription_mode: str,
        requests_timeout: float,
        cluster: bool = False,
    ) -> None:
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(
                f"subscription_mode must be one of {', '.join(SUBSCRIPTION_MODES)}, not {subscription_mode!r}"
            )
        nodes = list(redis) if isinstance(redis, (list, tuple)) else [redis]
        if not nodes:
            raise ValueError("no Redis node given")
        self.cluster = cluster or isinstance(redis, (list, tuple))
        self.startup = [connection_options(node) for node in nodes]
        self.channel_prefix = channel_prefix
        self.subscription_mode = subscription_mode
        super().__init__(nodes[0], key=channel_prefix, requests_timeout=requests_timeout)

    def _make_links(self) -> tuple[Any, Any]:
        name = f"sharded redis adapter {self.channel_prefix}"
        if self.cluster:
            links = RedisCluster(self.startup, logger, f"{name} (cluster)")
            return links, links
        return (
            CommandLink(self.options, logger, f"{name} (publish)"),
            SubscribeLink(self.options, logger, f"{name} (subscribe)"),
        )

    async def shard_numsub(self, channel: str) -> int:
        """``PUBSUB SHARDNUMSUB`` of ``channel``: summed over the masters of a cluster (each
        counts the subscribers of its own slots), as Node's adapter does."""
        if self.cluster:
            replies = await self.publisher.call_masters("PUBSUB", "SHARDNUMSUB", channel)
            return sum(int(reply[1]) for reply in replies)
        reply = await self.publisher.call("PUBSUB", "SHARDNUMSUB", channel)
        return int(reply[1])


def _looks_like_a_socket_id(room: Any) -> bool:
    # Node's looksLikeASocketId: a string of 20 UTF-16 code units
    if type(room) is not str or len(room) > 20:
        return False
    return len(room) + sum(1 for char in room if char > "\uffff") == 20


def encode(message: dict) -> bytes:
    """A cluster message as Node's sharded adapter writes it: JSON, unless its data may hold
    binary and does (then MessagePack). Raises TypeError when it cannot be serialised."""
    if message["type"] in MAY_CONTAIN_BINARY:
        try:
            return orjson.dumps(message, option=_JSON_OPTIONS)
        except TypeError:
            if has_binary(message.get("data")):
                return pack(message)
    return json_dumps(message)


def decode(raw: bytes) -> Any:
    """JSON when the first byte is ``{``, MessagePack otherwise (ValueError when neither)."""
    return json_loads(raw) if raw[:1] == b"{" else unpack(raw)


class ShardedRedisAdapter(ClusterAdapter):
    """The adapter of one namespace on sharded Redis pub/sub (see the module's doc)."""

    def __init__(self, nsp: Any, factory: ShardedRedisAdapterFactory) -> None:
        super().__init__(nsp, factory.requests_timeout)
        self.factory = factory
        self.channel = f"{factory.channel_prefix}#{nsp.name}#"
        self.response_channel = f"{self.channel}{self.uid}#"
        self._response_channel = self.response_channel.encode()
        mode = factory.subscription_mode
        self.subscription_mode = mode
        self._dynamic = mode != "static"
        self._private = mode == "dynamic-private"
        # the rooms whose channel this server subscribes to (dynamic modes)
        self.room_channels: set = set()
        self._subscribing: set[asyncio.Task] = set()
        # how our own messages end (the echoes Redis sends us back are skipped before decoding):
        # JSON and MessagePack both end with uid then nsp
        nsp_json = orjson.dumps(nsp.name)
        self._own_json = b',"uid":"' + self.uid.encode() + b'","nsp":' + nsp_json + b"}"
        self._own_msgpack = b"\xa3uid" + pack(self.uid) + b"\xa3nsp" + pack(nsp.name)
        self._own_messages = (self._own_json, self._own_msgpack)
        self._drop = DropLog("sharded adapter message")
        self._initialised = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def init(self) -> None:
        await self.factory.acquire()
        self._initialised = True
        subscriber = self.factory.subscriber
        channels = [self.channel, self.response_channel]
        channels += [self._room_channel(room) for room in self.room_channels]
        try:
            await asyncio.gather(
                *(subscriber.ssubscribe(channel, self._on_raw) for channel in channels)
            )
        except hiredis.ReplyError as exc:
            self._initialised = False
            await self.factory.release()
            raise ConnectionError(
                f"SSUBSCRIBE failed ({exc}): the sharded adapter needs Redis >= 7 (a Redis "
                "Cluster needs cluster=True)"
            ) from exc

    async def close(self) -> None:
        if not self._initialised:
            return
        self._initialised = False
        for task in list(self._subscribing):
            task.cancel()
        subscriber = self.factory.subscriber
        channels = [self.channel, self.response_channel]
        channels += [self._room_channel(room) for room in self.room_channels]
        await asyncio.gather(
            *(subscriber.sunsubscribe(channel) for channel in channels), return_exceptions=True
        )
        await ClusterAdapter.close(self)
        await self.factory.release()

    async def server_count(self) -> int:
        """``PUBSUB SHARDNUMSUB`` of the main channel: every server (Node's included) counts."""
        return await self.factory.shard_numsub(self.channel)

    # -- publishing --------------------------------------------------------------------------------

    def publish_message(self, message: dict) -> None:
        channel = self.channel
        if self._dynamic and message["type"] == MessageType.BROADCAST:
            # as Node's computeChannel: a broadcast without acks to exactly one room goes to the
            # room's channel (a broadcast with acks must reach every server: they all answer)
            data = message["data"]
            rooms = data["opts"]["rooms"]
            if len(rooms) == 1 and "requestId" not in data:
                room = rooms[0]
                if self._private or not _looks_like_a_socket_id(room):
                    channel = self._room_channel(room)
        self.factory.publisher.publish(channel, encode(message), _SPUBLISH)

    def publish_response(self, requester_uid: str, message: dict) -> None:
        self.factory.publisher.publish(
            f"{self.channel}{requester_uid}#", encode(message), _SPUBLISH
        )

    def _room_channel(self, room: Any) -> str:
        return f"{self.channel}{room}#"

    # -- receiving ---------------------------------------------------------------------------------

    def _on_raw(self, channel: bytes, raw: bytes) -> None:
        if raw.endswith(self._own_messages):
            return  # our own message, back from Redis
        try:
            message = decode(raw)
            if channel == self._response_channel:
                self.on_response(message)
            else:
                self.on_message(message)
        except MALFORMED as exc:
            self._drop(channel, exc)

    # -- room channels (dynamic modes): subscribed while a local socket is in the room --------------

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        if not self._dynamic:
            InMemoryAdapter.add_all(self, sid, rooms)
            return
        if type(rooms) not in (tuple, list, frozenset, set):
            rooms = list(rooms)
        existing = self._rooms
        created = [room for room in rooms if room not in existing]
        InMemoryAdapter.add_all(self, sid, rooms)
        for room in created:
            # Node's shouldUseASeparateNamespace: in "dynamic" mode not a socket's own room
            if (self._private or room not in self._sids) and room not in self.room_channels:
                self.room_channels.add(room)
                if self._initialised:
                    self._change_subscription(room, True)

    def delete(self, sid: str, room: str) -> None:
        InMemoryAdapter.delete(self, sid, room)
        if room in self.room_channels and room not in self._rooms:
            self._room_gone(room)

    def del_all(self, sid: str) -> None:
        own = self._sids.get(sid)
        InMemoryAdapter.del_all(self, sid)
        if own and self.room_channels:
            rooms = self._rooms
            for room in own:
                if room in self.room_channels and room not in rooms:
                    self._room_gone(room)

    def _room_gone(self, room: Any) -> None:
        self.room_channels.discard(room)
        if self._initialised:
            self._change_subscription(room, False)

    def _change_subscription(self, room: Any, subscribe: bool) -> None:
        # a task sends the command on the next loop turn (in order with the others) and awaits
        # Redis's confirmation: joining a room never waits for Redis
        subscriber = self.factory.subscriber
        channel = self._room_channel(room)
        if subscribe:
            coro = subscriber.ssubscribe(channel, self._on_raw)
        else:
            coro = subscriber.sunsubscribe(channel)
        task = asyncio.ensure_future(coro)
        self._subscribing.add(task)
        task.add_done_callback(self._subscription_done)

    def _subscription_done(self, task: asyncio.Task) -> None:
        self._subscribing.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, (ConnectionError, OSError)):
            logger.error("%r: a room subscription failed: %s", self, exc)

    async def wait_subscriptions(self) -> None:
        """Wait until Redis has confirmed the room (un)subscriptions made so far."""
        while self._subscribing:
            await asyncio.gather(*list(self._subscribing), return_exceptions=True)


ShardedRedisAdapterFactory.adapter_class = ShardedRedisAdapter
