"""Connections to Redis: one for commands (PUBLISH, PUBSUB NUMSUB ...), one for subscriptions.

Replies are parsed by hiredis (the C parser redis-py uses); what is written here is the small
part: a command as a RESP array, and the reconnect/resubscribe loop. The subscribed link reads
with fastsio/redis/_reader.py compiled when it is built (``_impl.redis_reader()``): hiredis's
replies, minus the messages a handler registered a filter for would drop unread (the classic
adapter: a room channel of a room no local socket is in), skipped before any object is made. Measured on this machine,
redis-py's asyncio client costs ~12 us of CPU per pipelined PUBLISH and ~16 us per message its
PubSub receives; a publish here is one ``transport.write`` and a received message one parser call
and one dict lookup, which is what lets a node drop a message for a room it does not hold for
well under a microsecond. Both links reconnect by themselves, with a growing delay, and never
block the event loop: while a link is down, publishes are dropped (counted and logged: Redis
pub/sub keeps nothing for absent subscribers either) and commands fail at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as ssl_module
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis

from .. import _impl

__all__ = [
    "CommandLink",
    "ConnectionOptions",
    "ReplyCallback",
    "StreamReadLink",
    "SubscribeLink",
    "broadcast_filter",
    "connection_options",
]

#: the compiled subscription reader (fastsio/redis/_reader.py), or None: hiredis alone
_reader = _impl.redis_reader()

#: publishes past this many bytes not yet sent to Redis are dropped, so a Redis that stops
#: reading cannot grow this process without bound
MAX_PENDING_BYTES = 64 * 1024 * 1024
RECONNECT_DELAY_MIN = 0.1
RECONNECT_DELAY_MAX = 5.0
CONNECT_TIMEOUT = 5.0


class ConnectionOptions:
    """Where Redis is and how to log in."""

    __slots__ = ("host", "password", "path", "port", "ssl", "username")

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.username = username
        self.password = password
        self.ssl = ssl

    def __repr__(self) -> str:
        where = self.path if self.path else f"{self.host}:{self.port}"
        return f"<Redis {where}{' tls' if self.ssl else ''}>"


def connection_options(target: Any) -> ConnectionOptions:
    """``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS), ``unix:///path``,
    a :class:`ConnectionOptions`, or a redis-py client (its connection settings are used)."""
    if isinstance(target, ConnectionOptions):
        return target
    if isinstance(target, str):
        return _from_url(target)
    pool = getattr(target, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if kwargs is None:
        raise TypeError(
            f"expected a redis:// URL or a redis-py client, not {type(target).__name__}"
        )
    context = None
    if "ssl" in type(pool.connection_class).__name__.lower() or kwargs.get("ssl_cert_reqs"):
        context = ssl_module.create_default_context()
    return ConnectionOptions(
        host=kwargs.get("host", "127.0.0.1"),
        port=int(kwargs.get("port", 6379)),
        path=kwargs.get("path"),
        username=kwargs.get("username"),
        password=kwargs.get("password"),
        ssl=context,
    )


def _from_url(url: str) -> ConnectionOptions:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return ConnectionOptions(
            path=unquote(parts.path),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a Redis URL (redis://, rediss://, unix://): {url!r}")
    return ConnectionOptions(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=ssl_module.create_default_context() if parts.scheme == "rediss" else None,
    )


def encode_command(args: tuple) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if type(arg) is str:
            arg = arg.encode()
        elif type(arg) is int:
            arg = b"%d" % arg
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    """Feeds what Redis sends to hiredis and hands each reply to the link."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.transport: Any = None
        self.reader = link._new_reader()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        link = self.link
        on_reply = link._on_reply
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as exc:
                link.logger.error(
                    "%s: unreadable data from Redis (%s); reconnecting", link.name, exc
                )
                self.transport.abort()
                return
            if reply is False:
                return
            try:
                on_reply(reply)
            except Exception:  # a handler's bug must not cost the other messages
                link.logger.exception("%s: error handling a message from Redis", link.name)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.link._lost(self, exc)


