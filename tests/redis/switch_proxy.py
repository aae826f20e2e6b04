"""A TCP proxy that sends every new connection to one backend and can move to another,
cutting the connections it carries: a client behind it loses its transport and comes back on
another server, as behind a load balancer whose node went away."""

from __future__ import annotations

import asyncio


class SwitchProxy:
    def __init__(self, port: int) -> None:
        self.backend = port
        self.port = 0
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> SwitchProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def switch(self, port: int) -> None:
        """New connections go to ``port``; the open ones are cut (both sides)."""
        self.backend = port
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.switch(self.backend)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        backend_writer = None
        try:
            backend_reader, backend_writer = await asyncio.open_connection(
                "127.0.0.1", self.backend
            )
            self._writers.update((writer, backend_writer))
            await asyncio.gather(
                self._pipe(reader, backend_writer), self._pipe(backend_reader, writer)
            )
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            for w in (writer, backend_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
