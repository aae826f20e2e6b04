"""Redis Cluster for the sharded adapter: SPUBLISH and SSUBSCRIBE on the master that owns the
channel's slot, as node-redis's cluster client does for Node's ``createShardedAdapter``.

:class:`RedisCluster` reads the slot map (``CLUSTER SLOTS``) from any node it can reach (the
startup nodes, then every node it has seen), keeps a publish link and a subscribe link per
master, and routes:

- ``publish(channel, ...)``: to the owner of ``key_slot(channel)`` (Redis's CRC16 with hash
  tags); dropped and counted while that owner is unknown or its link is down (as a single node's
  link does). A ``MOVED`` answer updates that slot at once, re-sends the message there (once) and
  re-reads the map.
- ``ssubscribe(channel, ...)``: one SSUBSCRIBE per channel (one command may not span slots) on
  the owner's subscribe link, which makes it again after a reconnect. When a channel's slot
  moves (a resharding, a failover), Redis ends the subscription with a ``sunsubscribe`` nobody
  asked for, or answers ``MOVED``: the map is read again and the channel is subscribed on its new
  owner.
- ``call_masters(...)``: a command on every master (``PUBSUB SHARDNUMSUB``: each master counts
  the subscribers of the channels of its own slots, 0 elsewhere; the adapter sums, as Node's).

The map is read again whenever a link is lost, a ``MOVED`` or an unasked ``sunsubscribe``
arrives, then every 0.1 s .. 2 s until every master's links are up again (a failed master's
replica takes over after ``cluster-node-timeout``). What is lost meanwhile: the messages published
to a shard whose master is unreachable (pub/sub keeps nothing), and those published to a
channel between its slot's move and its new subscription (about one map read).
"""

from __future__ import annotations

import asyncio
import logging
from binascii import crc_hqx
from collections.abc import Callable
from typing import Any

import hiredis

from ._connection import (
    CONNECT_TIMEOUT,
    CommandLink,
    ConnectionOptions,
    SubscribeLink,
)

__all__ = ["SLOTS", "RedisCluster", "key_slot"]

SLOTS = 16384
REFRESH_DELAY_MIN = 0.1
REFRESH_DELAY_MAX = 2.0
_SLOT_CACHE_SIZE = 4096
#: errors that mean "ask again after reading the map"
_REDIRECTS = ("MOVED ", "ASK ", "CLUSTERDOWN", "TRYAGAIN")


def key_slot(key: bytes | str) -> int:
    """The cluster slot of a key or shard channel: CRC16 (XMODEM) of the key, or of its hash tag
    (what is between the first ``{`` and the next ``}``, when not empty), modulo 16384."""
    if type(key) is str:
        key = key.encode()
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & (SLOTS - 1)


class _Published:
    """Stands for a publish's reply in its link's queue: a MOVED answer sends it again."""

    __slots__ = ("channel", "cluster", "command", "message", "tries")

    def __init__(
        self, cluster: RedisCluster, channel: Any, message: bytes, command: bytes, tries: int
    ) -> None:
        self.cluster = cluster
        self.channel = channel
        self.message = message
        self.command = command
        self.tries = tries

    def done(self) -> bool:
        return False

    def set_result(self, result: Any) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:
        if isinstance(exc, hiredis.ReplyError):
            self.cluster._publish_refused(self, exc)


class _Node:
    """The two links to one master."""

    def __init__(self, cluster: RedisCluster, address: tuple[str, int]) -> None:
        self.address = address
        host, port = address
        template = cluster.options
        options = ConnectionOptions(
            host=host,
            port=port,
            username=template.username,
            password=template.password,
            ssl=template.ssl,
        )
        where = f"{host}:{port}"
        self.publisher = CommandLink(options, cluster.logger, f"{cluster.name} (publish {where})")
        self.subscriber = SubscribeLink(
            options, cluster.logger, f"{cluster.name} (subscribe {where})"
        )
        self.publisher.on_lost = cluster.refresh_soon
        self.subscriber.on_lost = cluster.refresh_soon
        self.subscriber.on_refused = cluster._subscription_refused
        self.subscriber.on_shard_channel_lost = cluster._subscription_ended

    @property
    def up(self) -> bool:
        return self.publisher.connected and self.subscriber.connected

    async def start(self) -> None:
        await self.publisher.start()
        await self.subscriber.start()

    def start_soon(self) -> None:
        self.publisher.start_soon()
        self.subscriber.start_soon()

    async def close(self) -> None:
        await self.subscriber.close()
        await self.publisher.close()


