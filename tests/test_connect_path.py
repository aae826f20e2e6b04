"""The connection path's shortcuts give what the long way gives: the open packet made from a
cached end (EngineServer._open_packet), and the shared strings of a handshake
(Request.share_strings)."""

from __future__ import annotations

import orjson
import pytest

from fastsio.engine import EngineServer
from fastsio.http import shared
from fastsio.http.request import Request


def expected_open_packet(engine: EngineServer, sid: str, transport: str, protocol: int) -> str:
    fields = {
        "sid": sid,
        "upgrades": ["websocket"]
        if transport == "polling" and engine.allow_upgrades and "websocket" in engine.transports
        else [],
        "pingInterval": round(engine.ping_interval * 1000),
        "pingTimeout": round(engine.ping_timeout * 1000),
    }
    if protocol == 4:
        fields["maxPayload"] = engine.max_http_buffer_size
    return "0" + orjson.dumps(fields).decode()


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("protocol", [3, 4])
def test_open_packet_is_the_json_of_its_fields(transport, protocol):
    engine = EngineServer()
    for sid in ("AAAAAAAAAAAAAAAAAAA-", "x", "a.b~c_d-e" * 10):
        for _ in range(2):  # made, then from the cache
            got = engine._open_packet(sid, transport, protocol)
            assert got == expected_open_packet(engine, sid, transport, protocol)


def test_open_packet_follows_settings_changed_at_run_time():
    engine = EngineServer(ping_interval=1.5, ping_timeout=0.25, max_http_buffer_size=10)
    before = engine._open_packet("sid", "polling", 4)
    assert before == expected_open_packet(engine, "sid", "polling", 4)
    engine.ping_interval = 0.3334
    engine.max_http_buffer_size = 77
    after = engine._open_packet("sid", "polling", 4)
    assert after == expected_open_packet(engine, "sid", "polling", 4) != before
    engine.configure(allow_upgrades=False)
    assert '"upgrades":[]' in engine._open_packet("sid", "polling", 4)
    assert engine._open_packet("sid", "polling", 4) == expected_open_packet(
        engine, "sid", "polling", 4
    )


def test_share_strings_keeps_values_and_shares_them():
    def request(url: str) -> Request:
        path, _, query_string = url.partition("?")
        return Request(None, "GET", url, path, query_string, {}, ("", 0), False, "1.1", True)

    url = "/socket.io/?EIO=4&transport=websocket&x=&other=v"
    first, second = request(url), request(url)
    for req in (first, second):
        before = dict(req.query)
        req.share_strings()
        assert req.query == before
        assert list(req.query) == list(before)
        assert (req.path, req.url, req.query_string) == ("/socket.io/", url, url.partition("?")[2])
    assert second.path is first.path and second.url is first.url
    assert second.query_string is first.query_string
    assert second.query["transport"] is first.query["transport"]
    for a, b in zip(first.query, second.query):
        assert a is b
    assert second.query["other"] == "v"
    # a polling handshake's cache-buster "t" makes the target unique: not shared
    polling = request("/socket.io/?EIO=4&transport=polling&t=" + "q" * 7)
    polling.share_strings()
    assert polling.url not in shared._texts
