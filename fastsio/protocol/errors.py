"""Errors raised by the sans-I/O codecs on malformed input."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Input that the protocol does not allow. The message says what is wrong."""


class WebSocketError(ProtocolError):
    """A WebSocket protocol violation; ``close_code`` is the RFC 6455 code to close with."""

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
