"""CORS: which origins may talk to us, and the headers that tell the browser so.

``allowed`` is one of:
  * ``None``: CORS not configured. No CORS headers are sent and no origin is refused (what
    Node's socket.io does by default; the browser then blocks cross-origin XHR reads itself).
  * ``"*"``: any origin. With credentials the request's Origin is echoed (a browser rejects
    ``*`` together with credentials), as the ``cors`` package used by socket.io does.
  * a string or a list of strings: exactly these origins (``"https://example.com"``).
  * a callable ``(origin) -> bool``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .request import Request

Allowed = str | Sequence[str] | Callable[[str], bool] | None

DEFAULT_METHODS = "GET, POST, OPTIONS"
DEFAULT_MAX_AGE = 86400


def _normalize(origin: str) -> str:
    return origin.rstrip("/").lower()


def origin_allowed(origin: str | None, allowed: Allowed) -> bool:
    """Whether a request with this Origin header may be served. A request without Origin
    (not from a browser, or a same-origin GET) is always allowed."""
    if origin is None or allowed is None or allowed == "*":
        return True
    if isinstance(allowed, str):
        return _normalize(origin) == _normalize(allowed)
    if callable(allowed):
        return bool(allowed(origin))
    wanted = _normalize(origin)
    return any(_normalize(candidate) == wanted for candidate in allowed)


def cors_headers(
    request_origin: str | None, allowed: Allowed, credentials: bool
) -> list[tuple[str, str]]:
    """The CORS response headers for a request with this Origin (empty if not allowed)."""
    if allowed is None:
        return []
    if allowed == "*" and not credentials:
        return [("Access-Control-Allow-Origin", "*")]
    if request_origin is None or not origin_allowed(request_origin, allowed):
        return []
    headers = [("Access-Control-Allow-Origin", request_origin), ("Vary", "Origin")]
    if credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    return headers


def preflight_headers(
    request: Request | dict[str, str],
    allowed: Allowed,
    credentials: bool,
    *,
    methods: str = DEFAULT_METHODS,
    max_age: int = DEFAULT_MAX_AGE,
) -> list[tuple[str, str]] | None:
    """The headers of a 204 answer to a preflight (OPTIONS) request, or None if its origin is
    not allowed. ``request`` is the Request, or its ``headers`` dict (lower-case names)."""
    request_headers = request if isinstance(request, dict) else request.headers
    origin = request_headers.get("origin")
    if not origin_allowed(origin, allowed):
        return None
    headers = cors_headers(origin, allowed, credentials)
    if allowed is None:
        return headers
    vary = [value for name, value in headers if name == "Vary"]
    headers = [(name, value) for name, value in headers if name != "Vary"]
    headers.append(("Access-Control-Allow-Methods", methods))
    requested = request_headers.get("access-control-request-headers")
    if requested:
        headers.append(("Access-Control-Allow-Headers", requested))
        vary.append("Access-Control-Request-Headers")
    headers.append(("Access-Control-Max-Age", str(max_age)))
    if vary:
        headers.append(("Vary", ", ".join(vary)))
    return headers


def handle_preflight(
    request: Request,
    allowed: Allowed,
    credentials: bool,
    *,
    methods: str = DEFAULT_METHODS,
    max_age: int = DEFAULT_MAX_AGE,
) -> bool:
    """Answer an OPTIONS request (204, or 403 for a refused origin) and return True; return
    False, answering nothing, for any other method."""
    if request.method != "OPTIONS":
        return False
    headers = preflight_headers(request, allowed, credentials, methods=methods, max_age=max_age)
    if headers is None:
        request.respond(403, [("Content-Type", "text/plain; charset=utf-8")], b"Forbidden")
    else:
        request.respond(204, headers)
    return True
