"""Sans-I/O codecs, pure Python: ``engineio`` (Engine.IO v4 packets and polling payloads),
``socketio`` (Socket.IO v5 packets), ``websocket`` (RFC 6455 server-side framing).

No asyncio and no I/O here: bytes and str in, packets out, and back. ``fastsio._speedups`` holds
the same modules compiled; import the codecs through ``fastsio._impl``, which picks one.
"""

from .errors import ProtocolError, WebSocketError

__all__ = ["ProtocolError", "WebSocketError"]
