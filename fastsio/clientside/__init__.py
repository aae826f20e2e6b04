"""The client side: ``fastsio.AsyncClient`` (asyncio) and ``fastsio.SimpleClient`` (blocking), on
fastsio's own codecs. See ``asyncclient.py`` and ``simpleclient.py``."""

from .asyncclient import AsyncClient, ClientSocket, ConnectError, Manager
from .simpleclient import SimpleClient

__all__ = ["AsyncClient", "ClientSocket", "ConnectError", "Manager", "SimpleClient"]
