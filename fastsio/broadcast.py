"""BroadcastOperator: ``io.to(room).except_(other).volatile.emit(...)``, immutable.

Each of ``to``/``in_``/``except_``/``volatile``/``local``/``timeout`` returns a new operator; ``emit``
at the end hands one packet and a :class:`~fastsio.adapter.BroadcastOptions` to the namespace's
adapter, which encodes it once for every target (Node's ``broadcast-operator.ts``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from . import _eager, _impl
from .adapter import BroadcastOptions
from .exceptions import AckTimeoutError

__all__ = ["DROP", "RESERVED_EVENTS", "BroadcastOperator", "ack_value", "check_event_name"]

#: Names the server may not emit: the client would take them for lifecycle events (as Node).
RESERVED_EVENTS = frozenset(
    (
        "connect",
        "connection",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    )
)

_EMPTY: frozenset = frozenset()


class _Drop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "fastsio.DROP"


#: what a packet middleware returns to drop the event (Node: not calling ``next()``); here, not
#: in fastsio.socket, because that module also exists compiled and both must see this one object
DROP = _Drop()

Rooms = str | Iterable[str]


def check_event_name(event: Any) -> None:
    if event in RESERVED_EVENTS:
        raise ValueError(f'"{event}" is a reserved event name')
    if type(event) is not str:
        raise TypeError(f"event name must be a str, not {type(event).__name__}")


def ack_value(args: list) -> Any:
    """The ack arguments as one Python value: None for none, the value for one, a tuple for more."""
    n = len(args)
    if n == 1:
        return args[0]
    if n == 0:
        return None
    return tuple(args)


def as_rooms(rooms: Rooms) -> frozenset:
    """A room name (any hashable; a str, or a number as Node allows) or an iterable of them
    -> frozenset."""
    if isinstance(rooms, (str, bytes, int)) or not hasattr(rooms, "__iter__"):
        return frozenset((rooms,))
    return frozenset(rooms)


def log_exception(result: Any, exc: BaseException | None) -> None:
    """``_eager`` completion callback for handlers whose result nobody needs."""
    if exc is not None and not isinstance(exc, asyncio.CancelledError):
        _eager.logger.error("exception in ack callback", exc_info=exc)


class BroadcastOperator:
    """Who to emit to (rooms, excepted rooms) and how (volatile, local, ack timeout,
    compress)."""

    __slots__ = (
        "_compress",
        "_except_rooms",
        "_local",
        "_nsp",
        "_rooms",
        "_timeout",
        "_volatile",
    )

    def __init__(
        self,
        nsp: Any,
        rooms: frozenset = _EMPTY,
        except_rooms: frozenset = _EMPTY,
        volatile: bool = False,
        local: bool = False,
        timeout: float | None = None,
        compress: bool = True,
    ) -> None:
        self._nsp = nsp
        self._rooms = rooms
        self._except_rooms = except_rooms
        self._volatile = volatile
        self._local = local
        self._timeout = timeout
        self._compress = compress

    def _copy(self, **changes: Any) -> BroadcastOperator:
        values = {
            "rooms": self._rooms,
            "except_rooms": self._except_rooms,
            "volatile": self._volatile,
            "local": self._local,
            "timeout": self._timeout,
            "compress": self._compress,
        }
        values.update(changes)
        return BroadcastOperator(self._nsp, **values)

    # -- modifiers ------------------------------------------------------------------------------

    def to(self, rooms: Rooms) -> BroadcastOperator:
        """Target the sockets in ``rooms`` too (a union across calls)."""
        return self._copy(rooms=self._rooms | as_rooms(rooms))

    in_ = to

    def except_(self, rooms: Rooms) -> BroadcastOperator:
        """Leave out the sockets in ``rooms``."""
        return self._copy(except_rooms=self._except_rooms | as_rooms(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        """The packet may be dropped for sockets not ready to receive it."""
        return self._copy(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """This server only (matters with a cluster adapter)."""
        return self._copy(local=True)

    def timeout(self, seconds: float) -> BroadcastOperator:
        """Wait at most ``seconds`` for the acks of the next ``emit(..., ack=cb)``."""
        return self._copy(timeout=seconds)

    def compress(self, compress: bool = True) -> BroadcastOperator:
        """``compress(False)``: the next emit is sent uncompressed (permessage-deflate and HTTP
        compression), as Node's ``compress(false)``; True (the default): as the server's options
        say."""
        return self._copy(compress=bool(compress))

    @property
    def options(self) -> BroadcastOptions:
        return BroadcastOptions(
            self._rooms,
            self._except_rooms,
            self._volatile,
            self._local,
            self._timeout,
            self._compress,
        )

    # -- emitting -------------------------------------------------------------------------------

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        """Send the event to every target; returns at once.

        With ``ack``, each target must acknowledge: ``ack(err, responses)`` is called once all
        did (``err`` None), or when the ``timeout(s)`` expires (``err`` an AckTimeoutError,
        ``responses`` those that arrived). Each response is the client's ack argument (None for
        none, a tuple for several). A socket that disconnects first is not waited for.
        """
        check_event_name(event)
        packet = _impl.socketio.Packet(_impl.socketio.EVENT, self._nsp.name, [event, *args])
        if ack is None:
            self._nsp.adapter.broadcast(packet, self.options)
        else:
            BroadcastAck(self._nsp.adapter, ack, self._timeout).start(packet, self.options)
        return True

    def send(self, *args: Any, ack: Callable | None = None) -> bool:
        """``emit("message", *args)``."""
        return self.emit("message", *args, ack=ack)

    write = send

    async def emit_with_ack(self, event: str, *args: Any) -> list:
        """Emit and wait for every target's ack; the list of responses. Raises AckTimeoutError
        (its ``responses`` holds those that arrived) when ``timeout(s)`` expires first."""
        future = asyncio.get_running_loop().create_future()

        def done(err: BaseException | None, responses: list) -> None:
            if future.done():
                return
            if err is not None:
                future.set_exception(err)
            else:
                future.set_result(responses)

        self.emit(event, *args, ack=done)
        return await future

    # -- acting on the targets ------------------------------------------------------------------

    def sockets_join(self, rooms: Rooms) -> None:
        """Make the targeted sockets join ``rooms``."""
        self._nsp.adapter.add_sockets(self.options, as_rooms(rooms))

    def sockets_leave(self, rooms: Rooms) -> None:
        """Make the targeted sockets leave ``rooms``."""
        self._nsp.adapter.del_sockets(self.options, as_rooms(rooms))

    def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the targeted sockets (``close``: their Engine.IO sessions too)."""
        self._nsp.adapter.disconnect_sockets(self.options, close)

    async def fetch_sockets(self) -> list:
        """The targeted sockets."""
        return await self._nsp.adapter.fetch_sockets(self.options)

    def __repr__(self) -> str:
        return "<BroadcastOperator {} rooms={!r} except={!r}{}{}{}{}>".format(
            self._nsp.name,
            set(self._rooms),
            set(self._except_rooms),
            " volatile" if self._volatile else "",
            " local" if self._local else "",
            f" timeout={self._timeout}" if self._timeout is not None else "",
            "" if self._compress else " uncompressed",
        )


