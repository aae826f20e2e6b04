"""Room fan-out: one broadcast to 10,000 sessions, compiled loop vs pure loop.

The fan-out is ``fanout(sessions, packets, frames)`` (``fastsio._speedups.fanout_py`` and its
compiled twin ``fanout_c``; ``fastsio.adapter.fanout`` before they existed): the packet is encoded
and its WebSocket frame built once (``prepare_packets``), then the same bytes go to every session
through ``session.send_prepared``. The sessions here are fakes whose transport counts writes, so
the figure is the cost of the loop and of the per-session call, not of the kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..fakes import CountingTransport
from .conftest import NOT_BUILT, fastsio_codec, load, require

TARGETS = 10_000
EVENT = 2
TICK = ["tick", {"seq": 1, "text": "hello everyone"}]

#: where the fan-out lives (first match wins)
COMPILED_CANDIDATES = ["fastsio._speedups.fanout_c", "fastsio._speedups.adapter_c"]
PURE_CANDIDATES = ["fastsio._speedups.fanout_py", "fastsio.adapter"]


class FakeSession:
    """What the fan-out needs of an EngineSession on a WebSocket: ``send_prepared``."""

    __slots__ = ("closed", "transport")

    def __init__(self) -> None:
        self.transport = CountingTransport()
        self.closed = False

    def send_prepared(self, packet: Any, frame: bytes) -> None:
        if not self.closed:
            self.transport.write(frame)


def find_fanout(candidates: list) -> Callable | None:
    for name in candidates:
        mod = load(name)
        if mod is not None and hasattr(mod, "fanout"):
            return mod.fanout
    return None


def fanout_for(impl: str) -> Callable:
    pure = find_fanout(PURE_CANDIDATES)
    if pure is None:
        pytest.skip(f"no fan-out in {PURE_CANDIDATES}")
    if impl == "fastsio-pure":
        return pure
    fn = find_fanout(COMPILED_CANDIDATES)
    if fn is None or fn is pure or not type(fn).__name__.startswith("cython"):
        pytest.skip(f"compiled fan-out not found in {COMPILED_CANDIDATES} ({NOT_BUILT})")
    return fn


def prepared() -> tuple:
    adapter = require("fastsio.adapter", "fastsio's adapter")
    socketio = require("fastsio.protocol.socketio", "fastsio's pure codecs")
    return adapter.prepare_packets(socketio.encode_packet(EVENT, "/", TICK))


@pytest.mark.parametrize("impl", ["fastsio-compiled", "fastsio-pure"])
def test_fanout_10k(benchmark, impl: str) -> None:
    fanout = fanout_for(impl)
    packets, frames = prepared()
    sessions = [FakeSession() for _ in range(TARGETS)]
    fanout(sessions, packets, frames)
    assert sum(s.transport.writes for s in sessions) == TARGETS
    assert all(s.transport.nbytes == len(frames[0]) for s in sessions)
    benchmark.group = f"room fan-out: 1 broadcast to {TARGETS:,} sessions"
    benchmark(fanout, sessions, packets, frames)


@pytest.mark.parametrize("impl", ["fastsio-compiled", "fastsio-pure"])
def test_broadcast_10k(benchmark, impl: str) -> None:
    """The whole broadcast: encode once, build the frame once, fan out."""
    fanout = fanout_for(impl)
    adapter = require("fastsio.adapter", "fastsio's adapter")
    # the encode uses the same variant; the frame is built by whatever fastsio._impl picked
    socketio = fastsio_codec("socketio", impl.split("-", 1)[1])
    prepare, encode = adapter.prepare_packets, socketio.encode_packet
    sessions = [FakeSession() for _ in range(TARGETS)]

    def run() -> None:
        packets, frames = prepare(encode(EVENT, "/", TICK))
        fanout(sessions, packets, frames)

    run()
    assert sum(s.transport.writes for s in sessions) == TARGETS
    benchmark.group = f"room broadcast: encode + fan-out to {TARGETS:,} sessions"
    benchmark(run)


class BuiltinSession:
    """A target whose ``send_prepared`` is a C builtin (``dict.__setitem__``): no Python frame per
    target, so what is left is the loop itself: the most a compiled loop can save."""

    def __init__(self) -> None:
        self.written: dict = {}
        self.send_prepared = self.written.__setitem__


@pytest.mark.parametrize("impl", ["fastsio-compiled", "fastsio-pure"])
def test_fanout_loop_only_10k(benchmark, impl: str) -> None:
    fanout = fanout_for(impl)
    packets, frames = prepared()
    sessions = [BuiltinSession() for _ in range(TARGETS)]
    fanout(sessions, packets, frames)
    assert all(s.written == {packets[0]: frames[0]} for s in sessions)
    benchmark.group = f"room fan-out, loop only (C-level targets): {TARGETS:,} sessions"
    benchmark(fanout, sessions, packets, frames)
