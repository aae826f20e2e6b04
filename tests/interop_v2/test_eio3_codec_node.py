"""fastsio's Engine.IO v3 payload codec against engine.io-parser 2.x, the one socket.io-client 2.x
bundles: both encodings byte for byte (text payloads with UTF-16 lengths, base64 binary, XHR2
binary payloads, which Node's client never uses but browsers do), and each side decoding the
other's output."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from fastsio._impl import engineio3 as eio3  # compiled or pure, as the server uses it

from .conftest import NODE_V2_DIR

pytestmark = pytest.mark.interop

CASES = [
    ([(4, "hello")], False),
    ([(4, "h\u00e9llo \U0001f600 \U0001f600!"), (3, ""), (6, "")], False),
    ([(4, '2["a",":12:"]'), (4, b"\x00\x01\xff")], False),
    ([(4, b"\x00" * 300)], False),
    ([(4, "text \U0001f600"), (4, b"\x00\x01\xff"), (2, "probe")], True),
    ([(4, b"x" * 1234), (4, "\u2028")], True),
    ([(4, "no binary here")], True),  # a text payload even when binary is supported
    ([(0, '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}')], True),
]


def to_json(data):
    return {"$buffer": base64.b64encode(data).decode()} if isinstance(data, bytes) else data


def from_json(data):
    return base64.b64decode(data["$buffer"]) if isinstance(data, dict) else data


def ours(packets, binary):
    items = [data if isinstance(data, bytes) else f"{t}{data}" for t, data in packets]
    return eio3.encode_payload(items, binary)


def wire(body):
    if isinstance(body, bytes):
        return {"buffer": base64.b64encode(body).decode()}
    return {"text": body}


@pytest.mark.parametrize("client", ["sio2", "sio2-last"])
async def test_payload_codec_matches_engine_io_parser_2(node_v2_modules, client):
    job = {
        "parser": client,
        "encode": [
            {"packets": [[t, to_json(d)] for t, d in packets], "binary": binary}
            for packets, binary in CASES
        ],
        "decode": [wire(ours(packets, binary)) for packets, binary in CASES]
        + [{"text": "5:4hello"}, {"text": "2:4\U0001f600"}, {"text": "3:4\U0001f600"}],
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(NODE_V2_DIR / "eio3_codec.js"),
        cwd=str(NODE_V2_DIR),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), 20)
    assert proc.returncode == 0, stderr.decode()
    result = json.loads(stdout)

    for (packets, binary), theirs in zip(CASES, result["encoded"]):
        # the same bytes...
        assert wire(ours(packets, binary)) == theirs, (packets, binary)
        # ...and we read theirs
        body = base64.b64decode(theirs["buffer"]) if "buffer" in theirs else theirs["text"]
        assert eio3.decode_payload(body, binary="buffer" in theirs) == packets

    # they read ours
    for (packets, _), decoded in zip(CASES, result["decoded"]):
        assert [(t, from_json(d)) for t, d in decoded] == packets
    # a length one short, and a length that splits a surrogate pair, are errors on both sides
    assert result["decoded"][len(CASES) :][:2] == ["error", "error"]
    assert result["decoded"][-1] == [[4, "\U0001f600"]]
