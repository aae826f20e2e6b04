"""Plain HTTP routes without a framework (``@sio.route("/health")``) and what their handlers
may return.

A route matches one exact path. Its handler gets the :class:`~fastsio.http.Request` (``method``,
``path``, ``query``, ``headers``, ``body``, ``client``; ``request.json()`` parses the body) and
returns the answer, from a plain function or an ``async def``:

=======================  =====================================================================
returned                 answered with
=======================  =====================================================================
``str``                  200, ``text/plain; charset=utf-8`` (``text/html`` when it starts with
                         ``<``)
``bytes``                200, ``application/octet-stream``
``dict`` / ``list``      200, ``application/json`` (orjson)
``pathlib.Path``         the file (content type from its name, ETag, 304), 404 if missing
``None``                 204 No Content
:class:`Response`        its status, headers and body
=======================  =====================================================================

A request with another method gets 405 with ``Allow``; an exception in the handler is logged
and answered 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from .request import Request
from .static import send_file

logger = logging.getLogger("fastsio.http")

Handler = Callable[[Request], None]

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_BINARY = "application/octet-stream"


class Response:
    """What a route handler returns for full control of the answer.

    ``body``: ``bytes``, ``str`` (UTF-8) or a JSON-serialisable object (``dict``/``list``);
    ``content_type`` defaults from it as a plain return value's would; ``headers``: a mapping
    or ``(name, value)`` pairs added to the answer. ``Response(status=302,
    headers={"Location": "/login"})`` is a redirect.
    """

    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: dict[str, str] | Iterable[tuple[str, str]] | None = None,
        content_type: str | None = None,
    ) -> None:
        if not 100 <= status <= 599:
            raise ValueError(f"HTTP status must be between 100 and 599, not {status!r}")
        self.body = body
        self.status = status
        self.headers = list(headers.items() if isinstance(headers, dict) else headers or ())
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.content_type or ''}>"


def encode_body(body: Any) -> tuple[bytes, str]:
    """A handler's return value (or a Response's body) as bytes and a default content type."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), _BINARY
    if isinstance(body, str):
        return body.encode(), _HTML if body.lstrip()[:1] == "<" else _TEXT
    return orjson.dumps(body), _JSON  # TypeError for what JSON cannot hold


def to_answer(value: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` for what a route handler returned (see the module's table)."""
    if value is None:
        return 204, [], b""
    if isinstance(value, Response):
        body, default_type = encode_body(value.body)
        headers = list(value.headers)
        if not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", value.content_type or default_type))
        return value.status, headers, body
    body, content_type = encode_body(value)
    return 200, [("Content-Type", content_type)], body


class Route:
    __slots__ = ("handler", "is_async", "methods", "path")

    def __init__(self, path: str, handler: Callable, methods: Iterable[str]) -> None:
        self.path = path
        self.handler = handler
        self.methods = frozenset(m.upper() for m in methods)
        self.is_async = asyncio.iscoroutinefunction(handler)


class Router:
    """The HttpServer handler of the routes: an exact path match, else ``fallback`` (static
    files, the wrapped ASGI app, or 404)."""

    __slots__ = ("fallback", "routes")

    def __init__(self, routes: dict[str, Route], fallback: Handler) -> None:
        self.routes = routes
        self.fallback = fallback

    def __call__(self, request: Request) -> None:
        route = self.routes.get(request.path)
        if route is None:
            self.fallback(request)
            return
        methods = route.methods
        method = request.method
        if method not in methods and not (method == "HEAD" and "GET" in methods):
            allow = ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))
            request.respond(405, [("Allow", allow), ("Content-Type", _TEXT)], b"Method Not Allowed")
            return
        if route.is_async:
            task = request.loop.create_task(route.handler(request))
            task.add_done_callback(lambda done: _answer_task(request, route, done))
        else:
            answer(request, route, route.handler(request))


def answer(request: Request, route: Route, value: Any) -> None:
    """Answer ``request`` with what ``route``'s handler returned (500 if it cannot be sent)."""
    if isinstance(value, Path):
        send_file(request, os.fspath(value))
        return
    try:
        status, headers, body = to_answer(value)
    except Exception:
        logger.exception("route %s: cannot answer with %r", route.path, type(value).__name__)
        request.respond(500, [("Content-Type", _TEXT)], b"Internal Server Error")
        return
    request.respond(status, headers, body)


def _answer_task(request: Request, route: Route, task: asyncio.Task) -> None:
    if task.cancelled():
        request.respond(503, [("Content-Type", _TEXT)], b"Service Unavailable")
        return
    error = task.exception()
    if error is not None:
        logger.error("route %s %s failed", request.method, route.path, exc_info=error)
        request.respond(500, [("Content-Type", _TEXT)], b"Internal Server Error")
        return
    answer(request, route, task.result())
