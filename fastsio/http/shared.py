"""Strings that many requests carry alike, decoded once per process and shared.

A WebSocket's handshake request lives as long as its session (the Socket.IO handshake keeps its
headers and query): 5,000 idle clients held 5,000 copies each of "host", "upgrade", "websocket",
"EIO", "/socket.io/", the client's address... Header names, the values of the headers that
clients send alike, peer addresses and (through ``text``) query names, paths, request targets and
HTTP versions go through bounded tables instead, which give the same ``str`` for the same content. A table takes
no more than ``_MAX_ENTRIES`` strings of at most ``_MAX_LENGTH`` characters, so a client that
makes names up cannot grow it; past that, strings are decoded as they would be without it.
"""

from __future__ import annotations

_MAX_ENTRIES = 1024
_MAX_LENGTH = 256

# Headers whose values repeat across clients (the same browser, proxy, origin, host); values
# that differ per request (keys, cookies, tokens) are decoded as they come.
SHARED_VALUE_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "connection",
        "host",
        "origin",
        "pragma",
        "sec-fetch-dest",
        "sec-fetch-mode",
        "sec-fetch-site",
        "sec-websocket-extensions",
        "sec-websocket-version",
        "upgrade",
        "user-agent",
        "x-forwarded-proto",
    }
)
# Query parameters whose values repeat (Engine.IO's own)
SHARED_VALUE_PARAMS = frozenset({"EIO", "transport"})

_header_names: dict[bytes, str] = {}
_header_values: dict[bytes, str] = {}
_texts: dict[str, str] = {}
_addresses: dict[str, str] = {}  # its own table: many clients' addresses crowd out nothing


def header_name(raw: bytes) -> str:
    """The header name in ``raw``, lower-case."""
    name = _header_names.get(raw)
    if name is None:
        name = raw.decode("latin-1").lower()
        if len(raw) <= _MAX_LENGTH and len(_header_names) < _MAX_ENTRIES:
            _header_names[raw] = name
    return name


def header_value(name: str, raw: bytes) -> str:
    """The value in ``raw`` of the header ``name`` (from :func:`header_name`)."""
    if name not in SHARED_VALUE_HEADERS:
        return raw.decode("latin-1")
    value = _header_values.get(raw)
    if value is None:
        value = raw.decode("latin-1")
        if len(raw) <= _MAX_LENGTH and len(_header_values) < _MAX_ENTRIES:
            _header_values[raw] = value
    return value


def text(value: str) -> str:
    """The shared ``str`` equal to ``value`` (``value`` itself the first time)."""
    return _share(_texts, value)


def address(host: str) -> str:
    """A peer's address (the host part of ``peername``), shared."""
    return _share(_addresses, host)


def _share(table: dict[str, str], value: str) -> str:
    shared = table.get(value)
    if shared is None:
        shared = value
        if len(value) <= _MAX_LENGTH and len(table) < _MAX_ENTRIES:
            table[value] = value
    return shared
