"""The access log (``Server(access_log=True)``, ``fastsio run --access-log``): one line per
answered request on the ``fastsio.http.access`` logger, at INFO level.

The HTTP server's dispatch puts an :class:`AccessLogged` in front of the request's connection
when the option is on (see ``HttpServer.log_access``); a long-polling GET is logged when it is
answered, with the time it was held. Off, nothing of this runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["AccessLogged"]

logger = logging.getLogger("fastsio.http.access")


class AccessLogged:
    """Stands for a request's HttpProtocol (``request._protocol``): answers go through to it and
    are logged. Only what a Request asks of its protocol is here."""

    __slots__ = ("protocol", "started")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.started = protocol.loop.time()

    @property
    def loop(self) -> Any:
        return self.protocol.loop

    def send_response(
        self, request: Any, status: int, headers: Iterable[tuple[str, str]], body: bytes
    ) -> None:
        self.protocol.send_response(request, status, headers, body)
        self._log(request, status, len(body))

    def accept_websocket(
        self, request: Any, listener: Any, headers: Iterable[tuple[str, str]], max_size: Any
    ) -> Any:
        conn = self.protocol.accept_websocket(request, listener, headers, max_size)
        self._log(request, 101, 0)
        return conn

    def hand_over(self, request: Any, send: Callable[[Any, bytes], bool]) -> bool:
        return self.protocol.hand_over(request, send)  # logged by the worker that answers

    def _log(self, request: Any, status: int, size: int) -> None:
        elapsed = (self.protocol.loop.time() - self.started) * 1000
        logger.info(
            '%s "%s %s HTTP/%s" %d %d %.1fms',
            request.client[0],
            request.method,
            request.url,
            request.http_version,
            status,
            size,
            elapsed,
        )
