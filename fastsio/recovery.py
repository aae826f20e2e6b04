"""Connection state recovery (Node's ``connectionStateRecovery``, socket.io >= 4.6)::

    sio = fastsio.Server(connection_state_recovery=True)
    # or {"max_disconnection_duration": 120, "skip_middlewares": True} (the defaults)

A client that loses its connection for a while (a phone changing networks) comes back as the same
socket: same ``id``, rooms and ``data``, and every packet sent to it meanwhile delivered exactly
once, in order; ``socket.recovered`` is then True. The protocol is socket.io-client's (>= 4.6):

- the CONNECT answer carries a private session id, ``{"sid": ..., "pid": ...}``;
- every non-volatile EVENT without an ack that reaches a socket (a broadcast, or
  ``socket.emit``, which goes through the adapter as a broadcast to the socket's own room) gets
  an offset appended as its last argument, and is logged by the adapter;
- a socket that disconnects for a reason the client recovers from (transport closed or failed,
  ping timeout ...) is saved (id, pid, rooms, data);
- the client reconnects with ``pid`` and the last ``offset`` it saw in its CONNECT payload; the
  adapter gives back the session and the logged packets after that offset that its rooms would
  have received.

The offset is appended once per broadcast, before the packet is encoded: a broadcast is still
encoded once for all its targets. Nothing here runs when the option is off.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .adapter import BroadcastOptions, InMemoryAdapter
from . import _impl
from .socket import CONNECTED

__all__ = [
    "RECOVERABLE_REASONS",
    "PacketLog",
    "PendingRestores",
    "RecoverableSocket",
    "SessionAwareAdapter",
    "included_in",
    "loggable",
    "recovery_options",
]

#: disconnections a client recovers from (Node's RECOVERABLE_DISCONNECT_REASONS)
RECOVERABLE_REASONS = frozenset(
    (
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    )
)

DEFAULTS = {"max_disconnection_duration": 120.0, "skip_middlewares": True, "max_packets": 100_000}

_EVENT = 2


def recovery_options(value: Any) -> dict | None:
    """``connection_state_recovery``: False/None (off), True (the defaults) or a dict of them."""
    if value is None or value is False:
        return None
    if value is True:
        return dict(DEFAULTS)
    if not isinstance(value, dict):
        raise TypeError("connection_state_recovery must be a bool or a dict")
    unknown = set(value) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown connection_state_recovery option(s): {sorted(unknown)}")
    options = {**DEFAULTS, **value}
    if options["max_disconnection_duration"] <= 0 or options["max_packets"] < 1:
        raise ValueError("max_disconnection_duration and max_packets must be positive")
    return options


class PacketLog:
    """The logged packets of one namespace, bounded by time and size, and the sessions saved
    meanwhile: the log of :class:`SessionAwareAdapter`, and of the ``--workers`` parent.

    The log keeps the packets of the last ``max_duration`` seconds, at most ``max_packets`` of
    them: a client whose offset is older than the log gets a fresh socket, as after the
    duration. Offsets are ``"<epoch>-<number>"`` so that an offset of another log (another
    server, another run) is never taken for one of this log."""

    def __init__(self, max_duration: float, max_packets: int) -> None:
        self.max_duration = max_duration
        self.max_packets = max_packets
        #: (number, monotonic time, opts, data)
        self.packets: deque = deque()
        self.sessions: dict[str, tuple[float, dict]] = {}
        self._epoch = secrets.token_hex(4)
        self._next = 0

    def append(self, opts: BroadcastOptions, data: list) -> str:
        """Log an event's ``data`` (its offset appended to it); returns the offset."""
        number = self._next
        self._next = number + 1
        offset = f"{self._epoch}-{number}"
        data.append(offset)
        now = time.monotonic()
        packets = self.packets
        packets.append((number, now, opts, data))
        threshold = now - self.max_duration
        while packets and (packets[0][1] < threshold or len(packets) > self.max_packets):
            packets.popleft()
        return offset

    def persist(self, session: dict) -> None:
        now = time.monotonic()
        self.sessions[session["pid"]] = (now, session)
        threshold = now - self.max_duration
        if len(self.sessions) > 1 and next(iter(self.sessions.values()))[0] < threshold:
            for pid in [pid for pid, (at, _) in self.sessions.items() if at < threshold]:
                del self.sessions[pid]

    def restore(self, pid: str, offset: str) -> dict | None:
        """The saved session ``pid`` and the packets after ``offset`` it missed, or None (no
        such session, expired, or an offset the log no longer holds)."""
        saved = self.sessions.get(pid)
        if saved is None:
            return None
        disconnected_at, session = saved
        if time.monotonic() - disconnected_at > self.max_duration:
            del self.sessions[pid]
            return None
        epoch, _, number = offset.partition("-")
        if epoch != self._epoch or not number.isdigit() or not self.packets:
            return None
        start = int(number) - self.packets[0][0] + 1
        if start < 1 or start > len(self.packets):
            return None  # older than the log (or never sent): not recoverable
        rooms = set(session["rooms"])
        missed = [
            data for _, _, opts, data in list(self.packets)[start:] if included_in(rooms, opts)
        ]
        del self.sessions[pid]  # a session comes back once
        return dict(session, missed_packets=missed)


