"""sio.instrument(): the Admin UI's protocol, spoken to the official socket.io-client as the UI
(@socket.io/admin-ui 0.5) speaks it."""

from __future__ import annotations

import asyncio
import time

import bcrypt
import pytest

import fastsio.admin
from tests.conftest import server_url

pytestmark = pytest.mark.interop

PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
CREDENTIALS = {"username": "admin", "password": PASSWORD}


@pytest.fixture
async def instrumented(server_factory):
    async def make(**options):
        options.setdefault("auth", {"username": "admin", "password": HASH})
        sio = await server_factory()

        @sio.on("join")
        def join(socket, room):
            socket.join(room)
            return True

        sio.instrument(**options)
        return sio

    return make


@pytest.fixture
def quick_stats(monkeypatch):
    """server_stats every 0.2 s instead of 2 s."""
    monkeypatch.setattr(fastsio.admin, "STATS_INTERVAL", 0.2)


async def admin_client(node, sio, auth=CREDENTIALS, name="admin"):
    client = await node(server_url(sio))
    await client.connect(name, nsp="/admin", opts={"auth": auth})
    return client


async def seen_about(admin, event: str, nsp: str = "/") -> dict:
    """The next ``event`` the admin client got about namespace ``nsp`` (the admin namespace's
    own sockets are reported too, as Node does)."""
    return await admin.expect_any(
        lambda m: m.get("ev") == "event" and m.get("event") == event and m["args"][0] == nsp,
        what=f"{event} about {nsp}",
    )