class BroadcastAck:
    """Collects the acks of one broadcast (Node's ``BroadcastOperator.emit`` with a callback)."""

    __slots__ = (
        "ack_id",
        "actual_servers",
        "adapter",
        "callback",
        "expected_clients",
        "expected_servers",
        "finished",
        "responses",
        "timeout",
        "timer",
    )

    def __init__(self, adapter: Any, callback: Callable, timeout: float | None) -> None:
        self.adapter = adapter
        self.callback = callback
        self.timeout = timeout
        self.responses: list = []
        self.expected_clients = 0
        self.expected_servers: int | None = None
        self.actual_servers = 0
        self.ack_id: int | None = None
        self.timer: Any = None
        self.finished = False

    @property
    def server(self) -> Any:
        """Whose callback this is (``_eager.finish_tasks`` asks)."""
        return self.adapter.nsp.server

    def __call__(self, result: Any, exc: BaseException | None) -> None:
        """The completion of the callback (and of the server count): an exception is logged."""
        log_exception(result, exc)

    def start(self, packet: Any, opts: BroadcastOptions) -> None:
        # as Node's BroadcastOperator: the broadcast goes out at once; the number of servers
        # to hear from (1 for one process) may take a round trip to learn
        if self.timeout is not None:
            self.timer = asyncio.get_running_loop().call_later(self.timeout, self._timed_out)
        self.expected_servers = None
        self.adapter.broadcast_with_ack(
            packet, opts, self._client_count, self._response, self._failed
        )
        self.ack_id = packet.id
        if opts.local:
            self._server_count(1)
        else:
            _eager.call(self.adapter.server_count, (), self._server_count_done)

    def _server_count_done(self, count: Any, exc: BaseException | None) -> None:
        if exc is not None:
            _eager.logger.error("could not count the servers for a broadcast", exc_info=exc)
            count = self.actual_servers
        self._server_count(count)

    def _server_count(self, count: int) -> None:
        self.expected_servers = count
        self._check()

    def _client_count(self, count: int) -> None:
        self.expected_clients += count
        self.actual_servers += 1
        self._check()

    def _response(self, args: list) -> None:
        if not self.finished:
            self.responses.append(ack_value(args))
            self._check()

    def _failed(self, exc: BaseException) -> None:
        # the socket disconnected: its answer will not come
        if not self.finished:
            self.expected_clients -= 1
            self._check()

    def _check(self) -> None:
        if (
            not self.finished
            and self.expected_servers is not None
            and self.actual_servers >= self.expected_servers
            and len(self.responses) >= self.expected_clients
        ):
            self._finish(None)

    def _timed_out(self) -> None:
        self.timer = None
        if not self.finished:
            self._finish(AckTimeoutError(responses=list(self.responses)))
            if self.ack_id is not None:
                self.adapter.cancel_acks(self.ack_id)

    def _finish(self, err: BaseException | None) -> None:
        self.finished = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        _eager.call(self.callback, (err, self.responses), self)
