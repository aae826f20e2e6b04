"""Per-packet middleware: ``socket.use(fn)`` and the namespace-wide ``use_packets``; what they
may return (the arguments, changed or not; ``fastsio.DROP``), errors as the socket's "error"
event, async ones, order, and the guide's examples (per-event authorisation, rate limiting)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

import fastsio

from .fakes import FakeEngine


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
def engine(sio):
    return FakeEngine(sio)


def connected(sio, engine, nsp="/"):
    session, sid = engine.connect(nsp)
    return session, sio.of(nsp).sockets[sid]


async def test_without_middleware_an_event_takes_the_plain_path(sio, engine):
    _session, socket = connected(sio, engine)
    assert socket._hooked is False  # _on_event's one test: nothing else runs
    socket.on_any(lambda *data: None)
    assert socket._hooked is True
    socket.off_any()
    assert socket._hooked is False


async def test_middleware_passes_changes_or_replaces_the_arguments(sio, engine):
    got = []
    sio.on("ev", lambda socket, *args: got.append(args) or "ack")
    session, socket = connected(sio, engine)
    seen = []

    @socket.use
    def record(event, args):
        seen.append((event, list(args)))

    socket.use(lambda event, args: args.append("in place") if event == "ev" else None)
    socket.use(lambda event, args: ("replaced", *args) if args and args[0] == 2 else None)
    session.receive('21["ev",1]', '22["ev",2,{"k":[3]}]')
    assert seen == [("ev", [1]), ("ev", [2, {"k": [3]}])]
    assert got == [(1, "in place"), ("replaced", 2, {"k": [3]}, "in place")]
    assert session.take() == ['31["ack"]', '32["ack"]']  # acks answered as usual


async def test_drop_stops_the_event_silently(sio, engine, caplog):
    got, any_seen = [], []
    sio.on("ev", lambda socket, x: got.append(x) or "ack")
    session, socket = connected(sio, engine)
    socket.on_any(lambda event, *args: any_seen.append(args))
    socket.use(lambda event, args: fastsio.DROP if args[0] == "drop" else None)
    with caplog.at_level(logging.DEBUG, logger="fastsio"):
        session.receive('21["ev","drop"]', '22["ev","keep"]')
    assert got == ["keep"]
    assert session.take() == ['32["ack"]']  # the dropped event's ack never comes, as in Node
    assert any_seen == [("drop",), ("keep",)]  # catch-all listeners run first, as in Node
    assert "drop" not in caplog.text
    assert repr(fastsio.DROP) == "fastsio.DROP"


async def test_an_exception_goes_to_the_error_handlers(sio, engine):
    got, errors = [], []
    sio.on("ev", lambda socket, x: got.append(x) or "ack")
    sio.on("error", lambda socket, err: errors.append(("namespace", socket.id, str(err))))
    session, socket = connected(sio, engine)
    socket.on("error", lambda err: errors.append(("socket", type(err).__name__, str(err))))

    @socket.use
    def refuse(event, args):
        if args[0] == "bad":
            raise PermissionError("unauthorized event")

    session.receive('21["ev","bad"]', '22["ev","good"]')
    assert got == ["good"]
    assert errors == [
        ("namespace", socket.id, "unauthorized event"),
        ("socket", "PermissionError", "unauthorized event"),
    ]
    assert session.take() == ['32["ack"]'] and not session.closed


async def test_an_exception_without_error_handler_is_logged(sio, engine, caplog):
    sio.on("ev", lambda socket: pytest.fail("must not run"))
    session, socket = connected(sio, engine)
    socket.use(lambda event, args: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="fastsio"):
        session.receive('2["ev"]')
    assert "packet middleware" in caplog.text and "ZeroDivisionError" in caplog.text
    assert not session.closed


async def test_a_wrong_return_value_is_an_error(sio, engine):
    errors = []
    session, socket = connected(sio, engine)
    socket.on("error", errors.append)
    socket.on("ev", lambda: pytest.fail("must not run"))
    socket.use(lambda event, args: "not arguments")
    session.receive('2["ev"]')
    (error,) = errors
    assert isinstance(error, TypeError) and "fastsio.DROP, not str" in str(error)


async def test_async_middleware_may_wait(sio, engine):
    got = []
    sio.on("ev", lambda socket, *args: got.append(args) or "ack")
    session, socket = connected(sio, engine)
    release = asyncio.Event()

    @socket.use
    async def lookup(event, args):
        if args[0] == "slow":
            await release.wait()
        return [*args, "checked"]

    session.receive('21["ev","slow"]')
    assert got == [] and session.take() == []
    session.receive('22["ev","quick"]')  # a middleware that does not wait: at once
    assert got == [("quick", "checked")]
    release.set()
    await asyncio.sleep(0.01)
    assert got == [("quick", "checked"), ("slow", "checked")]
    assert session.take() == ['32["ack"]', '31["ack"]']


async def test_an_event_is_not_handled_after_a_disconnect_during_its_middleware(sio, engine):
    release = asyncio.Event()
    session, socket = connected(sio, engine)
    socket.on("ev", lambda: pytest.fail("must not run"))

    async def wait(event, args):
        await release.wait()

    socket.use(wait)
    session.receive('2["ev"]')
    session.drop()
    release.set()
    await asyncio.sleep(0.01)
    assert not socket.connected


async def test_async_middleware_exception_goes_to_the_error_handlers(sio, engine):
    errors = []
    session, socket = connected(sio, engine)
    socket.on("error", errors.append)

    async def deny(event, args):
        await asyncio.sleep(0)
        raise ValueError(f"no {event}")

    socket.use(deny)
    session.receive('2["ev"]')
    await asyncio.sleep(0.01)
    assert [str(e) for e in errors] == ["no ev"]


async def test_namespace_middleware_first_then_the_sockets_in_order(sio, engine):
    order, sockets = [], []
    sio.on("ev", lambda socket: order.append("handler"))
    session, socket = connected(sio, engine)
    assert socket._hooked is False

    @sio.use_packets  # also for sockets connected already
    def first(sock, event, args):
        order.append("namespace 1")
        sockets.append(sock)

    socket.use(lambda event, args: order.append("socket 1"))
    sio.use_packets(lambda sock, event, args: order.append("namespace 2"))
    socket.use(lambda event, args: order.append("socket 2"))
    session.receive('2["ev"]')
    assert order == ["namespace 1", "namespace 2", "socket 1", "socket 2", "handler"]
    other_session, other = connected(sio, engine)  # connected later: has them too
    assert other._hooked is True
    order.clear()
    other_session.receive('2["ev"]')
    assert order == ["namespace 1", "namespace 2", "handler"]
    assert sockets == [socket, other]
    with pytest.raises(TypeError):
        sio.use_packets(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        socket.use(None)  # type: ignore[arg-type]


async def test_namespace_middleware_of_a_dynamic_namespace(sio, engine):
    workspaces = sio.of(re.compile(r"^/ws-\d+$"))
    seen = []
    session, _socket = connected(sio, engine, "/ws-1")
    workspaces.use_packets(lambda sock, event, args: seen.append((sock.nsp.name, event)))
    session.receive('2/ws-1,["ev"]')
    later_session, _ = connected(sio, engine, "/ws-2")
    later_session.receive('2/ws-2,["ev2"]')
    assert seen == [("/ws-1", "ev"), ("/ws-2", "ev2")]


async def test_binary_arguments_reach_the_middleware(sio, engine):
    seen = []
    sio.on("upload", lambda socket, name, blob: "ok")
    session, socket = connected(sio, engine)
    socket.use(lambda event, args: seen.append(args[1]))
    session.receive('51-1["upload","f",{"_placeholder":true,"num":0}]', b"\x00\xff")
    assert seen == [b"\x00\xff"]
    assert session.take() == ['31["ok"]']


# -- the guide's examples ------------------------------------------------------------------------


async def test_guide_per_event_authorisation(sio, engine):
    """socket.use(([event], next) => isUnauthorized(event) ? next(new Error(...)) : next()),
    and socket.on("error") disconnecting the socket."""
    admin_only = {"delete everything"}
    done = []

    @sio.on("connection")
    def on_connection(socket):
        @socket.use
        def authorise(event, args):
            if event in admin_only and socket.data.get("role") != "admin":
                raise PermissionError("unauthorized event")

        @socket.on("error")
        def on_error(err):
            if str(err) == "unauthorized event":
                socket.disconnect()

    sio.on("delete everything", lambda socket: done.append(socket.id))
    sio.on("read", lambda socket: "data")
    user_session, user = connected(sio, engine)
    admin_session, admin = connected(sio, engine)
    admin.data["role"] = "admin"
    user_session.receive('21["read"]')
    assert user_session.take() == ['31["data"]']
    admin_session.receive('2["delete everything"]')
    user_session.receive('2["delete everything"]')
    assert done == [admin.id]
    assert not user.connected and admin.connected
    assert user_session.take() == ["1"]  # DISCONNECT: "io server disconnect" for the client


async def test_guide_rate_limiting(sio, engine):
    """At most 3 events per second per socket; the rest are dropped (and counted)."""
    now = [100.0]
    handled = []

    @sio.use_packets
    def rate_limit(socket, event, args):
        window = socket.data.setdefault("window", [now[0], 0])
        if now[0] - window[0] >= 1.0:
            window[:] = [now[0], 0]
        window[1] += 1
        if window[1] > 3:
            socket.data["dropped"] = socket.data.get("dropped", 0) + 1
            return fastsio.DROP
        return None

    sio.on("msg", lambda socket, n: handled.append((socket.id, n)))
    session_a, a = connected(sio, engine)
    session_b, b = connected(sio, engine)
    for n in range(5):
        session_a.receive(f'2["msg",{n}]')
    session_b.receive('2["msg",0]')
    now[0] += 1.5
    session_a.receive('2["msg",5]')
    assert handled == [(a.id, 0), (a.id, 1), (a.id, 2), (b.id, 0), (a.id, 5)]
    assert a.data["dropped"] == 2 and "dropped" not in b.data


async def test_a_clients_own_error_event_reaches_the_same_handlers(sio, engine):
    got = []
    sio.on("error", lambda socket, *args: got.append(("namespace", *args)))
    session, socket = connected(sio, engine)
    socket.on("error", lambda *args: got.append(("socket", *args)))
    session.receive('2["error","from the client"]')
    assert got == [("namespace", "from the client"), ("socket", "from the client")]