async def test_the_admin_sees_sockets_events_rooms_and_can_disconnect(instrumented, node):
    sio = await instrumented()
    user = await node(server_url(sio))
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]

    admin = await admin_client(node, sio)
    await admin.expect("connect", name="admin")
    session = await admin.expect("event", name="admin", event="session")
    assert isinstance(session["args"][0], str) and len(session["args"][0]) == 16
    config = await admin.expect("event", name="admin", event="config")
    features = config["args"][0]["supportedFeatures"]
    assert {"EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "ALL_EVENTS"} <= set(features)
    everyone = (await admin.expect("event", name="admin", event="all_sockets"))["args"][0]
    mine = next(s for s in everyone if s["id"] == user_id)
    assert (
        mine["nsp"] == "/"
        and mine["rooms"] == [user_id]
        and mine["transport"] in ("polling", "websocket")
    )
    assert mine["handshake"]["query"]["EIO"] == "4"
    stats = (await admin.expect("event", name="admin", event="server_stats", timeout=5))["args"][0]
    assert stats["pid"] > 0 and stats["clientsCount"] >= 2
    assert {"name": "/", "socketsCount": 1} in stats["namespaces"]

    reply = await user.emit_with_ack("u", "join", "lobby")
    assert reply["args"] == [True]
    joined = await seen_about(admin, "room_joined")
    assert joined["args"][:3] == ["/", "lobby", user_id]
    received = await admin.expect("event", name="admin", event="event_received")
    assert received["args"][:3] == ["/", user_id, ["join", "lobby"]]
    assert received["args"][3].endswith("Z")

    await admin.emit("admin", "emit", "/", "lobby", "hello from the ui", 1)
    ev = await user.expect("event", name="u", event="hello from the ui")
    assert ev["args"] == [1]
    await admin.emit("admin", "join", "/", "vip", user_id)
    await seen_about(admin, "room_joined")
    assert "vip" in sio.sockets[user_id].rooms
    await admin.emit("admin", "_disconnect", "/", False, user_id)
    await user.expect("disconnect", name="u")
    gone = await seen_about(admin, "socket_disconnected")
    assert gone["args"][:3] == ["/", user_id, "server namespace disconnect"]
    late = await node(server_url(sio))
    await late.connect("late")
    late_id = (await late.expect("connect", name="late"))["id"]
    connected = await admin.expect_any(
        lambda m: m.get("event") == "socket_connected" and m["args"][0]["nsp"] == "/"
    )
    assert connected["args"][0]["id"] == late_id


async def traffic_seen(admin, wanted: dict, timeout: float = 10.0) -> tuple[dict, dict]:
    """The aggregated events of the server_stats ``admin`` gets, summed by type, until
    every type has reached its ``wanted`` count; and the last stats."""
    totals = dict.fromkeys(wanted, 0)
    deadline = time.monotonic() + timeout
    while any(totals[kind] < count for kind, count in wanted.items()):
        left = max(0.1, deadline - time.monotonic())
        stats = await admin.expect("event", name="admin", event="server_stats", timeout=left)
        for entry in stats["args"][0]["aggregatedEvents"]:
            if entry["type"] in totals:
                assert entry["timestamp"] % 1000 == 0 and "subType" not in entry, entry
                totals[entry["type"]] += entry["count"]
            elif entry["type"] == "rawDisconnection":
                assert isinstance(entry["subType"], str), entry  # the reason
    return totals, stats["args"][0]


async def test_server_stats_count_the_traffic_of_both_transports(instrumented, node, quick_stats):
    """The dashboard's bytes chart: what WebSocket and polling clients send and are sent is
    counted, once (production mode counts it too)."""
    sio = await instrumented(mode="production")

    @sio.on("echo")
    def echo(socket, data):
        socket.emit("echo", data)

    admin = await admin_client(node, sio)
    await admin.expect("connect", name="admin")
    payload = "x" * 20_000
    for transports in (["websocket"], ["polling"]):
        user = await node(server_url(sio), args={"transports": transports})
        await user.connect("u")
        await user.expect("connect", name="u")
        for _ in range(5):
            await user.emit("u", "echo", payload)
        for _ in range(5):
            await user.expect("event", name="u", event="echo")
    wanted = {"bytesIn": 200_000, "bytesOut": 200_000, "packetsIn": 10, "packetsOut": 10}
    totals, stats = await traffic_seen(admin, wanted)
    # each transport's 100 KB counted once (not twice), plus the handshakes, pings and the stats
    assert totals["bytesIn"] < 210_000, totals
    assert stats["clientsCount"] == 3 and 1 <= stats["pollingClientsCount"] <= 2
    kinds = {entry["type"] for entry in stats["aggregatedEvents"]}
    assert not kinds - {"rawConnection", "rawDisconnection", *wanted}


async def test_events_sent_are_reported(instrumented, node):
    """Development mode: the events the server sends a socket (its own emits and the
    broadcasts that reach it), as Node's onAnyOutgoing; acks and the admin's own are not."""
    sio = await instrumented()

    @sio.on("hello")
    def hello(socket, n):
        socket.emit("direct", n)
        sio.emit("everyone", n)
        sio.to("lobby").emit("room", n, b"\x01")
        return "an ack, not an event"

    user = await node(server_url(sio))
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]
    assert (await user.emit_with_ack("u", "join", "lobby"))["args"] == [True]
    admin = await admin_client(node, sio)
    await admin.expect("event", name="admin", event="all_sockets")
    await user.emit_with_ack("u", "hello", 7)
    sent = [(await seen_about(admin, "event_sent"))["args"] for _ in range(3)]
    assert [args[:3] for args in sent] == [
        ["/", user_id, ["direct", 7]],
        ["/", user_id, ["everyone", 7]],
        ["/", user_id, ["room", 7, {"$buffer": "AQ=="}]],
    ]
    assert all(args[3].endswith("Z") for args in sent)
    await user.expect("event", name="u", event="room")
    await asyncio.sleep(0.2)
    everything = admin.seen("event", name="admin", event="event_sent")
    assert len(everything) == 3, everything


async def test_upgrades_and_data_changes_are_reported(instrumented, node):
    sio = await instrumented()

    @sio.on("name")
    def name(socket, value):
        socket.data["name"] = value
        socket.data.update(seen=1)
        return True

    admin = await admin_client(node, sio)
    await admin.expect("event", name="admin", event="all_sockets")
    user = await node(server_url(sio))  # polling, then the upgrade
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]

    def about_user(m, event="socket_updated"):
        return m.get("event") == event and m["args"][0]["id"] == user_id

    connected = await admin.expect_any(lambda m: about_user(m, "socket_connected"))
    assert connected["args"][0]["transport"] == "polling"

    upgraded = await admin.expect_any(about_user)
    assert upgraded["args"][0] == {"id": user_id, "nsp": "/", "transport": "websocket"}
    assert (await user.emit_with_ack("u", "name", "ada"))["args"] == [True]
    first = await admin.expect_any(about_user)
    then = await admin.expect_any(about_user)
    assert first["args"][0] == {"id": user_id, "nsp": "/", "data": {"name": "ada"}}
    assert then["args"][0]["data"] == {"name": "ada", "seen": 1}
    assert sio.sockets[user_id].data == {"name": "ada", "seen": 1}


