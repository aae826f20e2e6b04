"""Several workers without a sticky balancer: the sid names its owner (engine/ids.py), and a
worker receiving a request for another worker's session hands the connection over
(http/handover.py).

The workers here are ``fastsio.Server`` instances of one process, in one event loop, each with
its own ``WorkerInfo`` and port: the connections still move between them by ``send_fds`` over
their Unix sockets, as between processes. Every test runs on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import pytest
import uvloop

import fastsio
from fastsio.engine import ids
from fastsio.engine.ids import ALPHABET, id_source, owner_of, owner_prefix, random_id
from fastsio.workers import WorkerInfo

from .rawclient import WebSocketClient, http_request

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}
TIMEOUT = 5.0
UNKNOWN = {"code": 1, "message": "Session ID unknown"}


def run_on(factory: Callable[[], asyncio.AbstractEventLoop], coro: Any, timeout: float = 20.0):
    loop = factory()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.fixture(params=sorted(LOOPS))
def run(request):
    """``run(coro)``: runs the test body on a plain asyncio loop, then again on uvloop."""
    return lambda coro, timeout=20.0: run_on(LOOPS[request.param], coro, timeout)


# --------------------------------------------------------------------------- sid owner encoding


@pytest.mark.parametrize(
    "count, indexes",
    [(2, [0, 1]), (3, [0, 1, 2]), (64, [0, 37, 63]), (65, [0, 63, 64]), (4096, [0, 1, 4095])],
)
def test_sids_name_their_worker(count, indexes):
    for index in indexes:
        prefix = owner_prefix(index, count)
        assert len(prefix) == (1 if count <= 64 else 2)
        new_sid = id_source(prefix)
        sids = [new_sid() for _ in range(600)]  # more than one refill of the pool
        assert len(set(sids)) == len(sids)
        for sid in sids:
            assert len(sid) == 20 and set(sid) <= set(ALPHABET)
            assert sid.startswith(prefix)
            assert owner_of(sid, count) == index
        # the rest is random: every position after the prefix takes many values
        for position in range(len(prefix), 20):
            assert len({sid[position] for sid in sids}) > 30


def test_a_single_process_keeps_plain_random_ids():
    assert owner_prefix(0, 1) == ""
    assert id_source() is random_id
    assert id_source("") is random_id
    sids = {random_id()[0] for _ in range(2000)}
    assert len(sids) > 50  # the first character is random too


def test_owner_of_ids_of_nobody():
    assert owner_of("", 2) is None
    assert owner_of("Z" + "a" * 19, 2) is None  # "Z" is 25: not one of 2 workers
    assert owner_of("B" + "a" * 19, 2) == 1
    assert owner_of("!" + "a" * 19, 2) is None
    assert owner_of("A", 100) is None  # two characters needed past 64 workers
    assert owner_of("B!" + "a" * 18, 100) is None
    assert owner_of("BA" + "a" * 18, 100) == 64
    assert owner_of("Bk" + "a" * 18, 100) is None  # 64 + 36 = 100: out of range


def test_owner_prefix_errors():
    for index, count in [(2, 2), (-1, 2), (0, 0), (0, 4097)]:
        with pytest.raises(ValueError):
            owner_prefix(index, count)
    for prefix in ["!", "a" * 20]:
        with pytest.raises(ValueError):
            id_source(prefix)


def test_a_forked_child_forgets_the_pools():
    new_sid = id_source("C")
    new_sid()
    assert ids._prefixed["C"] and ids._pool is not None
    ids._forget_pools()  # what os.register_at_fork runs in the child
    assert not ids._prefixed["C"] and not ids._pool
    assert new_sid()[0] == "C"  # refilled


def test_prefixed_ids_come_from_a_pool(monkeypatch):
    """As plain ids: one os.urandom call per 256 ids, and an id is a list.pop() (the prefix is
    put on when the pool is refilled)."""
    calls = []
    urandom = ids.os.urandom

    def counting(n):
        calls.append(n)
        return urandom(n)

    monkeypatch.setattr(ids.os, "urandom", counting)
    new_sid = id_source("D")
    ids._prefixed["D"].clear()
    sids = [new_sid() for _ in range(256)]
    assert calls == [15 * 256]
    assert len(set(sids)) == 256 and all(sid[0] == "D" for sid in sids)
    new_sid()
    assert len(calls) == 2


# --------------------------------------------------------------------------- the workers


class Workers:
    """``count`` workers of one group (``started`` of them running), on ports of their own."""

    def __init__(self, count: int, started: int | None = None, **options: Any) -> None:
        self.count = count
        self.started = count if started is None else started
        self.options = options
        self.directory = tempfile.mkdtemp(prefix="fsio-")
        self.servers: list[Any] = [None] * count
        self.sockets: list[list] = [[] for _ in range(count)]

    def info(self, index: int) -> WorkerInfo:
        return WorkerInfo(index, self.count, self.directory)

    async def start(self, index: int) -> fastsio.Server:
        sio = fastsio.Server(**self.options)
        sio.worker = self.info(index)
        sockets = self.sockets[index]

        @sio.on("connection")
        def connection(socket):
            sockets.append(socket)

        @sio.on("echo")
        def echo(socket, *args):
            return args

        @sio.on("shout")
        def shout(socket, *args):
            socket.emit("shouted", *args)

        await sio.start("127.0.0.1", 0)
        self.servers[index] = sio
        return sio

    async def stop(self, index: int) -> None:
        sio = self.servers[index]
        self.servers[index] = None
        if sio is not None:
            await sio.close()

    def port(self, index: int) -> int:
        return self.servers[index].port

    def handover(self, index: int) -> Any:
        return self.servers[index].engine.handover

    async def __aenter__(self):
        for index in range(self.started):
            await self.start(index)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for index in range(self.count):
            await self.stop(index)
        shutil.rmtree(self.directory, ignore_errors=True)


class Session:
    """A raw Engine.IO polling session whose requests go to ``port_for(n)`` (n counts them)."""

    def __init__(self, workers: Workers, port_for: Callable[[int], int]) -> None:
        self.workers = workers
        self.port_for = port_for
        self.count = 0
        self.sid = ""

    def _port(self) -> int:
        port = self.port_for(self.count)
        self.count += 1
        return port

    def target(self, transport: str = "polling") -> str:
        return f"/socket.io/?EIO=4&transport={transport}&sid={self.sid}"

    async def handshake(self, port: int) -> dict:
        status, _, body = await http_request(port, "GET", "/socket.io/?EIO=4&transport=polling")
        assert status == 200 and body[:1] == b"0", body
        opened = json.loads(body[1:])
        self.sid = opened["sid"]
        return opened

    async def post(self, payload: str | bytes) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        status, _, body = await http_request(
            self._port(), "POST", self.target(), data, {"Content-Type": "text/plain"}
        )
        assert (status, body) == (200, b"ok"), (status, body)

    async def get(self) -> list[str]:
        status, _, body = await http_request(self._port(), "GET", self.target())
        assert status == 200, (status, body)
        return body.decode().split("\x1e")

    async def expect(self, prefix: str) -> str:
        for _ in range(20):
            for packet in await self.get():
                if packet.startswith(prefix):
                    return packet
                if packet == "2":
                    await self.post("3")
        raise AssertionError(f"no packet starting with {prefix!r}")

    async def connect(self) -> None:
        await self.post("40")
        await self.expect("40")


def owner_index(sid: str, count: int) -> int:
    index = owner_of(sid, count)
    assert index is not None, sid
    return index


async def raw_exchange(port: int, data: bytes, responses: int = 1) -> list[tuple[int, bytes]]:
    """Write ``data`` on one connection and read ``responses`` responses (Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        answers = []
        for _ in range(responses):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
            answers.append((status, body))
        return answers
    finally:
        writer.close()


def request(method: str, target: str, body: bytes = b"", close: bool = False, **headers) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    if body and "Transfer_Encoding" not in headers:
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --------------------------------------------------------------------------- polling


def test_every_polling_request_on_the_other_worker(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(1))
            opened = await session.handshake(workers.port(0))
            assert owner_index(session.sid, 2) == 0 and opened["sid"][0] == "A"
            await session.connect()
            assert len(workers.sockets[0]) == 1 and not workers.sockets[1]

            await session.post('421["echo","over there",{"n":1}]')
            assert await session.expect("431") == '431["over there",{"n":1}]'
            await session.post('42["shout","hi"]')
            assert await session.expect("42") == '42["shouted","hi"]'

            # a GET held by the owner, answered by a server-side emit
            held = asyncio.ensure_future(session.get())
            await asyncio.sleep(0.1)
            assert not held.done()
            workers.sockets[0][0].emit("news", 1)
            assert await asyncio.wait_for(held, TIMEOUT) == ['42["news",1]']

            assert not workers.servers[1].engine.sessions
            assert workers.handover(1).sent >= 6
            assert workers.handover(0).adopted == workers.handover(1).sent
            assert workers.handover(0).sent == 0 and workers.handover(1).refused == 0

    run(main())


def test_requests_alternate_between_workers_both_ways(run):
    async def main():
        async with Workers(3) as workers:
            sessions = []
            for index in range(3):
                session = Session(workers, lambda n: workers.port(n % 3))
                await session.handshake(workers.port(index))
                assert owner_index(session.sid, 3) == index
                await session.connect()
                sessions.append(session)
            for round_ in range(3):
                for session in sessions:
                    await session.post(f'42{round_}["echo",{round_}]')
                    assert await session.expect(f"43{round_}") == f"43{round_}[{round_}]"
            for index in range(3):
                assert len(workers.sockets[index]) == 1
                assert workers.handover(index).sent > 0 and workers.handover(index).adopted > 0

    run(main())


def test_a_keep_alive_connection_stays_with_the_owner(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(0))
            await session.handshake(workers.port(0))
            target = session.target()
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(1))
            try:
                for payload, expected in [(b"40", None), (b'421["echo",5]', "431[5]")]:
                    writer.write(request("POST", target, payload))
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                    assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" not in head
                    assert await reader.readexactly(2) == b"ok"
                    writer.write(request("GET", target))
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    body = (await reader.readexactly(length)).decode()
                    if expected is not None:
                        assert body == expected
            finally:
                writer.close()
            # one hand-over: the next three requests went straight to the owner
            assert workers.handover(1).sent == 1 and workers.handover(0).adopted == 1

    run(main())