class _Link:
    """One connection kept up: the first connect fails loudly (``start``), later ones retry."""

    def __init__(self, options: ConnectionOptions, logger: logging.Logger, name: str) -> None:
        self.options = options
        self.logger = logger
        self.name = name
        self.protocol: _Protocol | None = None
        self.closed = False
        self._replies: deque = deque()  # futures (or None: reply not wanted), in command order
        self._batch: list = []  # commands queued for the end of the loop tick
        self._batch_bytes = 0
        self._flush_scheduled = False
        self._loop: Any = None
        self._reconnecting: asyncio.Task | None = None
        #: called (no arguments) when a connection is lost and the link will reconnect
        self.on_lost: Callable[[], None] | None = None

    @property
    def connected(self) -> bool:
        return self.protocol is not None

    def _new_reader(self) -> Any:
        return hiredis.Reader()

    async def start(self) -> None:
        await self._connect()

    def start_soon(self) -> None:
        """Connect in the background, retrying (with a growing delay) until it works."""
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.ensure_future(self._reconnect(first=True))

    async def _connect(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        options = self.options
        factory = lambda: _Protocol(self)
        if options.path:
            connecting = loop.create_unix_connection(factory, options.path)
        else:
            connecting = loop.create_connection(
                factory, options.host, options.port, ssl=options.ssl
            )
        _, protocol = await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        self.protocol = protocol
        try:
            if options.password is not None:
                login = (
                    (options.username, options.password)
                    if options.username
                    else (options.password,)
                )
                await asyncio.wait_for(self.call("AUTH", *login), CONNECT_TIMEOUT)
            await self._ready()
        except BaseException:
            protocol.transport.abort()
            raise

    async def _ready(self) -> None:
        """Connected (and logged in): subclasses resubscribe here."""

    def _send(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol is None:
            raise ConnectionError(f"{self.name}: not connected to Redis")
        if self._batch:
            self._batch.append(data)
            self._flush()
        else:
            protocol.transport.write(data)

    def _flush(self) -> None:
        """Write the queued commands (in the order their replies are expected)."""
        self._flush_scheduled = False
        batch = self._batch
        if not batch:
            return
        self._batch = []
        self._batch_bytes = 0
        protocol = self.protocol
        if protocol is not None:
            protocol.transport.write(b"".join(batch))

    def call(self, *args: Any) -> asyncio.Future:
        """Send a command; the future gets its reply (an exception for an error reply)."""
        future = asyncio.get_running_loop().create_future()
        self._send(encode_command(args))
        self._replies.append(future)
        return future

    def _on_reply(self, reply: Any) -> None:
        self._resolve(reply)

    def _resolve(self, reply: Any) -> None:
        if not self._replies:
            self.logger.warning("%s: a reply from Redis nobody waits for: %r", self.name, reply)
            return
        future = self._replies.popleft()
        if isinstance(reply, hiredis.ReplyError):
            if future is None:
                self.logger.warning("%s: Redis answered an error: %s", self.name, reply)
            elif not future.done():
                future.set_exception(reply)
        elif future is not None and not future.done():
            future.set_result(reply)

    def _lost(self, protocol: _Protocol, exc: BaseException | None) -> None:
        if protocol is not self.protocol:
            return  # a connection that failed while connecting
        self.protocol = None
        self._batch = []
        self._batch_bytes = 0
        replies, self._replies = self._replies, deque()
        for future in replies:
            if future is not None and not future.done():
                future.set_exception(ConnectionError(f"{self.name}: connection to Redis lost"))
        self._on_lost()
        if self.closed:
            return
        self.logger.warning(
            "%s: connection to Redis %s lost (%s); reconnecting",
            self.name,
            self.options,
            exc or "closed",
        )
        self._reconnecting = asyncio.ensure_future(self._reconnect())
        if self.on_lost is not None:
            self.on_lost()

    def _on_lost(self) -> None:
        """The connection is gone (closed on purpose or not): release what waits on it."""

    async def _reconnect(self, first: bool = False) -> None:
        delay = RECONNECT_DELAY_MIN
        while not self.closed:
            if not first:
                await asyncio.sleep(delay * (0.5 + random.random()))
            try:
                await self._connect()
            except (OSError, asyncio.TimeoutError, hiredis.ReplyError, ConnectionError) as exc:
                self.logger.debug("%s: connecting to Redis failed: %s", self.name, exc)
                if not first:
                    delay = min(delay * 2, RECONNECT_DELAY_MAX)
                first = False
                continue
            if not first:
                self.logger.warning("%s: reconnected to Redis %s", self.name, self.options)
            return

    async def close(self) -> None:
        self.closed = True
        task = self._reconnecting
        if task is not None:
            task.cancel()
        protocol = self.protocol
        if protocol is not None:
            protocol.transport.close()


class ReplyCallback:
    """Stands where a future would in a link's reply queue, for a reply handled as it is read
    (no Task, no loop turn): ``on_reply(reply, error)``, called once, with the reply, or with
    None and the error reply / the ConnectionError of a lost connection."""

    __slots__ = ("on_reply",)

    def __init__(self, on_reply: Callable[[Any, BaseException | None], None]) -> None:
        self.on_reply = on_reply

    def done(self) -> bool:
        return False

    def set_result(self, reply: Any) -> None:
        self._call(reply, None)

    def set_exception(self, error: BaseException) -> None:
        self._call(None, error)

    def _call(self, reply: Any, error: BaseException | None) -> None:
        try:
            self.on_reply(reply, error)
        except Exception:  # the replies after it must still be handed out
            logging.getLogger("fastsio.redis").exception("error handling a reply from Redis")


class CommandLink(_Link):
    """Commands: ``publish`` (fire and forget, bounded) and ``call`` (awaited replies)."""

    def __init__(self, options: ConnectionOptions, logger: logging.Logger, name: str) -> None:
        super().__init__(options, logger, name)
        self.dropped = 0

    def publish(self, channel: str | bytes, message: bytes, command: bytes = b"PUBLISH") -> bool:
        """Queue a PUBLISH (or SPUBLISH) and return at once; False when it was dropped because
        the connection is down or Redis reads too slowly.

        The publishes of one loop tick leave in one write: Redis then reads them in one go and
        hands a subscriber many messages per read, which is what keeps the receiving servers'
        cost per message low (one write per message made every node wake up per message)."""
        return self.queue(encode_command((command, channel, message)))

    def queue(self, command_bytes: bytes, waiter: Any = None) -> bool:
        """Queue an encoded command for the end of the loop tick (bounded, as ``publish``);
        ``waiter`` (a :class:`ReplyCallback`, or None: the reply is not wanted) gets its reply.
        False when it was dropped: the connection is down or Redis reads too slowly."""
        protocol = self.protocol
        if (
            protocol is None
            or self._batch_bytes + protocol.transport.get_write_buffer_size() > MAX_PENDING_BYTES
        ):
            self._drop()
            return False
        self._batch.append(command_bytes)
        self._batch_bytes += len(command_bytes)
        self._replies.append(waiter)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return True

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            self.logger.warning(
                "%s: Redis unreachable or too slow: %d message(s) to other servers dropped so far",
                self.name,
                self.dropped,
            )


#: what a subscribed connection receives: a message (pattern messages name the pattern first)
_MESSAGE, _PMESSAGE, _SMESSAGE = b"message", b"pmessage", b"smessage"
_SUNSUBSCRIBE = b"sunsubscribe"
_CONFIRMATIONS = frozenset(
    (b"subscribe", b"psubscribe", b"ssubscribe", b"unsubscribe", b"punsubscribe", b"sunsubscribe")
)

Handler = Callable[[bytes, bytes], None]


def _ignore_result(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def broadcast_filter(prefix_length: int, rooms: dict, own_prefix: bytes) -> Any:
    """A filter for ``SubscribeLink.psubscribe(..., wants=)``: the messages of the classic
    adapter's broadcast pattern that its handler drops unread (see
    ``fastsio.redis._reader.BroadcastFilter``); None when the compiled reader is not there
    (the handler does all the checking then)."""
    if _reader is None:
        return None
    return _reader.BroadcastFilter(prefix_length, rooms, own_prefix)


class SubscribeLink(_Link):
    """A connection in subscribe mode. ``handler(channel, message)`` is called for each message
    of a subscribed channel, pattern or shard channel; after a reconnect every subscription is
    made again.

    ``wants`` (optional, from :func:`broadcast_filter`) tells the compiled reader which messages
    the handler would drop unread: those are skipped before they are parsed into objects. The
    handler must still check everything itself (without the compiled reader it sees them all)."""

    def __init__(self, options: ConnectionOptions, logger: logging.Logger, name: str) -> None:
        super().__init__(options, logger, name)
        self.channels: dict[bytes, Handler] = {}
        self.patterns: dict[bytes, Handler] = {}
        self.shard_channels: dict[bytes, Handler] = {}
        # the filters the reader consults (the same keys, bytes)
        self.channel_filters: dict[bytes, Any] = {}
        self.pattern_filters: dict[bytes, Any] = {}
        self.shard_filters: dict[bytes, Any] = {}
        # (confirmation kind, name, future or None) per name of each (un)subscribe sent
        self._confirmations: deque = deque()
        #: ``on_refused(name, error)``: Redis refused to subscribe a shard channel again after a
        #: reconnect (a Redis Cluster: MOVED); without it the reconnect fails and is retried
        self.on_refused: Callable[[bytes, BaseException], None] | None = None
        #: ``on_shard_channel_lost(name)``: Redis ended a shard channel subscription by itself
        #: (a Redis Cluster: its slot moved to another node); the channel is no longer in
        #: ``shard_channels`` when it is called. Without it, it is subscribed again here.
        self.on_shard_channel_lost: Callable[[bytes], None] | None = None

    def _new_reader(self) -> Any:
        if _reader is None:
            return hiredis.Reader()
        return _reader.SubscribeReader(
            self.pattern_filters, self.channel_filters, self.shard_filters
        )

    @property
    def dropped_unread(self) -> int:
        """Messages the reader of the current connection skipped for their filter."""
        protocol = self.protocol
        return getattr(protocol.reader, "dropped", 0) if protocol is not None else 0

    async def subscribe(self, channel: str, handler: Handler, wants: Any = None) -> None:
        await self._subscribe(
            b"SUBSCRIBE", self.channels, self.channel_filters, channel, handler, wants
        )

    async def psubscribe(self, pattern: str, handler: Handler, wants: Any = None) -> None:
        await self._subscribe(
            b"PSUBSCRIBE", self.patterns, self.pattern_filters, pattern, handler, wants
        )

    async def ssubscribe(self, channel: str, handler: Handler, wants: Any = None) -> None:
        await self._subscribe(
            b"SSUBSCRIBE", self.shard_channels, self.shard_filters, channel, handler, wants
        )

    async def unsubscribe(self, channel: str) -> None:
        await self._unsubscribe(b"UNSUBSCRIBE", self.channels, self.channel_filters, channel)

    async def punsubscribe(self, pattern: str) -> None:
        await self._unsubscribe(b"PUNSUBSCRIBE", self.patterns, self.pattern_filters, pattern)

    async def sunsubscribe(self, channel: str) -> None:
        await self._unsubscribe(b"SUNSUBSCRIBE", self.shard_channels, self.shard_filters, channel)

    async def _subscribe(
        self,
        command: bytes,
        registry: dict,
        filters: dict,
        name: str,
        handler: Handler,
        wants: Any,
    ) -> None:
        key = name.encode()
        registry[key] = handler
        if wants is None:
            filters.pop(key, None)
        else:
            filters[key] = wants
        if self.protocol is not None:
            await self._confirmed(command, key)
        # else: subscribed by _ready() once reconnected

    async def _unsubscribe(self, command: bytes, registry: dict, filters: dict, name: str) -> None:
        key = name.encode()
        filters.pop(key, None)
        if registry.pop(key, None) is not None and self.protocol is not None:
            await self._confirmed(command, key)

    def _confirmed(self, command: bytes, *names: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._send(encode_command((command, *names)))
        kind = command.lower()
        for name in names[:-1]:
            self._confirmations.append((kind, name, None))
        self._confirmations.append((kind, names[-1], future))
        return future

    async def _ready(self) -> None:
        waits = []
        for command, registry in ((b"SUBSCRIBE", self.channels), (b"PSUBSCRIBE", self.patterns)):
            if registry:
                waits.append(self._confirmed(command, *registry))
        # shard channels one by one: on a Redis Cluster one command may not span slots
        shard = [(name, self._confirmed(b"SSUBSCRIBE", name)) for name in self.shard_channels]
        waits += [future for _, future in shard]
        if not waits:
            return
        results = await asyncio.wait_for(
            asyncio.gather(*waits, return_exceptions=True), CONNECT_TIMEOUT
        )
        for result in results[: len(results) - len(shard)]:
            if isinstance(result, BaseException):
                raise result
        for (name, _), result in zip(shard, results[len(results) - len(shard) :]):
            if isinstance(result, BaseException):
                if self.on_refused is None or not isinstance(result, hiredis.ReplyError):
                    raise result
                self.shard_channels.pop(name, None)
                self.shard_filters.pop(name, None)
                self.on_refused(name, result)

    def forget_shard_channel(self, name: bytes) -> None:
        """Drop a shard channel from the registry without telling Redis."""
        self.shard_channels.pop(name, None)
        self.shard_filters.pop(name, None)

    def _on_lost(self) -> None:
        confirmations, self._confirmations = self._confirmations, deque()
        for _, _, future in confirmations:
            if future is not None and not future.done():
                future.set_result(None)  # made again on reconnect

    def _on_reply(self, reply: Any) -> None:
        if type(reply) is list and reply:
            kind = reply[0]
            if kind is not None:
                if kind == _PMESSAGE:
                    handler = self.patterns.get(reply[1])
                    if handler is not None:
                        handler(reply[2], reply[3])
                    return
                if kind == _MESSAGE:
                    handler = self.channels.get(reply[1])
                    if handler is not None:
                        handler(reply[1], reply[2])
                    return
                if kind == _SMESSAGE:
                    handler = self.shard_channels.get(reply[1])
                    if handler is not None:
                        handler(reply[1], reply[2])
                    return
                if kind in _CONFIRMATIONS:
                    confirmations = self._confirmations
                    if kind == _SUNSUBSCRIBE and len(reply) > 1:
                        head = confirmations[0] if confirmations else None
                        if head is None or head[0] != _SUNSUBSCRIBE or head[1] != reply[1]:
                            self._shard_channel_lost(reply[1])
                            return
                    if confirmations:
                        future = confirmations.popleft()[2]
                        if future is not None and not future.done():
                            future.set_result(None)
                    return
        if isinstance(reply, hiredis.ReplyError) and not self._replies and self._confirmations:
            # an error for a (s)subscribe: fail the oldest confirmation instead
            future = self._confirmations.popleft()[2]
            if future is not None and not future.done():
                future.set_exception(reply)
            return
        self._resolve(reply)

    def _shard_channel_lost(self, name: Any) -> None:
        """A sunsubscribe nobody asked for: Redis ended the subscription (a Redis Cluster whose
        slot moved: the channel now lives on another node)."""
        handler = self.shard_channels.get(name)
        if handler is None:
            return
        self.logger.warning(
            "%s: Redis ended the subscription of shard channel %r (its slot moved?)",
            self.name,
            name,
        )
        if self.on_shard_channel_lost is not None:
            self.forget_shard_channel(name)
            self.on_shard_channel_lost(name)
            return
        wants = self.shard_filters.get(name)
        task = asyncio.ensure_future(self.ssubscribe(name.decode(), handler, wants))
        task.add_done_callback(_ignore_result)


class StreamReadLink(_Link):
    """A connection that reads one stream with ``XREAD BLOCK`` (a blocked command holds its
    connection, hence a link of its own), from where it stopped, across reconnects:
    ``on_entries(entries)`` gets each batch (``[[id, [field, value, ...]], ...]``, bytes).

    The first read starts after the stream's last entry at the first connect (XREVRANGE), not
    at ``$``: what is added between that and the first XREAD is not skipped, nor what is added
    while the link is down."""

    def __init__(
        self,
        options: ConnectionOptions,
        logger: logging.Logger,
        name: str,
        stream: str,
        count: int,
        block_ms: int,
        on_entries: Callable[[list], None],
    ) -> None:
        super().__init__(options, logger, name)
        self.stream = stream.encode()
        self.count = count
        self.block_ms = block_ms
        self.on_entries = on_entries
        #: the id of the last entry read (None until the first connect)
        self.position: bytes | None = None
        self._reading: asyncio.Task | None = None

    async def _ready(self) -> None:
        if self.position is None:
            last = await asyncio.wait_for(
                self.call(b"XREVRANGE", self.stream, b"+", b"-", b"COUNT", 1), CONNECT_TIMEOUT
            )
            self.position = last[0][0] if last else b"0-0"
        self._reading = asyncio.ensure_future(self._read(self.protocol))

    async def _read(self, protocol: Any) -> None:
        command = (b"XREAD", b"BLOCK", self.block_ms, b"COUNT", self.count, b"STREAMS", self.stream)
        while self.protocol is protocol and not self.closed:
            try:
                reply = await self.call(*command, self.position)
            except ConnectionError:
                return  # read again once reconnected (_ready)
            except hiredis.ReplyError as exc:  # e.g. the key holds something else than a stream
                self.logger.error("%s: XREAD failed: %s; retrying in 1 s", self.name, exc)
                await asyncio.sleep(1.0)
                continue
            if not reply:
                continue  # BLOCK timed out: nothing new
            entries = reply[0][1]
            if entries:
                self.position = entries[-1][0]
                try:
                    self.on_entries(entries)
                except Exception:
                    self.logger.exception("%s: error handling stream entries", self.name)

    async def close(self) -> None:
        await super().close()
        task = self._reading
        if task is not None:
            task.cancel()
