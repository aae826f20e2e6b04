"""Rooms and broadcasting, with three fake clients: who gets what."""

from __future__ import annotations

import asyncio

import pytest

import fastsio
from fastsio.adapter import BroadcastOptions, InMemoryAdapter

from .fakes import FakeEngine


class Three:
    """Three clients a, b, c connected to "/": a in rooms r1, r2; b in r1; c in none."""

    def __init__(self, sio: fastsio.Server) -> None:
        engine = FakeEngine(sio)
        self.sessions = {}
        self.sockets = {}
        for name in "abc":
            session, sid = engine.connect()
            self.sessions[name] = session
            self.sockets[name] = sio.sockets[sid]
        self.sockets["a"].join(["r1", "r2"])
        self.sockets["b"].join("r1")

    def received(self) -> dict:
        """Which clients got what since the last call: {name: [event payloads]}."""
        return {name: session.events() for name, session in self.sessions.items()}

    def who(self) -> str:
        return "".join(name for name, events in self.received().items() if events)


@pytest.fixture
def sio():
    return fastsio.Server()


@pytest.fixture
async def three(sio):
    return Three(sio)


async def test_server_emit_reaches_everyone_encoded_once(sio, three):
    sio.emit("news", {"n": 1})
    for session in three.sessions.values():
        assert session.take() == ['2["news",{"n":1}]']
        assert session.prepared == 1  # through send_prepared (the broadcast fan-out)


async def test_to_room(sio, three):
    sio.to("r1").emit("x")
    assert three.who() == "ab"
    sio.in_("r2").emit("x")
    assert three.who() == "a"
    sio.to("nobody").emit("x")
    assert three.who() == ""


async def test_to_several_rooms_is_a_union_without_duplicates(sio, three):
    sio.to("r1").to("r2").emit("x", 1)
    got = three.received()
    assert got == {"a": [["x", 1]], "b": [["x", 1]], "c": []}
    sio.to(["r1", "r2"]).emit("y")
    assert three.who() == "ab"


async def test_to_a_socket_id(sio, three):
    sio.to(three.sockets["c"].id).emit("private")
    assert three.who() == "c"


async def test_except(sio, three):
    sio.except_("r2").emit("x")
    assert three.who() == "bc"
    sio.to("r1").except_("r2").emit("x")
    assert three.who() == "b"
    sio.except_(["r1", "r2"]).emit("x")
    assert three.who() == "c"


async def test_socket_broadcast_excludes_sender(sio, three):
    three.sockets["a"].broadcast.emit("x")
    assert three.who() == "bc"


async def test_socket_to_room_excludes_sender(sio, three):
    three.sockets["a"].to("r1").emit("x")
    assert three.who() == "b"
    three.sockets["c"].to("r1").emit("x")
    assert three.who() == "ab"
    three.sockets["a"].except_("r1").emit("x")
    assert three.who() == "c"


async def test_operators_are_immutable(sio, three):
    base = sio.to("r2")
    wider = base.to("r1")
    base.emit("x")
    assert three.who() == "a"
    wider.emit("x")
    assert three.who() == "ab"
    op = three.sockets["a"].broadcast
    op.except_("r1")
    op.emit("x")
    assert three.who() == "bc"


async def test_emit_in_handler_to_room(sio, three):
    @sio.on("say")
    def say(socket, room, text):
        socket.to(room).emit("said", text)

    three.sessions["b"].receive('2["say","r1","hello"]')
    assert three.received() == {"a": [["said", "hello"]], "b": [], "c": []}


async def test_join_leave_rooms(sio, three):
    a = three.sockets["a"]
    assert a.rooms == {a.id, "r1", "r2"}
    a.leave("r2")
    assert a.rooms == {a.id, "r1"}
    a.leave("not joined")
    assert "r2" not in sio.of("/").adapter.rooms


async def test_rooms_are_left_on_disconnect(sio, three):
    adapter = sio.of("/").adapter
    a = three.sockets["a"]
    three.sessions["a"].drop()
    assert a.id not in adapter.sids
    assert "r2" not in adapter.rooms
    assert adapter.rooms["r1"] == {three.sockets["b"].id}
    assert a.rooms == set()


async def test_binary_broadcast_frames_built_once(sio, three):
    sio.to("r1").emit("blob", b"\x01\x02")
    for name in "ab":
        text, attachment = three.sessions[name].take()
        assert text == '51-["blob",{"_placeholder":true,"num":0}]'
        assert attachment == b"\x01\x02"
        assert three.sessions[name].prepared == 2
    assert three.sessions["c"].take() == []


async def test_namespace_broadcast_only_reaches_namespace(sio, three):
    sio.of("/admin")
    engine = FakeEngine(sio)
    admin_session, _ = engine.connect("/admin")
    sio.of("/admin").emit("x")
    assert admin_session.take() == ['2/admin,["x"]']
    assert three.who() == ""
    sio.emit("y")
    assert admin_session.take() == []
    assert three.who() == "abc"


async def test_same_client_in_two_namespaces(sio, three):
    sio.of("/admin")
    session = three.sessions["a"]
    session.receive("0/admin,")
    session.take()
    sio.of("/admin").emit("x")
    assert session.take() == ['2/admin,["x"]']


