"""The official socket.io-client (Node) against fastsio: transports, upgrade, heartbeat, path, load."""

from __future__ import annotations

import asyncio
import time

import pytest

pytestmark = pytest.mark.interop


async def until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def register_echo(sio) -> list:
    connected: list = []

    @sio.on("connection")
    def on_connection(socket):
        connected.append(socket)

    @sio.on("echo")
    def echo(socket, *args):
        return args  # a tuple answers with several arguments

    return connected


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_connect_with_a_single_transport(server, url, node, transport):
    connected = register_echo(server)
    client = await node(url)
    await client.connect("a", opts={"transports": [transport]})

    msg = await client.expect("connect", name="a")
    assert msg["transport"] == transport
    await until(lambda: connected, what="the connection handler")
    assert [s.id for s in connected] == [msg["id"]]

    reply = await client.emit_with_ack("a", "echo", 1, "two", {"three": [3, None, True]})
    assert reply["args"] == [1, "two", {"three": [3, None, True]}]

    await asyncio.sleep(0.3)  # the client must not try to switch transports
    info = await client.info("a")
    assert info["connected"] and info["transport"] == transport
    assert not client.seen("upgrade")
    assert not client.seen("disconnect")


async def test_connect_with_upgrade_ends_on_websocket(server, url, node):
    connected = register_echo(server)
    client = await node(url)
    await client.connect("a")

    assert (await client.expect("open", name="a"))["transport"] == "polling"  # the default first
    msg = await client.expect("connect", name="a")
    assert (await client.expect("upgrade", name="a"))["transport"] == "websocket"
    info = await client.info("a")
    assert info["transport"] == "websocket" and info["connected"]
    await until(lambda: connected, what="the connection handler")
    assert len(connected) == 1 and connected[0].id == msg["id"]

    reply = await client.emit_with_ack("a", "echo", "after upgrade")
    assert reply["args"] == ["after upgrade"]


@pytest.mark.parametrize(
    "opts",
    [{}, {"slowUpgradeMs": 80}, {"transports": ["polling"]}],
    ids=["natural", "late-probe", "polling-only"],
)
async def test_nothing_lost_or_doubled_across_the_upgrade(server, url, node, opts):
    """Both sides send 200 numbered events (every 10th with a binary attachment) starting at
    connect, spread over ~300 ms, while the client upgrades from polling to WebSocket: all arrive,
    in order, exactly once. With the "late-probe" client the WebSocket opens 80 ms late, so the
    stream surely straddles the switch."""
    n = 200
    loop = asyncio.get_running_loop()
    received: list = []

    def numbered(i):  # every 10th event carries a binary attachment too
        return (i, bytes([i % 256, 0xFF])) if i % 10 == 0 else (i,)

    @server.on("connection")
    def on_connection(socket):
        # 50 at once, then the rest spread over ~300 ms by one chained timer (in order)
        for i in range(50):
            socket.emit("n", *numbered(i))
        started, sent = loop.time(), [50]

        def step():
            due = 50 + int((loop.time() - started) / 0.002) + 1
            while sent[0] < n and sent[0] < due:
                socket.emit("n", *numbered(sent[0]))
                sent[0] += 1
            if sent[0] < n:
                loop.call_later(0.001, step)

        loop.call_later(0.001, step)

    @server.on("n")
    def on_n(socket, *args):
        received.append(args)

    client = await node(url)
    await client.connect(
        "a", opts=opts, burst={"event": "n", "count": n, "spreadMs": 300, "binaryEvery": 10}
    )
    await client.expect("connect", name="a")
    final = "polling" if opts.get("transports") == ["polling"] else "websocket"
    if final == "websocket":
        await client.expect("upgrade", name="a")

    got = await client.expect_count("event", n, name="a", event="n")
    await until(lambda: len(received) >= n, what=f"{n} events on the server")
    await asyncio.sleep(0.2)  # anything doubled would show up now

    expected = [list(numbered(i)) for i in range(n)]
    assert client.events("a", "n") == expected, "server -> client order / completeness"
    assert [list(args) for args in received] == expected, "client -> server order / completeness"
    if opts.get("slowUpgradeMs"):
        assert got[0]["transport"] == "polling", "expected the first events over polling"
    assert (await client.info("a"))["transport"] == final


async def test_polling_client_batches_within_max_payload(server_factory, node):
    """The client packs what it sends into POSTs of at most maxPayload bytes (from the handshake);
    the server must take every one of them (and count bytes the same way)."""
    sio = await server_factory(max_http_buffer_size=1000)
    received: list = []
    pad = "\u00e9" * 60 + "x" * 20  # 140 bytes of UTF-8 in 80 characters

    @sio.on("n")
    def on_n(socket, i, text):
        assert text == pad
        received.append(i)

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect(
        "a", opts={"transports": ["polling"]}, burst={"event": "n", "count": 60, "pad": pad}
    )
    await client.expect("connect", name="a")
    await until(lambda: len(received) == 60, what="60 events on the server")
    assert received == list(range(60))
    await client.assert_none(0.2, "disconnect", name="a")


