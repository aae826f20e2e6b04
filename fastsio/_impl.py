"""Pick the codec implementation: compiled (fastsio._speedups) or pure Python (fastsio.protocol).

Everything in fastsio imports the codecs from here, never from either package directly, so the
choice is made in exactly one place. FASTSIO_NO_EXTENSIONS=1 forces the pure path.
"""

from __future__ import annotations

import os

from .protocol import engineio as _pure_engineio
from .protocol import socketio as _pure_socketio
from .protocol import websocket as _pure_websocket

NO_EXTENSIONS = bool(os.environ.get("FASTSIO_NO_EXTENSIONS"))

engineio = _pure_engineio
socketio = _pure_socketio
websocket = _pure_websocket
SPEEDUPS = False

if not NO_EXTENSIONS:  # pragma: no cover - depends on the build
    try:
        from ._speedups import engineio_c as engineio  # type: ignore[no-redef]
        from ._speedups import socketio_c as socketio  # type: ignore[no-redef]
        from ._speedups import websocket_c as websocket  # type: ignore[no-redef]

        SPEEDUPS = True
    except ImportError:
        engineio = _pure_engineio
        socketio = _pure_socketio
        websocket = _pure_websocket
