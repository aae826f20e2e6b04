"""Engine.IO long-polling payload encode/decode: fastsio compiled, fastsio pure, python-engineio.

Cases: one message, a batch of 16 text messages (python-engineio's decode limit is 16), and four
1 KB binary messages (base64 on polling). Encoding starts from the messages (each implementation
frames every packet and joins them); decoding starts from the same response body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .conftest import fastsio_codec, require

MESSAGE = 4
_EVENT = '2["chat",{"user":"alice","text":"hello there, this is message %02d","ts":1700000000}]'

CASES = {
    "1 message": [_EVENT % 0],
    "16 messages": [_EVENT % i for i in range(16)],
    "4 binary 1 KB": [bytes(range(256)) * 4 for _ in range(4)],
}
IMPLEMENTATIONS = ["fastsio-compiled", "fastsio-pure", "python-engineio"]

Message = str | bytes


def fastsio_encoder(m: Any, messages: list[Message]) -> Callable[[], str]:
    encode_packet, encode_payload = m.encode_packet, m.encode_payload
    return lambda: encode_payload([encode_packet(MESSAGE, data) for data in messages])


def engineio_encoder(messages: list[Message]) -> Callable[[], str]:
    packet = require("engineio.packet", "pip install -e '.[bench]'")
    payload = require("engineio.payload", "pip install -e '.[bench]'")
    packet_class, payload_class = packet.Packet, payload.Payload
    return lambda: payload_class(
        packets=[packet_class(MESSAGE, data) for data in messages]
    ).encode()


def encoder(impl: str, messages: list[Message]) -> Callable[[], str]:
    if impl == "python-engineio":
        return engineio_encoder(messages)
    return fastsio_encoder(fastsio_codec("engineio", impl.split("-", 1)[1]), messages)


def decoder(impl: str, body: str) -> Callable[[], list[tuple]]:
    if impl == "python-engineio":
        payload_class = require("engineio.payload", "pip install -e '.[bench]'").Payload

        def run():
            return [(p.packet_type, p.data) for p in payload_class(encoded_payload=body).packets]

        return run
    decode_payload = fastsio_codec("engineio", impl.split("-", 1)[1]).decode_payload
    return lambda: decode_payload(body)


def as_sent(messages: list[Message]) -> list[tuple]:
    return [(MESSAGE, data) for data in messages]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_encode(benchmark, case: str, impl: str) -> None:
    messages = CASES[case]
    run = encoder(impl, messages)
    assert fastsio_codec("engineio", "pure").decode_payload(run()) == as_sent(messages)
    benchmark.group = f"engineio payload encode: {case}"
    benchmark(run)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_decode(benchmark, case: str, impl: str) -> None:
    messages = CASES[case]
    pure = fastsio_codec("engineio", "pure")
    body = pure.encode_payload([pure.encode_packet(MESSAGE, data) for data in messages])
    run = decoder(impl, body)
    decoded = run()
    if impl == "python-engineio":
        # python-engineio json-decodes a message's text when it can ("2[...]" it cannot)
        assert [t for t, _ in decoded] == [MESSAGE] * len(messages)
    else:
        assert decoded == as_sent(messages)
    benchmark.group = f"engineio payload decode: {case}"
    benchmark(run)
