"""``fastsio.SimpleClient``: a blocking client for scripts (python-socketio's SimpleClient API:
connect, emit, call, receive, disconnect), running an AsyncClient on an event loop of its own in a
background thread (uvloop when installed)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .asyncclient import AsyncClient

__all__ = ["SimpleClient"]

logger = logging.getLogger("fastsio.client")


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class SimpleClient:
    """A blocking Socket.IO client::

        with fastsio.SimpleClient("http://localhost:3000") as client:
            client.emit("hello", "world")
            answer = client.call("question", 42, timeout=5)   # the server's ack
            event, *args = client.receive(timeout=5)          # the next event from the server

    ``options`` are AsyncClient's (``auth``, ``transports``, ``headers``, ``namespaces`` ...);
    one namespace is used: the URL's (or ``namespace=``)."""

    def __init__(self, url: str | None = None, *, namespace: str | None = None, **options: Any):
        self.url = url
        self.namespace = namespace
        self.options = options
        self.client: AsyncClient | None = None
        self._socket: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._events: queue.Queue = queue.Queue()
        self.connected = False

    # -- the loop thread

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def _start_loop(self) -> None:
        loop = self._loop = _new_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="fastsio-simpleclient", daemon=True)
        self._thread.start()
        ready.wait()

    def _stop_loop(self) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None
        self._thread = None

    # -- the API

    @property
    def sid(self) -> str | None:
        return self._socket.id if self._socket is not None else None

    id = sid

    @property
    def transport(self) -> str | None:
        return self.client.transport if self.client is not None else None

    def connect(
        self,
        url: str | None = None,
        *,
        namespace: str | None = None,
        wait_timeout: float = 20.0,
        **options: Any,
    ) -> None:
        """Connect (blocking); ConnectError when the server refuses or cannot be reached."""
        if self.connected:
            raise RuntimeError("already connected")
        url = url or self.url
        if url is None:
            raise ValueError("no URL to connect to")
        namespace = namespace or self.namespace
        opts = {**self.options, **options}
        if self._loop is None:
            self._start_loop()

        if namespace:
            parts = urlsplit(url if "://" in url else "http://" + url)
            url = urlunsplit(parts._replace(path=namespace))

        async def connect() -> None:
            client = self.client = AsyncClient(url, **opts)
            self._socket = client

            def on_any(event: str, *args: Any) -> None:
                self._events.put([event, *args])

            client.on_any(on_any)
            client.on("disconnect", lambda reason: self._events.put(None))
            await client.connect(timeout=wait_timeout)

        try:
            self._run(connect())
        except BaseException:
            self._stop_loop()
            raise
        self.connected = True

    def emit(self, event: str, *args: Any) -> None:
        """Send an event (it leaves at once; while reconnecting it is buffered)."""
        socket = self._socket
        if socket is None:
            raise RuntimeError("not connected")

        async def emit() -> None:
            socket.emit(event, *args)

        self._run(emit())

    def call(self, event: str, *args: Any, timeout: float = 60) -> Any:
        """Emit and wait for the server's acknowledgement (its argument; a tuple for several):
        fastsio.AckTimeoutError after ``timeout`` seconds."""
        socket = self._socket
        if socket is None:
            raise RuntimeError("not connected")
        return self._run(socket.emit_with_ack(event, *args, timeout=timeout))

    def receive(self, timeout: float | None = None) -> list:
        """The next event from the server as ``[event, *args]``; TimeoutError after ``timeout``
        seconds; ConnectionError once disconnected (and nothing is left to receive)."""
        try:
            item = self._events.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError("no event received") from None
        if item is None:
            if self.client is not None and self.client.io.state != "closed":
                return self.receive(timeout)  # reconnecting: go on waiting
            raise ConnectionError("disconnected")
        return item

    def disconnect(self) -> None:
        """Disconnect and stop the background loop."""
        client = self.client
        if client is not None and self._loop is not None:

            async def disconnect() -> None:
                await client.disconnect()

            try:
                self._run(disconnect(), 5)
            except Exception as exc:  # noqa: BLE001 - closing anyway
                logger.debug("disconnect: %r", exc)
        self._stop_loop()
        self.connected = False

    def __enter__(self) -> SimpleClient:  # noqa: PYI034
        if not self.connected:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
