"""Pick the codec implementation: compiled (fastsio._speedups) or pure Python (fastsio.protocol).

Everything in fastsio imports the codecs (and the broadcast fan-out loop) from here, never from
either package directly, so the choice is made in exactly one place:

- ``FASTSIO_NO_EXTENSIONS=1``: the pure-Python modules, silently.
- otherwise the compiled modules; when they are not built (no C compiler at install time), the
  pure-Python ones, with one RuntimeWarning at import.

``SPEEDUPS`` tells which (``fastsio.SPEEDUPS`` re-exports it).

The per-connection WebSocket classes, ``WebSocketConnection``, ``TickWriter`` and ``WireMeter``
(the traffic counters a connection may carry), are picked here
too: those of ``fastsio._speedups.wsconn_c`` (fastsio/http/websocket.py compiled, its connection
calling the compiled FrameReader directly) when ``SPEEDUPS`` is on, else those of
fastsio/http/websocket.py. fastsio.http imports them from here. So are the modules of the
Socket.IO ``Client`` and ``Socket`` classes (``clients``, ``sockets``): ``client_c`` / ``socket_c``
with ``SPEEDUPS``, else fastsio.client / fastsio.socket; and so are the modules of the Engine.IO
session and its transports (``engine_session``, ``engine_transports``) (see the end of this module).

The two optional codecs, ``engineio3`` (Engine.IO v3, for ``allow_eio3``) and ``msgpack_parser``
(``parser="msgpack"``), are picked the same way but each on its own: they do not count for
``SPEEDUPS`` and never warn. When one's compiled twin does not import, its pure module is used;
``msgpack_parser`` is None when the optional msgpack package is not installed (fastsio.parser then
says how to install it).
"""

from __future__ import annotations

import os
import warnings
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._speedups import fanout_py as _pure_fanout
from .protocol import engineio as _pure_engineio
from .protocol import engineio3 as _pure_engineio3
from .protocol import socketio as _pure_socketio
from .protocol import websocket as _pure_websocket

if TYPE_CHECKING:  # pragma: no cover - at run time, see the end of this module
    from .http.websocket import TickWriter, WebSocketConnection, WireMeter

NO_EXTENSIONS = bool(os.environ.get("FASTSIO_NO_EXTENSIONS"))

engineio = _pure_engineio
socketio = _pure_socketio
websocket = _pure_websocket
#: ``fanout(sessions, packets, frames)``: see fastsio/_speedups/fanout_py.py
fanout = _pure_fanout.fanout
SPEEDUPS = False

if not NO_EXTENSIONS:  # pragma: no branch - depends on the build
    try:
        from ._speedups import engineio_c as _engineio_c  # type: ignore[attr-defined]
        from ._speedups import fanout_c as _fanout_c  # type: ignore[attr-defined]
        from ._speedups import socketio_c as _socketio_c  # type: ignore[attr-defined]
        from ._speedups import websocket_c as _websocket_c  # type: ignore[attr-defined]
    except ImportError as exc:
        warnings.warn(
            f"fastsio: the compiled speedups are not built ({exc}); using the pure-Python "
            "codecs, which are several times slower. Reinstall with a C compiler available "
            "(pip install .), or set FASTSIO_NO_EXTENSIONS=1 to choose the pure path silently.",
            RuntimeWarning,
        )
    else:
        engineio = _engineio_c
        socketio = _socketio_c
        try:
            from ._speedups import json_c as _json_c  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover - built with the others
            pass
        else:
            # the compiled codec only: the pure one keeps orjson alone
            _socketio_c._use_fast_json(_json_c.FastJson())
        websocket = _websocket_c
        fanout = _fanout_c.fanout
        SPEEDUPS = True

# -- the optional codecs: each on its own, silently (see above) ----------------------------------

engineio3 = _pure_engineio3
try:
    from .protocol import msgpack_parser
except ImportError:  # the optional msgpack package is not installed (pip install fastsio[msgpack])
    msgpack_parser = None  # type: ignore[assignment]

if not NO_EXTENSIONS:  # pragma: no branch - depends on the build
    try:
        from ._speedups import engineio3_c as _engineio3_c  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        engineio3 = _engineio3_c
    if msgpack_parser is not None:
        try:
            from ._speedups import msgpack_parser_c as _msgpack_parser_c  # type: ignore[attr-defined]
        except ImportError:
            pass
        else:
            msgpack_parser = _msgpack_parser_c

# -- the Redis subscription reader ----------------------------------------------------------------


def redis_reader() -> Any:
    """The compiled Redis subscription reader (fastsio/redis/_reader.py compiled:
    ``respreader_c``), or None: with ``FASTSIO_NO_EXTENSIONS``, when it is not built, or without
    hiredis (which it imports). fastsio.redis asks when it is imported (so fastsio alone never
    imports hiredis); without it, its subscribed links parse with hiredis alone."""
    if NO_EXTENSIONS:
        return None
    try:
        from ._speedups import respreader_c  # type: ignore[attr-defined]
    except ImportError:
        return None
    return respreader_c


