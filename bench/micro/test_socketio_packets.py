"""Socket.IO packet encode/decode: fastsio compiled, fastsio pure, python-socketio's Packet.

Cases: a 2-argument event (issue 3's target case: ``2["chat","alice","hello there"]``), a small
event with an object, an event with a ~10 KB JSON payload, a binary event (one 4 KB attachment),
an ack. Every implementation encodes the same Python data and decodes the same text; the decoded
results are checked equal before timing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import fastsio_codec, require

EVENT, ACK = 2, 3
_PLAIN = {5: EVENT, 6: ACK}  # BINARY_EVENT, BINARY_ACK -> the type the caller asked for

TWO_ARGS = ["chat", "alice", "hello there"]
SMALL = ["chat", {"user": "alice", "text": "hello there", "ts": 1700000000}]
LARGE = [
    "update",
    {
        "items": [
            {"id": i, "name": f"item-{i:04d}", "price": i * 1.25, "tags": ["a", "b"]}
            for i in range(170)
        ]
    },
]
BINARY = ["upload", {"name": "blob.bin", "data": bytes(range(256)) * 16}]
ACK_DATA = ["ok", {"id": 42}]

CASES = {
    # name: (packet type, data, ack id)
    "2-argument event": (EVENT, TWO_ARGS, None),
    "small event": (EVENT, SMALL, None),
    "10 KB event": (EVENT, LARGE, None),
    "binary event": (EVENT, BINARY, None),
    "ack": (ACK, ACK_DATA, 12),
}
IMPLEMENTATIONS = ["fastsio-compiled", "fastsio-pure", "python-socketio"]


class Codec:
    """encode(case) -> a no-argument callable; decode(parts) -> a callable; plus a normaliser
    giving (type, ack id, data) for the cross-check."""

    def encoder(self, ptype: int, data: Any, ack: int | None) -> Callable[[], Any]:
        raise NotImplementedError

    def decoder(self, parts: list[Any]) -> Callable[[], Any]:
        raise NotImplementedError

    def normal(self, decoded: Any) -> tuple:
        raise NotImplementedError


class Fastsio(Codec):
    def __init__(self, variant: str) -> None:
        self.m = fastsio_codec("socketio", variant)

    def encoder(self, ptype, data, ack):
        encode = self.m.encode_packet
        return lambda: encode(ptype, "/", data, ack)

    def decoder(self, parts):
        m = self.m
        if len(parts) == 1:
            decode, text = m.decode_packet, parts[0]
            return lambda: decode(text)
        decoder_class = m.PacketDecoder

        def run():
            decoder = decoder_class()
            for part in parts:
                packet = decoder.feed(part)
            return packet

        return run

    def normal(self, p):
        return (_PLAIN.get(p.type, p.type), p.id, p.data)


class PythonSocketIO(Codec):
    def __init__(self) -> None:
        self.m = require("socketio.packet", "pip install -e '.[bench]'")

    def encoder(self, ptype, data, ack):
        packet_class = self.m.Packet
        return lambda: packet_class(packet_type=ptype, data=data, namespace="/", id=ack).encode()

    def decoder(self, parts):
        packet_class = self.m.Packet
        if len(parts) == 1:
            text = parts[0]
            return lambda: packet_class(encoded_packet=text)
        text, attachments = parts[0], parts[1:]

        def run():
            packet = packet_class(encoded_packet=text)
            for attachment in attachments:
                packet.add_attachment(attachment)
            return packet

        return run

    def normal(self, p):
        return (_PLAIN.get(p.packet_type, p.packet_type), p.id, p.data)


def make(impl: str) -> Codec:
    if impl == "python-socketio":
        return PythonSocketIO()
    return Fastsio(impl.split("-", 1)[1])


def reference_parts(ptype: int, data: Any, ack: int | None) -> list[Any]:
    """The wire form every decoder is fed: fastsio pure's encoding (python-socketio's is the same
    JSON up to key order; both are checked to decode to the same data)."""
    return list(fastsio_codec("socketio", "pure").encode_packet(ptype, "/", data, ack))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_encode(benchmark, case: str, impl: str) -> None:
    codec = make(impl)
    ptype, data, ack = CASES[case]
    run = codec.encoder(ptype, data, ack)
    out = run()
    parts = out if isinstance(out, list) else [out]
    assert len(parts) == (2 if case == "binary event" else 1)
    benchmark.group = f"socketio encode: {case}"
    benchmark(run)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_decode(benchmark, case: str, impl: str) -> None:
    codec = make(impl)
    ptype, data, ack = CASES[case]
    parts = reference_parts(ptype, data, ack)
    run = codec.decoder(parts)
    assert codec.normal(run()) == (ptype, ack, data)
    benchmark.group = f"socketio decode: {case}"
    benchmark(run)
