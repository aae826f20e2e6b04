"""Handlers and what the client sends: extra arguments dropped (as JavaScript does), missing ones
a clear logged error, exceptions and unsendable acks logged with their event; python-socketio
habits answered with fastsio's way."""

from __future__ import annotations

import asyncio
import functools
import logging

import pytest

import fastsio
from fastsio import _arguments

from .fakes import FakeEngine

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
def engine(sio):
    return FakeEngine(sio)


# -- extra arguments: dropped, as a JavaScript listener ignores them ---------------------------


async def test_extra_arguments_are_dropped_and_the_ack_answered(sio, engine, caplog):
    got = []

    @sio.on("chat")
    def chat(socket, msg):
        got.append(msg)
        return "ok"

    session, _ = engine.connect()
    with caplog.at_level(logging.DEBUG, logger="fastsio"):
        session.receive('21["chat","hi",{"extra":1},3]', '2["chat","again"]')
    assert got == ["hi", "again"]
    assert session.take() == ['31["ok"]']
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_extra_arguments_to_async_handler_optional_parameters_and_no_parameters(
    sio, engine
):
    got = []

    @sio.on("a")
    async def a(socket, x, y="default"):
        await asyncio.sleep(0)
        got.append(("a", x, y))
        return x

    sio.on("b", lambda socket: got.append("b"))
    sio.on("c", lambda: got.append("c"))  # not even the socket: JavaScript would call it too
    session, _ = engine.connect()
    session.receive('21["a",1,2,3,4]', '2["b",1,2]', '2["c",1]')
    await asyncio.sleep(0.01)
    assert got == ["b", "c", ("a", 1, 2)]
    assert session.take() == ["31[1]"]


async def test_varargs_handler_gets_everything(sio, engine):
    got = []
    sio.on("v", lambda socket, *args: got.append(args))
    session, _ = engine.connect()
    session.receive('2["v",1,2,3]')
    assert got == [(1, 2, 3)]


async def test_socket_listener_and_ack_callback_get_extras_dropped(sio, engine):
    got = []

    session, sid = engine.connect()
    socket = sio.sockets[sid]
    socket.on("ping", lambda: got.append("ping"))
    socket.emit("question", ack=lambda answer: got.append(answer))
    (question,) = session.take()
    ack_id = question[1 : question.index("[")]
    session.receive('2["ping","extra"]', f'3{ack_id}["answer","extra"]')
    assert got == ["ping", "answer"]


async def test_type_error_inside_handler_is_not_retried(sio, engine, caplog):
    calls = []

    @sio.on("bad")
    def bad(socket, x):
        calls.append(x)
        return len(x)  # TypeError inside the handler: its own bug, logged, not "fitted"

    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('21["bad",5]')
    assert calls == [5]
    assert session.take() == []
    assert "exception in handler for event 'bad'" in caplog.text
    assert "has no len()" in caplog.text


async def test_decorated_handler_with_varargs_wrapper_is_called_as_is(sio, engine):
    got = []

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    @sio.on("w")
    @logged
    def w(socket, *args):
        got.append(args)

    session, _ = engine.connect()
    session.receive('2["w",1,2]')
    assert got == [(1, 2)]


# -- missing arguments: a clear error, logged with the event ------------------------------------


async def test_missing_arguments_are_logged_with_event_namespace_and_socket(sio, engine, caplog):
    calls = []

    @sio.of("/chat").on("move")
    def move(socket, x, y):
        calls.append((x, y))
        return "moved"

    session, sid = engine.connect("/chat")
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('2/chat,7["move",1]')
    assert calls == []
    assert session.take() == []  # no ack: the client's callback times out if it set one
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "'move'" in message and "namespace /chat" in message and sid in message
    assert "needs 3 positional argument(s) but was called with 2" in message
    assert "(socket, x, y)" in message and "the client sent 1 argument(s)" in message
    assert "ack is not answered" in message
    assert record.exc_info is None  # a binding error: the traceback would show only fastsio
    assert not session.closed  # the connection carries on
    session.receive('2/chat,["move",1,2]')
    assert calls == [(1, 2)]