def test_pipelined_requests_are_handed_over_together(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(0))
            await session.handshake(workers.port(0))
            target = session.target()
            data = request("POST", target, b"40") + request("GET", target, close=True)
            answers = await raw_exchange(workers.port(1), data, responses=2)
            assert answers[0] == (200, b"ok")
            assert answers[1][0] == 200 and answers[1][1].startswith(b"40{")
            assert workers.handover(1).sent == 1

    run(main())


def test_a_chunked_post_is_handed_over(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(0))
            await session.handshake(workers.port(0))
            await session.connect()
            body = b'9\r\n421["echo\r\n8\r\n","chunk\r\n4\r\ned"]\r\n0\r\n\r\n'
            data = request("POST", session.target(), body, close=True, Transfer_Encoding="chunked")
            assert await raw_exchange(workers.port(1), data) == [(200, b"ok")]
            assert await session.expect("431") == '431["chunked"]'
            assert workers.handover(1).sent == 1

    run(main())


def test_large_posts_are_handed_over(run):
    """Frames larger than the Unix socket's buffer leave in several writes, in order."""

    async def main():
        async with Workers(2) as workers:
            sessions = []
            for _ in range(4):
                session = Session(workers, lambda n: workers.port(1))
                await session.handshake(workers.port(0))
                await session.connect()
                sessions.append(session)
            blobs = [chr(ord("a") + i) * 700_000 for i in range(4)]
            await asyncio.gather(
                *(session.post(f'421["echo","{blob}"]') for session, blob in zip(sessions, blobs))
            )
            for session, blob in zip(sessions, blobs):
                assert await session.expect("431") == f'431["{blob}"]'

    run(main())


