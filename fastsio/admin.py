"""The official Socket.IO Admin UI (``@socket.io/admin-ui`` 0.5) for a fastsio server::

    sio.instrument(auth={"username": "admin", "password": "$2b$10$..."})   # a bcrypt hash

then open the Admin UI (https://admin.socket.io, or its files from the npm package served by
any web server), enter this server's URL and the credentials. The protocol is the one the npm
package's ``instrument()`` speaks (its dist/index.js): an ``/admin`` namespace whose clients get
``config``, ``all_sockets`` and a ``server_stats`` every 2 s (with the aggregated events of the
dashboard's charts: connections, disconnections, bytes and packets in and out), and may send
``emit``, ``join``, ``leave`` and ``_disconnect``. In development mode every connection,
disconnection, room change, transport upgrade, change of ``socket.data`` (its top-level keys)
and event received or sent is reported as it happens. With a cluster adapter (Redis,
``--workers``), these go through the adapter like any broadcast, so one UI sees every server.

What it costs (nothing when ``instrument()`` is not called):

- Bytes and packets are counted on the wire, not per message in Python: the engine gives its
  WebSocket connections a shared ``WireMeter`` (``EngineServer.meter``), which the compiled
  connection bumps with C integer additions once per read and once per write; polling requests
  and answers are counted where the engine handles them. Each ``server_stats`` takes the
  difference since the last one. So the bytes are those of the frames as sent (headers
  included, compressed if compressed), where Node counts each Engine.IO packet's data.
- Development mode hooks each connected socket (an ``on_any`` and an ``on_any_outgoing``
  listener): a Python call per event, as Node's listeners are. In one process these listeners
  are attached only while an admin is connected (nobody else could see their reports), so with
  none connected an event or a broadcast costs what it costs without ``instrument()``; with a
  cluster adapter they are always attached, an admin may be on another server.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket as socket_module
import time
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import _impl
from .adapter import InMemoryAdapter
from .recovery import SessionAwareAdapter

__all__ = ["Instrumentation", "instrument"]

logger = logging.getLogger("fastsio.admin")

STATS_INTERVAL = 2.0  # seconds between two server_stats, as Node's instrument()

#: the features the UI enables (typed-events.ts)
EMIT, JOIN, LEAVE, DISCONNECT = "EMIT", "JOIN", "LEAVE", "DISCONNECT"
MJOIN, MLEAVE, MDISCONNECT = "MJOIN", "MLEAVE", "MDISCONNECT"
AGGREGATED_EVENTS, ALL_EVENTS = "AGGREGATED_EVENTS", "ALL_EVENTS"

#: the aggregated events of the WireMeter's counters, in its attributes' order
TRAFFIC = (
    ("bytesIn", "bytes_in"),
    ("bytesOut", "bytes_out"),
    ("packetsIn", "packets_in"),
    ("packetsOut", "packets_out"),
)

#: adapters that reach no other server: with one of these, what no admin of this server can see
#: is not reported
_LOCAL_ADAPTERS = (InMemoryAdapter, SessionAwareAdapter)


def now() -> str:
    """``new Date()`` as JSON writes it."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def instrument(
    sio: Any,
    *,
    auth: dict | None,
    mode: str = "development",
    namespace: str = "/admin",
    server_id: str | None = None,
    read_only: bool = False,
) -> Instrumentation:
    """See :meth:`fastsio.Server.instrument`."""
    return Instrumentation(sio, auth, mode, namespace, server_id, read_only)


class _EventBuffer:
    """Counts per second and type, drained by each server_stats (Node's EventBuffer)."""

    def __init__(self) -> None:
        self.buffer: dict = {}

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        second = int(time.time()) * 1000
        key = (second, kind, sub_type)
        entry = self.buffer.get(key)
        if entry is None:
            entry = self.buffer[key] = {"timestamp": second, "type": kind, "count": 0}
            if sub_type is not None:
                entry["subType"] = sub_type
        entry["count"] += count

    def drain(self) -> list:
        values = list(self.buffer.values())
        self.buffer.clear()
        return values


