"""WebSocket frame parse/build: fastsio compiled, fastsio pure, wsproto.

Parse (server side, what a server reads): masked client text frames of 120 B, 8 KB and 1 MB; one
64 KB message in 16 fragments; a run of control frames (8 pings and a pong). One reader per
benchmark, fed one complete input per round, as a connection's reader is fed one read at a time.
Build (unmasked server frames): the same sizes, the fragments, and ping/pong/close frames.
All implementations get byte-identical input; their outputs are checked equal before timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import fastsio_codec, require

OP_CONTINUATION, OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 8, 9, 10
MAX_MESSAGE = 4 * 1024 * 1024  # so that 1 MiB (> fastsio's 1,000,000 default) parses


def text(n: int) -> str:
    return ("0123456789abcdefghijklmnopqrstuvwxyz" * (n // 36 + 1))[:n]


MESSAGES = {"120 B": text(120), "8 KB": text(8 * 1024), "1 MB": text(1024 * 1024)}
FRAGMENTED = [text(4096) for _ in range(16)]  # one 64 KB message
PINGS = [b"ping-%03d" % i for i in range(8)]

IMPLEMENTATIONS = ["fastsio-compiled", "fastsio-pure", "wsproto"]


# -- client frames (masked), built once with a fixed mask so every run sees the same bytes --------


def masked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = b"\x1f\x2e\x3d\x4c"
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    body = int.from_bytes(payload, "little") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return bytes(head) + mask + body.to_bytes(n, "little")


def parse_inputs() -> dict:
    cases = {name: masked(OP_TEXT, msg.encode()) for name, msg in MESSAGES.items()}
    frags = [
        masked(OP_TEXT if i == 0 else OP_CONTINUATION, part.encode(), i == len(FRAGMENTED) - 1)
        for i, part in enumerate(FRAGMENTED)
    ]
    cases["64 KB in 16 fragments"] = b"".join(frags)
    cases["control frames"] = b"".join(masked(OP_PING, p) for p in PINGS) + masked(OP_PONG, b"")
    return cases


PARSE = parse_inputs()
EXPECTED = {
    **{name: [(OP_TEXT, msg)] for name, msg in MESSAGES.items()},
    "64 KB in 16 fragments": [(OP_TEXT, "".join(FRAGMENTED))],
    "control frames": [(OP_PING, p) for p in PINGS] + [(OP_PONG, b"")],
}


def parser(impl: str) -> Callable[[bytes], list[tuple[int, Any]]]:
    if impl == "wsproto":
        frame_protocol = require("wsproto.frame_protocol", "pip install wsproto")
        reader = frame_protocol.FrameProtocol(client=False, extensions=[])
        receive, frames = reader.receive_bytes, reader.received_frames

        def run(data: bytes) -> list:
            receive(data)
            return list(frames())

        return run
    m = fastsio_codec("websocket", impl.split("-", 1)[1])
    return m.FrameReader(max_message_size=MAX_MESSAGE).feed


def normalise(impl: str, out: list) -> list[tuple[int, Any]]:
    if impl != "wsproto":
        return [(op, bytes(p) if isinstance(p, (bytearray, memoryview)) else p) for op, p in out]
    # wsproto yields every fragment (no reassembly) with a decoded str for text
    merged: list[tuple[int, Any]] = []
    open_message = False
    for frame in out:
        op, payload = int(frame.opcode), frame.payload
        payload = bytes(payload) if isinstance(payload, (bytearray, memoryview)) else payload
        if open_message and op < OP_CLOSE:
            merged[-1] = (merged[-1][0], merged[-1][1] + payload)
        else:
            merged.append((op, payload))
        if op < OP_CLOSE:
            open_message = not frame.message_finished
    return merged


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(PARSE))
def test_parse(benchmark, case: str, impl: str) -> None:
    run = parser(impl)
    data = PARSE[case]
    assert normalise(impl, run(data)) == EXPECTED[case]
    benchmark.group = f"websocket parse: {case}"
    benchmark(run, data)


# -- server frames (unmasked) -------------------------------------------------------------------


def builder(impl: str, case: str) -> Callable[[], Any]:
    if impl == "wsproto":
        frame_protocol = require("wsproto.frame_protocol", "pip install wsproto")
        proto = frame_protocol.FrameProtocol(client=False, extensions=[])
        send, ping, pong, close = proto.send_data, proto.ping, proto.pong, proto.close
        if case in MESSAGES:
            msg = MESSAGES[case]
            return lambda: send(msg)
        if case == "64 KB in 16 fragments":
            last = len(FRAGMENTED) - 1
            return lambda: [send(part, i == last) for i, part in enumerate(FRAGMENTED)]
        return lambda: [ping(b"ping-000"), pong(b"ping-000"), close(1000, "bye")]
    m = fastsio_codec("websocket", impl.split("-", 1)[1])
    if case in MESSAGES:
        msg = MESSAGES[case]
        build_text_frame = m.build_text_frame
        return lambda: build_text_frame(msg)
    build_frame = m.build_frame
    if case == "64 KB in 16 fragments":
        last = len(FRAGMENTED) - 1

        def run():
            return [
                build_frame(OP_TEXT if i == 0 else OP_CONTINUATION, part.encode(), i == last)
                for i, part in enumerate(FRAGMENTED)
            ]

        return run
    build_close_frame = m.build_close_frame
    return lambda: [
        build_frame(OP_PING, b"ping-000"),
        build_frame(OP_PONG, b"ping-000"),
        build_close_frame(1000, "bye"),
    ]


BUILD_CASES = [*MESSAGES, "64 KB in 16 fragments", "control frames"]


def _reference(case: str) -> bytes:
    out = builder("fastsio-pure", case)()
    return b"".join(out) if isinstance(out, list) else out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", BUILD_CASES)
def test_build(benchmark, case: str, impl: str) -> None:
    run = builder(impl, case)
    out = run()
    got = b"".join(bytes(x) for x in out) if isinstance(out, list) else bytes(out)
    assert got == _reference(case)
    benchmark.group = f"websocket build: {case}"
    benchmark(run)
