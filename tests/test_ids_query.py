"""Small per-connection helpers: the random id pool and the Engine.IO query parser."""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from fastsio.engine import ids
from fastsio.http.request import parse_query

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
    assert parse_query(query_string) == dict(parse_qsl(query_string, keep_blank_values=True))


def test_parse_query_engineio_query():
    assert parse_query("EIO=4&transport=websocket&sid=abc-_12&t=P1&j") == {
        "EIO": "4",
        "transport": "websocket",
        "sid": "abc-_12",
        "t": "P1",
        "j": "",
    }
    assert parse_query("") == {}
    assert parse_query("a=1&a=2&b==c") == {"a": "2", "b": "=c"}