async def test_sockets_join_and_leave(sio, three):
    sio.to("r1").sockets_join("vip")
    sio.to("vip").emit("x")
    assert three.who() == "ab"
    sio.sockets_join(["all"])
    sio.to("all").emit("x")
    assert three.who() == "abc"
    sio.except_("r2").sockets_leave("all")
    sio.to("all").emit("x")
    assert three.who() == "a"
    sio.sockets_leave("vip")
    assert "vip" not in sio.of("/").adapter.rooms


async def test_disconnect_sockets(sio, three):
    reasons = []
    sio.on("disconnect", lambda socket, reason: reasons.append(reason))
    sio.to("r2").disconnect_sockets()
    assert three.sessions["a"].take() == ["1"]
    assert not three.sessions["a"].closed
    assert set(sio.sockets.values()) == {three.sockets["b"], three.sockets["c"]}
    sio.disconnect_sockets(close=True)
    assert three.sessions["b"].closed and three.sessions["c"].closed
    assert sio.sockets == {}
    assert reasons == ["server namespace disconnect"] * 3


async def test_fetch_sockets(sio, three):
    everyone = await sio.fetch_sockets()
    assert set(everyone) == set(three.sockets.values())
    in_r1 = await sio.in_("r1").fetch_sockets()
    assert set(in_r1) == {three.sockets["a"], three.sockets["b"]}
    assert await sio.to("r1").except_("r2").fetch_sockets() == [three.sockets["b"]]
    assert await sio.of("/empty").fetch_sockets() == []


async def test_volatile_skips_sessions_not_writable(sio, three):
    three.sessions["b"].writable = False
    three.sessions["c"].buffered = 10_000_000
    sio.volatile.emit("tick")
    assert three.who() == "a"
    sio.emit("tick")
    assert three.who() == "abc"
    three.sockets["b"].volatile.emit("direct")
    assert three.sessions["b"].take() == []
    three.sockets["a"].volatile.emit("direct")
    assert three.sessions["a"].take() == ['2["direct"]']


async def test_local_flag_is_accepted(sio, three):
    sio.local.to("r1").emit("x")
    assert three.who() == "ab"


async def test_broadcast_with_ack_all_respond(sio, three):
    results = []
    sio.timeout(1).emit("poll", "q", ack=lambda err, responses: results.append((err, responses)))
    packets = {name: s.packets() for name, s in three.sessions.items()}
    ids = {p[0].id for p in packets.values()}
    assert len(ids) == 1  # one packet, one id, for all targets
    (ack_id,) = ids
    three.sessions["a"].receive(f'3{ack_id}["A"]')
    three.sessions["b"].receive(f"3{ack_id}[]")
    assert results == []
    three.sessions["c"].receive(f"3{ack_id}[1,2]")
    assert len(results) == 1
    err, responses = results[0]
    assert err is None
    assert sorted(map(repr, responses)) == sorted(map(repr, ["A", None, (1, 2)]))


async def test_broadcast_with_ack_timeout(sio, three):
    results = []
    sio.to("r1").timeout(0.02).emit("poll", ack=lambda err, rs: results.append((err, rs)))
    ack_id = three.sessions["a"].packets()[0].id
    three.sessions["a"].receive(f'3{ack_id}["yes"]')
    await asyncio.sleep(0.05)
    ((err, responses),) = results
    assert isinstance(err, fastsio.AckTimeoutError)
    assert responses == ["yes"]
    assert not three.sockets["b"]._acks  # the pending ack was forgotten


async def test_broadcast_emit_with_ack(sio, three):
    task = asyncio.ensure_future(sio.to("r2").timeout(1).emit_with_ack("q"))
    await asyncio.sleep(0)
    ack_id = three.sessions["a"].packets()[0].id
    three.sessions["a"].receive(f"3{ack_id}[42]")
    assert await task == [42]
    with pytest.raises(fastsio.AckTimeoutError) as info:
        await sio.timeout(0.02).emit_with_ack("q")
    assert info.value.responses == []


async def test_broadcast_with_ack_no_targets_and_disconnects(sio, three):
    assert await sio.to("nobody").timeout(1).emit_with_ack("q") == []
    task = asyncio.ensure_future(sio.to("r1").emit_with_ack("q"))  # no timeout
    await asyncio.sleep(0)
    ack_id = three.sessions["b"].packets()[0].id
    three.sessions["a"].drop()  # a will not answer: not waited for
    three.sessions["b"].receive(f'3{ack_id}["b"]')
    assert await asyncio.wait_for(task, 1) == ["b"]


async def test_socket_broadcast_with_ack_excludes_sender(sio, three):
    task = asyncio.ensure_future(three.sockets["a"].timeout(1).broadcast.emit_with_ack("q"))
    await asyncio.sleep(0)
    assert three.sessions["a"].take() == []
    for name in "bc":
        ack_id = three.sessions[name].packets()[0].id
        three.sessions[name].receive(f'3{ack_id}["{name}"]')
    assert sorted(await task) == ["b", "c"]


