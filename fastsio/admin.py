"""The official Socket.IO Admin UI (``@socket.io/admin-ui`` 0.5) for a fastsio server::

    sio.instrument(auth={"username": "admin", "password": "$2b$10$..."})   # a bcrypt hash

then open the Admin UI (https://admin.socket.io, or its files from the npm package served by
any web server), enter this server's URL and the credentials. The protocol is the one the npm
package's ``instrument()`` speaks (its dist/index.js): an ``/admin`` namespace whose clients get
``config``, ``all_sockets`` and a ``server_stats`` every 2 s, and may send ``emit``, ``join``,
``leave`` and ``_disconnect``; in development mode every connection, disconnection, room change
and received event is reported as it happens. With a cluster adapter (Redis, ``--workers``),
these go through the adapter like any broadcast, so one UI sees every server.

Not reported (yet): the bytes and packets per second of the dashboard's charts (Node counts
them per Engine.IO packet; the other aggregated events are there), outgoing events (not wired
to ``on_any_outgoing``), later changes of ``socket.data``, and transport upgrades.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket as socket_module
import time
from datetime import datetime, timezone
from typing import Any

__all__ = ["Instrumentation", "instrument"]

logger = logging.getLogger("fastsio.admin")

STATS_INTERVAL = 2.0  # seconds between two server_stats, as Node's instrument()

#: the features the UI enables (typed-events.ts)
EMIT, JOIN, LEAVE, DISCONNECT = "EMIT", "JOIN", "LEAVE", "DISCONNECT"
MJOIN, MLEAVE, MDISCONNECT = "MJOIN", "MLEAVE", "MDISCONNECT"
AGGREGATED_EVENTS, ALL_EVENTS = "AGGREGATED_EVENTS", "ALL_EVENTS"


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
        self._tasks: set = set()

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

    def _watch(self, nsp: Any) -> None:
        admin = self.admin
        name = nsp.name
        is_admin = nsp is admin

        def connected(socket: Any) -> None:
            admin.emit("socket_connected", self._serialize(socket, name), now())
            if not is_admin:
                socket.on_any(
                    lambda event, *args: admin.emit(
                        "event_received", name, socket.id, [event, *args], now()
                    )
                )
            socket.on(
                "disconnect",
                lambda reason: admin.emit("socket_disconnected", name, socket.id, reason, now()),
            )

        # first, as Node's prependListener: the app's handlers may emit or disconnect
        nsp._handlers.setdefault("connection", []).insert(0, connected)
        adapter = nsp.adapter
        if hasattr(adapter, "room_listener"):

            def rooms_changed(kind: str, room: Any, sid: str) -> None:
                event = "room_joined" if kind == "join" else "room_left"
                admin.emit(event, name, room, sid, now())

            adapter.room_listener = rooms_changed

    def _serialize(self, socket: Any, nsp: str) -> dict:
        handshake = socket.handshake
        headers = handshake.headers
        session = getattr(getattr(socket, "client", None), "session", None)
        details = {
            "id": socket.id,
            "nsp": nsp,
            "data": {
                k: v for k, v in _plain(socket.data).items() if not str(k).startswith("_admin")
            },
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
        self._emit_stats()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _emit_stats(self) -> None:
        sio = self.sio
        engine = sio.engine
        sessions = list(engine.sessions.values()) if engine is not None else []
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


def _plain(data: Any) -> dict:
    return data if isinstance(data, dict) else {}


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
