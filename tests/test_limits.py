"""What a hostile (or just broken) client cannot make the server hold: dynamic namespaces
(``cleanup_empty_child_namespaces``, ``max_namespaces_per_client``), the bytes waiting for a client
that stops reading (``max_buffered_bytes``), and the handler tasks ``close()`` leaves behind
(``shutdown_timeout``). The fragments of a WebSocket message are bounded in the frame reader
(tests/test_protocol_websocket.py, tests/test_http_websocket.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import socket as socket_module
import time
import tracemalloc

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, TextMessage
from wsproto.events import Request as WsRequest

import fastsio
from fastsio import _eager
from fastsio.adapter import InMemoryAdapter
from fastsio.engine.transports import PACKETS_PER_SLICE
from fastsio.protocol.socketio import CONNECT, CONNECT_ERROR

from .fakes import FakeEngine
from .rawclient import http_request


def own_tasks() -> list:
    loop = asyncio.get_running_loop()
    return [task for task in _eager.running_tasks if task.get_loop() is loop and not task.done()]


class RecordingAdapter(InMemoryAdapter):
    closed: list = []  # noqa: RUF012 - replaced per test

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.closed.append(self.nsp.name)


# -- dynamic namespaces ---------------------------------------------------------------------------


async def test_child_namespaces_stay_by_default_as_in_node():
    sio = fastsio.Server()
    assert sio.cleanup_empty_child_namespaces is False
    parent = sio.of(re.compile(r"^/dyn-"))
    session = FakeEngine(sio).open()
    session.receive("0/dyn-a,", "1/dyn-a,")
    assert [p.type for p in session.packets()] == [CONNECT]
    assert "/dyn-a" in sio.namespaces and len(parent.children) == 1


async def test_empty_child_namespace_is_removed_and_its_adapter_closed():
    RecordingAdapter.closed = []
    sio = fastsio.Server(cleanup_empty_child_namespaces=True, adapter=RecordingAdapter)
    parent = sio.of(re.compile(r"^/dyn-"))
    seen = []
    parent.on("connection", lambda socket: seen.append(socket.nsp))
    engine = FakeEngine(sio)
    adapters = len(sio._adapters)
    first, second = engine.open(), engine.open()
    first.receive("0/dyn-a,")
    second.receive("0/dyn-a,")
    child = sio.namespaces["/dyn-a"]
    assert len(child.sockets) == 2 and len(sio._adapters) == adapters + 1
    first.receive("1/dyn-a,")  # one leaves: the other is still there
    assert sio.namespaces["/dyn-a"] is child
    second.drop()  # the last one
    assert "/dyn-a" not in sio.namespaces
    assert child not in parent.children and len(sio._adapters) == adapters
    assert len(sio._cleanup_tasks) == 1  # the adapter's close, referenced while it runs
    await asyncio.sleep(0.01)
    assert RecordingAdapter.closed == ["/dyn-a"] and not sio._cleanup_tasks
    # the name comes back as a new child, with the parent's handlers
    third = engine.open()
    third.receive("0/dyn-a,")
    assert third.packets()[0].type == CONNECT
    assert seen[-1] is sio.namespaces["/dyn-a"] is not child
    # static namespaces and the main one are never removed
    third.receive("0", "1/")
    sio.of("/static")
    third.receive("0/static,", "1/static,")
    assert "/" in sio.namespaces and "/static" in sio.namespaces
    await sio.close()


async def test_a_refused_connection_leaves_no_child_namespace():
    sio = fastsio.Server(cleanup_empty_child_namespaces=True)
    parent = sio.of(lambda name, auth: name.startswith("/dyn-"))

    @parent.use
    def refuse(socket):
        raise fastsio.ConnectionRefused("no")

    session = FakeEngine(sio).open()
    session.receive("0/dyn-a,")
    assert [p.type for p in session.packets()] == [CONNECT_ERROR]
    assert "/dyn-a" not in sio.namespaces and not parent.children


async def test_a_child_is_kept_while_a_connection_to_it_is_pending():
    sio = fastsio.Server(cleanup_empty_child_namespaces=True)
    parent = sio.of(re.compile(r"^/dyn-"))
    gate = asyncio.Event()

    @parent.use
    async def slow(socket):
        if socket.handshake.auth.get("slow"):
            await gate.wait()

    engine = FakeEngine(sio)
    fast = engine.open()
    fast.receive("0/dyn-a,")
    slow_client = engine.open()
    slow_client.receive('0/dyn-a,{"slow":1}')
    child = sio.namespaces["/dyn-a"]
    fast.drop()  # no socket left, but a middleware runs for /dyn-a
    assert sio.namespaces["/dyn-a"] is child
    gate.set()
    await asyncio.sleep(0.01)
    assert slow_client.packets()[-1].type == CONNECT
    assert len(child.sockets) == 1 and child in parent.children
    # a client that leaves while its middleware runs: removed once the middleware is done
    gate.clear()
    slow_client.drop()
    assert "/dyn-a" not in sio.namespaces
    other = engine.open()
    other.receive('0/dyn-b,{"slow":1}')
    other.drop()
    assert "/dyn-b" in sio.namespaces  # the middleware still runs
    gate.set()
    await asyncio.sleep(0.01)
    assert "/dyn-b" not in sio.namespaces and not parent.children
    await sio.close()


async def test_a_failing_adapter_close_is_logged(caplog):
    class FailingAdapter(InMemoryAdapter):
        async def close(self) -> None:
            if self.nsp.name.startswith("/dyn-"):
                raise RuntimeError("redis went away")

    sio = fastsio.Server(cleanup_empty_child_namespaces=True, adapter=FailingAdapter)
    sio.of(re.compile(r"^/dyn-"))
    session = FakeEngine(sio).open()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive("0/dyn-a,", "1/dyn-a,")
        await asyncio.sleep(0.01)
    (record,) = [r for r in caplog.records if "failed to close" in r.getMessage()]
    assert "/dyn-a" in record.getMessage() and record.exc_info[0] is RuntimeError
    assert not sio._cleanup_tasks
    await sio.close()


async def test_ten_thousand_dynamic_namespaces_come_back_to_the_baseline():
    """The issue's case: a catch-all dynamic namespace, one client connecting to 10,000 names.
    With the cleanup, namespaces and memory are back to where they were once it is gone, run
    after run (without it, each run of new names kept ~9 MB here)."""
    sio = fastsio.Server(cleanup_empty_child_namespaces=True, max_namespaces_per_client=None)
    parent = sio.of(lambda name, auth: True)
    engine = FakeEngine(sio)
    baseline_namespaces = dict(sio.namespaces)
    baseline_adapters = list(sio._adapters)

    async def one_client(run: int) -> int:
        names = [f"/ns-{run}-{i}" for i in range(10_000)]
        session = engine.open()
        for name in names:
            session.receive(f"0{name},")
        replies = session.packets()
        assert len(replies) == len(names) and {p.type for p in replies} == {CONNECT}
        assert len(sio.namespaces) == len(names) + 1 and len(parent.children) == len(names)
        session.drop()
        engine.sessions.clear()
        del session, replies
        await asyncio.sleep(0.05)  # the adapters' close tasks
        assert sio.namespaces == baseline_namespaces == {"/": sio.main_namespace}
        assert sio._adapters == baseline_adapters and not parent.children
        assert not sio._cleanup_tasks and not sio.sockets
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        # the first run leaves the tables sized for 10,000 (dicts do not shrink), and pools
        after = [await one_client(run) for run in range(2)]
    finally:
        tracemalloc.stop()
    assert after[1] - after[0] < 64 * 1024, after
    await sio.close()


async def test_namespaces_per_client_are_bounded():
    sio = fastsio.Server()
    assert sio.max_namespaces_per_client == 100
    sio.of(lambda name, auth: True)
    session = FakeEngine(sio).open()
    session.receive("0")
    for i in range(150):
        session.receive(f"0/ns-{i},")
    replies = session.packets()
    assert [p.type for p in replies[:100]] == [CONNECT] * 100  # "/" and 99 others
    refused = replies[100:]
    assert [p.type for p in refused] == [CONNECT_ERROR] * 51
    assert refused[0].nsp == "/ns-99"
    assert refused[0].data == {"message": "Too many namespaces: at most 100 per connection"}
    assert len(sio.namespaces) == 100  # "/" and 99 children: a refused name creates none
    # leaving one makes room for one
    session.receive("1/ns-0,", "0/ns-120,", "0/ns-121,")
    assert [(p.type, p.nsp) for p in session.packets()] == [
        (CONNECT, "/ns-120"),
        (CONNECT_ERROR, "/ns-121"),
    ]
    assert not session.closed  # the connection itself stays
    await sio.close()


async def test_pending_connections_count_towards_the_bound():
    sio = fastsio.Server(max_namespaces_per_client=2)
    parent = sio.of(re.compile(r"^/dyn-"))
    gate = asyncio.Event()

    @parent.use
    async def slow(socket):
        await gate.wait()

    session = FakeEngine(sio).open()
    session.receive("0/dyn-a,", "0/dyn-b,", "0/dyn-c,")
    assert [(p.type, p.nsp) for p in session.packets()] == [(CONNECT_ERROR, "/dyn-c")]
    gate.set()
    await asyncio.sleep(0.01)
    assert [p.type for p in session.packets()] == [CONNECT, CONNECT]
    unbounded = fastsio.Server(max_namespaces_per_client=None)
    unbounded.of(re.compile(r"^/dyn-"))
    session = FakeEngine(unbounded).open()
    session.receive(*[f"0/dyn-{i}," for i in range(300)])
    assert {p.type for p in session.packets()} == {CONNECT}
    with pytest.raises(ValueError):
        fastsio.Server(max_namespaces_per_client=0)
    await sio.close()
    await unbounded.close()


async def test_namespace_bound_over_the_wire():
    sio = fastsio.Server(max_namespaces_per_client=1)
    sio.of("/admin")
    await sio.start("127.0.0.1", 0)
    try:
        ws = await _StalledClient.open(sio.port, sio.path)
        ws.send("40")
        assert (await ws.recv()).startswith("40{")
        ws.send("40/admin,")
        refusal = await ws.recv()
        assert refusal == '44/admin,{"message":"Too many namespaces: at most 1 per connection"}'
        ws.close()
    finally:
        await sio.close()


# -- a client that stops reading ------------------------------------------------------------------


class _StalledClient:
    """A WebSocket client on a raw socket with a small receive buffer, read only when asked: once
    the test stops calling ``recv``, nothing is read and the server's writes pile up."""

    def __init__(self, sock: socket_module.socket) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.queue: list = []

    @classmethod
    async def open(cls, port: int, path: str) -> _StalledClient:
        loop = asyncio.get_running_loop()
        sock = socket_module.socket()
        sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        client = cls(sock)
        target = f"{path}/?EIO=4&transport=websocket"
        await loop.sock_sendall(sock, client.ws.send(WsRequest(host="127.0.0.1", target=target)))
        opening = await client.recv()
        assert opening.startswith("0{"), opening
        return client

    async def recv(self) -> str:
        loop = asyncio.get_running_loop()
        while not self.queue:
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 5)
            assert data, "connection closed"
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, TextMessage):
                    self.queue.append(event.data)
                else:
                    assert isinstance(event, AcceptConnection), event
        return self.queue.pop(0)

    def send(self, text: str) -> None:
        self.sock.send(self.ws.send(Message(data=text)))

    def close(self) -> None:
        self.sock.close()