# --------------------------------------------------------------------------- upgrade


def test_upgrade_on_the_other_worker(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(0))
            await session.handshake(workers.port(1))
            assert owner_index(session.sid, 2) == 1
            await session.connect()
            parked = asyncio.ensure_future(session.get())  # on worker 0, held by worker 1
            await asyncio.sleep(0.05)
            assert not parked.done()

            ws = await WebSocketClient.connect(workers.port(0), session.target("websocket"))
            try:
                ws.send("2probe")
                assert await ws.recv() == "3probe"
                assert await asyncio.wait_for(parked, TIMEOUT) == ["6"]
                ws.send("5")
                ws.send('421["echo","upgraded"]')
                assert await ws.recv() == '431["upgraded"]'
                ws.send('42["shout",1]')
                assert await ws.recv() == '42["shouted",1]'
                sid = session.sid
                assert workers.servers[1].engine.sessions[sid].transport_name == "websocket"
            finally:
                await ws.close()
            assert workers.handover(0).sent >= 3 and not workers.servers[0].engine.sessions

    run(main())


def test_websocket_only_clients_are_served_where_they_land(run):
    async def main():
        async with Workers(2) as workers:
            for index in range(2):
                ws = await WebSocketClient.connect(
                    workers.port(index), "/socket.io/?EIO=4&transport=websocket"
                )
                try:
                    opened = json.loads((await ws.recv())[1:])
                    assert owner_index(opened["sid"], 2) == index
                    ws.send("40")
                    assert (await ws.recv()).startswith("40")
                finally:
                    await ws.close()
            assert workers.handover(0).sent == workers.handover(1).sent == 0

    run(main())