# -- the WebSocket connection classes ------------------------------------------------------------
#
# The compiled ones need the compiled FrameReader (their reader is typed as websocket_c's), so they
# are used with the compiled codecs only. A missing wsconn_c alone falls back to the pure classes
# silently, as the optional codecs do; without any extension the warning above has said it all.
#
# The pure classes cannot be imported here: fastsio.http, their package, imports them from this
# module while it initialises, so importing it now would be an import cycle. They are imported on
# first use instead (PEP 562), by a module __getattr__ that removes itself once all it serves is
# loaded (see the end of this module): while a
# module has a __getattr__, CPython (3.11, 3.12) does not specialise attribute loads on it, and
# every ``_impl.socketio`` in the pure-Python layers would pay for that.

if SPEEDUPS:  # pragma: no branch - depends on the build
    try:
        from ._speedups import wsconn_c as _wsconn_c  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        WebSocketConnection = _wsconn_c.WebSocketConnection  # type: ignore[misc]
        TickWriter = _wsconn_c.TickWriter  # type: ignore[misc]
        WireMeter = _wsconn_c.WireMeter  # type: ignore[misc]

# -- the Socket.IO dispatch classes -------------------------------------------------------------
#
# ``sockets`` is the module whose ``Socket`` (and ``Handshake``, ``SocketEmitter``) the server
# uses, ``clients`` the one whose ``Client``: ``fastsio._speedups.socket_c`` / ``client_c``
# (fastsio/socket.py and fastsio/client.py compiled, see fastsio/_speedups/README.md) when
# ``SPEEDUPS`` is on, else fastsio.socket / fastsio.client. A missing compiled pair falls back to the pure modules silently.
# They import most of fastsio (the adapter, the engine ...), which imports this module: so they
# are imported on first use too (``fastsio/__init__`` asks for them once the package is loaded).

# -- the HTTP/1.1 connection ---------------------------------------------------------------------
#
# ``http_protocol`` is the module whose ``HttpProtocol`` (and ``WorkerHttpProtocol``,
# ``AdoptedHttpProtocol``) the HTTP server uses: ``fastsio._speedups.httpproto_c``
# (fastsio/http/protocol.py compiled) with ``SPEEDUPS``, else fastsio.http.protocol; a missing
# compiled one falls back silently. Imported on first use, as the WebSocket classes: fastsio.http
# imports this module while it initialises.

# -- the Engine.IO session classes ----------------------------------------------------------------
#
# ``engine_session`` is the module whose ``EngineSession`` the engine uses (the base of
# EngineSession3 and of the packet-logging sessions), ``engine_transports`` the one of its
# transports: ``fastsio._speedups.engine.session`` / ``.transports`` (fastsio/engine/session.py and
# transports.py compiled) when ``SPEEDUPS`` is on, else fastsio.engine.session / .transports. A
# missing compiled pair falls back to the pure modules silently. Imported on first use (by
# fastsio.engine), like the dispatch classes: fastsio.engine imports this module.

_LAZY = (
    "WebSocketConnection",
    "TickWriter",
    "WireMeter",
    "sockets",
    "clients",
    "http_protocol",
    "engine_session",
    "engine_transports",
)


def _load_websocket_classes(namespace: dict) -> None:
    from .http import websocket as pure

    namespace.update(
        WebSocketConnection=pure.WebSocketConnection,
        TickWriter=pure.TickWriter,
        WireMeter=pure.WireMeter,
    )


# Each group is picked as a whole (its compiled modules cimport each other): name -> (the
# compiled module, its pure twin), relative to this package.
_LAZY_MODULES = (
    {"sockets": ("._speedups.socket_c", ".socket"), "clients": ("._speedups.client_c", ".client")},
    {"http_protocol": ("._speedups.httpproto_c", ".http.protocol")},
    {
        "engine_session": ("._speedups.engine.session", ".engine.session"),
        "engine_transports": ("._speedups.engine.transports", ".engine.transports"),
    },
)


def _load_modules(namespace: dict, group: dict) -> None:
    if SPEEDUPS:
        try:
            compiled = {name: import_module(c, __package__) for name, (c, _) in group.items()}
        except ImportError:
            pass
        else:
            namespace.update(compiled)
            return
    namespace.update({name: import_module(p, __package__) for name, (_, p) in group.items()})


def __getattr__(name: str) -> Any:
    """The classes above that are imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    namespace = globals()
    group = next((group for group in _LAZY_MODULES if name in group), None)
    if group is not None:
        _load_modules(namespace, group)
    else:
        _load_websocket_classes(namespace)
    if all(lazy in namespace for lazy in _LAZY):
        namespace.pop("__getattr__", None)
    return namespace[name]
