"""The Admin UI's protocol across two fastsio servers on Redis: one UI connection sees both."""

from __future__ import annotations

import pytest

from fastsio.redis import create_adapter
from tests.conftest import server_url

pytestmark = pytest.mark.interop


async def test_one_admin_connection_sees_every_server(server_factory, redis_url, redis_key, node):
    servers = []
    for server_id in ("a", "b"):
        sio = await server_factory(adapter=create_adapter(redis_url, key=redis_key))
        sio.instrument(auth=None, server_id=server_id)
        servers.append(sio)
    a, b = servers
    user = await node(server_url(b))
    await user.connect("u")
    user_id = (await user.expect("connect", name="u"))["id"]

    admin = await node(server_url(a))
    await admin.connect("admin", nsp="/admin")
    everyone = (await admin.expect("event", name="admin", event="all_sockets"))["args"][0]
    assert user_id in {s["id"] for s in everyone}  # a socket of server b, fetched through Redis
    seen = set()
    while seen != {"a", "b"}:
        stats = await admin.expect("event", name="admin", event="server_stats", timeout=6)
        seen.add(stats["args"][0]["serverId"])
    await admin.emit("admin", "_disconnect", "/", False, user_id)
    await user.expect("disconnect", name="u")