async def test_a_client_that_stops_reading_is_closed_at_max_buffered_bytes(caplog):
    assert fastsio.Server().max_buffered_bytes == 4 * 1024 * 1024
    limit = 1 << 20
    sio = fastsio.Server(max_buffered_bytes=limit)
    reasons = []
    sio.on("disconnect", lambda socket, reason: reasons.append(reason))
    await sio.start("127.0.0.1", 0)
    client = None
    try:
        client = await _StalledClient.open(sio.port, sio.path)
        client.send("40")
        assert (await client.recv()).startswith("40{")
        (socket,) = sio.sockets.values()
        assert socket.conn.max_buffered_bytes == limit
        # from now on the client reads nothing
        payload = "x" * 65536
        sent = 0
        with caplog.at_level(logging.WARNING, logger="fastsio.engine"):
            while socket.connected and sent < 64 << 20:
                socket.emit("flood", payload)
                sent += len(payload)
                await asyncio.sleep(0)
        assert reasons == ["transport error"]
        # kernel buffers (a few MB on loopback) + the bound; not the 64 MB of before
        assert sent < 16 << 20, sent
        (record,) = [r for r in caplog.records if "does not read" in r.getMessage()]
        assert f"max_buffered_bytes ({limit})" in record.getMessage()
        assert socket.conn.closed
    finally:
        if client is not None:
            client.close()
        await sio.close()


