"""The ASGI bridge of the native server: ``fastsio run module:asgi_app`` serves Socket.IO itself
and hands every other request (HTTP, and the app's own WebSocket routes) to the ASGI app that
:class:`fastsio.ASGIApp` wraps, on the same port.

- HTTP: the request is dispatched once its head is read (``HttpServer.body_streamer``), and its
  body reaches the app as it arrives, one ``http.request`` per read, with reading from the client
  paused while more than 256 KB wait for the app (``http/body.py``). A body longer than
  ``max_body_size`` is refused with 413 from its Content-Length, before the app is called; a
  chunked one that grows past it has its connection closed (the app sees ``http.disconnect``).
  Then ``http.disconnect`` when the client goes away. The answer is streamed: the head at the first
  body part, then chunked (or by the app's Content-Length), each part written as it comes with
  the app paused while more than ``WRITE_HIGH_WATER`` bytes wait for the client. An app that
  fails or returns before answering gets a 500, one that gives no answer within
  ``NativeBridge.response_timeout`` seconds a 500 too (it is cancelled); one failing in the
  middle of a body has the connection closed (the status was sent already).
- WebSocket: the native connection, with ``websocket.connect`` / ``receive`` / ``disconnect``
  as ASGI says; an app that closes before accepting (or returns) refuses the handshake with
  403, one that fails after accepting closes it with 1011.
- Lifespan: the app's startup runs before the port is bound (a failure stops ``fastsio run``
  with its message), its shutdown after the server closed; its ``state`` is given to every
  request's scope (shallow copies), as uvicorn does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .http.request import Request

logger = logging.getLogger("fastsio.http")

_TEXT_PLAIN = [("Content-Type", "text/plain; charset=utf-8")]
#: the app waits in ``send`` while more than this many bytes wait for a slow client
WRITE_HIGH_WATER = 256 * 1024
_DRAIN_POLL = 0.005  # seconds between two looks at a full write buffer
LIFESPAN_TIMEOUT = 30.0  # seconds for the app's startup and shutdown


class NativeBridge:
    """Runs an ASGI app behind fastsio's own HTTP server (see the module's text). ``handle``
    is the HttpServer handler of every path that is not Socket.IO's, a route or a static file;
    ``startup``/``shutdown`` run the app's lifespan (``Server.start``/``close`` call them)."""

    def __init__(
        self,
        app: Any,
        sio: Any,
        response_timeout: float = 60.0,
        max_body_size: int | None = 100 * 1024 * 1024,
    ) -> None:
        self.app = app
        self.sio = sio
        #: the largest request body passed to the app (bytes; None: no bound)
        self.max_body_size = max_body_size
        #: seconds an app may take to begin its answer before it is cancelled (500)
        self.response_timeout = response_timeout
        self.state: dict = {}
        self._tasks: set[asyncio.Task] = set()
        self._lifespan: asyncio.Task | None = None
        self._lifespan_inbox: asyncio.Queue | None = None
        self._lifespan_events: asyncio.Queue | None = None

    # -- lifespan -------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run the app's lifespan startup; RuntimeError with its message when it fails. An app
        without lifespan support (it raises at once) is served without."""
        inbox: asyncio.Queue = asyncio.Queue()
        events: asyncio.Queue = asyncio.Queue()
        self._lifespan_inbox, self._lifespan_events = inbox, events
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = self.state
        self._lifespan = asyncio.ensure_future(self._run_lifespan(scope, inbox, events))
        await inbox.put({"type": "lifespan.startup"})
        event = await asyncio.wait_for(events.get(), LIFESPAN_TIMEOUT)
        if event["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"the ASGI app's startup failed: {event.get('message', '')}")

    async def _run_lifespan(self, scope: dict, inbox: asyncio.Queue, events: asyncio.Queue) -> None:
        try:
            await self.app(scope, inbox.get, events.put)
        except Exception as exc:  # noqa: BLE001 - as uvicorn's lifespan "auto"
            logger.info("the ASGI app has no lifespan (%r): served without", exc)
        finally:
            # whoever waits for a lifespan event is told the app is done
            await events.put({"type": "lifespan.unsupported"})

    async def shutdown(self) -> None:
        """Cancel the requests still bridged, then run the app's lifespan shutdown."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is None or lifespan.done():
            return
        assert self._lifespan_inbox is not None and self._lifespan_events is not None
        await self._lifespan_inbox.put({"type": "lifespan.shutdown"})
        try:
            event = await asyncio.wait_for(self._lifespan_events.get(), LIFESPAN_TIMEOUT)
        except asyncio.TimeoutError:
            logger.error("the ASGI app's shutdown did not finish in %s s", LIFESPAN_TIMEOUT)
            lifespan.cancel()
            return
        if event["type"] == "lifespan.shutdown.failed":
            logger.error("the ASGI app's shutdown failed: %s", event.get("message", ""))

    # -- requests ---------------------------------------------------------------------------------

    def streams_body(self, request: Request) -> bool:
        """``HttpServer.body_streamer``: the bodies of the app's requests are streamed."""
        from .asgi import served_by_fastsio

        kind = "websocket" if request.is_websocket else "http"
        return not served_by_fastsio(self.sio, request.path, request.method, kind)

    def handle(self, request: Request) -> None:
        """The HttpServer handler: the request goes to the app in a task of its own."""
        run = self._websocket if request.is_websocket else self._http
        task = request.loop.create_task(run(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def scope(self, request: Request, kind: str) -> dict:
        """The ASGI scope of a native request (``root_path`` as uvicorn gives it: in ``path``
        too)."""
        root_path = self.sio.root_path
        secure = request.secure
        port = self.sio.port or 0
        return {
            "type": kind,
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "method": request.method,
            "scheme": ("wss" if secure else "ws")
            if kind == "websocket"
            else ("https" if secure else "http"),
            "path": root_path + request.path,
            "raw_path": (root_path + request.url.partition("?")[0]).encode("latin-1"),
            "query_string": request.query_string.encode("latin-1"),
            "root_path": root_path,
            "headers": [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in request.headers.items()
            ],
            "client": request.client,
            "server": (request.headers.get("host", "").rpartition(":")[0] or "", port),
            "state": dict(self.state),
            "extensions": {"websocket.http.response": {}} if kind == "websocket" else {},
        }

    async def _http(self, request: Request) -> None:
        exchange = HttpExchange(request)
        app = asyncio.ensure_future(
            self.app(self.scope(request, "http"), exchange.receive, exchange.send)
        )
        try:
            started = asyncio.ensure_future(exchange.started.wait())
            await asyncio.wait(
                {app, started}, timeout=self.response_timeout, return_when="FIRST_COMPLETED"
            )
            started.cancel()
            if not app.done() and not exchange.started.is_set():
                app.cancel()
                logger.error(
                    "%s %s: the ASGI app gave no answer within %s s",
                    request.method,
                    request.path,
                    self.response_timeout,
                )
                exchange.fail(f"the application did not answer within {self.response_timeout} s")
                return
            await app
        except asyncio.CancelledError:
            app.cancel()
            raise
        except Exception:
            logger.exception("%s %s: the ASGI app failed", request.method, request.path)
            exchange.fail("the application failed")
            return
        if not exchange.started.is_set():
            logger.error(
                "%s %s: the ASGI app returned without an answer", request.method, request.path
            )
            exchange.fail("the application returned without an answer")
        elif not exchange.finished:
            request.close_connection()  # the body is incomplete: the client must see it

    async def _websocket(self, request: Request) -> None:
        exchange = WebSocketExchange(request)
        try:
            await self.app(self.scope(request, "websocket"), exchange.receive, exchange.send)
        except asyncio.CancelledError:
            exchange.end(1001)
            raise
        except Exception:
            logger.exception("WebSocket %s: the ASGI app failed", request.path)
            exchange.end(1011)
            return
        exchange.end(1000)


class HttpExchange:
    """One HTTP request between the native server and the app: ``receive``/``send`` as ASGI
    gives them to the app."""

    __slots__ = (
        "body_given",
        "disconnected",
        "finished",
        "headers",
        "request",
        "started",
        "status",
        "streaming",
    )

    def __init__(self, request: Request) -> None:
        self.request = request
        self.body_given = False
        self.started = asyncio.Event()
        self.finished = False
        self.streaming = False
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.disconnected = request.loop.create_future()
        request.on_close = self._on_close

    def _on_close(self) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    async def receive(self) -> dict:
        if not self.body_given:
            stream = self.request.body_stream
            if stream is None:
                self.body_given = True
                return {"type": "http.request", "body": self.request.body, "more_body": False}
            data, more = await stream.read()
            if stream.gone:
                return {"type": "http.disconnect"}
            self.body_given = not more
            return {"type": "http.request", "body": data, "more_body": more}
        await self.disconnected
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        kind = message["type"]
        request = self.request
        if kind == "http.response.start":
            if self.started.is_set():
                raise RuntimeError("http.response.start sent twice")
            self.status = int(message["status"])
            self.headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            ]
            self.started.set()
        elif kind == "http.response.body":
            if not self.started.is_set():
                raise RuntimeError("http.response.body before http.response.start")
            if self.finished:
                raise RuntimeError("http.response.body after the last part")
            body = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if not self.streaming and not more:
                self.finished = True  # the usual answer: head and body in one write
                request.respond(self.status, self.headers, body)
                return
            if not self.streaming:
                self.streaming = True
                request.start_response(self.status, self.headers)
            request.send_body(body, more)
            self.finished = not more
            while request.write_buffer_size() > WRITE_HIGH_WATER and not request.closed:
                await asyncio.sleep(_DRAIN_POLL)
        # other messages (extensions this server does not offer) are ignored, as ASGI says

    def fail(self, message: str) -> None:
        """500 when nothing was sent yet; else the connection is closed."""
        request = self.request
        if self.started.is_set() and self.streaming:
            request.close_connection()
            return
        request.respond(500, _TEXT_PLAIN, f"Internal Server Error: {message}".encode())


class WebSocketExchange:
    """One WebSocket request between the native server and the app. The native connection is
    made at ``websocket.accept``; its listener turns frames into ``websocket.receive``."""

    __slots__ = ("conn", "denial", "inbox", "request")

    def __init__(self, request: Request) -> None:
        self.request = request
        self.conn: Any = None
        self.denial: tuple[int, list, list[bytes]] | None = None  # websocket.http.response
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        request = self.request
        conn = self.conn
        if kind == "websocket.accept":
            if conn is not None:
                raise RuntimeError("websocket.accept sent twice")
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            ]
            if message.get("subprotocol"):
                headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
            self.conn = request.accept_websocket(self, headers)
        elif kind == "websocket.send":
            if conn is None:
                raise RuntimeError("websocket.send before websocket.accept")
            if message.get("text") is not None:
                conn.send_text(message["text"])
            else:
                conn.send_binary(bytes(message.get("bytes") or b""))
            while conn.write_buffer_size() > WRITE_HIGH_WATER and not conn.closed:
                await asyncio.sleep(_DRAIN_POLL)
        elif kind == "websocket.close":
            self.end(int(message.get("code", 1000)), message.get("reason") or "")
        elif kind == "websocket.http.response.start" and conn is None:
            headers = message.get("headers", ())
            decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]
            self.denial = (int(message["status"]), decoded, [])
        elif kind == "websocket.http.response.body" and self.denial is not None:
            status, headers, parts = self.denial
            parts.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                request.respond(status, headers, b"".join(parts))

    def end(self, code: int, reason: str = "") -> None:
        """The app is done with the connection: refuse the handshake (403) or close."""
        if self.conn is None:
            self.request.respond(403, _TEXT_PLAIN, b"Forbidden")
        else:
            self.conn.close(code, reason)

    # -- the native connection's listener ------------------------------------------------------

    def on_text(self, text: str) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    def on_binary(self, data: bytes) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    def on_close(self, code: int, reason: str) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
