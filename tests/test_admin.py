"""sio.instrument(): the Admin UI's protocol, spoken to the official socket.io-client as the UI
(@socket.io/admin-ui 0.5) speaks it."""

from __future__ import annotations

import asyncio

import bcrypt
import pytest

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


async def test_read_only_production_mode(instrumented, node):
    sio = await instrumented(mode="production", read_only=True)
    user = await node(server_url(sio))
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]
    admin = await admin_client(node, sio)
    config = await admin.expect("event", name="admin", event="config")
    assert config["args"][0]["supportedFeatures"] == ["AGGREGATED_EVENTS"]
    stats = (await admin.expect("event", name="admin", event="server_stats", timeout=5))["args"][0]
    kinds = {event["type"] for event in stats["aggregatedEvents"]}
    assert "rawConnection" in kinds
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


async def test_instrumentation_costs_nothing_when_off(server):
    adapter = server.main_namespace.adapter
    assert adapter.room_listener is None
    assert "handle_engine_session" not in vars(server)
    assert server._services == []