def test_max_buffered_bytes_must_be_positive():
    with pytest.raises(ValueError):
        fastsio.Server(max_buffered_bytes=0)


# -- handler tasks at close() ---------------------------------------------------------------------


async def test_close_waits_for_handlers_then_cancels_and_logs_them(caplog):
    sio = fastsio.Server(shutdown_timeout=0.3)
    assert fastsio.Server().shutdown_timeout == 5.0
    log = []

    @sio.on("quick")
    async def quick(socket):
        await asyncio.sleep(0.05)
        log.append("quick done")

    @sio.on("stuck")
    async def stuck(socket):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append("stuck cancelled")
            raise

    session, _ = FakeEngine(sio).connect()
    session.receive('2["quick"]', '2["stuck"]')
    assert len(own_tasks()) == 2  # kept referenced while they run
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="fastsio"):
        await sio.close()
    assert 0.25 < loop.time() - started < 2.5
    assert log == ["quick done", "stuck cancelled"]
    (record,) = [r for r in caplog.records if "cancelled" in r.getMessage()]
    message = record.getMessage()
    assert "1 handler(s)" in message and "stuck" in message and "'stuck'" in message
    assert "quick" not in message
    assert own_tasks() == []


async def test_close_returns_as_soon_as_the_handlers_are_done():
    sio = fastsio.Server(shutdown_timeout=10)
    done = []

    @sio.on("work")
    async def work(socket, n):
        await asyncio.sleep(0.05 * n)
        done.append(n)

    @sio.on("disconnect")
    async def bye(socket, reason):
        await asyncio.sleep(0.05)  # started by close() itself: waited for too
        done.append(reason)

    session, _ = FakeEngine(sio).connect()
    session.receive('2["work",1]', '2["work",2]')
    started = time.monotonic()
    await sio.close()
    assert time.monotonic() - started < 2
    assert sorted(map(str, done)) == ["1", "2", "server shutting down"]