async def test_nothing_is_reported_when_no_admin_could_see_it(instrumented, node, monkeypatch):
    """One process, no admin connected: development mode emits nothing (nobody would get
    it); once an admin is there, everything is."""
    sio = await instrumented()
    reports: list = []
    admin_nsp = sio.of("/admin")
    emit = admin_nsp.emit
    monkeypatch.setattr(
        admin_nsp, "emit", lambda event, *args: reports.append(event) or emit(event, *args)
    )
    user = await node(server_url(sio))
    await user.connect("u")
    await user.expect("connect", name="u")
    assert (await user.emit_with_ack("u", "join", "lobby"))["args"] == [True]
    assert set(reports) <= {"server_stats"}
    admin = await admin_client(node, sio)
    await admin.expect("event", name="admin", event="all_sockets")
    await user.emit_with_ack("u", "join", "hall")
    await seen_about(admin, "room_joined")
    assert {"event_received", "room_joined"} <= set(reports)


async def test_event_listeners_are_attached_only_while_an_admin_is_connected(instrumented, node):
    """One process: a socket's catch-all listeners (which take it off the broadcast's
    encode-once path) are there while an admin is, before the app's own, and gone after."""
    sio = await instrumented()
    user = await node(server_url(sio))
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]
    socket = sio.sockets[user_id]
    socket.on_any(app_listener := lambda event, *args: None)
    assert socket.listeners_any() == [app_listener] and socket.listeners_any_outgoing() == []
    assert not sio.main_namespace._outgoing_sockets

    admin = await admin_client(node, sio)
    await admin.expect("event", name="admin", event="all_sockets")
    assert len(socket.listeners_any()) == 2 and socket.listeners_any()[1] is app_listener
    assert len(socket.listeners_any_outgoing()) == 1
    later = await node(server_url(sio))  # connects while the admin is there
    await later.connect("l")
    later_socket = sio.sockets[(await later.expect("connect", name="l"))["id"]]
    assert len(later_socket.listeners_any_outgoing()) == 1
    await user.emit_with_ack("u", "join", "lobby")
    assert (await seen_about(admin, "event_received"))["args"][1] == user_id

    await admin.call("disconnect", name="admin")
    for _ in range(100):
        if not sio.of("/admin").sockets:
            break
        await asyncio.sleep(0.02)
    assert socket.listeners_any() == [app_listener] and socket.listeners_any_outgoing() == []
    assert later_socket.listeners_any_outgoing() == []
    assert not sio.main_namespace._outgoing_sockets


async def test_credentials_and_sessions(instrumented, node):
    sio = await instrumented()
    wrong = await admin_client(node, sio, auth={"username": "admin", "password": "nope"}, name="w")
    error = await wrong.expect("connect_error", name="w")
    assert error["message"] == "invalid credentials"
    admin = await admin_client(node, sio)
    session = (await admin.expect("event", name="admin", event="session"))["args"][0]
    again = await admin_client(node, sio, auth={"sessionId": session}, name="again")
    await again.expect("connect", name="again")
    forged = await admin_client(node, sio, auth={"sessionId": "0" * 16}, name="forged")
    await forged.expect("connect_error", name="forged")


async def test_read_only_production_mode(instrumented, node, quick_stats):
    sio = await instrumented(mode="production", read_only=True)
    admin = await admin_client(node, sio)
    config = await admin.expect("event", name="admin", event="config")
    assert config["args"][0]["supportedFeatures"] == ["AGGREGATED_EVENTS"]
    user = await node(server_url(sio))  # after the admin: its connection is in a later stats
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]
    await traffic_seen(admin, {"rawConnection": 1, "packetsIn": 1})
    await admin.emit("admin", "_disconnect", "/", False, user_id)  # read-only: ignored
    await user.emit_with_ack("u", "join", "x")
    await asyncio.sleep(0.2)
    assert user_id in sio.sockets
    assert admin.seen("event", name="admin", event="all_sockets") == []
    assert admin.seen("event", name="admin", event="event_received") == []


def test_bad_auth_options_are_refused():
    import fastsio

    sio = fastsio.Server()
    with pytest.raises(ValueError, match="auth must be"):
        sio.instrument(auth={"user": "x"})
    with pytest.raises(ValueError, match="mode"):
        sio.instrument(auth=None, mode="staging")


async def test_instrumentation_costs_nothing_when_off(server, node):
    adapter = server.main_namespace.adapter
    assert adapter.room_listener is None
    assert "handle_engine_session" not in vars(server)
    assert server._services == []
    assert server.engine.meter is None
    user = await node(server_url(server), args={"transports": ["websocket"]})
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]
    socket = server.sockets[user_id]
    assert socket.client.session._listeners is None  # no "upgrade" listener
    assert socket.client.session._ws.meter is None
    assert type(socket.data) is dict
