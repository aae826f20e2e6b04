"""The Redis Streams adapter, wire-compatible with Node's ``@socket.io/redis-streams-adapter``
0.3 (on socket.io-adapter 2.5's ``ClusterAdapter``): fastsio and Node servers on one Redis
form one cluster, and connection state recovery works across them.

What goes where (``stream_name`` and ``channel_prefix`` both default to ``"socket.io"``):

- the stream ``{stream_name}``: broadcasts without acks, sockets join / leave, disconnect
  sockets. One entry per message (``XADD {stream} MAXLEN ~ {max_len} *``), with the fields
  ``uid``, ``nsp``, ``type`` (the :class:`~fastsio.cluster.MessageType` as a decimal string)
  and ``data``: JSON, or, when the data holds binary, MessagePack in base64. Every server reads
  the stream with ``XREAD BLOCK`` on a connection of its own; the entry's id is the broadcast's
  *offset*, which connection state recovery appends to the event, so every server gives the
  same packet the same offset;
- the channel ``{channel_prefix}#{nsp}#`` (``PUBLISH``, MessagePack of the whole message): the
  requests that need no log (a broadcast with acks, fetch_sockets, server-side emits); every
  server subscribes to it, which is what ``PUBSUB NUMSUB`` counts as the number of servers;
- the channel ``{channel_prefix}#{nsp}#{uid}#``: the answers to this server's requests;
- the key ``{session_key_prefix}{pid}``: a disconnected socket's session (MessagePack of
  ``{sid, pid, rooms, data}`` in base64), set with ``PX`` = ``max_disconnection_duration``,
  read and deleted at once (``MULTI GET DEL``) by the server the client comes back to, which
  replays the stream's broadcasts after the client's offset that its rooms would have received.

With recovery on, this server's own broadcast reaches its local sockets when Redis has answered
the ``XADD`` (the offset is the entry's id), as in Node; a broadcast is still encoded once for
all of them. With recovery off they are served at once. Malformed entries and messages are
logged and dropped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Iterable
from typing import Any

import orjson

from ..adapter import BroadcastOptions, InMemoryAdapter
from ..cluster import (
    MALFORMED,
    MAY_CONTAIN_BINARY,
    ClusterAdapter,
    MessageType,
    has_binary,
)
from ..recovery import PendingRestores, included_in, loggable
from ._codec import json_dumps, pack, unpack
from ._connection import (
    CommandLink,
    ReplyCallback,
    StreamReadLink,
    SubscribeLink,
    connection_options,
    encode_command,
)
from .adapter import DropLog, RedisAdapterFactory

__all__ = ["RedisStreamsAdapter", "RedisStreamsAdapterFactory", "create_streams_adapter"]

logger = logging.getLogger("fastsio.redis")

#: the messages that go through pub/sub, not the stream (Node's isEphemeral)
_EPHEMERAL = frozenset((MessageType.SERVER_SIDE_EMIT, MessageType.FETCH_SOCKETS))
_OFFSET = re.compile(r"[0-9]+-[0-9]+\Z")
#: entries read per XRANGE while restoring a session, and the most XRANGE calls (as Node's
#: RESTORE_SESSION_MAX_XRANGE_CALLS bounds its loop)
RESTORE_BATCH = 1000
RESTORE_MAX_CALLS = 100
_BROADCAST_TYPE = b"3"


def create_streams_adapter(
    redis: Any = "redis://127.0.0.1:6379/0",
    *,
    stream_name: str = "socket.io",
    channel_prefix: str = "socket.io",
    max_len: int = 10_000,
    read_count: int = 100,
    block_time: float = 5.0,
    session_key_prefix: str = "sio:session:",
    requests_timeout: float = 5.0,
) -> RedisStreamsAdapterFactory:
    """``fastsio.Server(adapter=create_streams_adapter("redis://..."))``, as Node's
    ``io.adapter(createAdapter(redisClient, {streamName, maxLen, readCount, blockTimeInMs,
    sessionKeyPrefix, channelPrefix}))`` of ``@socket.io/redis-streams-adapter``.

    ``redis``: a ``redis://`` / ``rediss://`` / ``unix://`` URL or a redis-py client (its
    connection settings are used), Redis >= 6.2 (GETDEL). The adapter keeps three connections: commands,
    subscriptions, and the blocking stream read. ``max_len``: the stream is trimmed to about
    this many entries (``MAXLEN ~``): a client away for longer than the stream reaches back is
    not recovered. ``read_count``: entries per ``XREAD``; ``block_time``: seconds an ``XREAD``
    blocks (Node's ``blockTimeInMs``). ``requests_timeout``: seconds to wait for the other
    servers' answers. Use the same names on every server of the cluster."""
    return RedisStreamsAdapterFactory(
        redis,
        stream_name=stream_name,
        channel_prefix=channel_prefix,
        max_len=max_len,
        read_count=read_count,
        block_time=block_time,
        session_key_prefix=session_key_prefix,
        requests_timeout=requests_timeout,
    )


class RedisStreamsAdapterFactory(RedisAdapterFactory):
    """Makes the adapter of each namespace; all of them share the three Redis connections
    (``publisher``: commands; ``subscriber``; ``reader``: the stream), opened by the first
    ``init`` and closed by the last ``close``."""

    def __init__(
        self,
        redis: Any,
        *,
        stream_name: str,
        channel_prefix: str,
        max_len: int,
        read_count: int,
        block_time: float,
        session_key_prefix: str,
        requests_timeout: float,
    ) -> None:
        if max_len < 1 or read_count < 1 or block_time <= 0:
            raise ValueError("max_len, read_count and block_time must be positive")
        self.stream_name = stream_name
        self.channel_prefix = channel_prefix
        self.max_len = int(max_len)
        self.read_count = int(read_count)
        self.block_ms = max(1, round(block_time * 1000))
        self.session_key_prefix = session_key_prefix
        #: the adapters by namespace name (bytes, as the stream's entries name it)
        self.adapters: dict[bytes, RedisStreamsAdapter] = {}
        self.dropped_entries = DropLog("stream entry")
        self.options = connection_options(redis)
        self.reader = self._make_reader()
        super().__init__(redis, key=stream_name, requests_timeout=requests_timeout)

    def _make_links(self) -> tuple[Any, Any]:
        name = f"redis streams adapter {self.stream_name}"
        return (
            CommandLink(self.options, logger, f"{name} (commands)"),
            SubscribeLink(self.options, logger, f"{name} (subscribe)"),
        )

    def _make_reader(self) -> StreamReadLink:
        return StreamReadLink(
            self.options,
            logger,
            f"redis streams adapter {self.stream_name} (XREAD)",
            self.stream_name,
            self.read_count,
            self.block_ms,
            self._on_entries,
        )

    async def _connect(self) -> None:
        await super()._connect()
        try:
            await self.reader.start()
        except (OSError, asyncio.TimeoutError) as exc:
            await self.publisher.close()
            await self.subscriber.close()
            raise ConnectionError(f"cannot connect to Redis at {self.options}: {exc}") from exc

    async def release(self) -> None:
        if self._users <= 1:
            await self.reader.close()
            self.reader = self._make_reader()
        await super().release()

    def _on_entries(self, entries: list) -> None:
        adapters = self.adapters
        for entry_id, fields in entries:
            try:
                message = entry_fields(fields)
            except MALFORMED as exc:
                self.dropped_entries(entry_id, exc)
                continue
            adapter = adapters.get(message.get(b"nsp"))
            if adapter is not None:
                adapter.on_entry(entry_id, message)


def entry_fields(fields: Any) -> dict:
    """An entry's ``[field, value, ...]`` as a dict of bytes (ValueError when it is not one)."""
    if type(fields) is not list or len(fields) % 2:
        raise ValueError("an entry is not a list of field-value pairs")
    return dict(zip(fields[::2], fields[1::2]))


def encode_data(kind: int, data: dict) -> bytes:
    """An entry's ``data`` field as Node's adapter writes it: JSON, or base64 MessagePack when it
    holds binary (only the types whose data may)."""
    if kind in MAY_CONTAIN_BINARY:
        try:
            return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            if has_binary(data):
                return base64.b64encode(pack(data))
    return json_dumps(data)


def decode_entry(fields: dict) -> dict:
    """An entry's fields -> ``{uid, nsp, type, data}``; ValueError / TypeError when malformed."""
    uid = fields.get(b"uid")
    nsp = fields.get(b"nsp")
    kind = fields.get(b"type")
    if uid is None or nsp is None or kind is None or not kind.isdigit():
        raise ValueError("an entry without uid, nsp or a numeric type")
    message: dict = {"uid": uid.decode(), "nsp": nsp.decode(), "type": int(kind)}
    data = fields.get(b"data")
    if data:
        if data[:1] == b"{":
            message["data"] = orjson.loads(data)
        else:
            try:
                message["data"] = unpack(base64.b64decode(data, validate=True))
            except binascii.Error as exc:
                raise ValueError(f"invalid base64: {exc}") from None
    return message


def offset_key(offset: bytes | str) -> tuple[int, int]:
    """A stream id as a comparable pair."""
    if type(offset) is bytes:
        offset = offset.decode()
    first, _, second = offset.partition("-")
    return int(first), int(second)


class RedisStreamsAdapter(ClusterAdapter):
    """The adapter of one namespace on a Redis stream (see the module's doc)."""

    def __init__(self, nsp: Any, factory: RedisStreamsAdapterFactory) -> None:
        super().__init__(nsp, factory.requests_timeout)
        self.factory = factory
        self.stream = factory.stream_name
        self.channel = f"{factory.channel_prefix}#{nsp.name}#"
        self.response_channel = f"{self.channel}{self.uid}#"
        self._response_channel = self.response_channel.encode()
        self._name = nsp.name.encode()
        self._uid = self.uid.encode()
        recovery = nsp.server.connection_state_recovery
        self._recovery = recovery is not None
        self._session_ms = round(recovery["max_disconnection_duration"] * 1000) if recovery else 0
        # restored sockets not connected yet, and connected ones whose replay reached further
        # than the stream reader has (sid -> last replayed offset): the reader must not give
        # them again what the replay gave them
        self._restoring = PendingRestores()
        self._replayed: dict[str, tuple[int, int]] = {}
        self._drop = DropLog("streams adapter message")
        self._initialised = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def init(self) -> None:
        factory = self.factory
        await factory.acquire()
        factory.adapters[self._name] = self
        self._initialised = True
        subscriber = factory.subscriber
        await asyncio.gather(
            subscriber.subscribe(self.channel, self._on_raw),
            subscriber.subscribe(self.response_channel, self._on_raw),
        )

    async def close(self) -> None:
        if not self._initialised:
            return
        self._initialised = False
        factory = self.factory
        if factory.adapters.get(self._name) is self:
            del factory.adapters[self._name]
        subscriber = factory.subscriber
        await asyncio.gather(
            subscriber.unsubscribe(self.channel),
            subscriber.unsubscribe(self.response_channel),
            return_exceptions=True,
        )
        await ClusterAdapter.close(self)
        await factory.release()

    async def server_count(self) -> int:
        """``PUBSUB NUMSUB`` of the namespace's channel: every server (Node's included)."""
        reply = await self.factory.publisher.call("PUBSUB", "NUMSUB", self.channel)
        return int(reply[1])

    # -- publishing --------------------------------------------------------------------------------

    def publish_message(self, message: dict) -> None:
        kind = message["type"]
        if kind in _EPHEMERAL or (kind == MessageType.BROADCAST and "requestId" in message["data"]):
            self.factory.publisher.publish(self.channel, pack(message))
            return
        self._xadd(message, None)

    def publish_response(self, requester_uid: str, message: dict) -> None:
        self.factory.publisher.publish(f"{self.channel}{requester_uid}#", pack(message))

    def _xadd(self, message: dict, waiter: ReplyCallback | None) -> bool:
        kind = message["type"]
        command = encode_command(
            (
                b"XADD",
                self.stream,
                b"MAXLEN",
                b"~",
                self.factory.max_len,
                b"*",
                b"uid",
                self._uid,
                b"nsp",
                self._name,
                b"type",
                b"%d" % kind,
                b"data",
                encode_data(kind, message["data"]),
            )
        )
        return self.factory.publisher.queue(command, waiter)

    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        if opts.local:
            self._deliver(packet, opts, None)
            return
        message = {
            "type": MessageType.BROADCAST,
            "data": {"packet": self._wire_packet(packet), "opts": opts.to_wire()},
            "uid": self.uid,
            "nsp": self.nsp.name,
        }
        if not (self._recovery and loggable(packet, opts)):
            self._xadd(message, None)
            self._deliver(packet, opts, None)
            return

        def on_reply(entry_id: Any, error: BaseException | None) -> None:
            # served here once Redis gave the entry its id: the offset every server appends
            if error is not None:
                logger.warning(
                    "%r: XADD failed (%s); broadcast served without an offset", self, error
                )
                self._deliver(packet, opts, None)
                return
            offset = entry_id.decode()
            packet.data.append(offset)
            self._deliver(packet, opts, offset_key(offset))

        if not self._xadd(message, ReplyCallback(on_reply)):
            self._deliver(packet, opts, None)  # Redis unreachable: served here, not logged

    def _deliver(self, packet: Any, opts: BroadcastOptions, offset: tuple | None) -> None:
        """The local part of a broadcast, and the restored sockets that are not connected yet."""
        if self._restoring and offset is not None:
            self._restoring.deliver(packet.data, opts, offset)
        InMemoryAdapter.broadcast(self, packet, opts)

    # -- receiving ---------------------------------------------------------------------------------

    def _on_raw(self, channel: bytes, raw: bytes) -> None:
        try:
            message = unpack(raw)
            if channel == self._response_channel:
                self.on_response(message)
            else:
                self.on_message(message)
        except MALFORMED as exc:
            self._drop(channel, exc)

    def on_entry(self, entry_id: bytes, fields: dict) -> None:
        """An entry of the stream for this namespace (another server's, or our own back)."""
        if fields.get(b"uid") == self._uid:
            return  # ours: served when sent
        try:
            message = decode_entry(fields)
            if message["type"] == MessageType.BROADCAST and self._recovery:
                self._on_logged_broadcast(entry_id, message)
            else:
                self.on_message(message)
        except MALFORMED as exc:
            self._drop(entry_id, exc)

    def _on_logged_broadcast(self, entry_id: bytes, message: dict) -> None:
        data = message.get("data")
        if type(data) is not dict or "requestId" in data:
            self.on_message(message)
            return
        packet = self._packet_from_wire(data.get("packet"))
        opts = BroadcastOptions.from_wire(data.get("opts"))
        if not loggable(packet, opts):
            InMemoryAdapter.broadcast(self, packet, opts)
            return
        offset = entry_id.decode()
        position = offset_key(offset)
        packet.data.append(offset)
        if self._replayed:
            opts = self._without_replayed(opts, position)
        self._deliver(packet, opts, position)

    def _without_replayed(self, opts: BroadcastOptions, position: tuple) -> BroadcastOptions:
        """``opts`` minus the sockets whose replay already held the entry at ``position``."""
        replayed = self._replayed
        done = [sid for sid, last in replayed.items() if last < position]
        for sid in done:
            del replayed[sid]
        again = [sid for sid in replayed]
        if not again:
            return opts
        return BroadcastOptions(
            opts.rooms,
            opts.except_rooms | frozenset(again),
            opts.volatile,
            opts.local,
            opts.timeout,
            opts.compress,
        )

    # -- connection state recovery -----------------------------------------------------------------

    def persist_session(self, session: dict) -> None:
        """Kept in Redis for ``max_disconnection_duration`` (Node's format, readable by both)."""
        try:
            encoded = base64.b64encode(pack(session))
        except (TypeError, ValueError) as exc:
            logger.warning("%r: session of %s not saved: %s", self, session.get("sid"), exc)
            return
        key = f"{self.factory.session_key_prefix}{session['pid']}"
        command = encode_command((b"SET", key, encoded, b"PX", max(1, self._session_ms)))
        self.factory.publisher.queue(command, None)

    async def restore_session(self, pid: str, offset: str) -> dict | None:
        """The saved session ``pid`` (taken: a session comes back once) and the broadcasts after
        ``offset`` its rooms would have received; None when there is no such session, or the
        offset is not (or no longer) in the stream."""
        if not _OFFSET.match(offset):
            return None
        publisher = self.factory.publisher
        key = f"{self.factory.session_key_prefix}{pid}"
        taken = publisher.call("GETDEL", key)
        found = publisher.call("XRANGE", self.stream, offset, offset)
        raw, exists = await asyncio.gather(taken, found)
        if not raw or not exists:
            return None
        try:
            session = unpack(base64.b64decode(raw, validate=True))
            rooms = set(session["rooms"])
            session["sid"], session["pid"]
        except (*MALFORMED, binascii.Error) as exc:
            logger.warning("%r: unreadable session %s dropped: %s", self, pid, exc)
            return None
        sid = session["sid"]
        # what this server delivers while the replay runs (our own XADDs answered, the reader)
        # is held from now on: the replay may end before some of it (its entries are matched
        # by their offset, the event's last argument), and this coroutine only resumes a loop
        # turn after the last XRANGE's reply, which other replies may follow
        held: list = []
        self._restoring.add(sid, rooms, held)
        missed: list = []
        try:
            last = await self._replay(offset, rooms, missed)
        except BaseException:
            self._restoring.connected(sid)  # nothing more to hold for it
            raise
        missed += [data for data in held if offset_key(data[-1]) > last]
        session["missed_packets"] = missed
        self._restoring.add(sid, rooms, missed, last)
        self._replayed[sid] = last
        return session

    async def _replay(self, offset: str, rooms: set, missed: list) -> tuple[int, int]:
        """Appends to ``missed`` the logged broadcasts after ``offset`` for ``rooms``; returns
        the id of the last entry read."""
        publisher = self.factory.publisher
        position = offset
        for _ in range(RESTORE_MAX_CALLS):
            first, second = offset_key(position)
            entries = await publisher.call(
                "XRANGE", self.stream, f"{first}-{second + 1}", "+", "COUNT", RESTORE_BATCH
            )
            for entry_id, fields in entries:
                position = entry_id.decode()
                data = self._replayable(entry_id, fields, rooms)
                if data is not None:
                    data.append(position)
                    missed.append(data)
            if len(entries) < RESTORE_BATCH:
                break
        return offset_key(position)

    def _replayable(self, entry_id: bytes, fields: Any, rooms: set) -> list | None:
        """The event of a logged broadcast of this namespace that ``rooms`` would have got."""
        try:
            fields = entry_fields(fields)
            if fields.get(b"nsp") != self._name or fields.get(b"type") != _BROADCAST_TYPE:
                return None
            data = decode_entry(fields)["data"]
            packet = self._packet_from_wire(data["packet"])
            opts = BroadcastOptions.from_wire(data.get("opts"))
        except MALFORMED as exc:
            self._drop(entry_id, exc)
            return None
        if "requestId" in data or not loggable(packet, opts) or not included_in(rooms, opts):
            return None
        return packet.data

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        # a restored socket joins its rooms when it connects: from then on the fan-out reaches it
        if self._restoring:
            self._restoring.connected(sid)
        InMemoryAdapter.add_all(self, sid, rooms)


RedisStreamsAdapterFactory.adapter_class = RedisStreamsAdapter
