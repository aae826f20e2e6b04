"""EngineServer: the HTTP entry point of Engine.IO v4 (handshake, routing to sessions, errors), and
of Engine.IO v3 too when ``allow_eio3`` is on (socket.io-client 2.x; see ``session3.py``).

Error answers follow the spec's JSON (engine.io-protocol v4): ``{"code": 0, "message": "Transport
unknown"}``, 1 Session ID unknown, 2 Bad handshake method, 3 Bad request, 4 Forbidden,
5 Unsupported protocol version (the names are in ``constants.py``).

Sessions and their transports use the server through ``respond_error``, ``response_headers``,
``accept_websocket`` and ``remove_session``, and read ``ping_interval``, ``ping_timeout`` and
``max_http_buffer_size``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..http.compression import accept_websocket as accept_compressed_websocket
from ..http.compression import http_compression_options
from ..http.cors import cors_headers, origin_allowed, preflight_headers
from ..protocol.deflate import deflate_options
from .constants import (
    APPLICATION_JSON,
    BAD_HANDSHAKE_METHOD,
    BAD_REQUEST,
    ERROR_MESSAGES,
    FORBIDDEN,
    OPEN_PACKET,
    SESSION_ID_UNKNOWN,
    TRANSPORT_UNKNOWN,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from .ids import id_source, owner_of, owner_prefix
from .session import MAX_BUFFERED_BYTES, EngineSession
from .session3 import EngineSession3

logger = logging.getLogger("fastsio.engine")

KNOWN_TRANSPORTS = ("polling", "websocket")


def http_body_limit(max_http_buffer_size: int) -> int:
    """The HTTP layer's hard cap on a request body. It is above the engine's own limit so that a
    moderately oversized POST reaches the session, which answers 413 and closes (the client then
    reconnects); a body far beyond it is refused by the HTTP layer before it is read into memory."""
    return 2 * max_http_buffer_size + 65536


def _ignore_connection(session: EngineSession) -> None:
    pass


class EngineServer:
    """Engine.IO v4 server. Mount ``handle_request`` in an HttpServer at ``path + "/"``, or call
    ``await serve(host, port)`` to run it on its own."""

    def __init__(
        self,
        *,
        path: str = "/engine.io",
        ping_interval: float = 25.0,
        ping_timeout: float = 20.0,
        max_http_buffer_size: int = 1_000_000,
        transports: Iterable[str] = KNOWN_TRANSPORTS,
        allow_upgrades: bool = True,
        cors_allowed_origins: Any = None,
        cors_credentials: bool = True,
        allow_request: Callable[[Any], Any] | None = None,
        on_connection: Callable[[EngineSession], None] | None = None,
        allow_eio3: bool = False,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
        per_message_deflate: Any = False,
        http_compression: Any = True,
    ) -> None:
        transports = tuple(transports)
        for name in transports:
            if name not in KNOWN_TRANSPORTS:
                raise ValueError(f"unknown transport {name!r}; use 'polling' and/or 'websocket'")
        if not transports:
            raise ValueError("at least one transport is needed")
        if ping_interval <= 0 or ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive (seconds)")
        self.path = "/" + path.strip("/")
        self.ping_interval = float(ping_interval)
        self.ping_timeout = float(ping_timeout)
        self.max_http_buffer_size = int(max_http_buffer_size)
        if max_buffered_bytes <= 0:
            raise ValueError("max_buffered_bytes must be positive")
        #: each session's ``max_buffered_bytes`` at its start (see EngineSession)
        self.max_buffered_bytes = int(max_buffered_bytes)
        self.transports = transports
        self.allow_upgrades = allow_upgrades
        self.cors_allowed_origins = cors_allowed_origins
        self.cors_credentials = cors_credentials
        self.allow_request = allow_request
        self.allow_eio3 = bool(allow_eio3)
        #: permessage-deflate settings (None: off) and the polling responses' HTTP compression
        #: (None: off); see fastsio.protocol.deflate and fastsio.http.compression
        self.per_message_deflate = deflate_options(per_message_deflate)
        self.http_compression = http_compression_options(http_compression)
        self.on_connection = on_connection or _ignore_connection
        self.sessions: dict[str, EngineSession] = {}
        self._http: Any = None
        # handshakes waiting for an async allow_request (cancelled by close())
        self._handshake_tasks: set = set()
        #: several worker processes (see use_workers): this one's index, their number, and what
        #: hands another worker's requests over (None in a single process)
        self.worker_index = 0
        self.worker_count = 1
        self.handover: Any = None
        self._new_sid: Callable[[], str] = id_source()
        upgrades = ["websocket"] if allow_upgrades and "websocket" in transports else []
        self._upgrades_for_polling = upgrades

    # -- HTTP entry point ---------------------------------------------------------------------

    def handle_request(self, request: Any) -> None:
        origin = request.headers.get("origin")
        if (
            origin is not None
            and self.cors_allowed_origins is not None
            and not origin_allowed(origin, self.cors_allowed_origins)
        ):
            self.respond_error(request, 403, FORBIDDEN)
            return
        if request.method == "OPTIONS":
            headers = preflight_headers(request, self.cors_allowed_origins, self.cors_credentials)
            request.respond(204, headers, b"")
            return
        query = request.query
        transport = query.get("transport")
        if transport not in self.transports:
            self.respond_error(request, 400, TRANSPORT_UNKNOWN)
            return
        eio = query.get("EIO")
        if eio == "4":
            protocol = 4
        elif eio == "3" and self.allow_eio3:
            protocol = 3
            if "j" in query:
                # JSONP polling (socket.io-client 2.x where XMLHttpRequest is missing, or with
                # forceJSONP) is not implemented: say so instead of answering in a format the
                # client cannot read
                self.respond_error(request, 400, TRANSPORT_UNKNOWN)
                return
        else:
            self.respond_error(request, 400, UNSUPPORTED_PROTOCOL_VERSION)
            return
        # The order of the checks is Node's: an unknown sid is reported before a websocket
        # request that does not upgrade.
        sid = query.get("sid")
        session = self.sessions.get(sid) if sid is not None else None
        if sid is not None and session is None:
            # Not here: another worker's session is handed over to it (the only place that pays
            # for several workers; a request on its owner never gets here)
            if self.handover is None or not self._hand_over(request, sid):
                self.respond_error(request, 400, SESSION_ID_UNKNOWN)
        elif transport == "websocket" and not request.is_websocket:
            self.respond_error(request, 400, BAD_REQUEST)
        elif session is None:
            self._handshake_request(request, transport, protocol)
        elif session.protocol != protocol:
            # a request of another protocol revision than the handshake's (Node: PROTOCOL_MISMATCH)
            self.respond_error(request, 400, BAD_REQUEST)
        elif transport == "websocket":
            if not (self.allow_upgrades and session.start_upgrade(request)):
                self.respond_error(request, 400, BAD_REQUEST)
        elif session.transport_name != "polling":
            self.respond_error(request, 400, BAD_REQUEST)
        elif request.method == "GET":
            session.handle_poll(request)
        elif request.method == "POST":
            session.handle_post(request)
        else:
            self.respond_error(request, 400, BAD_REQUEST)

    # -- several workers ----------------------------------------------------------------------

    def use_workers(self, index: int, count: int, handover: Any) -> None:
        """Run as worker ``index`` of ``count`` processes sharing a port: new sids name this
        worker (``ids.owner_prefix``), and a request with another worker's sid goes to
        ``handover.hand_over(request, owner)`` (True: the connection is the owner's now; False:
        answered here, "Session ID unknown"). ``handover.close()`` is called by ``close()``.
        Call it before the server accepts connections."""
        self.worker_index = index
        self.worker_count = count
        self._new_sid = id_source(owner_prefix(index, count))
        self.handover = handover if count > 1 else None

    def sid_owner(self, sid: str) -> int | None:
        """The index of the worker that made ``sid`` (None: not a sid of any of them)."""
        return owner_of(sid, self.worker_count)

    def _hand_over(self, request: Any, sid: str) -> bool:
        owner = owner_of(sid, self.worker_count)
        if owner is None or owner == self.worker_index:
            return False  # ours and gone, or nobody's
        return bool(self.handover.hand_over(request, owner))

    # -- handshake ----------------------------------------------------------------------------

    def _handshake_request(self, request: Any, transport: str, protocol: int = 4) -> None:
        if request.method != "GET":
            self.respond_error(request, 400, BAD_HANDSHAKE_METHOD)
            return
        if self.allow_request is None:
            self._open_session(request, transport, protocol)
            return
        try:
            verdict = self.allow_request(request)
        except Exception:
            logger.exception("allow_request raised; refusing the connection")
            verdict = False
        if inspect.isawaitable(verdict):
            task = asyncio.ensure_future(
                self._handshake_after(verdict, request, transport, protocol)
            )
            self._handshake_tasks.add(task)
            task.add_done_callback(self._handshake_tasks.discard)
        elif verdict:
            self._open_session(request, transport, protocol)
        else:
            self.respond_error(request, 403, FORBIDDEN)

    async def _handshake_after(
        self, verdict: Any, request: Any, transport: str, protocol: int
    ) -> None:
        try:
            allowed = await verdict
        except Exception:
            logger.exception("allow_request raised; refusing the connection")
            allowed = False
        if request.closed:
            return
        if allowed:
            self._open_session(request, transport, protocol)
        else:
            self.respond_error(request, 403, FORBIDDEN)

    def _open_session(self, request: Any, transport: str, protocol: int = 4) -> None:
        loop = request.loop
        sid = self._new_sid()
        session_class = EngineSession if protocol == 4 else EngineSession3
        session = session_class(self, sid, request, loop)
        self.sessions[sid] = session
        upgrades = self._upgrades_for_polling if transport == "polling" else []
        fields = {
            "sid": sid,
            "upgrades": upgrades,
            "pingInterval": round(self.ping_interval * 1000),
            "pingTimeout": round(self.ping_timeout * 1000),
        }
        if protocol == 4:
            fields["maxPayload"] = self.max_http_buffer_size  # v4 only (engine.io-protocol)
        session.open(transport, OPEN_PACKET + orjson.dumps(fields).decode())
        try:
            self.on_connection(session)
        except Exception:
            logger.exception("error in connection handler")
            session.close("server error")

    # -- for sessions and transports ------------------------------------------------------------

    def accept_websocket(self, request: Any, listener: Any) -> Any:
        """Answer a WebSocket handshake; ``listener`` gets the connection's messages."""
        if self.per_message_deflate is not None:
            return accept_compressed_websocket(
                request, listener, self.per_message_deflate, self.max_http_buffer_size
            )
        return request.accept_websocket(listener, max_message_size=self.max_http_buffer_size)

    def response_headers(self, request: Any, content_type: str) -> list[tuple[str, str]]:
        """The headers of an answer to ``request``: its content type, and CORS when enabled."""
        if self.cors_allowed_origins is None:
            return [("Content-Type", content_type)]
        cors = cors_headers(
            request.headers.get("origin"), self.cors_allowed_origins, self.cors_credentials
        )
        return [("Content-Type", content_type), *cors]

    def respond_error(
        self, request: Any, status: int, code: int, message: str | None = None
    ) -> None:
        """Answer with the spec's JSON error (``code`` from ``constants``)."""
        body = orjson.dumps({"code": code, "message": message or ERROR_MESSAGES[code]})
        request.respond(status, self.response_headers(request, APPLICATION_JSON), body)

    def remove_session(self, session: EngineSession) -> None:
        """Forget a session that ended: a request with its sid is "Session ID unknown" now."""
        if self.sessions.get(session.sid) is session:
            del self.sessions[session.sid]

    # -- running on its own -------------------------------------------------------------------

    def attach(self, http_server: Any) -> None:
        """Mount this engine at its path in an existing HttpServer."""
        http_server.mount(self.path + "/", self.handle_request)

    async def serve(self, host: str = "127.0.0.1", port: int = 3000) -> None:
        """Run this Engine.IO server alone until ``close()`` is called."""
        await self.start(host, port)
        await self._http.serve_forever()

    async def start(self, host: str = "127.0.0.1", port: int = 3000) -> Any:
        from ..http.server import HttpServer

        self._http = HttpServer(max_body_size=http_body_limit(self.max_http_buffer_size))
        self.attach(self._http)
        return await self._http.start(host, port)

    async def close(self) -> None:
        """Close every session ("server shutting down") and, if it runs its own, the HTTP server.
        Handshakes still waiting for ``allow_request`` are cancelled (their connections close)."""
        for session in list(self.sessions.values()):
            session.close("server shutting down")
        self.sessions.clear()
        pending = list(self._handshake_tasks)
        for task in pending:
            task.cancel()
        if pending:
            logger.debug(
                "closing: %d handshake(s) waiting for allow_request cancelled", len(pending)
            )
            await asyncio.wait(pending, timeout=1.0)
        handover = self.handover
        self.handover = None
        if handover is not None:
            handover.close()
        if self._http is not None:
            await self._http.close()
            self._http = None
