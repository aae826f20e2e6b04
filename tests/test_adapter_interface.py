"""The adapter interface on its own: BroadcastOptions on the wire, and the base Adapter."""

from __future__ import annotations

import pytest

import fastsio
from fastsio.adapter import EMPTY_OPTIONS, BroadcastOptions


def test_broadcast_options_round_trip_as_node_writes_them():
    opts = BroadcastOptions(frozenset({"a"}), frozenset({"b", 7}), volatile=True, timeout=1.5)
    wire = opts.to_wire()
    assert wire["rooms"] == ["a"]
    assert sorted(wire["except"], key=str) == [7, "b"]
    assert wire["flags"] == {"volatile": True, "timeout": 1500}
    assert BroadcastOptions.from_wire(wire) == opts
    assert BroadcastOptions.from_wire(None) is EMPTY_OPTIONS
    # Node's emitter writes the keys in another order and flags Node knows but fastsio ignores;
    # compress: false is Node's compress(false), honoured
    node = {"rooms": [], "flags": {"compress": False, "expectSingleResponse": True}, "except": []}
    assert BroadcastOptions.from_wire(node) == BroadcastOptions(compress=False)
    node["flags"]["compress"] = True
    assert BroadcastOptions.from_wire(node) == BroadcastOptions()
    uncompressed = BroadcastOptions(compress=False)
    assert uncompressed.to_wire()["flags"] == {"compress": False}
    assert BroadcastOptions.from_wire(uncompressed.to_wire()) == uncompressed


@pytest.mark.parametrize(
    "raw",
    [
        "rooms",
        {"rooms": "a"},
        {"rooms": [["nested"]]},
        {"rooms": [True]},
        {"except": {"a": 1}},
        {"flags": []},
        {"flags": {"timeout": "soon"}},
        {"flags": {"timeout": -1}},
    ],
)
def test_malformed_broadcast_options_are_refused(raw):
    with pytest.raises((TypeError, ValueError)):
        BroadcastOptions.from_wire(raw)


async def test_one_process_answers_server_side_acks_at_once(server):
    assert await server.main_namespace.adapter.server_count() == 1
    assert await server.server_side_emit_with_ack("anyone") == []
    assert server.server_side_emit("anyone", 1) is True
    with pytest.raises(ValueError):
        server.server_side_emit("disconnect")


async def test_server_events_reach_handlers_and_answer():
    sio = fastsio.Server()
    answers = []

    @sio.on_server_event("sum")
    async def add(a, b):
        return a + b

    sio.main_namespace.handle_server_event("sum", [2, 3], answers.append)
    sio.main_namespace.handle_server_event("unknown", [], answers.append)
    assert answers == [5, None]


def test_room_index_with_shared_own_room_sets_matches_a_plain_model():
    # a socket alone in its own room shares one set between _sids and _rooms: any sequence of
    # joins and leaves must leave the same index as two plain dicts of sets would
    import random

    from fastsio.adapter import InMemoryAdapter

    rng = random.Random(15)
    socket_ids = ["a", "b", "c", "d"]
    room_names = [*socket_ids, "x", "y"]
    for _ in range(300):
        adapter = InMemoryAdapter(nsp=None)
        rooms: dict = {}
        sids: dict = {}
        for _ in range(40):
            sid = rng.choice(socket_ids)
            op = rng.random()
            if op < 0.45:
                joined = [sid] if sid not in sids else rng.sample(room_names, rng.randint(0, 3))
                adapter.add_all(sid, joined)
                own = sids.setdefault(sid, set())
                for room in joined:
                    own.add(room)
                    rooms.setdefault(room, set()).add(sid)
            elif op < 0.75:
                room = rng.choice(room_names)
                adapter.delete(sid, room)
                sids.get(sid, set()).discard(room)
                if room in rooms:
                    rooms[room].discard(sid)
                    if not rooms[room]:
                        del rooms[room]
            else:
                held = adapter.socket_rooms(sid)
                before = set(held) if held is not None else None
                adapter.del_all(sid)
                assert (set(held) if held is not None else None) == before  # left as it was
                for room in sids.pop(sid, set()):
                    rooms[room].discard(sid)
                    if not rooms[room]:
                        del rooms[room]
            assert adapter._rooms == rooms and adapter._sids == sids
            for sid, own in adapter._sids.items():
                if adapter._rooms.get(sid) is own:
                    assert own == {sid}