# --------------------------------------------------------------------------- later requests
# A connection's first bytes are checked before parsing (WorkerHttpProtocol); any other request
# for another worker's session is found by the engine and handed over with its parsed form
# replayed (Request.hand_over, replay_bytes).


async def read_one(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status = int(head.split(b" ", 2)[1])
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return status, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def two_sessions(workers: Workers) -> tuple[Session, Session]:
    sessions = []
    for index in range(2):
        session = Session(workers, lambda n, index=index: workers.port(index))
        await session.handshake(workers.port(index))
        await session.connect()
        sessions.append(session)
    return sessions[0], sessions[1]


def test_a_connection_carrying_both_workers_sessions(run):
    """A keep-alive connection (a proxy's, say) moves to whichever worker owns the request."""

    async def main():
        async with Workers(2) as workers:
            s0, s1 = await two_sessions(workers)
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(0))
            try:
                for n, session in enumerate([s0, s1, s0, s1, s1, s0]):
                    writer.write(request("POST", session.target(), f'42{n}["echo",{n}]'.encode()))
                    assert await read_one(reader) == (200, b"ok")
                    writer.write(request("GET", session.target()))
                    assert await read_one(reader) == (200, f"43{n}[{n}]".encode())
            finally:
                writer.close()
            # 0 -> 1 -> 0 -> 1 -> 0: found by the engine each time
            assert workers.handover(0).sent == 2 and workers.handover(1).sent == 2
            assert workers.handover(0).adopted == 2 and workers.handover(1).adopted == 2

    run(main())