class RedisCluster:
    """A Redis Cluster as the sharded adapter uses it (see the module's doc): stands in for both
    its publish link (``publish``, ``start``, ``close``) and its subscribe link (``ssubscribe``,
    ``sunsubscribe``)."""

    def __init__(self, startup: list[ConnectionOptions], logger: logging.Logger, name: str) -> None:
        if not startup:
            raise ValueError("a Redis Cluster needs at least one startup node")
        self.startup = startup
        self.options = startup[0]  # credentials and TLS, for every node
        self.logger = logger
        self.name = name
        self.slots: list[Any] = [None] * SLOTS  # slot -> master address
        self.nodes: dict[tuple[str, int], _Node] = {}
        # what is wanted: channel -> (handler, filter), and the master each one is subscribed on
        self.shard_channels: dict[bytes, tuple[Callable, Any]] = {}
        self._placed: dict[bytes, tuple[str, int]] = {}
        self._slot_cache: dict[Any, int] = {}
        self._known: list[tuple[str, int]] = [(o.host, o.port) for o in startup]
        self._refreshing: asyncio.Task | None = None
        self._refresh_again = False
        self._placing: dict[bytes, asyncio.Task] = {}
        self.closed = False
        self.dropped = 0
        self.refreshes = 0  # map reads, for the tests

    def __repr__(self) -> str:
        return f"<RedisCluster {self.name} masters={sorted(self.nodes)}>"

    @property
    def connected(self) -> bool:
        return bool(self.nodes) and all(node.up for node in self.nodes.values())

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the map and connect to every master; raises ConnectionError when no startup
        node answers or a master cannot be reached."""
        self.closed = False
        ranges = await self._read_map()
        self._apply(ranges, start=False)
        try:
            await asyncio.gather(*(node.start() for node in self.nodes.values()))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self.closed = True
        for task in (self._refreshing, *self._placing.values()):
            if task is not None:
                task.cancel()
        nodes, self.nodes = list(self.nodes.values()), {}
        await asyncio.gather(*(node.close() for node in nodes), return_exceptions=True)

    # -- publishing --------------------------------------------------------------------------------

    def publish(self, channel: Any, message: bytes, command: bytes = b"SPUBLISH") -> bool:
        return self._publish(channel, message, command, 0)

    def _publish(self, channel: Any, message: bytes, command: bytes, tries: int) -> bool:
        slot = self._slot_cache.get(channel)
        if slot is None:
            if len(self._slot_cache) >= _SLOT_CACHE_SIZE:
                self._slot_cache.clear()
            slot = self._slot_cache[channel] = key_slot(channel)
        node = self.nodes.get(self.slots[slot])
        if node is None:
            self._drop()
            return False
        link = node.publisher
        if not link.publish(channel, message, command):
            return False
        link._replies[-1] = _Published(self, channel, message, command, tries)
        return True

    def _publish_refused(self, published: _Published, error: BaseException) -> None:
        text = str(error)
        if not text.startswith(("MOVED ", "ASK ")):
            self.logger.warning("%s: Redis refused a publish: %s", self.name, text)
            return
        self.refresh_soon()
        parts = text.split()
        if len(parts) < 3 or not text.startswith("MOVED ") or published.tries:
            return
        try:
            slot = int(parts[1])
            host, _, port = parts[2].rpartition(":")
            address = (host, int(port))
        except ValueError:
            return
        if not 0 <= slot < SLOTS:
            return
        self.slots[slot] = address
        if address not in self.nodes:
            self._add_node(address)
        self._publish(published.channel, published.message, published.command, 1)

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 10_000 == 0:
            self.logger.warning(
                "%s: no reachable master for a channel: %d message(s) dropped so far",
                self.name,
                self.dropped,
            )

    async def call_masters(self, *args: Any) -> list:
        """The command on every master whose link is up; their replies (errors raised)."""
        nodes = [node for node in self.nodes.values() if node.publisher.connected]
        if not nodes:
            raise ConnectionError(f"{self.name}: no master of the Redis Cluster is reachable")
        return list(await asyncio.gather(*(node.publisher.call(*args) for node in nodes)))

    # -- subscribing -------------------------------------------------------------------------------

    async def ssubscribe(self, channel: str, handler: Callable, wants: Any = None) -> None:
        key = channel.encode()
        self.shard_channels[key] = (handler, wants)
        await self._place(key)

    async def sunsubscribe(self, channel: str) -> None:
        key = channel.encode()
        self.shard_channels.pop(key, None)
        await self._place(key)

    async def _place(self, key: bytes) -> None:
        """Subscribe ``key`` on the master of its slot (and off any other), or nowhere when it
        is not wanted. Calls for one channel run one after the other."""
        previous = self._placing.get(key)
        task = asyncio.ensure_future(self._place_after(previous, key))
        self._placing[key] = task
        try:
            await asyncio.shield(task)
        finally:
            if self._placing.get(key) is task and task.done():
                del self._placing[key]

    async def _place_after(self, previous: asyncio.Task | None, key: bytes) -> None:
        if previous is not None and not previous.done():
            await asyncio.gather(previous, return_exceptions=True)
        wanted = self.shard_channels.get(key)
        target = self.slots[key_slot(key)] if wanted is not None else None
        current = self._placed.get(key)
        if current is not None and current != target:
            del self._placed[key]
            node = self.nodes.get(current)
            if node is not None:
                try:
                    await asyncio.wait_for(
                        node.subscriber.sunsubscribe(key.decode()), CONNECT_TIMEOUT
                    )
                except (ConnectionError, OSError, asyncio.TimeoutError, hiredis.ReplyError):
                    node.subscriber.forget_shard_channel(key)
            current = None
        if wanted is None or current is not None:
            return
        node = self.nodes.get(target)
        if node is None:
            self.refresh_soon()  # no known owner: placed by the next map
            return
        self._placed[key] = target
        handler, wants = wanted
        try:
            await asyncio.wait_for(
                node.subscriber.ssubscribe(key.decode(), handler, wants), CONNECT_TIMEOUT
            )
        except asyncio.TimeoutError:
            # a master that does not answer: the channel stays with its link (subscribed again
            # when it reconnects); the map is read again meanwhile
            self.refresh_soon()
        except hiredis.ReplyError as exc:
            self._unplace(node, key)
            if not str(exc).startswith(_REDIRECTS):
                raise  # not a cluster matter (an old Redis without SSUBSCRIBE ...)
            # an old map, or a cluster in the middle of a failover: placed by the next map
            self.logger.info("%s: SSUBSCRIBE %r refused (%s)", self.name, key, exc)
            self.refresh_soon()
        except (ConnectionError, OSError):
            pass  # subscribed by the link once it reconnects

    def _unplace(self, node: _Node, key: bytes) -> None:
        node.subscriber.forget_shard_channel(key)
        if self._placed.get(key) == node.address:
            del self._placed[key]

    def _subscription_refused(self, key: bytes, error: BaseException) -> None:
        # a reconnected link could not subscribe again (MOVED): it has forgotten the channel
        for address, node in self.nodes.items():
            if self._placed.get(key) == address and key not in node.subscriber.shard_channels:
                del self._placed[key]
        self.logger.info("%s: SSUBSCRIBE %r refused on reconnect (%s)", self.name, key, error)
        self.refresh_soon()

    def _subscription_ended(self, key: bytes) -> None:
        # Redis ended it (the slot moved): the link has forgotten it
        self._placed.pop(key, None)
        self.refresh_soon()

    async def _place_all(self) -> None:
        keys = set(self.shard_channels) | set(self._placed)
        await asyncio.gather(*(self._place(key) for key in keys), return_exceptions=True)

    # -- the slot map ------------------------------------------------------------------------------

    def refresh_soon(self) -> None:
        """Read the map again in the background (and again, until every master is up)."""
        if self.closed:
            return
        self._refresh_again = True
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        delay = REFRESH_DELAY_MIN
        while not self.closed:
            self._refresh_again = False
            try:
                ranges = await self._read_map()
            except (ConnectionError, OSError, asyncio.TimeoutError) as exc:
                self.logger.debug("%s: reading the slot map failed: %s", self.name, exc)
            else:
                self._apply(ranges, start=True)
                await self._place_all()
                if not self._refresh_again and self.connected:
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, REFRESH_DELAY_MAX)

    async def _read_map(self) -> list:
        """``CLUSTER SLOTS`` from the first node that answers: connected masters first, then
        every node seen (startup nodes included) over a connection of its own."""
        errors = []
        for node in list(self.nodes.values()):
            if not node.publisher.connected:
                continue
            try:
                reply = await asyncio.wait_for(
                    node.publisher.call("CLUSTER", "SLOTS"), CONNECT_TIMEOUT
                )
                return self._parse_map(reply, node.address[0])
            except (ConnectionError, OSError, asyncio.TimeoutError, hiredis.ReplyError) as exc:
                errors.append(f"{node.address}: {exc}")
        for address in list(self._known):
            host, port = address
            template = self.options
            link = CommandLink(
                ConnectionOptions(
                    host=host,
                    port=port,
                    username=template.username,
                    password=template.password,
                    ssl=template.ssl,
                ),
                self.logger,
                f"{self.name} (slot map)",
            )
            try:
                await link.start()
                reply = await asyncio.wait_for(link.call("CLUSTER", "SLOTS"), CONNECT_TIMEOUT)
                return self._parse_map(reply, host)
            except (ConnectionError, OSError, asyncio.TimeoutError, hiredis.ReplyError) as exc:
                errors.append(f"{host}:{port}: {exc}")
            finally:
                await link.close()
        raise ConnectionError(
            f"{self.name}: no node of the Redis Cluster answered CLUSTER SLOTS: "
            + "; ".join(errors)
        )

    def _parse_map(self, reply: Any, asked_host: str) -> list:
        if not isinstance(reply, list) or not reply:
            raise ConnectionError(f"{self.name}: CLUSTER SLOTS answered {reply!r}")
        ranges = []
        for entry in reply:
            start, end, master = int(entry[0]), int(entry[1]), entry[2]
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            if host in ("", "?"):  # "the host you asked"
                host = asked_host
            ranges.append((start, end, (host, int(master[1]))))
            for replica in entry[3:]:
                self._remember((replica[0].decode() or asked_host, int(replica[1])))
        return ranges

    def _remember(self, address: tuple[str, int]) -> None:
        if address not in self._known:
            self._known.append(address)

    def _apply(self, ranges: list, start: bool) -> None:
        slots: list[Any] = [None] * SLOTS
        masters = set()
        for first, last, address in ranges:
            if 0 <= first <= last < SLOTS:
                slots[first : last + 1] = [address] * (last - first + 1)
                masters.add(address)
        self.slots = slots
        self.refreshes += 1
        for address in masters:
            self._remember(address)
            if address not in self.nodes:
                self._add_node(address, start)
        for address in [a for a in self.nodes if a not in masters]:
            node = self.nodes.pop(address)
            self.logger.warning("%s: %s:%d is no longer a master", self.name, *address)
            for key in [k for k, where in self._placed.items() if where == address]:
                del self._placed[key]
            task = asyncio.ensure_future(node.close())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _add_node(self, address: tuple[str, int], start: bool = True) -> None:
        node = self.nodes[address] = _Node(self, address)
        self._remember(address)
        if start:
            node.start_soon()
