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


async def test_prepend_any_off_any_and_listeners_any(sio, engine):
    calls = []
    session, sid = engine.connect()
    socket = sio.sockets[sid]

    def first(event, *args):
        calls.append(("first", event, args))

    def second(event, *args):
        calls.append(("second", event))

    assert socket.on_any(first) is first
    socket.on_any(second)
    socket.prepend_any(second)  # Node's prependAny: before those added so far
    assert socket.listeners_any() == [second, first, second]
    session.receive('2["a",1,{"b":2}]')
    assert calls == [("second", "a"), ("first", "a", (1, {"b": 2})), ("second", "a")]
    calls.clear()
    assert socket.off_any(second) is socket  # the first registration only, as Node
    assert socket.listeners_any() == [first, second]
    socket.listeners_any().clear()  # a copy: changing it changes nothing
    session.receive('2["b"]')
    assert calls == [("first", "b", ()), ("second", "b")]
    socket.off_any()
    assert socket.listeners_any() == []
    session.receive('2["c"]')
    assert calls == [("first", "b", ()), ("second", "b")]
    with pytest.raises(TypeError):
        socket.on_any("not callable")  # type: ignore[arg-type]


async def test_on_any_outgoing_sees_every_emit_but_not_acks(sio, engine):
    seen = []
    sio.on("ask", lambda socket: "answer")  # the ack the client asked for: not an event
    session, sid = engine.connect()
    socket = sio.sockets[sid]
    socket.on_any_outgoing(lambda event, *args: seen.append(("late", event, args)))
    socket.prepend_any_outgoing(lambda event, *args: seen.append(("early", event)))
    socket.emit("hello", 1, {"two": 2})
    socket.emit("with ack", "x", ack=lambda *args: None)  # the callback is not an argument
    socket.timeout(5).emit("timed", ack=lambda err, *args: None)
    socket.volatile.emit("volatile", 3)
    socket.compress(False).emit("raw", b"\x01")
    socket.send("msg")
    session.receive('21["ask"]')
    assert seen == [
        ("early", "hello"),
        ("late", "hello", (1, {"two": 2})),
        ("early", "with ack"),
        ("late", "with ack", ("x",)),
        ("early", "timed"),
        ("late", "timed", ()),
        ("early", "volatile"),
        ("late", "volatile", (3,)),
        ("early", "raw"),
        ("late", "raw", (b"\x01",)),
        ("early", "message"),
        ("late", "message", ("msg",)),
    ]
    names = [data[0] for data in session.events()]
    assert names == ["hello", "with ack", "timed", "volatile", "raw", "message"]
    seen.clear()
    task = asyncio.ensure_future(socket.emit_with_ack("question", 7))
    await asyncio.sleep(0)
    assert seen == [("early", "question"), ("late", "question", (7,))]
    ack_id = session.packets()[0].id
    session.receive(f"3{ack_id}[8]")
    assert await task == 8
    socket.off_any_outgoing()
    socket.emit("quiet")
    assert len(seen) == 2 and socket.listeners_any_outgoing() == []


async def test_on_any_outgoing_sees_the_broadcasts_that_reach_the_socket(sio, engine):
    sessions, sockets = [], []
    for _ in range(3):
        session, sid = engine.connect()
        sessions.append(session)
        sockets.append(sio.sockets[sid])
    a, b, c = sockets
    a.join(["r1", "r2"])
    b.join("r1")
    seen: dict = {"a": [], "c": []}
    a.on_any_outgoing(lambda event, *args: seen["a"].append((event, *args)))
    c.on_any_outgoing(lambda event, *args: seen["c"].append((event, *args)))
    sio.emit("all", 1)
    sio.to("r1").emit("r1")
    sio.to("r2").to("r1").emit("r1 or r2")
    sio.to("r1").except_("r2").emit("r1 but not r2")
    sio.except_("r1").emit("not r1")
    b.broadcast.emit("from b")
    a.broadcast.emit("from a")  # never to the sender
    c.to(a.id).emit("to a by id")
    sio.of("/other").emit("another namespace")
    sio.timeout(5).emit("asked", ack=lambda err, answers: None)  # with acks: told as well
    assert seen["a"] == [
        ("all", 1),
        ("r1",),
        ("r1 or r2",),
        ("from b",),
        ("to a by id",),
        ("asked",),
    ]
    assert seen["c"] == [("all", 1), ("not r1",), ("from b",), ("from a",), ("asked",)]
    # still encoded once and sent as the same prepared frame to every target, listeners or not
    for session in sessions:
        assert session.prepared == len(session.take())


