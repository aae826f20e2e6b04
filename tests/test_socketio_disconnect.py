"""Disconnecting both ways, reasons, the disconnect sequence, parse errors, server close."""

from __future__ import annotations

import asyncio

import pytest

import fastsio

from .fakes import FakeEngine


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
def engine(sio):
    return FakeEngine(sio)


def record_lifecycle(sio, nsp="/"):
    log = []
    namespace = sio.of(nsp)

    @namespace.on("disconnecting")
    def disconnecting(socket, reason):
        log.append(("disconnecting", reason, set(socket.rooms), socket.connected))

    @namespace.on("disconnect")
    def disconnect(socket, reason):
        log.append(("disconnect", reason, set(socket.rooms), socket.connected))

    return log


async def test_client_namespace_disconnect(sio, engine):
    log = record_lifecycle(sio)
    session, sid = engine.connect()
    sio.sockets[sid].join("room")
    session.receive("1")
    assert log == [
        ("disconnecting", "client namespace disconnect", {sid, "room"}, True),
        ("disconnect", "client namespace disconnect", set(), False),
    ]
    assert sio.sockets == {}
    assert not session.closed  # the session stays, it may connect again
    assert session.take() == []
    session.receive("0")
    assert session.packets()[0].type == 0


async def test_client_disconnect_of_one_namespace_keeps_the_others(sio, engine):
    sio.of("/admin")
    session, _ = engine.connect()
    engine.connect("/admin", session=session)
    session.receive("1/admin,")
    assert len(sio.sockets) == 1 and sio.of("/admin").sockets == {}


async def test_server_side_disconnect(sio, engine):
    log = record_lifecycle(sio)
    session, sid = engine.connect()
    socket = sio.sockets[sid]
    socket.disconnect()
    assert session.take() == ["1"]
    assert [entry[:2] for entry in log] == [
        ("disconnecting", "server namespace disconnect"),
        ("disconnect", "server namespace disconnect"),
    ]
    assert not socket.connected and not session.closed
    socket.disconnect()  # twice: nothing more
    assert session.take() == [] and len(log) == 2


async def test_server_side_disconnect_in_namespace(sio, engine):
    sio.of("/admin")
    session, sid = engine.connect("/admin")
    sio.of("/admin").sockets[sid].disconnect()
    assert session.take() == ["1/admin,"]


async def test_server_side_disconnect_close(sio, engine):
    sio.of("/admin")
    log = record_lifecycle(sio)
    session, sid = engine.connect()
    engine.connect("/admin", session=session)
    sio.sockets[sid].disconnect(close=True)
    assert sorted(session.take()) == ["1", "1/admin,"]
    assert session.closed
    assert [entry[:2] for entry in log] == [
        ("disconnecting", "server namespace disconnect"),
        ("disconnect", "server namespace disconnect"),
    ]
    assert sio.of("/admin").sockets == {}


@pytest.mark.parametrize("reason", ["transport close", "ping timeout", "transport error"])
async def test_engine_close_reason_reaches_every_socket(sio, engine, reason):
    sio.of("/admin")
    root_log = record_lifecycle(sio)
    admin_log = record_lifecycle(sio, "/admin")
    session, _ = engine.connect()
    engine.connect("/admin", session=session)
    session.drop(reason)
    assert [entry[:2] for entry in root_log] == [("disconnecting", reason), ("disconnect", reason)]
    assert [entry[:2] for entry in admin_log] == [("disconnecting", reason), ("disconnect", reason)]
    assert sio.sockets == {} and sio._clients == set()


async def test_disconnecting_handler_can_still_emit_to_rooms(sio, engine):
    other, other_sid = engine.connect()

    @sio.on("disconnecting")
    def bye(socket, reason):
        for room in socket.rooms:
            if room != socket.id:
                socket.to(room).emit("left", socket.id)

    session, sid = engine.connect()
    sio.sockets[sid].join("game")
    sio.sockets[other_sid].join("game")
    session.receive("1")
    assert other.events() == [["left", sid]]


async def test_async_disconnect_handler(sio, engine):
    done = []

    @sio.on("disconnect")
    async def gone(socket, reason):
        await asyncio.sleep(0)
        done.append(reason)

    session, _ = engine.connect()
    session.drop()
    await asyncio.sleep(0.01)
    assert done == ["transport close"]


async def test_parse_error_closes_only_that_client(sio, engine):
    log = record_lifecycle(sio)
    bad, _bad_sid = engine.connect()
    good, good_sid = engine.connect()
    bad.receive("2[not json")
    assert bad.closed and bad.close_reason == "parse error"
    assert [entry[:2] for entry in log] == [
        ("disconnecting", "parse error"),
        ("disconnect", "parse error"),
    ]
    assert not good.closed and list(sio.sockets) == [good_sid]
    sio.emit("still here")
    assert good.events() == [["still here"]]


@pytest.mark.parametrize(
    "garbage",
    ["", "9", "2", '2"just a string"', "2[]", "2[1]", "0[1]", "5[]", b"unexpected bytes"],
)
async def test_malformed_packets_are_parse_errors(sio, engine, garbage):
    session, _ = engine.connect()
    session.receive(garbage)
    assert session.closed and session.close_reason == "parse error"


async def test_text_while_attachments_pending_is_a_parse_error(sio, engine):
    session, _ = engine.connect()
    session.receive('51-["up",{"_placeholder":true,"num":0}]', '2["x"]')
    assert session.closed


async def test_parse_error_before_any_namespace(sio, engine):
    session = engine.open()
    session.receive("garbage")
    assert session.closed


async def test_disconnect_from_handler_sends_ack_first(sio, engine):
    @sio.on("leave")
    def leave(socket):
        socket.disconnect()
        return "bye"

    session, _ = engine.connect()
    session.receive('21["leave"]')
    # the ack of a disconnected socket is not sent (the client no longer listens)
    assert session.take() == ["1"]


async def test_server_close_disconnects_everyone(sio, engine):
    log = record_lifecycle(sio)
    s1, _ = engine.connect()
    s2, _ = engine.connect()
    await sio.close()
    assert s1.closed and s2.closed
    assert s1.close_reason == "server shutting down"
    assert [entry[:2] for entry in log] == [
        ("disconnecting", "server shutting down"),
        ("disconnect", "server shutting down"),
    ] * 2
    await sio.close()  # twice is fine


async def test_handlers_may_disconnect_other_sockets_during_broadcast_loop(sio, engine):
    sessions = [engine.connect()[0] for _ in range(3)]
    sio.disconnect_sockets()
    assert all(s.take() == ["1"] for s in sessions)
    assert sio.sockets == {}
