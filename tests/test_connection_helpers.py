"""Small per-connection helpers: the random id pool, the query parser, the WebSocket handshake
checks; each against the slower standard-library way it replaces."""

from __future__ import annotations

import base64
import binascii
import os
import re
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastsio.engine import ids
from fastsio.http import protocol
from fastsio.http.protocol import _valid_websocket_key, has_token

try:
    from fastsio._speedups import httpproto_c  # type: ignore[attr-defined]
except ImportError:  # not built
    httpproto_c = None

# the pure parser and the compiled one (fastsio/http/protocol.py compiled), when built
PARSE_QUERY = [protocol.parse_query] + ([httpproto_c.parse_query] if httpproto_c else [])

ID_FORMAT = re.compile(r"[A-Za-z0-9_-]{20}")


def test_ids_have_the_base64id_format_and_do_not_repeat():
    made = [ids.random_id() for _ in range(3 * 256 + 7)]  # crosses several refills
    assert all(ID_FORMAT.fullmatch(i) for i in made)
    assert len(set(made)) == len(made)


def test_ids_are_not_all_alike():
    # each of the 64 characters turns up somewhere in a few thousand ids: the bytes are random
    # and the slicing does not repeat a block
    seen = set("".join(ids.random_id() for _ in range(2000)))
    assert len(seen) == 64


def test_a_forked_child_does_not_reuse_the_parents_ids():
    ids.random_id()  # the pool now holds ids the parent will hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ids.random_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_ids = [ids.random_id() for _ in range(300)]
    assert ID_FORMAT.fullmatch(child_id)
    assert child_id not in parent_ids


QUERY_CHARS = st.sampled_from(list("aZ09=&%+-_.~/?:@!$'()*,; é") + ["%20", "%zz", "%C3%A9", "&&"])


@given(st.lists(QUERY_CHARS, max_size=40).map("".join))
def test_parse_query_is_parse_qsl(query_string):
    expected = dict(parse_qsl(query_string, keep_blank_values=True))
    for parse_query in PARSE_QUERY:
        assert parse_query(query_string) == expected
        # the same order too: Engine.IO's handshake hands the query on as it came
        assert list(parse_query(query_string)) == list(expected)


@pytest.mark.parametrize("parse_query", PARSE_QUERY)
def test_parse_query_engineio_query(parse_query):
    assert parse_query("EIO=4&transport=websocket&sid=abc-_12&t=P1&j") == {
        "EIO": "4",
        "transport": "websocket",
        "sid": "abc-_12",
        "t": "P1",
        "j": "",
    }
    assert parse_query("") == {}
    assert parse_query("a=1&a=2&b==c") == {"a": "2", "b": "=c"}


def _b64_key_is_16_bytes(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


KEY_CHARS = st.sampled_from(list("AZaz09+/=-_ \n\té") + ["=="])


@given(st.one_of(st.lists(KEY_CHARS, max_size=30).map("".join), st.text(max_size=30)))
def test_websocket_key_check_is_b64decode(key):
    assert _valid_websocket_key(key) == _b64_key_is_16_bytes(key)


def test_websocket_key_examples():
    key = base64.b64encode(os.urandom(16)).decode()
    assert _valid_websocket_key(key)
    assert _valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==")  # RFC 6455's example
    assert not _valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ")  # no padding
    assert not _valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ==\n")
    assert not _valid_websocket_key(base64.b64encode(os.urandom(15)).decode())


@given(
    st.lists(
        st.sampled_from(["websocket", "WebSocket", " websocket ", "upgrade", "", "web"]), max_size=4
    ).map(",".join)
)
def test_has_token_is_the_split_and_compare(value):
    expected = any(part.strip().lower() == "websocket" for part in value.split(","))
    assert has_token(value, "websocket") == expected
