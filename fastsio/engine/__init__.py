"""Engine.IO v4 server: sessions over HTTP long-polling and WebSocket, upgrade, heartbeats.

Usable on its own, as Node's ``engine.io`` package is::

    engine = EngineServer(path="/engine.io", on_connection=lambda session: ...)
    await engine.serve("127.0.0.1", 3000)
"""

from .server import EngineServer
from .session import EngineSession

__all__ = ["EngineServer", "EngineSession"]