class Instrumentation:
    """What ``sio.instrument()`` installs (see the module's doc)."""

    def __init__(
        self,
        sio: Any,
        auth: dict | None,
        mode: str,
        namespace: str,
        server_id: str | None,
        read_only: bool,
    ) -> None:
        if mode not in ("development", "production"):
            raise ValueError(f"mode must be 'development' or 'production', not {mode!r}")
        self.sio = sio
        self.auth = _check_auth(auth)
        self.development = mode == "development"
        self.admin = sio.of(namespace)
        self.sessions: set[str] = set()
        self.events = _EventBuffer()
        #: the engine's traffic counters, and their values at the last server_stats
        self.meter = _impl.WireMeter()
        self._counted = dict.fromkeys((name for _, name in TRAFFIC), 0)
        self.started = time.monotonic()
        hostname = socket_module.gethostname()
        worker = getattr(sio, "worker", None)
        self.base_stats = {
            "serverId": server_id or (f"{hostname}#{os.getpid()}" if worker else hostname),
            "hostname": hostname,
            "pid": os.getpid(),
        }
        features = [] if read_only else [EMIT, JOIN, LEAVE, DISCONNECT, MJOIN, MLEAVE, MDISCONNECT]
        features.append(AGGREGATED_EVENTS)
        if self.development:
            features.append(ALL_EVENTS)
        self.features = features
        self._timer: asyncio.TimerHandle | None = None
        self._watched: list = []  # the namespaces reported on (development mode)
        # Each watched socket's event listeners (received, sent), attached only while a report
        # could reach an admin (_hooked): an outgoing listener takes its socket off the
        # broadcast's encode-once path, which costs 3-4x per delivery with nobody watching.
        # (Popped at the socket's disconnect: the listeners hold their socket.)
        self._event_hooks: dict = {}
        self._hooked = False
        self._upgrades_watched: weakref.WeakSet = weakref.WeakSet()  # their polling sessions

        self.admin.use(self._authenticate)
        self.admin.on("connection", self._admin_connected)
        self._count_engine_sessions()
        if self.development:
            for nsp in list(sio.namespaces.values()):
                self._watch(nsp)
            sio.on_new_namespace(self._watch)
        sio.add_service(self)

    # -- the admin namespace -------------------------------------------------------------------

    async def _authenticate(self, socket: Any) -> None:
        if self.auth is None:
            return
        from .exceptions import ConnectionRefused

        given = socket.handshake.auth
        session_id = given.get("sessionId")
        if isinstance(session_id, str) and session_id in self.sessions:
            return
        # bcrypt takes tens of milliseconds on purpose: not on the event loop
        if given.get("username") == self.auth["username"] and await asyncio.to_thread(
            _password_matches, given.get("password"), self.auth["password"]
        ):
            session_id = secrets.token_hex(8)
            self.sessions.add(session_id)
            socket.data["_admin_session"] = session_id
            return
        raise ConnectionRefused("invalid credentials")

    async def _admin_connected(self, socket: Any) -> None:
        self._update_hooks()
        socket.on("disconnect", lambda reason: self._update_hooks())
        session_id = socket.data.pop("_admin_session", None)
        if session_id is not None:
            socket.emit("session", session_id)
        self._register_features(socket)
        socket.emit("config", {"supportedFeatures": self.features})
        if self.development:
            socket.emit("all_sockets", await self._all_sockets())

    async def _all_sockets(self) -> list:
        out: list = []
        for nsp in list(self.sio.namespaces.values()):
            for socket in await nsp.fetch_sockets():
                out.append(self._serialize(socket, nsp.name))
        return out

    def _register_features(self, socket: Any) -> None:
        sio = self.sio
        features = self.features

        def target(nsp: str, room: Any) -> Any:
            namespace = sio.of(nsp)
            return namespace.in_(room) if room else namespace

        if EMIT in features:
            socket.on("emit", lambda nsp, room, event, *args: target(nsp, room).emit(event, *args))
        if JOIN in features:
            socket.on("join", lambda nsp, room, where=None: target(nsp, where).sockets_join(room))
        if LEAVE in features:
            socket.on("leave", lambda nsp, room, where=None: target(nsp, where).sockets_leave(room))
        if DISCONNECT in features:
            socket.on(
                "_disconnect",
                lambda nsp, close=False, where=None: target(nsp, where).disconnect_sockets(
                    bool(close)
                ),
            )

    # -- what the server does (development mode) ----------------------------------------------

    def _watching(self) -> bool:
        """Whether a report could reach an admin: one is connected here, or the adapter reaches
        other servers (an admin of another server would get it). Asked before a report's
        arguments are made: with nobody to see them, development mode costs a call per event."""
        admin = self.admin
        return bool(admin.sockets) or type(admin.adapter) not in _LOCAL_ADAPTERS

    def _update_hooks(self) -> None:
        """Attach every watched socket's event listeners once a report could reach an admin,
        and take them off when none could any more (the last admin left, in one process)."""
        hooked = self._watching()
        if hooked == self._hooked:
            return
        self._hooked = hooked
        change = _hook if hooked else _unhook
        for socket, (received, sent) in list(self._event_hooks.items()):
            change(socket, received, sent)

    def _report(self, event: str, *args: Any) -> None:
        """``admin.emit(event, *args)`` if an admin could see it."""
        if self._watching():
            self.admin.emit(event, *args)

    def _watch(self, nsp: Any) -> None:
        name = nsp.name
        admin = self.admin
        is_admin = nsp is admin
        watching = self._watching

        def connected(socket: Any) -> None:
            socket.data = _ReportedData(socket.data, self._data_changed(socket, name))
            if watching():
                admin.emit("socket_connected", self._serialize(socket, name), now())
            client = socket.client
            self._report_upgrade(client)
            if not is_admin:

                def received(event: str, *args: Any) -> None:
                    if watching():
                        admin.emit("event_received", name, socket.id, [event, *args], now())

                def sent(event: str, *args: Any) -> None:
                    if watching():
                        admin.emit("event_sent", name, socket.id, [event, *args], now())

                self._event_hooks[socket] = (received, sent)
                if self._hooked:
                    _hook(socket, received, sent)

            def disconnected(reason: str) -> None:
                self._event_hooks.pop(socket, None)
                if watching():
                    admin.emit("socket_disconnected", name, socket.id, reason, now())

            socket.on("disconnect", disconnected)

        # first, as Node's prependListener: the app's handlers may emit or disconnect
        nsp._handlers.setdefault("connection", []).insert(0, connected)
        self._watched.append(nsp)
        self._listen_to_adapter(nsp)

    def _listen_to_adapter(self, nsp: Any) -> None:
        """Room changes of the namespace's adapter (set again at start(): the adapters may be
        replaced until then, e.g. by ``--workers``)."""
        adapter = nsp.adapter
        if not hasattr(adapter, "room_listener"):
            return
        name = nsp.name
        admin = self.admin
        watching = self._watching

        def rooms_changed(kind: str, room: Any, sid: str) -> None:
            if watching():
                event = "room_joined" if kind == "join" else "room_left"
                admin.emit(event, name, room, sid, now())

        adapter.room_listener = rooms_changed

    def _report_upgrade(self, client: Any) -> None:
        """``socket_updated`` with the new transport for each of the client's sockets, once its
        session has moved to a WebSocket (the session's "upgrade" event)."""
        session = getattr(client, "session", None)
        if getattr(session, "transport_name", "") != "polling" or not hasattr(session, "on"):
            return
        if session in self._upgrades_watched:
            return  # another namespace of the same client: its listener reports them all
        self._upgrades_watched.add(session)

        def upgraded(transport: Any) -> None:
            name = session.transport_name
            for nsp, socket in list(client.sockets.items()):
                self._report("socket_updated", {"id": socket.id, "nsp": nsp, "transport": name})

        session.on("upgrade", upgraded)

    def _data_changed(self, socket: Any, nsp: str) -> Any:
        def changed(data: dict) -> None:
            self._report("socket_updated", {"id": socket.id, "nsp": nsp, "data": _shown(data)})

        return changed

    def _serialize(self, socket: Any, nsp: str) -> dict:
        handshake = socket.handshake
        headers = handshake.headers
        session = getattr(getattr(socket, "client", None), "session", None)
        details = {
            "id": socket.id,
            "nsp": nsp,
            "data": _shown(socket.data),
            "handshake": {
                "address": headers.get("cf-connecting-ip")
                or headers.get("x-forwarded-for")
                or handshake.address,
                "headers": headers,
                "query": handshake.query,
                "issued": handshake.issued,
                "secure": handshake.secure,
                "time": handshake.time,
                "url": handshake.url,
                "xdomain": handshake.xdomain,
            },
            "rooms": list(socket.rooms),
        }
        if session is not None:
            details["clientId"] = str(getattr(session, "sid", ""))[:12]
            details["transport"] = getattr(session, "transport_name", "websocket")
        return details

    # -- the engine and the stats ----------------------------------------------------------------

    def _count_engine_sessions(self) -> None:
        """rawConnection / rawDisconnection: the server's session hook, wrapped (only while
        instrumented: nothing is paid otherwise)."""
        sio = self.sio
        take_session = sio.handle_engine_session
        events = self.events

        def handle_engine_session(session: Any) -> Any:
            events.push("rawConnection")
            client = take_session(session)
            on_close = session.on_close

            def closed(reason: str) -> None:
                events.push("rawDisconnection", reason)
                on_close(reason)

            session.on_close = closed
            return client

        sio.handle_engine_session = handle_engine_session
        if sio.engine is not None:  # instrumented after start(): the engine has the old one
            sio.engine.on_connection = handle_engine_session

    def start(self) -> None:
        engine = self.sio.engine
        if engine is not None:
            engine.meter = self.meter
        for nsp in self._watched:
            self._listen_to_adapter(nsp)
        self._update_hooks()  # the adapters are final now: a cluster one is always watched
        self._emit_stats()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _count_traffic(self) -> None:
        """The meter's growth since the last call, as aggregated events of this second."""
        meter = self.meter
        counted = self._counted
        for kind, name in TRAFFIC:
            value = getattr(meter, name)
            if value > counted[name]:
                self.events.push(kind, None, value - counted[name])
                counted[name] = value

    def _emit_stats(self) -> None:
        sio = self.sio
        engine = sio.engine
        sessions = list(engine.sessions.values()) if engine is not None else []
        self._count_traffic()
        stats = dict(
            self.base_stats,
            uptime=time.monotonic() - self.started,
            clientsCount=len(sessions),
            pollingClientsCount=sum(
                1 for s in sessions if getattr(s, "transport_name", "") == "polling"
            ),
            aggregatedEvents=self.events.drain(),
            namespaces=[
                {"name": name, "socketsCount": len(nsp.sockets)}
                for name, nsp in sio.namespaces.items()
            ],
        )
        try:
            self.admin.emit("server_stats", stats)
        except Exception:
            logger.exception("could not send the server stats to the Admin UI")
        self._timer = asyncio.get_running_loop().call_later(STATS_INTERVAL, self._emit_stats)


