"""The hand-written seeds of the fuzz corpus: valid inputs of every kind each decoder reads (and a
few broken ones), for the fuzzer to start from. ``python -m tests.fuzz.seeds`` writes them into
tests/fuzz/corpus/<target>/ (named by their SHA-1, as libFuzzer names what it finds)."""

from __future__ import annotations

import hashlib
import os
import zlib

from .run import CORPUS
from .targets import PURE_MSGPACK

MASK = b"\x1f\x2e\x3d\x4c"


def masked(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    """A client frame (masked)."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    body = bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))
    return bytes(head) + MASK + body


def deflated(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def engineio_payload() -> list[bytes]:
    return [
        b"4hello",
        b"4hello\x1e4world\x1e2\x1e3\x1e6",
        b"1",
        b'40\x1e42["a",1]',
        b"bAAECAw==",
        b"4\xe2\x82\xac\xf0\x9f\x98\x80",
        b"3probe",
        b"b!!",
        b"\x1e",
        b"7",
    ]


def engineio3_payload() -> list[bytes]:
    text = b"\x00"
    binary = b"\x01"
    return [
        text + b"6:4hello2:40",
        text + b"1:2",
        text + b"5:b4AQI=",
        text + "2:4€".encode(),
        text + "3:4😀".encode(),
        text + b"12:4hello",
        binary + b"\x00\x06\xff4hello\x01\x04\xff\x04\x00\x01\x02",
        binary + b"\x00\x01\xff2",
        binary + b"\x01\x09\x09\xff\x04",
    ]


def socketio_packet() -> list[bytes]:
    return [
        b"0",
        b"0/admin,",
        b'0{"token":"abc"}',
        b'0/admin,{"pid":"x","offset":"1-2"}',
        b"1",
        b"1/admin,",
        b'2["message","hello"]',
        b'21["e",1,2.5,null,true,{"a":[]}]',
        b'2/admin,12["e","\\u00e9\\ud83d\\ude00"]',
        b"3/admin,5[1]",
        b'4{"message":"nope"}',
        b'51-["e",{"_placeholder":true,"num":0}]\xfe\x01\x02\x03',
        b'62-/a,1[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]\xfe\x01x\xfe\x01y',
        b'2["e"]\xfe2["f"]',
        b"2[",
        b'9["e"]',
    ]


def msgpack_packet() -> list[bytes]:
    if PURE_MSGPACK is None:
        return []
    encode = PURE_MSGPACK.encode_packet
    packets = [
        encode(0, "/", None, None),
        encode(0, "/admin", {"token": "x"}, None),
        encode(1, "/", None, None),
        encode(2, "/", ["message", "hello", 1, 2.5, None, True, b"\x00\x01"], None),
        encode(2, "/", ["e", {"a": [1, {"b": b"x"}]}], 7),
        encode(3, "/a", [1], 7),
        encode(4, "/", {"message": "no"}, None),
    ]
    return [part for packet in packets for part in packet if isinstance(part, bytes)] + [
        b"\x80",
        b"\x81\xa4type\x02",
        b"\xc1",
    ]


def websocket_frames() -> list[bytes]:
    plain, deflate, deflate_no_takeover = b"\x00", bytes([1 | 6 << 1]), bytes([1 | 6 << 1 | 0x10])
    hello = masked(1, b'42["message","hello"]')
    fragments = masked(1, b'42["me', fin=False) + masked(9, b"p") + masked(0, b'ssage"]')
    return [
        plain + hello,
        plain + hello[:3] + b"\xfe" + hello[3:],
        plain + masked(2, b"\x00\x01\x02") + masked(9, b"ping") + masked(10, b"pong"),
        plain + fragments,
        plain + masked(8, b"\x03\xe8bye"),
        plain + masked(1, b"\xff"),
        plain + masked(1, b"x" * 200) + masked(2, b"y" * 3000),
        plain + b"\x81\x05hello",  # unmasked: refused
        deflate + masked(1, deflated(b'42["message","hello hello hello"]'), rsv1=True),
        deflate_no_takeover
        + masked(1, deflated(b"4" + b"a" * 500)[:10], fin=False, rsv1=True)
        + masked(0, deflated(b"4" + b"a" * 500)[10:]),
        deflate + masked(9, b"x", rsv1=True),
        deflate + masked(1, b"\xff\xff\xff", rsv1=True),
    ]


def http_head() -> list[bytes]:
    return [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        (
            b"GET /socket.io/?EIO=4&transport=polling&t=abc HTTP/1.1\r\nHost: x\r\n"
            b"Accept: */*\r\nConnection: keep-alive\r\n\r\n"
        ),
        b"POST /p?sid=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n4abcd",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHo\xfest: x\r\n\xfe\r\n",
        (
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            b"\x81\x80abcd"
        ),
        b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
        b"GET http://example.com/x?y=1 HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /%2e%2e/%zz HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"GET / HTTP/1.1\r\nX: " + b"a" * 1100 + b"\r\n\r\n",
        b"BREW / HTCPCP/1.0\r\n\r\n",
    ]


SEEDS = {
    "engineio_payload": engineio_payload,
    "engineio3_payload": engineio3_payload,
    "socketio_packet": socketio_packet,
    "msgpack_packet": msgpack_packet,
    "websocket_frames": websocket_frames,
    "http_head": http_head,
}


def main() -> None:
    for target, seeds in SEEDS.items():
        directory = os.path.join(CORPUS, target)
        os.makedirs(directory, exist_ok=True)
        for seed in seeds():
            name = hashlib.sha1(seed).hexdigest()
            with open(os.path.join(directory, name), "wb") as file:
                file.write(seed)
    print(f"seeds written under {CORPUS}")


if __name__ == "__main__":
    main()
