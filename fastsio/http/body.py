"""A request body read as it arrives, for handlers that stream it (the ASGI bridge): the
protocol feeds the parts, the handler reads them; reading from the client pauses while more than
``HIGH_WATER`` bytes wait to be read, so a slow consumer costs bounded memory."""

from __future__ import annotations

import asyncio
from typing import Any

HIGH_WATER = 256 * 1024


class BodyStream:
    """The body of one request: ``read()`` gives ``(data, more)``; ``gone`` is True when the
    client left before the body's end."""

    __slots__ = (
        "_buffered",
        "_parts",
        "_paused",
        "_transport",
        "_waiter",
        "discarding",
        "done",
        "gone",
        "loop",
        "size",
    )

    def __init__(self, transport: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self.loop = loop
        self._parts: list[bytes] = []
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future | None = None
        self.done = False
        self.gone = False
        self.discarding = False
        #: bytes received so far
        self.size = 0

    # -- the protocol's side --------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.discarding:
            return
        self._parts.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def end(self, gone: bool = False) -> None:
        """The body is complete, or (``gone``) the client left."""
        self.done = True
        self.gone = gone
        self._resume()
        self._wake()

    def discard(self) -> None:
        """Nobody reads the rest (the answer went out first): drop it as it comes."""
        self.discarding = True
        self._parts.clear()
        self._buffered = 0
        self._resume()

    # -- the handler's side ---------------------------------------------------------------------

    async def read(self) -> tuple[bytes, bool]:
        """What arrived since the last read (waiting for something), and whether more follows."""
        while not self._parts and not self.done:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = b"".join(self._parts)
        self._parts.clear()
        self._buffered = 0
        self._resume()
        return data, not self.done

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