async def test_adapter_bookkeeping_directly():
    class Nsp:
        name = "/"

        def __init__(self) -> None:
            self.sockets: dict = {}

    adapter = InMemoryAdapter(Nsp())
    adapter.add_all("s1", ["s1", "x"])
    adapter.add_all("s2", {"s2", "x", "y"})
    assert adapter.rooms == {"s1": {"s1"}, "s2": {"s2"}, "x": {"s1", "s2"}, "y": {"s2"}}
    assert adapter.sids == {"s1": {"s1", "x"}, "s2": {"s2", "x", "y"}}
    assert adapter.socket_rooms("s2") == {"s2", "x", "y"}
    adapter.delete("s2", "y")
    assert "y" not in adapter.rooms
    adapter.del_all("s1")
    assert adapter.rooms == {"s2": {"s2"}, "x": {"s2"}}
    assert adapter.socket_rooms("s1") is None
    assert repr(BroadcastOptions(rooms=frozenset({"x"})))


async def test_number_rooms_and_iterables(sio, three):
    three.sockets["c"].join(7)
    sio.to(7).emit("x")
    assert three.who() == "c"
    three.sockets["b"].join(r for r in ("gen",))
    sio.to({"gen": 1}.keys()).emit("x")
    assert three.who() == "b"


async def test_rooms_joined_in_refused_middleware_are_forgotten(sio):
    @sio.use
    def join_then_refuse(socket):
        socket.join("lobby")
        raise fastsio.ConnectionRefused("no")

    session = FakeEngine(sio).open()
    session.receive("0")
    assert "lobby" not in sio.of("/").adapter.rooms
    assert sio.of("/").adapter.sids == {}


async def test_rooms_joined_in_middleware_are_kept_on_connect(sio):
    sio.use(lambda socket: socket.join("lobby"))
    _, sid = FakeEngine(sio).connect()
    assert sio.sockets[sid].rooms == {sid, "lobby"}


async def test_leave_all_keeps_the_own_room(sio, three):
    a, b = three.sockets["a"], three.sockets["b"]
    left = []
    adapter = sio.of("/").adapter
    adapter.room_listener = lambda kind, room, sid: left.append((kind, room, sid))
    a.leave_all()
    assert a.rooms == {a.id}
    assert sorted(left) == [("leave", "r1", a.id), ("leave", "r2", a.id)]
    assert "r2" not in adapter.rooms and set(adapter.rooms["r1"]) == {b.id}
    sio.to("r1").emit("x")
    assert three.who() == "b"
    sio.to(a.id).emit("private")  # still reachable by its id, as every socket
    assert three.received()["a"] == [["private"]]
    a.leave_all()  # nothing left to leave: no error, no notification
    assert a.rooms == {a.id} and len(left) == 2


async def test_leave_all_after_disconnect_is_a_no_op(sio, three):
    a = three.sockets["a"]
    three.sessions["a"].drop()
    a.leave_all()
    assert a.rooms == set()


async def test_adapter_rooms_and_sids_are_read_only_live_views(sio, three):
    adapter = sio.of("/").adapter
    a, b, c = (three.sockets[name] for name in "abc")
    rooms, sids = adapter.rooms, adapter.sids
    assert dict(rooms) == {
        a.id: {a.id},
        b.id: {b.id},
        c.id: {c.id},
        "r1": {a.id, b.id},
        "r2": {a.id},
    }
    assert sids[a.id] == {a.id, "r1", "r2"} and len(sids) == 3
    assert "r1" in rooms and "nobody" not in rooms and rooms.get("nobody") is None
    assert a.id in rooms["r1"] and len(rooms["r1"]) == 2
    assert rooms["r1"] | {"x"} == {a.id, b.id, "x"} and isinstance(rooms["r1"] & {a.id}, set)
    # live: a later join shows in views taken before
    members = rooms["r1"]
    c.join("r1")
    assert c.id in members and "r1" in sids[c.id]
    # and not writable, neither the index nor its sets
    with pytest.raises(TypeError):
        rooms["r3"] = {a.id}  # type: ignore[index]
    with pytest.raises(TypeError):
        del sids[a.id]  # type: ignore[attr-defined]
    for forbidden in ("add", "discard", "remove", "clear", "update", "pop"):
        assert not hasattr(members, forbidden), forbidden
    for forbidden in ("pop", "clear", "update", "setdefault"):
        assert not hasattr(rooms, forbidden), forbidden
    with pytest.raises(AttributeError):
        adapter.rooms = {}  # the property has no setter
    assert set(adapter.rooms["r1"]) == {a.id, b.id, c.id}


async def test_fetch_sockets_of_a_room_as_the_guides_clients(sio, three):
    # io.of("/").in("r1").clients((err, ids) => ...) of socket.io 2 is fetch_sockets now
    ids = sorted(s.id for s in await sio.in_("r1").fetch_sockets())
    assert ids == sorted(three.sockets[name].id for name in "ab")
    assert sorted(s.id for s in await sio.of("/").in_("r2").fetch_sockets()) == [
        three.sockets["a"].id
    ]