async def test_close_leaves_the_tasks_of_another_server_alone():
    a = fastsio.Server(shutdown_timeout=0.05)
    b = fastsio.Server(shutdown_timeout=0)
    cancelled = []

    async def stuck(socket):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(socket.server)
            raise

    a.on("stuck", stuck)
    b.on("stuck", stuck)
    for sio in (a, b):
        FakeEngine(sio).connect()[0].receive('2["stuck"]')
    await a.close()
    assert cancelled == [a]
    assert len(own_tasks()) == 1
    await b.close()
    assert cancelled == [a, b] and own_tasks() == []


async def test_close_waits_for_async_ack_callbacks_too():
    sio = fastsio.Server(shutdown_timeout=0.1)
    log = []

    async def answered(answer):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            log.append(("cancelled", answer))
            raise

    session, sid = FakeEngine(sio).connect()
    sio.sockets[sid].emit("question", ack=answered)
    (question,) = session.packets()
    session.receive(f'3{question.id}["yes"]')
    assert len(own_tasks()) == 1
    await sio.close()
    assert log == [("cancelled", "yes")] and own_tasks() == []


async def test_a_handler_may_close_the_server():
    sio = fastsio.Server(shutdown_timeout=5)
    closed = asyncio.Event()

    @sio.on("shutdown")
    async def shutdown(socket):
        await asyncio.sleep(0)
        await sio.close()  # does not wait for (or cancel) itself
        closed.set()

    FakeEngine(sio).connect()[0].receive('2["shutdown"]')
    await asyncio.wait_for(closed.wait(), 2)


async def test_close_cancels_handshakes_waiting_for_allow_request():
    gate = asyncio.Event()
    calls = []

    async def allow(request):
        calls.append(request)
        try:
            await gate.wait()
        except asyncio.CancelledError:
            calls.append("cancelled")
            raise
        return True

    sio = fastsio.Server(allow_request=allow)
    await sio.start("127.0.0.1", 0)
    engine = sio.engine
    request = asyncio.ensure_future(
        http_request(sio.port, "GET", f"{sio.path}/?EIO=4&transport=polling")
    )
    for _ in range(100):
        if engine._handshake_tasks:
            break
        await asyncio.sleep(0.01)
    assert len(engine._handshake_tasks) == 1  # referenced while it waits
    await sio.close()
    assert calls[-1] == "cancelled" and not engine._handshake_tasks
    done, _ = await asyncio.wait([request], timeout=3)
    assert done  # the connection was closed, without a session
    if request.exception() is None:
        assert request.result()[0] != 200


def test_shutdown_timeout_must_not_be_negative():
    with pytest.raises(ValueError):
        fastsio.Server(shutdown_timeout=-1)


# -- one huge POST does not stall everyone --------------------------------------------------------


async def polling_session(port: int, path: str = "/socket.io") -> str:
    """A polling client connected to "/": its query string (with the sid)."""
    status, _, body = await http_request(port, "GET", f"{path}/?EIO=4&transport=polling")
    assert status == 200
    query = f"{path}/?EIO=4&transport=polling&sid={json.loads(body[1:])['sid']}"
    assert (await http_request(port, "POST", query, b"40"))[2] == b"ok"
    assert (await http_request(port, "GET", query))[2].startswith(b"40{")
    return query