# -- exceptions and acks ------------------------------------------------------------------------


async def test_exception_with_ack_logs_event_socket_and_that_no_ack_is_sent(sio, engine, caplog):
    @sio.on("boom")
    def boom(socket):
        raise RuntimeError("kaput")

    session, sid = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('24["boom"]')
    assert session.take() == []
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "'boom'" in message and "namespace /" in message and sid in message
    assert "ack is not answered" in message and record.exc_info is not None


async def test_unserialisable_ack_value_names_the_event(sio, engine, caplog):
    sio.on("obj", lambda socket: object())
    sio.on("fine", lambda socket: 1)
    session, sid = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('21["obj"]', '22["fine"]')
    assert session.take() == ["32[1]"]  # the connection goes on
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert "ack value of the handler for event 'obj' cannot be sent" in message
    assert sid in message and "completion callback" not in caplog.text


# -- python-socketio habits ---------------------------------------------------------------------


def test_python_socketio_connect_signature_is_refused_at_registration(sio):
    with pytest.raises(TypeError, match=r"connect\(socket\) here.*socket\.handshake"):

        @sio.event
        def connect(sid, environ, auth):
            pass

    with pytest.raises(TypeError, match="'disconnect' handler is called handler"):
        sio.on("disconnect", lambda sid, reason, extra: None)
    # what fits is accepted: optional parameters, python-socketio's disconnect(sid)
    sio.on("connection", lambda socket, environ=None: None)
    sio.on("disconnect", lambda sid: None)


async def test_python_socketio_disconnect_sid_only_is_called(sio, engine):
    reasons = []
    sio.on("disconnect", lambda socket: reasons.append(socket.id))
    session, sid = engine.connect()
    session.receive("41")
    assert reasons == [sid]


def test_python_socketio_emit_keywords_name_fastsio_way(sio):
    with pytest.raises(TypeError, match=r"sio\.to\('abc'\)\.emit"):
        sio.emit("ev", 1, to="abc")
    with pytest.raises(TypeError, match=r"sio\.of\('/chat'\)\.to\('r'\)\.except_\('me'\)\.emit"):
        sio.emit("ev", room="r", skip_sid="me", namespace="/chat")
    with pytest.raises(TypeError, match=r"ack=fn"):
        sio.emit("ev", callback=print)
    with pytest.raises(TypeError, match=r"sio\.to\('abc'\)\.emit"):
        sio.send("hi", to="abc")
    with pytest.raises(TypeError, match=r"sio\.of\('/chat'\)\.on\(event\)"):
        sio.on("ev", print, namespace="/chat")


def test_python_socketio_methods_name_fastsio_way(sio):
    with pytest.raises(AttributeError, match=r"python-socketio's; in fastsio: socket\.join"):
        sio.enter_room("sid", "room")
    with pytest.raises(AttributeError, match="socket.data"):
        sio.save_session("sid", {})
    with pytest.raises(AttributeError, match="emit_with_ack"):
        sio.call
    with pytest.raises(AttributeError, match="'Server' object has no attribute 'nothing_like'"):
        sio.nothing_like
    assert not hasattr(sio, "enter_room")


async def test_await_emit_in_handler_is_logged_with_the_hint(sio, engine, caplog):
    @sio.on("hello")
    async def hello(socket):
        await sio.emit("reply")  # python-socketio's habit

    session, _ = engine.connect()
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('2["hello"]')
        await asyncio.sleep(0.01)
    assert "emit() is not a coroutine in fastsio" in caplog.text
    assert "drop the await" in caplog.text


# -- the signature is read once, at registration ------------------------------------------------


def test_signature_read_at_registration_and_cached(sio, monkeypatch):
    def handler(socket, a):
        pass

    sio.on("x", handler)
    assert _arguments._cache[handler].maximum == 2
    calls = []
    real = _arguments._limits_of
    monkeypatch.setattr(_arguments, "_limits_of", lambda fn: calls.append(fn) or real(fn))
    assert _arguments.limits(handler).required == 2
    assert calls == []