def test_a_request_line_split_over_reads(run):
    async def main():
        async with Workers(2) as workers:
            s0, _ = await two_sessions(workers)
            data = request("POST", s0.target(), b'421["echo","split"]', close=True)
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(1))
            try:
                writer.write(data[:20])  # no end of line yet: the engine will see it
                await asyncio.sleep(0.05)
                writer.write(data[20:])
                assert await read_one(reader) == (200, b"ok")
            finally:
                writer.close()
            assert await s0.expect("431") == '431["split"]'
            assert workers.handover(1).sent == 1 and workers.handover(0).adopted == 1

    run(main())


def test_pipelined_requests_behind_a_local_one(run):
    async def main():
        async with Workers(2) as workers:
            s0, s1 = await two_sessions(workers)
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(0))
            try:
                writer.write(request("POST", s0.target(), b'421["echo",0]'))
                assert await read_one(reader) == (200, b"ok")
                chunked = b"".join(
                    b"%x\r\n%s\r\n" % (len(part), part) for part in [b'422["ec', b'ho","two"]', b""]
                )
                writer.write(
                    request("POST", s1.target(), chunked, Transfer_Encoding="chunked")
                    + request("GET", s1.target(), close=True)
                )
                assert await read_one(reader) == (200, b"ok")
                assert await read_one(reader) == (200, b'432["two"]')
            finally:
                writer.close()
            assert workers.handover(0).sent == 1
            assert await s0.expect("431") == "431[0]"

    run(main())


def test_a_partly_read_request_behind_keeps_the_connection_here(run):
    """Documented limit: the engine's hand-over needs the connection at a request boundary."""

    async def main():
        async with Workers(2) as workers:
            s0, s1 = await two_sessions(workers)
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(0))
            try:
                writer.write(request("GET", s0.target().replace("polling", "nothing")))
                assert (await read_one(reader))[0] == 400  # answered here: now a plain one
                writer.write(request("GET", s1.target()) + b"GET /socket.io/?EIO=4")
                status, body = await read_one(reader)
                assert (status, json.loads(body)) == (400, UNKNOWN)
            finally:
                writer.close()
            assert workers.handover(0).refused == 1 and workers.handover(0).sent == 0

    run(main())


def test_an_upgrade_behind_a_local_request(run):
    async def main():
        from wsproto.events import Request as WsRequest

        async with Workers(2) as workers:
            s0, s1 = await two_sessions(workers)
            reader, writer = await asyncio.open_connection("127.0.0.1", workers.port(0))
            writer.write(request("POST", s0.target(), b'421["echo",0]'))
            assert await read_one(reader) == (200, b"ok")
            ws = WebSocketClient(reader, writer)
            writer.write(ws.ws.send(WsRequest(host="127.0.0.1", target=s1.target("websocket"))))
            await ws._handshake()
            try:
                ws.send("2probe")
                assert await ws.recv() == "3probe"
                ws.send("5")
                ws.send('421["echo","ws"]')
                assert await ws.recv() == '431["ws"]'
            finally:
                await ws.close()
            assert workers.handover(0).sent == 1
            assert workers.servers[1].engine.sessions[s1.sid].transport_name == "websocket"

    run(main())


# --------------------------------------------------------------------------- owners gone


def test_a_sid_of_no_running_worker_is_unknown(run):
    async def main():
        async with Workers(3, started=2) as workers:
            missing = "C" + random_id()[1:]  # worker 2 never started
            nobody = "Z" + random_id()[1:]  # 25: not one of 3 workers
            mine = "A" + random_id()[1:]  # worker 0's, but not a session of it
            for sid in (missing, nobody, mine):
                for method in ("GET", "POST"):
                    status, _, body = await http_request(
                        workers.port(0),
                        method,
                        f"/socket.io/?EIO=4&transport=polling&sid={sid}",
                        b"40" if method == "POST" else b"",
                    )
                    assert (status, json.loads(body)) == (400, UNKNOWN)
            assert workers.handover(0).refused == 2  # the two requests for worker 2
            assert workers.handover(0).sent == 0

    run(main())


