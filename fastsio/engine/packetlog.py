"""Packets in the log at DEBUG level, paid for only by connections opened while it is on.

Whether to log packets is decided once per session, when it opens: the EngineServer then makes a
:class:`PacketLoggingSession` (or its Engine.IO v3 twin) instead of a plain session, and the
Socket.IO client routes the session's messages through a logging function. With DEBUG off for
``fastsio.engine`` (and ``fastsio`` for incoming packets), nothing per packet changes; a session
opened before the level was lowered stays as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import _impl
from .session3 import EngineSession3

__all__ = ["PacketLoggingSession", "PacketLoggingSession3", "describe_packet"]

logger = logging.getLogger("fastsio.engine")

EngineSession = _impl.engine_session.EngineSession  # compiled or pure (picked by fastsio._impl)

#: characters of a text packet, bytes of a binary one, shown in a log line
TRUNCATE_AT = 200
_BINARY_SHOWN = 32


def describe_packet(data: Any, limit: int = TRUNCATE_AT) -> str:
    """A text packet's start (``repr``, with its length when cut), or a binary one's size and
    first bytes in hex."""
    if type(data) is str:
        if len(data) <= limit:
            return repr(data)
        return f"{data[:limit]!r}... ({len(data)} characters)"
    data = bytes(data)
    shown = data[:_BINARY_SHOWN].hex(" ")
    more = "..." if len(data) > _BINARY_SHOWN else ""
    return f"<{len(data)} bytes: {shown}{more}>"


class _PacketLogging:
    """What a session sends, logged before it goes out (the fan-out's frames included)."""

    __slots__ = ()
    sid: str

    def send(self, data: str | bytes, compress: bool = True) -> None:
        logger.debug("session %s -> %s", self.sid, describe_packet(data))
        super().send(data, compress)  # type: ignore[misc]

    def send_prepared(self, packet: str | bytes, frame: bytes) -> None:
        logger.debug("session %s -> %s", self.sid, describe_packet(packet))
        super().send_prepared(packet, frame)  # type: ignore[misc]


class PacketLoggingSession(_PacketLogging, EngineSession):
    __slots__ = ()


class PacketLoggingSession3(_PacketLogging, EngineSession3):
    __slots__ = ()
