"""Exceptions of the public API."""

from __future__ import annotations

from typing import Any

__all__ = [
    "AckTimeoutError",
    "AdapterTimeoutError",
    "ConnectionRefused",
    "DisconnectedError",
    "FastSIOError",
]


class FastSIOError(Exception):
    """Base class of the exceptions fastsio raises on purpose."""


class ConnectionRefused(FastSIOError):
    """Raise in a namespace middleware to refuse a connection.

    The client gets a CONNECT_ERROR packet ``{"message": message, "data": data}`` (``data`` left
    out when None): its ``connect_error`` handler sees an Error whose ``message`` and ``data`` are
    these, as with Node's ``next(err)`` where ``err.data = data``.
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def error_payload(self) -> dict:
        """The CONNECT_ERROR payload sent to the client."""
        payload: dict = {"message": self.message}
        if self.data is not None:
            payload["data"] = self.data
        return payload


class AckTimeoutError(FastSIOError, TimeoutError):
    """No acknowledgement arrived in time (``emit_with_ack`` / ``timeout(s)``).

    For a broadcast, ``responses`` holds the acknowledgements that did arrive in time.
    """

    def __init__(self, message: str = "operation has timed out", responses: Any = None) -> None:
        super().__init__(message)
        self.responses = responses if responses is not None else []


class DisconnectedError(FastSIOError, ConnectionError):
    """The socket disconnected while an acknowledgement was still pending."""

    def __init__(self, message: str = "socket disconnected before the acknowledgement") -> None:
        super().__init__(message)


class AdapterTimeoutError(FastSIOError, TimeoutError):
    """Other servers of the cluster did not all answer a request in time (``fetch_sockets``,
    ``server_count`` ...). ``responses`` holds the answers that did arrive."""

    def __init__(self, message: str, responses: Any = None) -> None:
        super().__init__(message)
        self.responses = responses if responses is not None else []
