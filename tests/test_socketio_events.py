"""Events and acks both ways, binary, per-socket listeners, reserved names, handler errors."""

from __future__ import annotations

import asyncio
import logging

import pytest

import fastsio
from fastsio.protocol.socketio import ACK, BINARY_ACK, BINARY_EVENT, Packet

from .fakes import FakeEngine


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
def engine(sio):
    return FakeEngine(sio)


def only_socket(sio, nsp="/"):
    (socket,) = sio.of(nsp).sockets.values()
    return socket


# -- client -> server events --------------------------------------------------------------------


async def test_event_reaches_handler_with_socket_and_args(sio, engine):
    got = []

    @sio.on("chat message")
    def chat(socket, msg, extra):
        got.append((socket.id, msg, extra))

    session, sid = engine.connect()
    session.receive('2["chat message","hi",{"a":[1,2]}]')
    assert got == [(sid, "hi", {"a": [1, 2]})]
    assert session.take() == []  # no ack id: nothing sent back


async def test_event_in_custom_namespace(sio, engine):
    got = []
    sio.of("/admin").on("cmd", lambda socket, x: got.append(x))
    sio.on("cmd", lambda socket, x: got.append(("root", x)))
    session, _ = engine.connect("/admin")
    session.receive('2/admin,["cmd",5]')
    assert got == [5]


async def test_event_without_handler_is_ignored(sio, engine):
    session, _ = engine.connect()
    session.receive('2["nobody"]', '27["nobody"]')
    assert session.take() == [] and not session.closed


async def test_ack_with_return_value(sio, engine):
    sio.on("add", lambda socket, a, b: a + b)
    session, _ = engine.connect()
    session.receive('212["add",1,2]')
    assert session.take() == ["312[3]"]


async def test_ack_tuple_means_several_args_and_none_means_none(sio, engine):
    sio.on("several", lambda socket: ("a", 1, None))
    sio.on("nothing", lambda socket: None)
    sio.on("a_list", lambda socket: [1, 2])
    session, _ = engine.connect()
    session.receive('21["several"]', '22["nothing"]', '23["a_list"]')
    assert session.take() == ['31["a",1,null]', "32[]", "33[[1,2]]"]


async def test_ack_in_custom_namespace(sio, engine):
    sio.of("/admin").on("echo", lambda socket, x: x)
    session, _ = engine.connect("/admin")
    session.receive('2/admin,7["echo","x"]')
    assert session.take() == ['3/admin,7["x"]']


async def test_async_handler_ack_immediately_when_it_does_not_suspend(sio, engine):
    @sio.on("quick")
    async def quick(socket, x):
        return x * 2

    session, _ = engine.connect()
    session.receive('21["quick",4]')
    assert session.take() == ["31[8]"]  # no loop iteration needed


async def test_async_handler_ack_after_it_finishes(sio, engine):
    @sio.on("slow")
    async def slow(socket, x):
        await asyncio.sleep(0.01)
        return {"echo": x}

    session, _ = engine.connect()
    session.receive('29["slow","a"]')
    assert session.take() == []
    await asyncio.sleep(0.05)
    assert session.take() == ['39[{"echo":"a"}]']


async def test_handler_exception_is_logged_no_ack_connection_survives(sio, engine, caplog):
    @sio.on("bad")
    def bad(socket):
        raise RuntimeError("handler bug")

    sio.on("good", lambda socket: "ok")
    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('21["bad"]')
    assert "handler bug" in caplog.text and "'bad'" in caplog.text
    assert session.take() == []
    session.receive('22["good"]')
    assert session.take() == ['32["ok"]']
    assert not session.closed


async def test_async_handler_exception_is_logged(sio, engine, caplog):
    @sio.on("bad")
    async def bad(socket):
        await asyncio.sleep(0)
        raise RuntimeError("async bug")

    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('21["bad"]')
        await asyncio.sleep(0.01)
    assert "async bug" in caplog.text
    assert session.take() == [] and not session.closed


async def test_binary_event_from_client(sio, engine):
    got = []
    sio.on("upload", lambda socket, meta, data: got.append((meta, data)))
    session, _ = engine.connect()
    session.receive('51-["upload",{"name":"f"},{"_placeholder":true,"num":0}]')
    assert got == []
    session.receive(b"\x00\x01\x02")
    assert got == [({"name": "f"}, b"\x00\x01\x02")]


