"""Shared strings for long-lived requests (fastsio/http/shared.py)."""

from __future__ import annotations

import pytest

from fastsio.http import shared
from fastsio.http.protocol import parse_query
from fastsio.http.request import Request


@pytest.fixture
def small_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shared, "_MAX_ENTRIES", 4)
    monkeypatch.setattr(shared, "_header_names", {})
    monkeypatch.setattr(shared, "_header_values", {})
    monkeypatch.setattr(shared, "_texts", {})
    monkeypatch.setattr(shared, "_addresses", {})


def test_header_names_are_lower_case_and_shared(small_tables: None) -> None:
    first = shared.header_name(b"Sec-WebSocket-Version")
    assert first == "sec-websocket-version"
    assert shared.header_name(b"Sec-WebSocket-Version") is first


def test_only_repeating_header_values_are_shared(small_tables: None) -> None:
    value = shared.header_value("upgrade", b"websocket")
    assert value == "websocket" and shared.header_value("upgrade", b"websocket") is value
    key = shared.header_value("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")
    assert key == "dGhlIHNhbXBsZSBub25jZQ=="
    assert b"dGhlIHNhbXBsZSBub25jZQ==" not in shared._header_values
    # latin-1, as before
    assert shared.header_value("user-agent", b"caf\xe9") == "caf\u00e9"


def test_tables_are_bounded(small_tables: None) -> None:
    names = [shared.header_name(f"X-Made-Up-{i}".encode()) for i in range(100)]
    assert names == [f"x-made-up-{i}" for i in range(100)]
    assert len(shared._header_names) == 4
    long = b"a" * (shared._MAX_LENGTH + 1)
    assert shared.header_value("host", long) == long.decode()
    assert long not in shared._header_values
    assert [shared.text(f"p{i}") for i in range(10)] == [f"p{i}" for i in range(10)]
    assert len(shared._texts) == 4


def test_a_request_shares_its_query_strings(small_tables: None) -> None:
    query_string = "EIO=4&transport=websocket&sid=abc&t=x%20y"
    request = Request(
        None, "GET", "/?" + query_string, "/", query_string, {}, ("h", 1), False, "1.1", True
    )
    before = dict(request.query)
    request.share_strings()
    assert request.query == before == parse_query(query_string)
    other = Request(
        None, "GET", "/", "/", "EIO=4&transport=websocket", {}, ("h", 1), False, "1.1", True
    )
    other.share_strings()
    for name in other.query:  # the same name objects
        assert next(n for n in request.query if n == name) is name
    assert request.query["transport"] is other.query["transport"]
    assert request.path is other.path and request.http_version is other.http_version
    # the same target: shared, but not one with a cache-buster
    again = Request(
        None,
        "GET",
        "/?EIO=4&transport=websocket",
        "/",
        "EIO=4&transport=websocket",
        {},
        ("h", 1),
        False,
        "1.1",
        True,
    )
    again.share_strings()
    assert again.url == "/?EIO=4&transport=websocket" and again.query_string is other.query_string
    assert again.url is shared.text("/?EIO=4&transport=websocket")
    assert "EIO=4&transport=websocket&sid=abc&t=x%20y" not in shared._texts
    assert shared.address("10.0.0.1") is shared.address("10.0.0." + "1")
    assert request.query["sid"] == "abc" and request.query["t"] == "x y"
