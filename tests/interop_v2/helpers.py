"""Small helpers shared by the interop_v2 tests."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import DEFAULT_TIMEOUT


async def until(predicate, timeout: float = DEFAULT_TIMEOUT, what: str = "condition") -> None:
    """Wait (bounded) until ``predicate()`` is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def server_url(sio) -> str:
    return f"http://127.0.0.1:{sio.port}"


#: transports option per scenario: polling only, WebSocket only, polling then upgrade
TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}
