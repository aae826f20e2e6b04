"""Rooms <-> socket ids, and the broadcast fan-out.

``InMemoryAdapter`` is the seam a Redis (or other cluster) adapter replaces later, as in Node's
``socket.io-adapter``: one adapter per namespace; the namespace and its sockets call only the
methods below. A broadcast encodes its packet once, builds the WebSocket frames once, and then
writes the same objects to every target session (``fanout``), as Node's in-memory adapter does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from . import _impl

__all__ = [
    "EMPTY_OPTIONS",
    "VOLATILE_BUFFER_LIMIT",
    "Adapter",
    "BroadcastOptions",
    "InMemoryAdapter",
    "ReadOnlyIndex",
    "ReadOnlySet",
    "deflated_frames",
    "fanout",
    "fanout_compressed",
    "fanout_volatile",
    "is_writable",
    "prepare_packets",
]

#: A volatile packet is dropped for a session whose transport already holds more than this many
#: bytes not yet written (or that cannot write now, e.g. mid-upgrade).
VOLATILE_BUFFER_LIMIT = 64 * 1024

_EMPTY: frozenset = frozenset()


class BroadcastOptions:
    """Who a broadcast reaches and how: the ``opts`` every adapter method takes.

    ``rooms``: the union of these rooms (all sockets of the namespace when empty);
    ``except_rooms``: minus the sockets in any of these; ``volatile``: may be dropped for a
    session that is not ready; ``local``: this server only (a cluster adapter's business);
    ``timeout``: seconds to wait for the acks of a broadcast with acks; ``compress``: False
    sends it uncompressed to every target (``compress(False)``; True: as the server's
    ``per_message_deflate`` and ``http_compression`` say).

    ``to_wire()`` / ``from_wire()`` give the form cluster adapters send to other servers, the one
    Node's adapters use: ``{"rooms": [...], "except": [...], "flags": {...}}`` with the flags
    ``volatile``, ``local``, ``timeout`` (in milliseconds) and ``compress`` (only when False),
    present only when set.
    """

    __slots__ = ("compress", "except_rooms", "local", "rooms", "timeout", "volatile")

    def __init__(
        self,
        rooms: frozenset = _EMPTY,
        except_rooms: frozenset = _EMPTY,
        volatile: bool = False,
        local: bool = False,
        timeout: float | None = None,
        compress: bool = True,
    ) -> None:
        self.rooms = rooms
        self.except_rooms = except_rooms
        self.volatile = volatile
        self.local = local
        self.timeout = timeout
        self.compress = compress

    def __repr__(self) -> str:
        return (
            f"BroadcastOptions(rooms={set(self.rooms)!r}, except_rooms={set(self.except_rooms)!r}, "
            f"volatile={self.volatile!r}, local={self.local!r}, timeout={self.timeout!r}, "
            f"compress={self.compress!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BroadcastOptions):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def to_wire(self) -> dict:
        flags: dict = {}
        if self.volatile:
            flags["volatile"] = True
        if self.local:
            flags["local"] = True
        if self.timeout is not None:
            flags["timeout"] = round(self.timeout * 1000)
        if not self.compress:
            flags["compress"] = False
        return {"rooms": list(self.rooms), "except": list(self.except_rooms), "flags": flags}

    @classmethod
    def from_wire(cls, raw: Any) -> BroadcastOptions:
        """The options another server sent; ValueError or TypeError when ``raw`` is not of that
        shape."""
        if raw is None:
            return EMPTY_OPTIONS
        if not isinstance(raw, dict):
            raise TypeError(f"broadcast options must be a map, not {type(raw).__name__}")
        rooms = _room_set(raw.get("rooms"))
        except_rooms = _room_set(raw.get("except"))
        flags = raw.get("flags")
        if flags is None:
            flags = {}
        if not isinstance(flags, dict):
            raise TypeError("broadcast flags must be a map")
        timeout = flags.get("timeout")
        if timeout is not None:
            if type(timeout) not in (int, float) or timeout < 0:
                raise ValueError(f"invalid broadcast timeout {timeout!r}")
            timeout = timeout / 1000
        return cls(
            rooms,
            except_rooms,
            bool(flags.get("volatile")),
            bool(flags.get("local")),
            timeout,
            flags.get("compress") is not False,
        )


def _room_set(raw: Any) -> frozenset:
    if not raw:
        return _EMPTY
    if not isinstance(raw, (list, tuple)):
        raise TypeError(f"rooms must be a list, not {type(raw).__name__}")
    for room in raw:
        if not isinstance(room, (str, int)) or isinstance(room, bool):
            raise TypeError(f"invalid room name {room!r}")
    return frozenset(raw)


EMPTY_OPTIONS = BroadcastOptions()


# -- the fan-out (kept small and module-level: it is the part compiled with Cython) ------------


#: ``fanout(sessions, packets, frames)``: write the prepared packets and frames to every session,
#: in order. The compiled loop when built; its pure twin is fastsio/_speedups/fanout_py.py.
fanout = _impl.fanout


def fanout_volatile(
    sessions: Sequence[Any], packets: Sequence[Any], frames: Sequence[bytes]
) -> None:
    """``fanout`` that skips the sessions not ready to take more (see ``is_writable``)."""
    fanout([session for session in sessions if is_writable(session)], packets, frames)


def is_writable(session: Any) -> bool:
    """False when a volatile packet should be dropped for this session: its transport says it is
    not writable (polling with no pending GET, mid-upgrade), or holds too many unsent bytes."""
    if not getattr(session, "writable", True):
        return False
    buffer_size = getattr(session, "write_buffer_size", None)
    return not (buffer_size is not None and buffer_size() > VOLATILE_BUFFER_LIMIT)


def fanout_compressed(
    sessions: Sequence[Any], packets: Sequence[Any], frames: Sequence[bytes]
) -> None:
    """``fanout`` with permessage-deflate: the sessions whose WebSocket agreed on it are grouped
    by their (shared) compressor, and each group gets the frames deflated once for all of it:
    one deflate per broadcast and server window (usually one), never one per recipient. The
    others (polling, no extension, Engine.IO v3 binary) get the plain frames. Sessions say
    which compressor they use in ``session.deflater`` (None: none)."""
    plain: list = []
    groups: dict = {}
    for session in sessions:
        deflater = session.deflater
        if deflater is None:
            plain.append(session)
        else:
            group = groups.get(deflater)
            if group is None:
                groups[deflater] = [session]
            else:
                group.append(session)
    if plain:
        fanout(plain, packets, frames)
    for deflater, group in groups.items():
        fanout(group, packets, deflated_frames(deflater, packets, frames))


def deflated_frames(deflater: Any, packets: Sequence[Any], frames: Sequence[bytes]) -> list:
    """The frames of a prepared broadcast for connections using ``deflater``: each one that is
    long enough (and shrinks) compressed, the others as they were."""
    out = []
    for i in range(len(packets)):
        packet = packets[i]
        if type(packet) is str:
            frame = deflater.text_frame(packet)
        else:
            frame = deflater.binary_frame(packet)
        out.append(frames[i] if frame is None else frame)
    return out


def _compressible(frames: Sequence[bytes], threshold: int) -> bool:
    # a frame is its payload plus a 2..10-byte header: shorter ones cannot reach the threshold
    for frame in frames:
        if len(frame) > threshold:
            return True
    return False


def prepare_packets(parts: Sequence[Any]) -> tuple:
    """Encoded Socket.IO packet parts -> (Engine.IO packets, WebSocket frames), built once."""
    websocket = _impl.websocket
    first = parts[0]
    if type(first) is str:
        text = "4" + first
        packets: list[Any] = [text]
        frames: list[bytes] = [websocket.build_text_frame(text)]
    else:  # a binary parser's packet (msgpack): one binary message
        packets = [first]
        frames = [websocket.build_frame(websocket.OP_BINARY, first)]
    for attachment in parts[1:]:
        packets.append(attachment)
        frames.append(websocket.build_frame(websocket.OP_BINARY, attachment))
    return packets, frames


# -- the interface ----------------------------------------------------------------------------


class Adapter:
    """What a namespace asks of its adapter (Node's ``socket.io-adapter``); one per namespace.

    The namespace and its sockets call only these methods, and an adapter touches sockets only
    through their public surface: ``socket.id``, ``socket.conn`` (the Engine.IO session, for
    the fan-out), ``join``/``leave``/``emit``/``disconnect``, ``expect_ack``/``cancel_ack``, and
    the namespace's ``name``, ``sockets``, ``next_ack_id()`` and ``server.encode_packet``.

    Every method has a working local meaning (``InMemoryAdapter``); a cluster adapter
    (``fastsio.cluster.ClusterAdapter``) adds the other servers. Methods taking ``opts`` select
    sockets with a :class:`BroadcastOptions`. ``init``/``close`` are awaited by
    ``Server.start()``/``Server.close()`` (and ``init`` when a namespace is created later).
    """

    nsp: Any

    async def init(self) -> None:
        """Connect to whatever the adapter needs (a no-op for one process)."""

    async def close(self) -> None:
        """Disconnect; the adapter is not used after this."""

    async def server_count(self) -> int:
        """How many servers share this namespace (1 for one process)."""
        return 1

    # rooms of the local sockets
    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        raise NotImplementedError

    def delete(self, sid: str, room: str) -> None:
        raise NotImplementedError

    def del_all(self, sid: str) -> None:
        raise NotImplementedError

    def socket_rooms(self, sid: str) -> set | None:
        raise NotImplementedError

    def sockets(self, rooms: Iterable[str] = ()) -> set:
        raise NotImplementedError

    # operations on the sockets ``opts`` designates (every server's, unless ``opts.local``)
    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        raise NotImplementedError

    def broadcast_with_ack(
        self,
        packet: Any,
        opts: BroadcastOptions,
        client_count_callback: Callable[[int], None],
        ack: Callable[[list], None],
        ack_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        raise NotImplementedError

    def cancel_acks(self, ack_id: int) -> None:
        raise NotImplementedError

    async def fetch_sockets(self, opts: BroadcastOptions) -> list:
        raise NotImplementedError

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        raise NotImplementedError

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        raise NotImplementedError

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool = False) -> None:
        raise NotImplementedError

    # events between servers (Node's serverSideEmit)
    def server_side_emit(
        self,
        event: str,
        args: list,
        ack: Callable[[BaseException | None, list], None] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send ``event`` to the other servers' namespace of the same name. ``ack(err,
        responses)``, when given, gets one response per other server, or an AckTimeoutError
        after ``timeout`` seconds (see ``Namespace.server_side_emit_with_ack``)."""
        if ack is not None:
            ack(None, [])  # no other server: nobody to wait for


# -- read-only views of the room index ----------------------------------------------------------


class ReadOnlySet(AbstractSet):
    """A live view of a set that cannot change it (``adapter.rooms[room]``): ``in``, ``len``,
    iteration and the set comparisons and operators (which return new sets)."""

    __slots__ = ("_items",)

    def __init__(self, items: set) -> None:
        self._items = items

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ReadOnlySet({self._items!r})"

    @classmethod
    def _from_iterable(cls, items: Iterable) -> set:
        return set(items)  # ``view | other``: a plain new set, not another view


class ReadOnlyIndex(Mapping):
    """A live view of an adapter's index (room -> ids, or id -> rooms) that cannot change it:
    its values are :class:`ReadOnlySet` views. Take ``dict(view)`` or ``set(view[key])`` for a
    snapshot; iterating while sockets join or leave fails as iterating the dict would."""

    __slots__ = ("_index",)

    def __init__(self, index: dict) -> None:
        self._index = index

    def __getitem__(self, key: Any) -> ReadOnlySet:
        return ReadOnlySet(self._index[key])

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        return f"ReadOnlyIndex({self._index!r})"


# -- the local adapter ------------------------------------------------------------------------


class InMemoryAdapter(Adapter):
    """Rooms of one namespace, kept in this process.

    ``rooms``: room -> socket ids; ``sids``: socket id -> rooms (read-only views of ``_rooms`` and
    ``_sids``, which subclasses read directly; only this class's methods change them). Every
    socket is in the room named by its own id. Methods that select sockets take a
    :class:`BroadcastOptions`.

    A socket in its own room only, alone in it (every idle socket), has one set for both:
    ``_sids[sid] is _rooms[sid]`` (``{sid}``), not two (~220 bytes each). ``add_all`` gives them
    a set each before either changes, and ``del_all`` drops the room without emptying the set.
    """

    #: ``listener("join" | "leave", room, sid)`` for every change of a local socket's rooms
    #: (Node's adapter events "join-room" / "leave-room"; the Admin UI's instrumentation uses
    #: it). None: nothing is called, nothing is paid.
    room_listener: Callable[[str, Any, str], None] | None = None

    def __init__(self, nsp: Any) -> None:
        self.nsp = nsp
        self._rooms: dict = {}
        self._sids: dict = {}

    @property
    def rooms(self) -> Mapping:
        """Room -> the ids of its local sockets: a live, read-only view (Node's
        ``adapter.rooms``). Join and leave through the sockets (or ``sockets_join``)."""
        return ReadOnlyIndex(self._rooms)

    @property
    def sids(self) -> Mapping:
        """Socket id -> its rooms, for the local sockets: a live, read-only view (Node's
        ``adapter.sids``)."""
        return ReadOnlyIndex(self._sids)

    # room bookkeeping
    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        """Add socket ``sid`` to every room in ``rooms``."""
        if self.room_listener is not None:
            self._add_all_observed(sid, rooms)
            return
        sids = self._sids
        own = sids.get(sid)
        if own is None:
            own = sids[sid] = set()
        all_rooms = self._rooms
        for room in rooms:
            if room in own:
                continue
            if room == sid and not own and room not in all_rooms:
                # a socket's first room, its own (every socket joins it when it connects): while
                # the socket is in no other room and nobody else in this one, the set {sid} is
                # both its rooms and the room's members
                own.add(sid)
                all_rooms[sid] = own
                continue
            if all_rooms.get(sid) is own:
                all_rooms[sid] = {sid}  # own changes: its room keeps a set of its own
            own.add(room)
            members = all_rooms.get(room)
            if members is None:
                all_rooms[room] = {sid}
            else:
                if members is sids.get(room):
                    # another socket's own room, shared with that socket's rooms: copied first
                    members = all_rooms[room] = set(members)
                members.add(sid)

    def delete(self, sid: str, room: str) -> None:
        """Remove socket ``sid`` from ``room``."""
        own = self._sids.get(sid)
        joined = own is not None and room in own
        if own is not None:
            own.discard(room)
        self._leave(room, sid)
        if joined and self.room_listener is not None:
            self.room_listener("leave", room, sid)

    def del_all(self, sid: str) -> None:
        """Remove socket ``sid`` from all its rooms."""
        own = self._sids.pop(sid, None)
        if own:
            if self._rooms.get(sid) is own:  # in its own room only, alone: the shared set
                del self._rooms[sid]
            else:
                for room in own:
                    self._leave(room, sid)
            listener = self.room_listener
            if listener is not None:
                for room in own:
                    listener("leave", room, sid)

    def _add_all_observed(self, sid: str, rooms: Iterable[str]) -> None:
        rooms = tuple(rooms)
        own = self._sids.get(sid) or ()
        joined = [room for room in dict.fromkeys(rooms) if room not in own]
        listener = self.room_listener
        self.room_listener = None  # the plain path, then the notifications
        try:
            self.add_all(sid, rooms)
        finally:
            self.room_listener = listener
        for room in joined:
            listener("join", room, sid)  # type: ignore[misc]

    def _leave(self, room: str, sid: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._rooms[room]

    def sockets(self, rooms: Iterable[str] = ()) -> set:
        """The ids of the local sockets in any of ``rooms`` (all sockets when empty)."""
        if isinstance(rooms, str):
            rooms = (rooms,)
        opts = BroadcastOptions(rooms=frozenset(rooms)) if rooms else EMPTY_OPTIONS
        return {socket.id for socket in self.select(opts)}

    def socket_rooms(self, sid: str) -> set | None:
        """The rooms of socket ``sid`` (the adapter's own set: do not change it), or None."""
        return self._sids.get(sid)

    # selecting sockets
    def select(self, opts: BroadcastOptions) -> list:
        """The connected local sockets that ``opts`` designates, each once."""
        sockets = self.nsp.sockets
        get = sockets.get
        excluded = self._excluded(opts.except_rooms) if opts.except_rooms else None
        rooms = opts.rooms
        out: list = []
        if rooms:
            if len(rooms) == 1 and excluded is None:
                for room in rooms:
                    for sid in self._rooms.get(room, ()):
                        socket = get(sid)
                        if socket is not None:
                            out.append(socket)
                return out
            seen: set = set()
            for room in rooms:
                members = self._rooms.get(room)
                if not members:
                    continue
                for sid in members:
                    if sid in seen or (excluded is not None and sid in excluded):
                        continue
                    socket = get(sid)
                    if socket is not None:
                        seen.add(sid)
                        out.append(socket)
            return out
        if excluded is None:
            return list(sockets.values())
        return [socket for sid, socket in sockets.items() if sid not in excluded]

    def _notify_outgoing(self, watched: set, opts: BroadcastOptions, data: list) -> None:
        """Tell the targets of a broadcast that have outgoing listeners (Node calls
        ``notifyOutgoingListeners`` for each socket a broadcast reaches). Only the sockets in
        ``watched`` are looked at, each by its own rooms, so the other targets pay nothing and
        the packet is still encoded once for all."""
        sids = self._sids
        rooms = opts.rooms
        except_rooms = opts.except_rooms
        for socket in tuple(watched):
            own = sids.get(socket.id, _EMPTY)
            if rooms and own.isdisjoint(rooms):
                continue
            if except_rooms and not own.isdisjoint(except_rooms):
                continue
            socket._notify_outgoing(data)

    def _excluded(self, except_rooms: Iterable[str]) -> set:
        excluded: set = set()
        for room in except_rooms:
            members = self._rooms.get(room)
            if members:
                excluded.update(members)
        return excluded

    # broadcasting
    def broadcast(self, packet: Any, opts: BroadcastOptions) -> None:
        """Send ``packet`` (``type``, ``data``; the namespace is this adapter's) to the sockets
        ``opts`` designates: encoded once, framed once, written to each session."""
        sockets = self.select(opts)
        if not sockets:
            return
        nsp = self.nsp
        server = nsp.server
        parts = server.encode_packet(packet.type, nsp.name, packet.data, packet.id)
        if nsp._outgoing_sockets:
            self._notify_outgoing(nsp._outgoing_sockets, opts, packet.data)
        packets, frames = prepare_packets(parts)
        sessions = _impl.sockets.sessions_of(sockets)
        deflate = server.per_message_deflate
        if deflate is not None and opts.compress and _compressible(frames, deflate.threshold):
            if opts.volatile:
                sessions = [session for session in sessions if is_writable(session)]
            fanout_compressed(sessions, packets, frames)
        elif opts.volatile:
            fanout_volatile(sessions, packets, frames)
        else:
            fanout(sessions, packets, frames)

    def broadcast_with_ack(
        self,
        packet: Any,
        opts: BroadcastOptions,
        client_count_callback: Callable[[int], None],
        ack: Callable[[list], None],
        ack_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        """``broadcast`` expecting one ack per socket: ``packet.id`` is set here (one id for all
        targets), ``client_count_callback(n)`` is told how many sockets were reached, and
        ``ack(args)`` is called with each socket's ack arguments as it arrives (``ack_failed(exc)``
        when that socket disconnects first). ``packet.id``, when already set, is kept: ack ids
        come from one server-wide counter, so one id can serve several namespaces."""
        sockets = self.select(opts)
        if opts.volatile:
            sockets = [socket for socket in sockets if is_writable(socket.client.session)]
        nsp = self.nsp
        if packet.id is None:
            packet.id = nsp.next_ack_id()
        for socket in sockets:
            socket.expect_ack(packet.id, ack, ack_failed)
        client_count_callback(len(sockets))
        if not sockets:
            return
        server = nsp.server
        parts = server.encode_packet(packet.type, nsp.name, packet.data, packet.id)
        if nsp._outgoing_sockets:
            self._notify_outgoing(nsp._outgoing_sockets, opts, packet.data)
        packets, frames = prepare_packets(parts)
        sessions = _impl.sockets.sessions_of(sockets)
        deflate = server.per_message_deflate
        if deflate is not None and opts.compress and _compressible(frames, deflate.threshold):
            fanout_compressed(sessions, packets, frames)
        else:
            fanout(sessions, packets, frames)

    def cancel_acks(self, ack_id: int) -> None:
        """Forget the acks still awaited for broadcast ``ack_id`` (its timeout expired)."""
        for socket in list(self.nsp.sockets.values()):
            socket.cancel_ack(ack_id)

    # acting on the selected sockets
    async def fetch_sockets(self, opts: BroadcastOptions) -> list:
        """The sockets ``opts`` designates (a cluster adapter also asks the other servers)."""
        return self.select(opts)

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Make the designated sockets join ``rooms``."""
        rooms = list(rooms)
        for socket in self.select(opts):
            socket.join(rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        """Make the designated sockets leave ``rooms``."""
        rooms = list(rooms)
        for socket in self.select(opts):
            for room in rooms:
                socket.leave(room)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool = False) -> None:
        """Disconnect the designated sockets (``close``: also close their Engine.IO sessions)."""
        for socket in self.select(opts):
            socket.disconnect(close)