def test_a_restarted_worker_does_not_know_the_old_sessions(run):
    async def main():
        async with Workers(2) as workers:
            session = Session(workers, lambda n: workers.port(0))
            await session.handshake(workers.port(1))
            await session.connect()  # worker 0 now holds a link to worker 1
            assert workers.handover(0).sent == 2

            await workers.stop(1)
            assert not any(name.startswith("handover-1") for name in _listing(workers))
            status, _, body = await http_request(workers.port(0), "GET", session.target())
            assert (status, json.loads(body)) == (400, UNKNOWN)  # nobody listens for worker 1
            assert workers.handover(0).refused == 1

            await workers.start(1)  # a new worker 1 at the same path
            status, _, body = await http_request(workers.port(0), "GET", session.target())
            assert (status, json.loads(body)) == (400, UNKNOWN)  # answered by the new worker 1
            assert workers.handover(0).sent == 3 and workers.handover(1).adopted == 1

            # and the new worker's own sessions work from worker 0 as before
            fresh = Session(workers, lambda n: workers.port(0))
            await fresh.handshake(workers.port(1))
            await fresh.connect()
            await fresh.post('421["echo","again"]')
            assert await fresh.expect("431") == '431["again"]'

    run(main())


def _listing(workers: Workers) -> list[str]:
    import os

    return os.listdir(workers.directory)


def test_closing_a_worker_removes_its_socket_file(run):
    async def main():
        async with Workers(2) as workers:
            assert sorted(_listing(workers)) == ["handover-0.sock", "handover-1.sock"]
            await workers.stop(0)
            assert _listing(workers) == ["handover-1.sock"]

    run(main())


def test_a_single_process_server_has_no_hand_over(run):
    async def main():
        sio = fastsio.Server()
        await sio.start("127.0.0.1", 0)
        try:
            assert sio.engine.handover is None
            one = Workers(1)
            sio2 = fastsio.Server()
            sio2.worker = one.info(0)  # a group of one: no prefix, no listener
            await sio2.start("127.0.0.1", 0)
            try:
                assert sio2.engine.handover is None and not _listing(one)
            finally:
                await sio2.close()
                shutil.rmtree(one.directory, ignore_errors=True)
        finally:
            await sio.close()

    run(main())


def test_only_several_workers_check_new_connections(run):
    async def main():
        from fastsio.http.server import HttpProtocol, WorkerHttpProtocol

        async with Workers(2) as workers:
            sio = fastsio.Server()
            await sio.start("127.0.0.1", 0)
            try:
                kinds = []
                for server in (sio, workers.servers[0]):
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    await asyncio.sleep(0.05)
                    kinds.append({type(c) for c in server.http._connections})
                    writer.write(request("GET", "/socket.io/?EIO=4&transport=nothing"))
                    assert (await read_one(reader))[0] == 400
                    kinds.append({type(c) for c in server.http._connections})
                    writer.close()
                assert kinds == [
                    {HttpProtocol},
                    {HttpProtocol},
                    {WorkerHttpProtocol},
                    {HttpProtocol},  # after its first bytes, a plain one
                ]
            finally:
                await sio.close()

    run(main())


# --------------------------------------------------------------------------- the protocol