def _hook(socket: Any, received: Callable, sent: Callable) -> None:
    # first, as the connection handler that made them ran first (Node's prependListener)
    socket.prepend_any(received)
    socket.prepend_any_outgoing(sent)


def _unhook(socket: Any, received: Callable, sent: Callable) -> None:
    socket.off_any(received)
    socket.off_any_outgoing(sent)


class _ReportedData(dict):
    """``socket.data`` in development mode: a dict that reports each change of its keys
    (Node wraps it in a Proxy for the same ``socket_updated``). Pickled as a plain dict (the
    workers' bus sends fetched sockets' data)."""

    __slots__ = ("_changed",)

    def __init__(self, data: Any, changed: Any) -> None:
        super().__init__(data if isinstance(data, dict) else {})
        self._changed = changed

    def __reduce__(self) -> Any:
        return dict, (dict(self),)

    def _notify(self) -> None:
        self._changed(self)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._notify()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._notify()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._notify()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        super().__setitem__(key, default)
        self._notify()
        return default

    def pop(self, key: Any, *default: Any) -> Any:
        present = key in self
        value = super().pop(key, *default)
        if present:
            self._notify()
        return value

    def popitem(self) -> Any:
        item = super().popitem()
        self._notify()
        return item

    def clear(self) -> None:
        super().clear()
        self._notify()


