"""The official socket.io-client (Node, 4.8) against two workers, every request of its session
on the wrong one: a small TCP proxy in front of the two workers' ports sends each new
connection to the worker that does NOT own the sid in its first request (handshakes alternate),
and makes each polling request the last of its connection (``Connection: close``), so that the
next one comes through the proxy again. The workers hand the connections over to the owner
(http/handover.py); events and acks must flow both ways, and the upgrade must complete.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import fastsio
from fastsio.engine.ids import owner_of
from fastsio.workers import WorkerInfo

pytestmark = pytest.mark.interop


class WrongWorkerProxy:
    """Routes each connection by its first request: to a worker that does not own the sid."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.handshakes = 0
        self.misrouted = 0  # requests sent to a worker that is not their session's owner
        self.upgrades = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, _, rest = head.partition(b"\r\n")
        target = request_line.split(b" ")[1].decode("latin-1")
        sid = parse_qs(urlsplit(target).query).get("sid", [None])[0]
        count = len(self.ports)
        if sid is None:
            backend = self.handshakes % count
            self.handshakes += 1
        else:
            owner = owner_of(sid, count)
            assert owner is not None, sid
            backend = (owner + 1) % count
            self.misrouted += 1
        lines = rest[:-4].split(b"\r\n")
        if any(line.lower().replace(b" ", b"") == b"upgrade:websocket" for line in lines):
            self.upgrades += 1
        else:
            # the response ends the connection: the client's next request comes back here
            lines = [line for line in lines if not line.lower().startswith(b"connection:")]
            lines.append(b"Connection: close")
            head = request_line + b"\r\n" + b"\r\n".join(lines) + b"\r\n\r\n"
        backend_reader, backend_writer = await asyncio.open_connection(
            "127.0.0.1", self.ports[backend]
        )
        backend_writer.write(head)
        try:
            await asyncio.gather(
                self._pipe(reader, backend_writer), self._pipe(backend_reader, writer)
            )
        finally:
            backend_writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer.can_write_eof():
                try:
                    writer.write_eof()
                except OSError:
                    pass


@pytest.fixture
async def two_workers():
    directory = tempfile.mkdtemp(prefix="fsio-")
    servers: list[Any] = []
    connected: list[list] = [[], []]
    for index in range(2):
        sio = fastsio.Server(cors_allowed_origins="*")
        sio.worker = WorkerInfo(index, 2, directory)
        sockets = connected[index]

        @sio.on("connection")
        def connection(socket, sockets=sockets):
            sockets.append(socket)

        @sio.on("echo")
        def echo(socket, *args):
            return args

        @sio.on("shout")
        def shout(socket, *args):
            socket.emit("shouted", *args)

        await sio.start("127.0.0.1", 0)
        servers.append(sio)
    proxy = WrongWorkerProxy([sio.port for sio in servers])
    await proxy.start()
    try:
        yield servers, connected, proxy
    finally:
        await proxy.close()
        for sio in servers:
            await sio.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"]])
async def test_socketio_client_with_every_request_on_the_wrong_worker(
    two_workers, node, transports
):
    servers, connected, proxy = two_workers
    client = await node(f"http://127.0.0.1:{proxy.port}")
    # two clients: the handshakes alternate, so one session lives on each worker
    for name in ("a", "b"):
        await client.connect(name, opts={"transports": transports})
        await client.call("ack_policy", name=name, event="question", echo=True)
        await client.expect("connect", name=name)
    upgrade = "websocket" in transports
    if upgrade:
        await client.expect("upgrade", name="a", transport="websocket")
        await client.expect("upgrade", name="b", transport="websocket")
    assert [len(sockets) for sockets in connected] == [1, 1]

    for name in ("a", "b"):
        for i in range(5):
            reply = await client.emit_with_ack(name, "echo", i, "two", {"three": [i]})
            assert reply["args"] == [i, "two", {"three": [i]}]
        await client.emit(name, "shout", name)
        await client.expect("event", name=name, event="shouted", args=[name])

    for index in range(2):
        socket = connected[index][0]
        socket.emit("news", index)
        answer = await socket.timeout(5).emit_with_ack("question", index, "?")
        assert answer == (index, "?")
    events = client.events("a", "news") + client.events("b", "news")
    assert sorted(events) == [[0], [1]]

    info = await client.info("a")
    assert info["connected"] and info["transport"] == ("websocket" if upgrade else "polling")
    assert not client.seen("disconnect") and not client.seen("connect_error")
    for sio in servers:
        assert len(sio.engine.sessions) == 1
    # the proxy sent every request with a sid to the wrong worker, and both took connections
    handed = [sio.engine.handover for sio in servers]
    assert proxy.misrouted >= (4 if upgrade else 20)
    assert proxy.misrouted - 2 <= sum(h.sent for h in handed) <= proxy.misrouted
    assert all(h.adopted > 0 for h in handed) and not any(h.refused for h in handed)
    if upgrade:
        assert proxy.upgrades == 2
