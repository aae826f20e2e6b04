"""Compression at the HTTP layer: permessage-deflate in the WebSocket handshake, and gzip /
deflate for HTTP responses (the long-polling payloads), as Node's engine.io does.

- ``accept_websocket(request, listener, settings, max_message_size, headers)``: answers the handshake
  with the extension agreed from the client's ``Sec-WebSocket-Extensions`` offers (none when
  ``settings`` is None or nothing acceptable was offered) and switches the connection to it.
- :class:`HttpCompression` (``Server(http_compression=...)``): ``encode(request, headers, body)``
  compresses a response body with the coding the request accepts (``Accept-Encoding``: gzip
  preferred, then deflate, q-values honoured) when it is at least ``threshold`` bytes long.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from ..protocol.deflate import PerMessageDeflate

__all__ = ["HttpCompression", "accept_websocket", "http_compression_options", "pick_encoding"]


def accept_websocket(
    request: Any,
    listener: Any,
    settings: PerMessageDeflate | None,
    max_message_size: int,
    headers: list | tuple = (),
) -> Any:
    """``request.accept_websocket(listener, headers, ...)``, with permessage-deflate when
    ``settings`` allow it and the client offered it (the 101 then carries
    ``Sec-WebSocket-Extensions``)."""
    agreement = None
    if settings is not None:
        agreement = settings.negotiate(request.headers.get("sec-websocket-extensions"))
    if agreement is None:
        return request.accept_websocket(listener, headers, max_message_size=max_message_size)
    conn = request.accept_websocket(
        listener,
        [*headers, ("Sec-WebSocket-Extensions", agreement.response)],
        max_message_size=max_message_size,
    )
    # before any frame is read: the bytes that came with the handshake are fed on a later turn
    conn.use_deflate(agreement)
    return conn


# -- HTTP responses -----------------------------------------------------------------------------

_CODINGS = ("gzip", "deflate")  # the server's preference when the client's q-values tie
_WBITS = {"gzip": 31, "deflate": 15}  # deflate is the zlib format (RFC 9110 8.4.1.2), as Node
_MAX_CACHED = 256


def pick_encoding(accept_encoding: str | None) -> str | None:
    """The coding to answer with for an ``Accept-Encoding`` value: "gzip", "deflate" or None
    (identity). The highest q-value wins, gzip before deflate on a tie; ``*`` stands for a
    coding not named; ``q=0`` refuses one."""
    if not accept_encoding:
        return None
    q = {}
    star = None
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0
                if not 0.0 <= weight <= 1.0:
                    weight = 0.0
        if name == "*":
            star = weight
        elif name in _WBITS or name == "x-gzip":
            q["gzip" if name == "x-gzip" else name] = weight
    best = None
    best_q = 0.0
    for coding in _CODINGS:
        weight = q.get(coding, star)
        if weight is not None and weight > best_q:
            best = coding
            best_q = weight
    return best


class HttpCompression:
    """``Server(http_compression=True | {...})``, as Node's ``httpCompression``: a long-polling
    response of at least ``threshold`` bytes (1024) is sent gzip- or deflate-encoded when the
    request accepts it; ``level`` is zlib's (-1: its default, 6)."""

    __slots__ = ("_choices", "level", "threshold")

    def __init__(self, threshold: int = 1024, level: int = zlib.Z_DEFAULT_COMPRESSION) -> None:
        if type(threshold) is not int or threshold < 0:
            raise ValueError(f"http_compression threshold must be an int >= 0: {threshold!r}")
        if type(level) is not int or not -1 <= level <= 9:
            raise ValueError(f"http_compression level must be -1..9: {level!r}")
        self.threshold = threshold
        self.level = level
        self._choices: dict[str, str | None] = {}  # Accept-Encoding value -> coding

    def encode(self, request: Any, headers: list, body: bytes) -> bytes:
        """``body`` as it should be sent to ``request``: compressed when long enough and
        accepted, with ``Content-Encoding`` added to ``headers``; ``Vary: Accept-Encoding`` on
        every answer long enough to have been compressed."""
        if len(body) < self.threshold:
            return body
        headers.append(("Vary", "Accept-Encoding"))
        accept = request.headers.get("accept-encoding")
        if not accept:
            return body
        choices = self._choices
        coding = choices.get(accept, False)
        if coding is False:
            coding = pick_encoding(accept)
            if len(choices) >= _MAX_CACHED:
                choices.clear()
            choices[accept] = coding
        if coding is None:
            return body
        headers.append(("Content-Encoding", coding))
        return zlib.compress(body, self.level, _WBITS[coding])

    def __repr__(self) -> str:
        return f"HttpCompression(threshold={self.threshold}, level={self.level})"


def http_compression_options(value: Any) -> HttpCompression | None:
    """``Server(http_compression=...)`` -> settings: False/None -> None (off), True -> the
    defaults, a dict -> ``HttpCompression(**value)``, an HttpCompression as is."""
    if value is None or value is False:
        return None
    if value is True:
        return HttpCompression()
    if isinstance(value, HttpCompression):
        return value
    if isinstance(value, Mapping):
        try:
            return HttpCompression(**value)
        except TypeError as exc:
            raise ValueError(f"http_compression: {exc}") from None
    raise TypeError(f"http_compression must be a bool or a dict, not {type(value).__name__}")