def _shown(data: Any) -> dict:
    """``socket.data`` as the UI is shown it: without this module's own keys."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if not str(k).startswith("_admin")}


def _check_auth(auth: Any) -> dict | None:
    if auth is None or auth is False:
        logger.warning("the Admin UI's namespace accepts anyone: instrument(auth=None)")
        return None
    if not isinstance(auth, dict) or not {"username", "password"} <= set(auth):
        raise ValueError('auth must be {"username": ..., "password": ...} or None')
    password = auth["password"]
    if not isinstance(password, str) or not password:
        raise ValueError("the Admin UI password must be a non-empty str")
    if _is_bcrypt(password):
        _bcrypt()  # fail now, not at the first login, when bcrypt is missing
    return {"username": str(auth["username"]), "password": password}


def _is_bcrypt(password: str) -> bool:
    return password.startswith(("$2a$", "$2b$", "$2y$")) and len(password) == 60


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError as exc:
        raise ImportError(
            "a bcrypt password hash needs the bcrypt package: pip install 'fastsio[admin]'"
        ) from exc
    return bcrypt


def _password_matches(given: Any, expected: str) -> bool:
    """``expected`` is a bcrypt hash (as Node's instrument() requires) or, for development, the
    password itself."""
    if not isinstance(given, str):
        return False
    if _is_bcrypt(expected):
        return _bcrypt().checkpw(given.encode(), expected.encode())
    return hmac.compare_digest(given.encode(), expected.encode())