@pytest.mark.parametrize("option", [{"transports": ["polling"]}, {"allow_upgrades": False}])
async def test_server_without_upgrades_keeps_the_client_on_polling(server_factory, node, option):
    sio = await server_factory(**option)
    register_echo(sio)
    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a")  # the default: polling, then upgrade if the server offers it
    await client.expect("connect", name="a")
    await asyncio.sleep(0.3)
    assert not client.seen("upgrade")
    assert (await client.info("a"))["transport"] == "polling"
    assert (await client.emit_with_ack("a", "echo", "polling"))["args"] == ["polling"]


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_heartbeat_keeps_a_live_client(server_factory, node, transport):
    sio = await server_factory(ping_interval=0.3, ping_timeout=0.2)
    connected = register_echo(sio)
    gone: list = []

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        gone.append(reason)

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"transports": [transport]})
    await client.expect("connect", name="a")

    await asyncio.sleep(1.5)
    assert not gone, f"server dropped a live client: {gone}"
    assert not client.seen("disconnect"), client.describe()
    assert len(client.seen("ping", name="a")) >= 3, "expected a ping every 0.3 s"
    assert len(connected) == 1
    reply = await client.emit_with_ack("a", "echo", "still here")
    assert reply["args"] == ["still here"]


async def test_heartbeat_across_a_slow_upgrade(server_factory, node):
    """Pings every 50 ms while the client sits on polling (its WebSocket probe starts 150 ms
    late) and through the switch: no ping is lost, nobody times out."""
    sio = await server_factory(ping_interval=0.05, ping_timeout=0.2)
    register_echo(sio)
    gone: list = []

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        gone.append(reason)

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"slowUpgradeMs": 150})
    await client.expect("connect", name="a")
    await client.expect("upgrade", name="a")
    await asyncio.sleep(0.6)
    assert not gone, gone
    assert not client.seen("disconnect"), client.describe()
    assert len(client.seen("ping", name="a")) >= 8
    assert (await client.emit_with_ack("a", "echo", "ok"))["args"] == ["ok"]


async def test_heartbeat_drops_a_frozen_client_then_it_reconnects(server_factory, node):
    sio = await server_factory(ping_interval=0.3, ping_timeout=0.2)
    connected = register_echo(sio)
    gone: list = []

    @sio.on("disconnect")
    def on_disconnect(socket, reason):
        gone.append((time.monotonic(), socket.id, reason))

    client = await node(f"http://127.0.0.1:{sio.port}")
    await client.connect("a", opts={"transports": ["websocket"]})
    first = await client.expect("connect", name="a")
    await asyncio.sleep(0.4)  # at least one ping answered
    assert not gone

    client.suspend()  # the client stops answering pings
    stopped = time.monotonic()
    try:
        await until(lambda: gone, timeout=3, what="the server to drop the frozen client")
    finally:
        client.resume()
    when, sid, reason = gone[0]
    assert sid == first["id"]
    assert reason == "ping timeout"
    # a ping is due within 0.3 s of the freeze, then 0.2 s to answer it: 0.5 s + scheduling slack
    assert when - stopped < 0.8, f"dropped {when - stopped:.3f}s after the client froze"

    # once it runs again the client notices the lost connection and reconnects on its own
    await client.expect("disconnect", name="a")
    second = await client.expect("connect", name="a")
    assert second["id"] != first["id"]
    await until(lambda: len(connected) == 2, what="the reconnection on the server")
    reply = await client.emit_with_ack("a", "echo", "back")
    assert reply["args"] == ["back"]


@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_custom_path(server_factory, node, transport):
    sio = await server_factory(path="/my-path")
    connected = register_echo(sio)
    url = f"http://127.0.0.1:{sio.port}"
    client = await node(url)

    await client.connect("good", opts={"path": "/my-path", "transports": [transport]})
    await client.expect("connect", name="good")
    reply = await client.emit_with_ack("good", "echo", "via /my-path")
    assert reply["args"] == ["via /my-path"]

    # the default path /socket.io/ is not served
    await client.connect("bad", opts={"transports": [transport], "reconnection": False})
    err = await client.expect("connect_error", name="bad")
    assert (
        err["message"] == {"polling": "xhr poll error", "websocket": "websocket error"}[transport]
    )
    assert len(connected) == 1


@pytest.mark.parametrize("transport, count", [("websocket", 500), ("polling", 100)])
async def test_many_clients(server, url, node, transport, count):
    connected: list = []

    @server.on("connection")
    def on_connection(socket):
        connected.append(socket.id)

    started = time.monotonic()
    crowd = await node(
        url,
        "many_clients.js",
        {"count": count, "event": "hello", "timeoutMs": 15000, "opts": {"transports": [transport]}},
    )
    done = await crowd.expect("all_connected", timeout=15)
    assert done["count"] == count
    await until(lambda: len(connected) == count, what=f"{count} connections on the server")
    assert len(set(connected)) == count

    server.emit("hello", {"to": "everyone"})
    got = await crowd.expect("all_received", timeout=10)
    assert got["payloads"] == ['{"to":"everyone"}']
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_allow_request(server_factory, node, transport, asynchronous):
    seen: list = []

    def verdict(request):
        seen.append(request.headers.get("x-allowed"))
        return request.headers.get("x-allowed") == "yes"

    async def async_verdict(request):
        await asyncio.sleep(0.01)
        return verdict(request)

    sio = await server_factory(allow_request=async_verdict if asynchronous else verdict)
    connected = register_echo(sio)
    client = await node(f"http://127.0.0.1:{sio.port}")
    base = {"transports": [transport], "reconnection": False}

    await client.connect("no", opts=base)
    err = await client.expect("connect_error", name="no")
    assert (
        err["message"] == {"polling": "xhr poll error", "websocket": "websocket error"}[transport]
    )
    if transport == "polling":
        assert err["description"] == 403

    await client.connect("yes", opts={**base, "extraHeaders": {"x-allowed": "yes"}})
    await client.expect("connect", name="yes")
    assert (await client.emit_with_ack("yes", "echo", "in"))["args"] == ["in"]
    assert len(connected) == 1
    assert seen == [None, "yes"]  # asked once per handshake, not for later requests
