"""permessage-deflate on a broadcast: deflate once for every recipient vs once per recipient.

A 4 KB chat-history event (JSON, ~4x compressible) broadcast to 1,000 sessions whose transports
count their writes (as test_fanout.py):

- ``plain``: no compression: encode once, frame once, fan out (what fastsio does with it off);
- ``deflate-once``: fastsio with it on: the same, then ``fanout_compressed`` groups the sessions
  by their shared Deflater and deflates the frame once for the group;
- ``per-recipient-shared``: one deflate per recipient with the same no-context-takeover
  compressor (what a server pays that compresses per send, even without a window per socket);
- ``per-recipient-takeover``: one zlib stream per recipient with context takeover, flushed with
  Z_SYNC_FLUSH per message (ws's default, which Node's socket.io uses when perMessageDeflate is on):
  the CPU per broadcast, and the memory each connection's stream holds.
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

import pytest

from ..fakes import CountingTransport
from .conftest import require

TARGETS = 1000
EVENT = 2


def chat_history() -> list:
    rng = random.Random(7)
    words = [
        "hello",
        "the",
        "meeting",
        "is",
        "at",
        "noon",
        "see",
        "you",
        "there",
        "lunch",
        "today",
        "ok",
        "thanks",
        "weather",
    ]
    history = [
        {
            "id": i,
            "user": rng.choice(["alice", "bob", "carol", "dave"]),
            "ts": 1_700_000_000 + 37 * i,
            "text": " ".join(rng.choice(words) for _ in range(9)),
        }
        for i in range(40)
    ]
    return ["history", history]


class Session:
    """What the fan-out needs of an EngineSession on a WebSocket."""

    __slots__ = ("closed", "deflater", "transport")

    def __init__(self, deflater: Any) -> None:
        self.transport = CountingTransport()
        self.closed = False
        self.deflater = deflater

    def send_prepared(self, packet: Any, frame: bytes) -> None:
        if not self.closed:
            self.transport.write(frame)


def setup() -> tuple:
    adapter = require("fastsio.adapter", "fastsio's adapter")
    deflate = require("fastsio.protocol.deflate", "fastsio's deflate")
    from fastsio import _impl

    settings = deflate.PerMessageDeflate(threshold=1024)
    deflater = settings.negotiate("permessage-deflate; client_max_window_bits").deflater
    data = chat_history()
    size = len(json.dumps(data))
    assert 3500 < size < 5000, size
    return adapter, _impl, deflater, data


@pytest.mark.parametrize(
    "how", ["plain", "deflate-once", "per-recipient-shared", "per-recipient-takeover"]
)
def test_broadcast_4k_to_1000(benchmark, how: str) -> None:
    adapter, impl, deflater, data = setup()
    encode = impl.socketio.encode_packet
    build_text_frame = impl.websocket.build_text_frame
    sessions = [Session(deflater if how != "plain" else None) for _ in range(TARGETS)]
    streams = [zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15) for _ in sessions]

    def plain() -> None:
        packets, frames = adapter.prepare_packets(encode(EVENT, "/", data))
        impl.fanout(sessions, packets, frames)

    def deflate_once() -> None:
        packets, frames = adapter.prepare_packets(encode(EVENT, "/", data))
        adapter.fanout_compressed(sessions, packets, frames)

    def per_recipient_shared() -> None:
        text = "4" + encode(EVENT, "/", data)[0]
        for session in sessions:
            session.send_prepared(text, deflater.text_frame(text))

    def per_recipient_takeover() -> None:
        payload = ("4" + encode(EVENT, "/", data)[0]).encode()
        for session, stream in zip(sessions, streams):
            out = stream.compress(payload) + stream.flush(zlib.Z_SYNC_FLUSH)
            session.send_prepared(None, impl.websocket.build_frame(1, out[:-4], True, True))

    run = {
        "plain": plain,
        "deflate-once": deflate_once,
        "per-recipient-shared": per_recipient_shared,
        "per-recipient-takeover": per_recipient_takeover,
    }[how]
    run()
    nbytes = sessions[0].transport.nbytes
    if how == "plain":
        assert nbytes == len(build_text_frame("4" + encode(EVENT, "/", data)[0]))
    else:
        assert nbytes < 1500  # compressed ~4x
    benchmark.group = f"broadcast of a 4 KB chat event to {TARGETS:,} sessions"
    benchmark.extra_info["bytes_per_delivery"] = nbytes
    benchmark(run)
