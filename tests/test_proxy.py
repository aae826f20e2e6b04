"""Trusted reverse proxies: X-Forwarded-For/-Proto and RFC 7239 Forwarded, believed only from the
configured proxies, read from the right (tests/interop/test_proxy_nginx.py runs a real nginx)."""

from __future__ import annotations

import pytest

import fastsio
from fastsio.http.proxy import TrustedProxies


def xff(value: str, proto: str | None = None) -> dict:
    headers = {"x-forwarded-for": value}
    if proto is not None:
        headers["x-forwarded-proto"] = proto
    return headers


# -- X-Forwarded-For / X-Forwarded-Proto ---------------------------------------------------------


def test_peer_not_trusted_headers_ignored():
    proxies = TrustedProxies(["10.0.0.1"])
    assert proxies.resolve("192.0.2.9", xff("6.6.6.6", "https"), False) == ("192.0.2.9", False)


def test_trusted_peer_gives_client_and_scheme():
    proxies = TrustedProxies(["10.0.0.1"])
    assert proxies.resolve("10.0.0.1", xff("203.0.113.7", "https"), False) == ("203.0.113.7", True)
    assert proxies.resolve("10.0.0.1", xff("203.0.113.7", "http"), True) == ("203.0.113.7", False)
    # no header from a trusted proxy: the peer, as it is
    assert proxies.resolve("10.0.0.1", {}, True) == ("10.0.0.1", True)


def test_chain_read_from_the_right_forged_entries_never_reached():
    proxies = TrustedProxies(["10.0.0.0/8"])
    # the client forged "6.6.6.6"; the load balancer 10.0.0.2 appended the client, the proxy
    # 10.0.0.1 (the peer) appended the balancer
    chain = "6.6.6.6, 203.0.113.7, 10.0.0.2"
    assert proxies.resolve("10.0.0.1", xff(chain), False) == ("203.0.113.7", False)
    # every entry trusted: the leftmost
    assert proxies.resolve("10.0.0.1", xff("10.1.1.1, 10.0.0.2"), False)[0] == "10.1.1.1"


def test_proto_of_the_same_hop_or_the_single_value():
    proxies = TrustedProxies(["10.0.0.0/8"])
    # one value per hop: the client's hop said https, the inner hop http
    assert proxies.resolve("10.0.0.1", xff("203.0.113.7, 10.0.0.2", "https, http"), False)[1]
    # overwritten by the last proxy: its one value
    assert not proxies.resolve("10.0.0.1", xff("203.0.113.7, 10.0.0.2", "http"), True)[1]
    # not a scheme we know: the connection's own
    assert proxies.resolve("10.0.0.1", xff("203.0.113.7", "gopher"), True)[1]


def test_ports_brackets_ipv6_and_ipv4_mapped_peers():
    proxies = TrustedProxies(["::1", "127.0.0.0/8", "fd00::/8"])
    assert proxies.resolve("::1", xff("[2001:db8::7]:4711"), False)[0] == "2001:db8::7"
    assert proxies.resolve("::1", xff("198.51.100.1:5555"), False)[0] == "198.51.100.1"
    assert proxies.resolve("::1", xff("2001:db8::8"), False)[0] == "2001:db8::8"
    # a dual-stack listener shows IPv4 peers as ::ffff:a.b.c.d
    assert proxies.resolve("::ffff:127.0.0.1", xff("198.51.100.2"), False)[0] == "198.51.100.2"
    assert proxies.resolve("fd00::5", xff("198.51.100.3, fd00::9"), False)[0] == "198.51.100.3"


def test_unparsable_entries_are_not_proxies_and_empty_ones_not_believed():
    proxies = TrustedProxies("10.0.0.1")  # a comma-separated string works too
    assert proxies.resolve("10.0.0.1", xff("6.6.6.6, unknown"), False)[0] == "unknown"
    assert proxies.resolve("10.0.0.1", xff(" "), False)[0] == "10.0.0.1"


def test_trust_all():
    proxies = TrustedProxies(["*"])
    assert proxies.resolve("192.0.2.1", xff("6.6.6.6, 203.0.113.7"), False)[0] == "6.6.6.6"


# -- RFC 7239 Forwarded ---------------------------------------------------------------------------


def test_forwarded_elements_from_the_right_with_quotes_ports_and_proto():
    proxies = TrustedProxies(["10.0.0.0/8"], headers="forwarded")
    value = 'for=6.6.6.6, for="[2001:db8::1]:4711";proto=https;by=10.0.0.2, for=10.0.0.3;proto=http'
    assert proxies.resolve("10.0.0.1", {"forwarded": value}, False) == ("2001:db8::1", True)
    # names are case-insensitive; an element without proto takes the nearest one to its right
    value = "For=198.51.100.4, for=10.0.0.3;Proto=https"
    assert proxies.resolve("10.0.0.1", {"forwarded": value}, False) == ("198.51.100.4", True)


def test_forwarded_mode_ignores_x_forwarded_for_and_the_reverse():
    forwarded = TrustedProxies(["10.0.0.1"], headers="forwarded")
    x_forwarded = TrustedProxies(["10.0.0.1"])
    both = {"forwarded": "for=198.51.100.5", **xff("6.6.6.6")}
    assert forwarded.resolve("10.0.0.1", both, False)[0] == "198.51.100.5"
    assert x_forwarded.resolve("10.0.0.1", both, False)[0] == "6.6.6.6"


@pytest.mark.parametrize("value", ['for="unterminated', "for", "=1.2.3.4", "for=1.2.3.4;;"])
def test_malformed_forwarded_is_ignored(value):
    proxies = TrustedProxies(["10.0.0.1"], headers="forwarded")
    assert proxies.resolve("10.0.0.1", {"forwarded": value}, True) == ("10.0.0.1", True)


def test_bad_configuration_is_refused_clearly():
    with pytest.raises(ValueError, match="'10.0.0.300' is not an IP address or network"):
        fastsio.Server(trusted_proxies=["10.0.0.300"])
    with pytest.raises(ValueError, match="proxy_headers must be one of"):
        fastsio.Server(trusted_proxies=["10.0.0.1"], proxy_headers="x-real-ip")


# -- the server: handshake.address / .secure, allow_request ---------------------------------------


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_handshake_address_and_secure_from_a_trusted_proxy(server_factory, transports):
    seen_by_allow_request = []

    def allow_request(request):
        seen_by_allow_request.append((request.client[0], request.secure))
        return True

    sio = await server_factory(trusted_proxies=["127.0.0.1"], allow_request=allow_request)
    handshakes = []
    sio.on("connection", lambda socket: handshakes.append(socket.handshake))
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    client = fastsio.AsyncClient(
        f"http://127.0.0.1:{sio.port}", transports=transports, headers=headers, reconnection=False
    )
    await client.connect()
    try:
        (handshake,) = handshakes
        assert (handshake.address, handshake.secure) == ("203.0.113.9", True)
        assert seen_by_allow_request == [("203.0.113.9", True)]
    finally:
        await client.disconnect()


async def test_headers_not_believed_without_trusted_proxies(server_factory):
    sio = await server_factory()
    handshakes = []
    sio.on("connection", lambda socket: handshakes.append(socket.handshake))
    client = fastsio.AsyncClient(
        f"http://127.0.0.1:{sio.port}",
        transports=["websocket"],
        headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"},
        reconnection=False,
    )
    await client.connect()
    try:
        (handshake,) = handshakes
        assert (handshake.address, handshake.secure) == ("127.0.0.1", False)
        assert sio.http.dispatch.__func__ is type(sio.http).dispatch  # nothing per request
    finally:
        await client.disconnect()