async def test_outgoing_listeners_are_forgotten_with_the_socket(sio, engine):
    nsp = sio.of("/")
    session, sid = engine.connect()
    socket = sio.sockets[sid]
    listener = socket.on_any_outgoing(lambda event, *args: None)
    socket.on_any_outgoing(listener)
    assert nsp._outgoing_sockets == {socket}
    socket.off_any_outgoing(listener)
    assert nsp._outgoing_sockets == {socket}  # one registration left
    socket.off_any_outgoing(listener)
    assert nsp._outgoing_sockets == set()
    socket.on_any_outgoing(listener)
    session.drop()
    assert nsp._outgoing_sockets == set()
    socket.on_any_outgoing(listener)  # on a disconnected socket: nothing to watch
    assert nsp._outgoing_sockets == set()


async def test_outgoing_listener_added_by_a_connection_middleware(sio, engine):
    seen = []
    sio.use(lambda socket: socket.on_any_outgoing(lambda *data: seen.append(data)))
    _session, sid = engine.connect()
    assert sio.of("/")._outgoing_sockets == {sio.sockets[sid]}
    sio.emit("news", "n")
    assert seen == [("news", "n")]


async def test_outgoing_listener_refused_socket_is_not_kept(sio, engine):
    def refuse(socket):
        socket.on_any_outgoing(lambda *data: None)
        raise fastsio.ConnectionRefused("no")

    sio.use(refuse)
    session = engine.open()
    session.receive("0")
    assert session.packets()[0].type == 4  # CONNECT_ERROR
    assert sio.of("/")._outgoing_sockets == set()


async def test_outgoing_listener_errors_are_logged_and_the_packet_still_goes(sio, engine, caplog):
    session, sid = engine.connect()
    socket = sio.sockets[sid]
    later = []

    def broken(event, *args):
        raise RuntimeError("listener bug")

    socket.on_any_outgoing(broken)
    socket.on_any_outgoing(lambda event, *args: later.append(event))
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        socket.emit("one")
        sio.emit("two")
    errors = [r for r in caplog.records if r.exc_info and "listener bug" in str(r.exc_info[1])]
    assert len(errors) == 2
    assert later == ["one", "two"]
    assert session.events() == [["one"], ["two"]]


async def test_async_outgoing_listener(sio, engine):
    seen = []
    _session, sid = engine.connect()

    async def listener(event, *args):
        await asyncio.sleep(0)
        seen.append(event)

    sio.sockets[sid].on_any_outgoing(listener)
    sio.sockets[sid].emit("x")
    sio.emit("y")
    await asyncio.sleep(0.01)
    assert sorted(seen) == ["x", "y"]


async def test_outgoing_listener_with_connection_state_recovery_told_once():
    sio = fastsio.Server(connection_state_recovery=True)
    engine = FakeEngine(sio)
    session, sid = engine.connect()
    socket = sio.sockets[sid]
    seen = []
    socket.on_any_outgoing(lambda *data: seen.append(data))
    socket.emit("logged", 1)  # through the adapter, as a broadcast to its own room
    sio.emit("broadcast")
    # as Node's: the listeners see the offset the packet carries as its last argument
    assert [data[:-1] for data in seen] == [("logged", 1), ("broadcast",)]
    assert [data[-1] for data in seen] == [event[-1] for event in session.events()]


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
