"""What the app hooks into the engine (Node's ``io.engine``): the events' names, the
``connection_error`` payload, the headers the app adds to answers, the sid cookie.

The sid cookie is Node's ``cookie`` option (engine.io ``lib/server.ts``): off by default; when
on, the answer to a polling handshake carries ``Set-Cookie: io=<sid>; Path=/; HttpOnly;
SameSite=Lax`` so that a cookie-based sticky balancer (nginx ``sticky cookie``, HAProxy, AWS
ALB) pins the session's later requests to this server. Its attributes are written in the order
of npm's ``cookie`` package (``serialize``), which Node's engine uses.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import re
from typing import Any

logger = logging.getLogger("fastsio.engine")

#: the events of ``EngineServer.on``
ENGINE_EVENTS = ("connection_error", "initial_headers", "headers", "connection")

#: what a ``generate_id`` may return: URL-safe without escaping (the sid travels in query
#: strings and the cookie), and short
CUSTOM_ID = re.compile(r"[A-Za-z0-9_.~-]{1,128}")

# RFC 9110 5.6.2 token (a header or cookie name)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# a header value must not end the header (CR, LF) or the head (NUL)
_UNSAFE_VALUE = re.compile(r"[\r\n\0]")
# RFC 6265 4.1.1 cookie-av values: no control characters and no ';'
_COOKIE_ATTRIBUTE = re.compile(r"[\x21-\x3a\x3c-\x7e ]*")

_SAMESITE = {True: "Strict", "strict": "Strict", "lax": "Lax", "none": "None"}
_PRIORITY = {"low": "Low", "medium": "Medium", "high": "High"}


class EngineError:
    """A refused request, as the ``connection_error`` listeners get it (Node's
    ``{req, code, message, context}``): ``code`` and ``message`` are the protocol's
    (0 Transport unknown, 1 Session ID unknown, 2 Bad handshake method, 3 Bad request,
    4 Forbidden, 5 Unsupported protocol version) and ``context`` says more (e.g.
    ``{"sid": ...}``, ``{"name": "TRANSPORT_MISMATCH", ...}``, ``{"name":
    "ID_GENERATION_ERROR", "error": exc}``)."""

    __slots__ = ("code", "context", "message", "request")

    def __init__(self, request: Any, code: int, message: str, context: dict) -> None:
        self.request = request
        self.code = code
        self.message = message
        self.context = context

    def __repr__(self) -> str:
        return f"EngineError(code={self.code}, message={self.message!r}, context={self.context!r})"


def add_headers(headers: list, extra: dict) -> None:
    """Append the app's ``extra`` headers (a value may be a list: the header is sent once per
    item) to ``headers``; a name or value that would break the answer is logged and left out."""
    for name, value in extra.items():
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            text = str(item)
            if type(name) is not str or not _TOKEN.fullmatch(name):
                logger.error("engine headers hook: invalid header name %r left out", name)
            elif _UNSAFE_VALUE.search(text) or not text.isascii() and not _latin1(text):
                logger.error("engine headers hook: invalid value of %s left out: %r", name, text)
            else:
                headers.append((name, text))


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class SidCookie:
    """The ``Set-Cookie`` value of a handshake's answer: ``header(sid)``."""

    __slots__ = ("_attributes", "name")

    def __init__(
        self,
        name: str = "io",
        path: str | bool = "/",
        httponly: bool | None = None,
        samesite: str | bool = "lax",
        secure: bool = False,
        domain: str | None = None,
        max_age: float | None = None,
        expires: datetime.datetime | str | None = None,
        partitioned: bool = False,
        priority: str | None = None,
    ) -> None:
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"cookie name {name!r} is not a token (RFC 6265)")
        if httponly is None:
            httponly = path is not False  # Node: httpOnly: opts.cookie.path !== false
        attributes = []
        if max_age is not None:
            attributes.append(f"Max-Age={int(max_age // 1)}")
        if domain:
            attributes.append(f"Domain={_attribute('domain', domain)}")
        if path:
            attributes.append(f"Path={_attribute('path', path)}")
        if expires:
            if isinstance(expires, datetime.datetime):
                expires = email.utils.format_datetime(
                    expires.astimezone(datetime.timezone.utc), usegmt=True
                )
            attributes.append(f"Expires={_attribute('expires', expires)}")
        if httponly:
            attributes.append("HttpOnly")
        if secure:
            attributes.append("Secure")
        if partitioned:
            attributes.append("Partitioned")
        if priority:
            if str(priority).lower() not in _PRIORITY:
                raise ValueError(f"cookie priority {priority!r}: 'low', 'medium' or 'high'")
            attributes.append(f"Priority={_PRIORITY[str(priority).lower()]}")
        if samesite:
            key = samesite if samesite is True else str(samesite).lower()
            if key not in _SAMESITE:
                raise ValueError(f"cookie samesite {samesite!r}: 'lax', 'strict', 'none' or True")
            attributes.append(f"SameSite={_SAMESITE[key]}")
        self.name = name
        self._attributes = "".join("; " + attribute for attribute in attributes)

    def header(self, sid: str) -> str:
        return f"{self.name}={sid}{self._attributes}"


def _attribute(what: str, value: Any) -> str:
    text = str(value)
    if not _COOKIE_ATTRIBUTE.fullmatch(text):
        raise ValueError(f"cookie {what} {text!r} has a character a cookie cannot carry")
    return text


def sid_cookie(option: Any) -> SidCookie | None:
    """``Server(cookie=...)``: False/None (off, the default), True (Node's defaults: ``io``,
    ``Path=/``, ``HttpOnly``, ``SameSite=Lax``), a dict of :class:`SidCookie`'s arguments, or a
    SidCookie."""
    if option is None or option is False:
        return None
    if option is True:
        return SidCookie()
    if isinstance(option, SidCookie):
        return option
    if isinstance(option, dict):
        try:
            return SidCookie(**option)
        except TypeError as exc:
            raise ValueError(f"cookie option: {exc}") from None
    raise TypeError(f"cookie must be a bool or a dict of cookie attributes, not {option!r}")
