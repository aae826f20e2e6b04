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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from .. import _impl
from ..http.compression import accept_websocket as accept_compressed_websocket
from ..http.compression import http_compression_options
from ..http.cors import cors_headers, origin_allowed, preflight_headers
from ..protocol.deflate import deflate_options
from .constants import (
    APPLICATION_JSON,
    BAD_HANDSHAKE_METHOD,
    BAD_REQUEST,
    CONTENT_TYPE_HEADERS,
    ERROR_MESSAGES,
    FORBIDDEN,
    OPEN_PACKET,
    SESSION_ID_UNKNOWN,
    TRANSPORT_UNKNOWN,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from .hooks import CUSTOM_ID, ENGINE_EVENTS, EngineError, SidCookie, add_headers, sid_cookie
from .ids import id_source, owner_of, owner_prefix
from .session import MAX_BUFFERED_BYTES
from .session3 import EngineSession3
from .timers import TimerQueues

logger = logging.getLogger("fastsio.engine")

#: the Engine.IO v4 session class in use: compiled or pure (picked by fastsio._impl)
EngineSession = _impl.engine_session.EngineSession

KNOWN_TRANSPORTS = ("polling", "websocket")
_REFUSED_ORIGINS_KEPT = 1000  # origins warned about once each (then debug): a bounded set


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

    def __init__(self, **options: Any) -> None:
        """``options``: those of :meth:`configure`."""
        self.sessions: dict[str, EngineSession] = {}
        #: the sessions' heartbeat timers, queued by delay (one loop timer per queue)
        self.timers = TimerQueues()
        #: a WireMeter (fastsio._impl) summing the sessions' traffic, or None: not counted (the
        #: Admin UI's instrumentation sets it; see accept_websocket and PollingTransport)
        self.meter: Any = None
        self._http: Any = None
        # handshakes waiting for an async allow_request or generate_id (cancelled by close())
        self._handshake_tasks: set = set()
        #: several worker processes (see use_workers): this one's index, their number, and what
        #: hands another worker's requests over (None in a single process)
        self.worker_index = 0
        self.worker_count = 1
        self.handover: Any = None
        self._new_sid: Callable[[], str] = id_source()
        #: put in front of a custom id (``generate_id``): the owner's prefix with several workers
        self._id_prefix = ""
        #: ``generate_id(request) -> str`` (or an awaitable str): custom session ids, as Node's
        #: ``engine.generateId``; None: random ids (see ``ids.py``)
        self.generate_id: Callable[[Any], Any] | None = None
        self._listeners: dict[str, list] = {event: [] for event in ENGINE_EVENTS}
        # True when a response may get headers of the app's (the cookie, the header hooks):
        # the one flag the common response reads
        self._extra_headers = False
        self._closing = False
        # origins warned about once each (then at debug level): see _log_refused_origin
        self._refused_origins: set[str] = set()
        self.configure(**options)

    def configure(
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
        cookie: Any = False,
    ) -> None:
        """Set every option (those not given to their defaults). ``Server.start()`` calls it with
        the Server's options; the hooks (``on``, ``generate_id``) and the sessions stay."""
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
        #: the sid cookie of the handshake's answer (Node's ``cookie`` option), or None
        self.cookie: SidCookie | None = sid_cookie(cookie)
        self.on_connection = on_connection or _ignore_connection
        upgrades = ["websocket"] if allow_upgrades and "websocket" in transports else []
        self._upgrades_for_polling = upgrades
        # (polling, protocol, ping_interval, ping_timeout, max_http_buffer_size) -> the open
        # packet's JSON after the sid (_open_packet)
        self._open_packet_ends: dict[tuple, str] = {}
        self._update_header_flag()

    # -- hooks (Node's io.engine events) ----------------------------------------------------------

    def on(self, event: str, listener: Callable | None = None) -> Any:
        """Call ``listener`` on ``event`` (decorator or call), as Node's ``io.engine.on``:

        - ``"connection_error"``: ``listener(error)`` for every refused request, an
          :class:`EngineError` (``request``, ``code``, ``message``, ``context``);
        - ``"initial_headers"``: ``listener(headers, request)`` before the answer to a handshake
          (no sid yet): add response headers to the dict ``headers`` (a value may be a list for
          a header sent several times, e.g. ``Set-Cookie``);
        - ``"headers"``: the same for every answer: the handshake, every polling GET and POST,
          the WebSocket's 101 (the handshake's and the upgrade's);
        - ``"connection"``: ``listener(session)`` for every new Engine.IO session.

        Error answers (400/403 with the protocol's JSON) get no extra headers, as in Node."""
        if event not in self._listeners:
            raise ValueError(f"unknown engine event {event!r}; one of {', '.join(ENGINE_EVENTS)}")
        if listener is None:
            return lambda function: self.on(event, function)
        self._listeners[event].append(listener)
        self._update_header_flag()
        return listener

    def off(self, event: str, listener: Callable | None = None) -> None:
        """Remove ``listener`` from ``event`` (every listener of it when None)."""
        listeners = self._listeners.get(event)
        if listeners is None:
            raise ValueError(f"unknown engine event {event!r}; one of {', '.join(ENGINE_EVENTS)}")
        if listener is None:
            listeners.clear()
        elif listener in listeners:
            listeners.remove(listener)
        self._update_header_flag()

    def _emit(self, event: str, *args: Any) -> None:
        for listener in tuple(self._listeners[event]):
            try:
                listener(*args)
            except Exception:
                logger.exception("error in engine %r listener", event)

    def _update_header_flag(self) -> None:
        listeners = self._listeners
        self._extra_headers = bool(
            self.cookie is not None or listeners["initial_headers"] or listeners["headers"]
        )

    @property
    def clients_count(self) -> int:
        """The number of open Engine.IO sessions (Node's ``engine.clientsCount``)."""
        return len(self.sessions)

    # -- HTTP entry point ---------------------------------------------------------------------

    def handle_request(self, request: Any) -> None:
        origin = request.headers.get("origin")
        if (
            origin is not None
            and self.cors_allowed_origins is not None
            and not origin_allowed(origin, self.cors_allowed_origins)
        ):
            self._log_refused_origin(origin, request)
            self._refuse(request, 403, FORBIDDEN, {"name": "ORIGIN_NOT_ALLOWED", "origin": origin})
            return
        if request.method == "OPTIONS":
            headers = preflight_headers(request, self.cors_allowed_origins, self.cors_credentials)
            request.respond(204, headers, b"")
            return
        query = request.query
        transport = query.get("transport")
        if transport not in self.transports:
            logger.debug(
                "%s %s from %s: transport %r not served (%s): 400 Transport unknown",
                request.method,
                request.url,
                request.client[0],
                transport,
                ", ".join(self.transports),
            )
            self._refuse(request, 400, TRANSPORT_UNKNOWN, {"transport": transport})
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
                self._refuse(request, 400, TRANSPORT_UNKNOWN, {"transport": "jsonp"})
                return
        else:
            self._log_bad_version(eio, request)
            self._refuse(request, 400, UNSUPPORTED_PROTOCOL_VERSION, {"protocol": eio})
            return
        # The order of the checks is Node's: an unknown sid is reported before a websocket
        # request that does not upgrade.
        sid = query.get("sid")
        session = self.sessions.get(sid) if sid is not None else None
        if sid is not None and session is None:
            # Not here: another worker's session is handed over to it (the only place that pays
            # for several workers; a request on its owner never gets here)
            if self.handover is None or not self._hand_over(request, sid):
                # usual after a restart or a ping timeout: the client reconnects by itself
                logger.debug("request for unknown session %s from %s", sid, request.client[0])
                self._refuse(request, 400, SESSION_ID_UNKNOWN, {"sid": sid})
        elif transport == "websocket" and not request.is_websocket:
            if session is None:
                self._refuse(request, 400, BAD_REQUEST, {"name": "TRANSPORT_HANDSHAKE_ERROR"})
            else:
                self._transport_mismatch(request, transport, session)
        elif session is None:
            self._handshake_request(request, transport, protocol)
        elif session.protocol != protocol:
            # a request of another protocol revision than the handshake's (Node: PROTOCOL_MISMATCH)
            self._refuse(request, 400, BAD_REQUEST, {"name": "PROTOCOL_MISMATCH"})
        elif transport == "websocket":
            if not (self.allow_upgrades and session.start_upgrade(request)):
                # as Node: an upgrade already under way or done closes this one (no event)
                self.respond_error(request, 400, BAD_REQUEST)
        elif session.transport_name != "polling":
            self._transport_mismatch(request, transport, session)
        elif request.method == "GET":
            session.handle_poll(request)
        elif request.method == "POST":
            session.handle_post(request)
        else:
            self.respond_error(request, 400, BAD_REQUEST)

    def _refuse(
        self, request: Any, status: int, code: int, context: dict, message: str | None = None
    ) -> None:
        """Answer a refused request with the spec's JSON error, after telling the
        ``connection_error`` listeners (Node's engine emits it for the same refusals)."""
        if self._listeners["connection_error"]:
            error = EngineError(request, code, ERROR_MESSAGES[code], context)
            self._emit("connection_error", error)
        self.respond_error(request, status, code, message)

    def _transport_mismatch(self, request: Any, transport: str, session: Any) -> None:
        context = {
            "name": "TRANSPORT_MISMATCH",
            "transport": transport,
            "previousTransport": session.transport_name,
        }
        self._refuse(request, 400, BAD_REQUEST, context)

    # -- several workers ----------------------------------------------------------------------

    def use_workers(self, index: int, count: int, handover: Any) -> None:
        """Run as worker ``index`` of ``count`` processes sharing a port: new sids name this
        worker (``ids.owner_prefix``), and a request with another worker's sid goes to
        ``handover.hand_over(request, owner)`` (True: the connection is the owner's now; False:
        answered here, "Session ID unknown"). ``handover.close()`` is called by ``close()``.
        Call it before the server accepts connections."""
        self.worker_index = index
        self.worker_count = count
        self._id_prefix = owner_prefix(index, count)
        self._new_sid = id_source(self._id_prefix)
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
            self._refuse(request, 400, BAD_HANDSHAKE_METHOD, {"method": request.method})
            return
        if self.allow_request is None:
            self._new_session(request, transport, protocol)
            return
        try:
            verdict = self.allow_request(request)
        except Exception as exc:
            logger.exception("allow_request raised; refusing the connection")
            self._refuse(request, 403, FORBIDDEN, {"error": exc})
            return
        if inspect.isawaitable(verdict):
            self._run_handshake(self._handshake_after(verdict, request, transport, protocol))
        elif verdict:
            self._new_session(request, transport, protocol)
        else:
            self._refused_by_allow_request(request)

    def _run_handshake(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._handshake_tasks.add(task)
        task.add_done_callback(self._handshake_tasks.discard)

    async def _handshake_after(
        self, verdict: Any, request: Any, transport: str, protocol: int
    ) -> None:
        try:
            allowed = await verdict
        except Exception as exc:
            logger.exception("allow_request raised; refusing the connection")
            if not request.closed:
                self._refuse(request, 403, FORBIDDEN, {"error": exc})
            return
        if request.closed:
            return
        if allowed:
            self._new_session(request, transport, protocol)
        else:
            self._refused_by_allow_request(request)

    def _refused_by_allow_request(self, request: Any) -> None:
        logger.info(
            "handshake refused by allow_request: address=%s origin=%s",
            request.client[0],
            request.headers.get("origin"),
        )
        self._refuse(request, 403, FORBIDDEN, {})

    def _log_refused_origin(self, origin: str, request: Any) -> None:
        """A browser page of an origin not in ``cors_allowed_origins``: a warning the first time
        for each origin (the page retries in a loop), then at debug level."""
        warned = self._refused_origins
        level = logging.DEBUG
        if origin not in warned and len(warned) < _REFUSED_ORIGINS_KEPT:
            warned.add(origin)
            level = logging.WARNING
        logger.log(
            level,
            "refused a request from origin %r (address=%s): not in cors_allowed_origins=%r;"
            " the page sees a CORS error and retries (add the origin, exactly as the browser"
            " sends it, e.g. http://localhost:8000 and http://127.0.0.1:8000 are two origins)",
            origin,
            request.client[0],
            self.cors_allowed_origins,
        )

    def _log_bad_version(self, eio: str | None, request: Any) -> None:
        hint = ""
        if eio == "3":
            hint = " (socket.io-client 2.x: Server(allow_eio3=True) accepts it)"
        elif eio is None:
            hint = " (no EIO in the query: not a Socket.IO client?)"
        logger.info(
            "handshake refused: unsupported protocol version EIO=%s from address=%s%s",
            eio,
            request.client[0],
            hint,
        )

    def _new_session(self, request: Any, transport: str, protocol: int) -> None:
        """Open a session with a new sid: ours, or ``generate_id``'s (maybe awaited)."""
        generate = self.generate_id
        if generate is None:
            self._open_session(request, transport, protocol, self._new_sid())
            return
        try:
            sid = generate(request)
        except Exception as exc:
            logger.exception("generate_id raised; refusing the connection")
            self._id_refused(request, exc)
            return
        if inspect.isawaitable(sid):
            self._run_handshake(self._open_after_id(sid, request, transport, protocol))
        else:
            self._open_with_id(request, transport, protocol, sid)

    async def _open_after_id(self, sid: Any, request: Any, transport: str, protocol: int) -> None:
        try:
            sid = await sid
        except Exception as exc:
            logger.exception("generate_id raised; refusing the connection")
            if not request.closed:
                self._id_refused(request, exc)
            return
        if not request.closed:
            self._open_with_id(request, transport, protocol, sid)

    def _open_with_id(self, request: Any, transport: str, protocol: int, custom: Any) -> None:
        if type(custom) is not str or not CUSTOM_ID.fullmatch(custom):
            problem = ValueError(
                f"generate_id returned {custom!r}: a session id is a str of 1 to 128 characters "
                "among A-Z a-z 0-9 - _ . ~"
            )
            logger.error("refusing the connection: %s", problem)
            self._id_refused(request, problem)
            return
        sid = self._id_prefix + custom
        if sid in self.sessions:
            problem = ValueError(f"generate_id returned {custom!r}: a session has that id")
            logger.error("refusing the connection: %s", problem)
            self._id_refused(request, problem)
            return
        self._open_session(request, transport, protocol, sid)

    def _id_refused(self, request: Any, exc: BaseException) -> None:
        self._refuse(request, 400, BAD_REQUEST, {"name": "ID_GENERATION_ERROR", "error": exc})

    def _open_session(self, request: Any, transport: str, protocol: int, sid: str) -> None:
        if self._closing:
            # close() is waiting for its sessions to end: no new ones meanwhile
            self._refuse(request, 503, BAD_REQUEST, {"name": "SERVER_SHUTTING_DOWN"})
            return
        loop = request.loop
        if logger.isEnabledFor(logging.DEBUG):  # packets logged: decided once per session
            from .packetlog import PacketLoggingSession, PacketLoggingSession3

            session_class: Any = PacketLoggingSession if protocol == 4 else PacketLoggingSession3
        else:
            session_class = EngineSession if protocol == 4 else EngineSession3
        share = getattr(request, "share_strings", None)
        if share is not None:  # a native request: it lives as long as the session
            share()
        session = session_class(self, sid, request, loop)
        self.sessions[sid] = session
        session.open(transport, self._open_packet(sid, transport, protocol))
        if logger.isEnabledFor(logging.INFO):  # one call, not two, when it is not
            logger.info(
                "connection opened: sid=%s address=%s transport=%s protocol=%d",
                sid,
                request.client[0],
                transport,
                protocol,
            )
        try:
            self.on_connection(session)
        except Exception:
            logger.exception("error in connection handler")
            session.close("server error")
            return
        if self._listeners["connection"]:
            self._emit("connection", session)

    def _open_packet(self, sid: str, transport: str, protocol: int) -> str:
        """The open packet: "0" and the JSON of the sid, the upgrades, the ping settings and
        (v4 only, engine.io-protocol) maxPayload. What follows the sid is made once per setting:
        a sid (ours, or generate_id's, checked against CUSTOM_ID) needs no JSON escaping."""
        polling = transport == "polling"
        key = (polling, protocol, self.ping_interval, self.ping_timeout, self.max_http_buffer_size)
        after_sid = self._open_packet_ends.get(key)
        if after_sid is None:
            fields = {
                "sid": "",
                "upgrades": self._upgrades_for_polling if polling else [],
                "pingInterval": round(self.ping_interval * 1000),
                "pingTimeout": round(self.ping_timeout * 1000),
            }
            if protocol == 4:
                fields["maxPayload"] = self.max_http_buffer_size
            after_sid = orjson.dumps(fields).decode()[len('{"sid":"') :]
            if len(self._open_packet_ends) < 16:  # settings changed at run time: a few
                self._open_packet_ends[key] = after_sid
        return OPEN_PACKET + '{"sid":"' + sid + after_sid

    # -- for sessions and transports ------------------------------------------------------------

    def accept_websocket(self, request: Any, listener: Any) -> Any:
        """Answer a WebSocket handshake; ``listener`` gets the connection's messages."""
        headers: list = []
        if self._extra_headers:
            # Node's "headers"/"initial_headers" reach the 101 too; the sid cookie does not (a
            # WebSocket is one connection: nothing to pin)
            self._add_hooked_headers(request, headers, None)
        if self.per_message_deflate is not None:
            conn = accept_compressed_websocket(
                request, listener, self.per_message_deflate, self.max_http_buffer_size, headers
            )
        else:
            conn = request.accept_websocket(
                listener, headers, max_message_size=self.max_http_buffer_size
            )
        if self.meter is not None:
            conn.meter = self.meter
        return conn

    def response_headers(
        self, request: Any, content_type: str, sid: str | None = None
    ) -> Sequence[tuple[str, str]]:
        """The headers of a session's answer to ``request`` (``sid``: the session's): its
        content type, CORS when enabled, and the app's (the sid cookie on the handshake's
        answer, the ``initial_headers`` / ``headers`` listeners). Shared and immutable (a
        ``PreparedHeaders``) when that is the content type alone: copy it to add any."""
        headers = self._base_headers(request, content_type)
        if self._extra_headers and sid is not None:
            headers = list(headers)
            self._add_hooked_headers(request, headers, sid)
        return headers

    def _base_headers(self, request: Any, content_type: str) -> Sequence[tuple[str, str]]:
        if self.cors_allowed_origins is None:
            prepared = CONTENT_TYPE_HEADERS.get(content_type)
            return prepared if prepared is not None else [("Content-Type", content_type)]
        cors = cors_headers(
            request.headers.get("origin"), self.cors_allowed_origins, self.cors_credentials
        )
        return [("Content-Type", content_type), *cors]

    def _add_hooked_headers(self, request: Any, headers: list, sid: str | None) -> None:
        extra: dict = {}
        if "sid" not in request.query:  # the handshake (Node: "isInitialRequest")
            if self.cookie is not None and sid is not None:
                extra["Set-Cookie"] = [self.cookie.header(sid)]
            if self._listeners["initial_headers"]:
                self._emit("initial_headers", extra, request)
        if self._listeners["headers"]:
            self._emit("headers", extra, request)
        add_headers(headers, extra)

    def respond_error(
        self, request: Any, status: int, code: int, message: str | None = None
    ) -> None:
        """Answer with the spec's JSON error (``code`` from ``constants``)."""
        body = orjson.dumps({"code": code, "message": message or ERROR_MESSAGES[code]})
        request.respond(status, self._base_headers(request, APPLICATION_JSON), body)

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

    async def close(self, timeout: float = 0.0) -> None:
        """Close every session ("server shutting down") and, if it runs its own, the HTTP server.
        ``timeout``: wait up to that many seconds for the sessions to end first, so that every
        polling client collects its close packet (meanwhile new handshakes are refused with
        503). Handshakes still waiting for ``allow_request`` or ``generate_id`` are cancelled
        (their connections close)."""
        self._closing = True
        try:
            for session in list(self.sessions.values()):
                session.close("server shutting down")
            if timeout > 0 and self.sessions:
                await self._sessions_ended(timeout)
        finally:
            self._closing = False
        self.sessions.clear()
        pending = list(self._handshake_tasks)
        for task in pending:
            task.cancel()
        if pending:
            logger.debug(
                "closing: %d handshake(s) waiting for allow_request or generate_id cancelled",
                len(pending),
            )
            await asyncio.wait(pending, timeout=1.0)
        handover = self.handover
        self.handover = None
        if handover is not None:
            handover.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _sessions_ended(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.sessions and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.sessions:
            logger.info(
                "closing: %d session(s) did not collect their close packet within %gs",
                len(self.sessions),
                timeout,
            )
