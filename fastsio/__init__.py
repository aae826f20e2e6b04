"""fastsio: a fast Socket.IO v5 server for Python (Engine.IO v4, asyncio, uvloop, httptools).

::

    import fastsio

    sio = fastsio.Server(cors_allowed_origins="*")

    @sio.on("chat message")
    def chat(socket, msg):
        sio.emit("chat message", msg)

    sio.run("127.0.0.1", 3000)
"""

from . import _impl
from ._impl import SPEEDUPS
from .adapter import Adapter, BroadcastOptions, InMemoryAdapter
from .asgi import ASGIApp
from .broadcast import DROP, RESERVED_EVENTS, BroadcastOperator
from .clientside import AsyncClient, ClientSocket, ConnectError, SimpleClient
from .exceptions import (
    AckTimeoutError,
    AdapterTimeoutError,
    ConnectionRefused,
    DisconnectedError,
    FastSIOError,
)
from .http.request import Request
from .http.routes import Response
from .namespace import Namespace, ParentNamespace
from .server import Server, ssl_context

# the classes the server makes: compiled (fastsio._speedups) or pure, as _impl picked
Client = _impl.clients.Client
Socket = _impl.sockets.Socket
Handshake = _impl.sockets.Handshake

__version__ = "0.1.0"

__all__ = [
    "DROP",
    "RESERVED_EVENTS",
    "SPEEDUPS",
    "ASGIApp",
    "AckTimeoutError",
    "Adapter",
    "AdapterTimeoutError",
    "AsyncClient",
    "BroadcastOperator",
    "BroadcastOptions",
    "Client",
    "ClientSocket",
    "ConnectError",
    "ConnectionRefused",
    "DisconnectedError",
    "FastSIOError",
    "Handshake",
    "InMemoryAdapter",
    "Namespace",
    "ParentNamespace",
    "Request",
    "Response",
    "Server",
    "SimpleClient",
    "Socket",
    "__version__",
    "ssl_context",
]