class SessionAwareAdapter(InMemoryAdapter):
    """The in-memory adapter with the packet log and the saved sessions that recovery needs
    (Node's ``SessionAwareAdapter``): see :class:`PacketLog`."""

    def __init__(self, nsp: Any) -> None:
        super().__init__(nsp)
        self.log = new_log(nsp.server.connection_state_recovery)

    @property
    def packets(self) -> deque:
        return self.log.packets

    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        if loggable(packet, opts):
            self.log.append(opts, packet.data)
        InMemoryAdapter.broadcast(self, packet, opts)

    def persist_session(self, session: dict) -> None:
        self.log.persist(session)

    def restore_session(self, pid: str, offset: str) -> dict | None:
        return self.log.restore(pid, offset)


def new_log(options: dict | None) -> PacketLog:
    options = options or DEFAULTS
    return PacketLog(options["max_disconnection_duration"], options["max_packets"])


def loggable(packet: Any, opts: BroadcastOptions) -> bool:
    """Whether a broadcast gets an offset and is logged (Node's addOffsetIfNecessary): an
    event without an ack, not volatile."""
    return packet.type == _EVENT and packet.id is None and not opts.volatile


class PendingRestores:
    """Sessions given back to sockets that have not connected yet (a restore that answered
    after a wait: Redis, the workers' parent): what is logged meanwhile, after the restore's
    end, and that their rooms would have received is appended to their missed packets, until
    the socket joins its rooms (:meth:`connected`, from the adapter's ``add_all``). Empty
    outside a restore: the fan-out tests it once."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: dict[str, tuple[set, Any, list, float]] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, sid: str, rooms: set, missed: list, after: Any = None) -> None:
        """``after``: the position of the restore's end (only later positions are kept), or
        None when everything delivered from now on comes after it."""
        self._pending[sid] = (rooms, after, missed, time.monotonic())

    def deliver(self, data: list, opts: BroadcastOptions, position: Any = None) -> None:
        now = time.monotonic()
        pending = self._pending
        for sid, (rooms, after, missed, at) in list(pending.items()):
            if now - at > PENDING_RESTORE_TIMEOUT:
                del pending[sid]  # restored but never connected (the client left)
            elif (after is None or position > after) and included_in(rooms, opts):
                missed.append(data)

    def connected(self, sid: str) -> None:
        self._pending.pop(sid, None)


#: a restored socket not connected within this many seconds is forgotten by PendingRestores
PENDING_RESTORE_TIMEOUT = 30.0


def included_in(rooms: set, opts: BroadcastOptions) -> bool:
    """Would a socket in ``rooms`` have received a broadcast with ``opts``? (Node's
    shouldIncludePacket)"""
    if opts.rooms and rooms.isdisjoint(opts.rooms):
        return False
    return not (opts.except_rooms and not rooms.isdisjoint(opts.except_rooms))


class RecoverableSocket(_impl.sockets.Socket):  # the compiled Socket or the pure one
    """A Socket of a server with recovery on: ``pid``, ``recovered``, and ``emit`` through the
    adapter so that what is sent to it is logged."""

    __slots__ = ("_restored", "pid", "recovered")

    def __init__(
        self, nsp: Any, client: Any, auth: dict | None, session: dict | None = None
    ) -> None:
        super().__init__(nsp, client, auth)
        self._restored = session
        if session is None:
            # v2 clients (Engine.IO 3) know nothing of recovery: no pid for them, as Node
            self.pid: str | None = None if client.protocol == 3 else secrets.token_urlsafe(15)
            self.recovered = False
            return
        self.id = session["sid"]
        self.pid = session["pid"]
        self.data = session["data"]
        self.recovered = True

    def emit(self, event: str, *args: Any, ack: Callable | None = None) -> bool:
        # also once disconnected, as Node: logged, it reaches the socket if it comes back
        if ack is not None:
            return super().emit(event, *args, ack=ack)
        from .broadcast import check_event_name

        check_event_name(event)
        from . import _impl

        packet = _impl.socketio.Packet(_EVENT, self.nsp.name, [event, *args])
        self.adapter.broadcast(packet, BroadcastOptions(rooms=frozenset((self.id,))))
        return True

    def _on_connect(self) -> None:
        session, self._restored = self._restored, None
        if session is not None:
            rooms = [room for room in session["rooms"] if room != self.id]
            if rooms:
                self.adapter.add_all(self.id, rooms)
            # sent before the CONNECT, as Node does: the client delivers them once connected
            client = self.client
            name = self.nsp.name
            for data in session["missed_packets"]:
                client._send(client.encode(_EVENT, name, data, None))
        super()._on_connect()

    def _on_close(self, reason: str) -> None:
        if self._state == CONNECTED and reason in RECOVERABLE_REASONS and self.pid is not None:
            session = {
                "sid": self.id,
                "pid": self.pid,
                "rooms": list(self.rooms),
                "data": self.data,
            }
            super()._on_close(reason)
            persist = getattr(self.adapter, "persist_session", None)
            if persist is not None:
                persist(session)
            return
        super()._on_close(reason)
