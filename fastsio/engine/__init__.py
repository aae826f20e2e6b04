"""Engine.IO v4 server: sessions over HTTP long-polling and WebSocket, upgrade, heartbeats; and
Engine.IO v3 (socket.io-client 2.x) with ``allow_eio3=True``.

Usable on its own, as Node's ``engine.io`` package is::

    engine = EngineServer(path="/engine.io", on_connection=lambda session: ...)
    await engine.serve("127.0.0.1", 3000)
"""

from .server import (
    EngineServer,
    EngineSession,  # compiled or pure (picked by fastsio._impl)
)
from .session3 import EngineSession3

__all__ = ["EngineServer", "EngineSession", "EngineSession3"]