def test_hand_over_frames_are_paired_with_their_descriptors(run):
    """Frames and descriptors cross one link in order, whatever the reads cut: three frames
    written byte by byte after their descriptors arrive as three adoptions in order."""

    async def main():
        from fastsio.http.handover import _HEADER, Handover

        adopted: list[tuple[int, bytes]] = []

        class FakeHttp:
            def adopt(self, sock, replay):
                adopted.append((sock.getsockname()[1], replay))
                sock.close()

        directory = tempfile.mkdtemp(prefix="fsio-")
        info = WorkerInfo(0, 2, directory)
        handover = Handover(FakeHttp(), 0, 2, info.handover_path, "/socket.io/", lambda sid: None)
        handover.start()
        listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
        try:
            link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            link.connect(info.handover_path(0))
            stream = b""
            cuts = [0]
            clients = []
            for i, listener in enumerate(listeners):
                clients.append(socket.create_connection(listener.getsockname()))
                payload = f"replay {i}".encode() * (i + 1)
                cuts.append(len(stream) + (1 if i == 0 else 3))
                stream += _HEADER.pack(len(payload), 4) + payload
            # each descriptor rides on a write that starts inside the previous frame (the first
            # on the first byte): descriptors arrive before their frame is complete
            for i, client in enumerate(clients):
                socket.send_fds(link, [stream[cuts[i] : cuts[i + 1]]], [client.fileno()])
                client.close()
                await asyncio.sleep(0)
            rest = stream[cuts[-1] :]
            for k in range(len(rest)):
                link.send(rest[k : k + 1])
                if k % 7 == 0:
                    await asyncio.sleep(0)
            for _ in range(100):
                if len(adopted) == 3:
                    break
                await asyncio.sleep(0.01)
            assert [replay for _, replay in adopted] == [
                f"replay {i}".encode() * (i + 1) for i in range(3)
            ]
            link.close()
        finally:
            handover.close()
            for listener in listeners:
                listener.close()
            shutil.rmtree(directory, ignore_errors=True)

    run(main())


def test_the_first_bytes_check():
    from fastsio.http.handover import Handover

    handover = Handover(
        None, 0, 2, lambda i: f"/nowhere/{i}", "/socket.io/", lambda sid: owner_of(sid, 2), "A"
    )
    check = handover.owner_of_head
    line = b"GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: x\r\n\r\n"
    assert check(line % b"Bxxxxxxxxxxxxxxxxxxx") == 1
    assert check(b"POST" + (line % b"Bxxxxxxxxxxxxxxxxxxx")[3:]) == 1
    assert check(line % b"Axxxxxxxxxxxxxxxxxxx") is None  # ours
    assert check(line % b"Zxxxxxxxxxxxxxxxxxxx") is None  # nobody's: the engine answers
    assert check(line % b"") is None
    assert check((line % b"Bxxxxxxxxxxxxxxxxxxx")[:30]) is None  # the line is not complete
    assert check(b"GET /socket.io/?sid=B HTTP/1.1\r\n") == 1
    assert check(b"GET /other/?sid=B HTTP/1.1\r\n") is None  # not the engine's path
    assert check(b"GET /socket.io/?EIO=4&xsid=B HTTP/1.1\r\n") is None
    assert check(b"GET /socket.io/?EIO=4 HTTP/1.1\r\nCookie: sid=B\r\n\r\n") is None
    assert check(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\r\n") is None


def test_replay_bytes_parse_back_to_the_same_request():
    import httptools

    from fastsio.http.protocol import replay_bytes
    from fastsio.http.request import Request

    headers = {"host": "x", "cookie": "a=1, b=2", "transfer-encoding": "chunked", "expect": "100"}
    original = Request(None, "POST", "/p?q=1", "/p", "q=1", headers, ("", 0), False, "1.1", True)
    original.body = b"hello"
    data = replay_bytes(original)
    assert data.startswith(b"POST /p?q=1 HTTP/1.1\r\n")

    seen: dict[str, Any] = {"headers": {}, "body": b""}

    class Sink:
        def on_url(self, url):
            seen["url"] = url

        def on_header(self, name, value):
            seen["headers"][name.decode().lower()] = value.decode()

        def on_body(self, body):
            seen["body"] += body

        def on_message_complete(self):
            seen["done"] = True

    parser = httptools.HttpRequestParser(Sink())
    parser.feed_data(data)
    assert seen["done"] and seen["url"] == b"/p?q=1" and seen["body"] == b"hello"
    assert seen["headers"] == {"host": "x", "cookie": "a=1, b=2", "content-length": "5"}
    assert parser.should_keep_alive()