async def test_binary_ack_to_client(sio, engine):
    sio.on("get", lambda socket: (b"\xff", "text"))
    session, _ = engine.connect()
    session.receive('24["get"]')
    text, attachment = session.take()
    assert text == '61-4[{"_placeholder":true,"num":0},"text"]'
    assert attachment == b"\xff"


async def test_binary_event_to_client(sio, engine):
    session, _ = engine.connect()
    only_socket(sio).emit("file", {"data": b"abc", "more": [b"de"]})
    text, a0, a1 = session.take()
    packet = Packet(BINARY_EVENT)
    assert text.startswith("52-")
    assert '"_placeholder":true' in text
    assert (a0, a1) == (b"abc", b"de")
    assert packet.type == BINARY_EVENT


# -- server -> client events and acks ---------------------------------------------------------


async def test_socket_emit(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    assert socket.emit("hello", "world", 1) is True
    socket.send("a message")
    assert session.take() == ['2["hello","world",1]', '2["message","a message"]']


async def test_socket_emit_in_namespace(sio, engine):
    sio.of("/chat")
    session, _ = engine.connect("/chat")
    only_socket(sio, "/chat").emit("x")
    assert session.take() == ['2/chat,["x"]']


async def test_emit_with_ack_callback(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    got = []
    socket.emit("question", "q", ack=lambda *args: got.append(args))
    (sent,) = session.packets()
    assert sent.data == ["question", "q"] and sent.id is not None
    session.receive(f'3{sent.id}["answer",2]')
    assert got == [("answer", 2)]
    session.receive(f'3{sent.id}["again"]')  # a repeated ack is ignored
    assert got == [("answer", 2)]


async def test_emit_with_ack_awaitable(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    task = asyncio.ensure_future(socket.emit_with_ack("question", 1))
    await asyncio.sleep(0)
    (sent,) = session.packets()
    session.receive(f"3{sent.id}[42]")
    assert await task == 42


async def test_emit_with_ack_values(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    results = []
    for reply in ("[]", '[1,"two"]', "[null]"):
        task = asyncio.ensure_future(socket.emit_with_ack("q"))
        await asyncio.sleep(0)
        (sent,) = session.packets()
        session.receive(f"3{sent.id}{reply}")
        results.append(await task)
    assert results == [None, (1, "two"), None]


async def test_emit_with_ack_binary_reply(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    task = asyncio.ensure_future(socket.emit_with_ack("q"))
    await asyncio.sleep(0)
    (sent,) = session.packets()
    session.receive(f'61-{sent.id}[{{"_placeholder":true,"num":0}}]', b"bin")
    assert await task == b"bin"
    assert BINARY_ACK == 6


async def test_emit_with_ack_timeout(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    with pytest.raises(fastsio.AckTimeoutError) as info:
        await socket.emit_with_ack("q", timeout=0.02)
    assert isinstance(info.value, TimeoutError)
    (sent,) = session.packets()
    session.receive(f"3{sent.id}[1]")  # too late: ignored
    assert socket._acks in (None, {})


async def test_timeout_operator_emit_with_ack(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    with pytest.raises(fastsio.AckTimeoutError):
        await socket.timeout(0.02).emit_with_ack("q")
    task = asyncio.ensure_future(socket.timeout(1).emit_with_ack("q"))
    await asyncio.sleep(0)
    sent = session.packets()[-1]
    session.receive(f'3{sent.id}["in time"]')
    assert await task == "in time"


async def test_timeout_callback_gets_error_first(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    got = []
    socket.timeout(0.02).emit("q", ack=lambda *args: got.append(args))
    socket.timeout(1).emit("q2", ack=lambda *args: got.append(args))
    _first, second = session.packets()
    session.receive(f"3{second.id}[7]")
    assert got == [(None, 7)]
    await asyncio.sleep(0.05)
    assert len(got) == 2
    (err,) = got[1]
    assert isinstance(err, fastsio.AckTimeoutError)


async def test_pending_acks_fail_on_disconnect(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    plain, timed = [], []
    socket.emit("a", ack=lambda *args: plain.append(args))
    socket.timeout(5).emit("b", ack=lambda *args: timed.append(args))
    task = asyncio.ensure_future(socket.emit_with_ack("c"))
    await asyncio.sleep(0)
    session.drop()
    with pytest.raises(fastsio.DisconnectedError):
        await task
    assert plain == []
    ((err,),) = timed
    assert isinstance(err, fastsio.DisconnectedError)


async def test_emit_after_disconnect_is_dropped(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    session.receive("1")
    session.take()
    assert socket.emit("late") is False
    with pytest.raises(fastsio.DisconnectedError):
        await socket.emit_with_ack("late")
    assert session.take() == []


async def test_async_handler_awaiting_client_ack(sio, engine):
    @sio.on("start")
    async def start(socket):
        answer = await socket.emit_with_ack("confirm?")
        return f"confirmed {answer}"

    session, _ = engine.connect()
    session.receive('21["start"]')
    (question,) = session.packets()
    assert question.data == ["confirm?"]
    session.receive(f'3{question.id}["yes"]')
    await asyncio.sleep(0.01)
    assert session.take() == ['31["confirmed yes"]']


# -- reserved names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "connect",
        "connection",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    ],
)
async def test_reserved_event_names_cannot_be_emitted(sio, engine, name):
    engine.connect()
    socket = only_socket(sio)
    for emit in (
        socket.emit,
        sio.emit,
        sio.to("room").emit,
        socket.broadcast.emit,
        sio.of("/x").emit,
        socket.timeout(1).emit,
    ):
        with pytest.raises(ValueError, match="reserved"):
            emit(name, 1)
    with pytest.raises(ValueError):
        await socket.emit_with_ack(name)


async def test_reserved_event_from_client_is_a_parse_error(sio, engine):
    disconnects = []
    sio.on("disconnect", lambda socket, reason: disconnects.append(reason))
    session, _ = engine.connect()
    session.receive('2["disconnect","fake"]')
    assert session.closed and disconnects == ["parse error"]


async def test_client_event_named_connection_is_ignored(sio, engine):
    calls = []
    sio.on("connection", lambda *args: calls.append(args))
    session, _ = engine.connect()
    calls.clear()
    session.receive('2["connection","x"]')
    assert calls == [] and not session.closed


# -- per-socket listeners ---------------------------------------------------------------------


async def test_socket_on_once_off(sio, engine):
    got = []

    @sio.on("connection")
    def setup(socket):
        socket.on("ping", lambda *args: got.append(("on", args)))
        socket.once("ping", lambda *args: got.append(("once", args)))

        @socket.on("deco")
        def deco(x):
            got.append(("deco", x))

    session, _ = engine.connect()
    session.receive('2["ping",1]', '2["ping",2]', '2["deco","d"]')
    assert got == [("on", (1,)), ("once", (1,)), ("on", (2,)), ("deco", "d")]
    socket = only_socket(sio)
    socket.off("ping")
    session.receive('2["ping",3]')
    assert len(got) == 4


async def test_socket_listener_answers_ack_when_no_server_handler(sio, engine):
    sio.on("connection", lambda socket: socket.on("sum", lambda a, b: a + b))
    session, _ = engine.connect()
    session.receive('25["sum",2,3]')
    assert session.take() == ["35[5]"]


async def test_server_handler_answers_ack_before_socket_listener(sio, engine):
    sio.on("both", lambda socket: "server")
    sio.on("connection", lambda socket: socket.on("both", lambda: "socket"))
    session, _ = engine.connect()
    session.receive('25["both"]')
    assert session.take() == ['35["server"]']  # exactly one ack


async def test_several_server_handlers_all_run_first_answers(sio, engine):
    calls = []
    sio.on("ev", lambda socket: calls.append(1) or "first")
    sio.on("ev", lambda socket: calls.append(2) or "second")
    session, _ = engine.connect()
    session.receive('21["ev"]')
    assert calls == [1, 2]
    assert session.take() == ['31["first"]']


async def test_on_any(sio, engine):
    seen = []
    sio.on("connection", lambda socket: socket.on_any(lambda ev, *args: seen.append((ev, args))))
    session, _ = engine.connect()
    session.receive('2["a",1]', '2["b"]')
    assert seen == [("a", (1,)), ("b", ())]


async def test_socket_disconnect_listener(sio, engine):
    reasons = []
    sio.on("connection", lambda socket: socket.on("disconnect", reasons.append))
    session, _ = engine.connect()
    session.receive("1")
    assert reasons == ["client namespace disconnect"]


async def test_handler_off_and_event_decorator(sio, engine):
    got = []

    @sio.event
    def hello(socket, x):
        got.append(x)

    session, _ = engine.connect()
    session.receive('2["hello",1]')
    sio.off("hello", hello)
    session.receive('2["hello",2]')
    assert got == [1]


async def test_ack_ids_on_the_wire(sio, engine):
    session, _ = engine.connect()
    socket = only_socket(sio)
    socket.emit("a", ack=lambda *a: None)
    socket.emit("b", ack=lambda *a: None)
    first, second = session.packets()
    assert first.id != second.id
    assert ACK == 3