async def collect_acks(port: int, query: str, count: int) -> list[str]:
    """GETs until ``count`` ack packets came (bounded)."""
    acks: list[str] = []
    for _ in range(200):
        if len(acks) >= count:
            break
        body = (await http_request(port, "GET", query))[2].decode()
        acks += [packet for packet in body.split("\x1e") if packet.startswith("43")]
    return acks


async def test_a_huge_post_lets_other_clients_in_and_keeps_its_order():
    """A POST of many acked events is delivered in slices: another client's message, arrived
    once the first event of the POST is being handled, is handled before the POST's last event
    (without slices it would wait for all of them); the POST's events are handled once each, in
    order, and their acks come back in order."""
    count = PACKETS_PER_SLICE * 8
    sio = fastsio.Server()
    handled: list = []
    other: list = []

    def on_a(socket, n):
        handled.append(n)
        if n == 0:  # the other client's message reaches the server's socket now
            other[0].send('42["b"]')
        return n

    sio.on("a", on_a)
    sio.on("b", lambda socket: handled.append("b"))
    await sio.start("127.0.0.1", 0)
    try:
        ws = await _StalledClient.open(sio.port, sio.path)
        ws.send("40")
        assert (await ws.recv()).startswith("40{")
        other.append(ws)
        query = await polling_session(sio.port)
        body = "\x1e".join(f'42{n}["a",{n}]' for n in range(count)).encode()
        assert (await http_request(sio.port, "POST", query, body))[2] == b"ok"
        acks = await collect_acks(sio.port, query, count)
        assert acks == [f"43{n}[{n}]" for n in range(count)]
        assert [n for n in handled if n != "b"] == list(range(count))
        assert 0 < handled.index("b") < count  # in between, not after the whole POST
        ws.close()
    finally:
        await sio.close()


async def test_a_post_while_a_huge_one_is_delivered_is_an_overlap_error():
    """As Node's "data request overlap": a second POST before the first was answered ends the
    session (400); the rest of the first one is not delivered."""
    count = PACKETS_PER_SLICE * 8
    sio = fastsio.Server()
    handled: list = []
    second: list = []
    reasons: list = []

    def on_a(socket, n):
        handled.append(n)
        if n == 0:
            second[0].write(second[1])

    sio.on("a", on_a)
    sio.on("disconnect", lambda socket, reason: reasons.append(reason))
    await sio.start("127.0.0.1", 0)
    try:
        query = await polling_session(sio.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", sio.port)
        post = f'POST {query} HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n42["a",9]'
        second += [writer, post.encode()]
        body = "\x1e".join(f'42["a",{n}]' for n in range(count)).encode()
        assert (await http_request(sio.port, "POST", query, body))[2] == b"ok"
        answer = await asyncio.wait_for(reader.read(4096), 5)
        assert answer.startswith(b"HTTP/1.1 400")
        writer.close()
        assert reasons == ["transport error"]
        assert 0 < len(handled) < count and handled == list(range(len(handled)))
        status, _, _ = await http_request(sio.port, "GET", query)
        assert status == 400  # the session is gone
    finally:
        await sio.close()


async def test_a_close_packet_inside_a_huge_post_ends_it_there():
    count = PACKETS_PER_SLICE * 3
    sio = fastsio.Server()
    handled: list = []
    sio.on("a", lambda socket, n: handled.append(n))
    await sio.start("127.0.0.1", 0)
    try:
        query = await polling_session(sio.port)
        packets = [f'42["a",{n}]' for n in range(count)]
        packets.insert(PACKETS_PER_SLICE + 10, "1")  # the client's close, in the second slice
        body = "\x1e".join(packets).encode()
        assert (await http_request(sio.port, "POST", query, body))[2] == b"ok"
        assert handled == list(range(PACKETS_PER_SLICE + 10))
        assert (await http_request(sio.port, "GET", query))[0] == 400
    finally:
        await sio.close()


async def test_a_huge_eio3_post_is_delivered_in_order():
    count = PACKETS_PER_SLICE * 4 + 7
    sio = fastsio.Server(allow_eio3=True)
    handled: list = []
    sio.on("a", lambda socket, n: handled.append(n))
    await sio.start("127.0.0.1", 0)
    try:
        base = "/socket.io/?EIO=3&transport=polling&b64=1"
        body = (await http_request(sio.port, "GET", base))[2].decode()
        sid = json.loads(body[body.index("{") : body.rindex("}") + 1])["sid"]
        query = f"{base}&sid={sid}"
        packets = [f'42["a",{n}]' for n in range(count)]
        payload = "".join(f"{len(packet)}:{packet}" for packet in packets).encode()
        assert (await http_request(sio.port, "POST", query, payload))[2] == b"ok"
        assert handled == list(range(count))
    finally:
        await sio.close()
