"""The subscription reader (fastsio/redis/_reader.py) and its compiled twin (respreader_c)
against hiredis: the same replies, errors and ProtocolErrors on random, valid-then-broken and
malformed RESP, fed whole, byte by byte and split at every byte boundary; with filters, hiredis's
replies minus exactly the messages the classic adapter's handler would drop unread.

No Redis needed. The compiled cases skip when the extension is not built and fail instead under
FASTSIO_REQUIRE_EXTENSIONS (CI builds it).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hiredis
import pytest

from fastsio import _impl
from fastsio.redis import _reader as pure

ROOT = Path(__file__).resolve().parents[2]
REQUIRE_EXTENSIONS = bool(os.environ.get("FASTSIO_REQUIRE_EXTENSIONS"))

try:
    from fastsio._speedups import respreader_c  # type: ignore[attr-defined]
except ImportError as exc:  # not built
    respreader_c = None
    IMPORT_ERROR: BaseException | None = exc
else:
    IMPORT_ERROR = None


@pytest.fixture(scope="module")
def compiled() -> Any:
    if respreader_c is None:
        msg = f"respreader_c not built: {IMPORT_ERROR}"
        if REQUIRE_EXTENSIONS:
            pytest.fail(msg)
        pytest.skip(msg)
    return respreader_c


@pytest.fixture(params=["pure", "compiled"])
def reader_module(request) -> Any:
    if request.param == "pure":
        return pure
    return request.getfixturevalue("compiled")


# -- running a reader ---------------------------------------------------------------------------


def _normal(reply: Any) -> Any:
    if isinstance(reply, list):
        return [_normal(item) for item in reply]
    if isinstance(reply, hiredis.ReplyError):
        return ("ReplyError", type(reply).__name__, reply.args)
    return reply


def run(reader: Any, pieces: list[bytes]) -> list:
    """Feeds the pieces; after each, everything gets() gives until False. A raise ends it."""
    out: list = []
    for piece in pieces:
        try:
            reader.feed(piece)
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                out.append(_normal(reply))
        except Exception as exc:  # noqa: BLE001 - compared
            out.append(("raise", type(exc).__name__, str(exc)))
            return out
        out.append("|")  # where the feeds were: the replies must come out at the same feed
    return out


def splits(stream: bytes) -> list[list[bytes]]:
    """Whole, at every byte boundary, and byte by byte."""
    ways = [[stream], [bytes([b]) for b in stream]]
    ways += [[stream[:k], stream[k:]] for k in range(1, len(stream))]
    return ways


def expected(stream_pieces: list[bytes], wants: Callable[[list], bool] | None = None) -> list:
    out = run(hiredis.Reader(), stream_pieces)
    if wants is None:
        return out
    return [r for r in out if not (isinstance(r, list) and not wants(r))]


def check(module: Any, stream: bytes, every_split: bool = True) -> None:
    for pieces in splits(stream) if every_split else [[stream]]:
        assert run(module.SubscribeReader(), pieces) == expected(pieces), (stream, pieces)


# -- random RESP2 ---------------------------------------------------------------------------------


def rand_bytes(rng: random.Random, n: int) -> bytes:
    alphabet = b"ab#/\r\n$*:+-0129\x00\xff\xc3"
    return bytes(rng.choice(alphabet) for _ in range(n))


def rand_reply(rng: random.Random, depth: int = 0) -> bytes:
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return b"+" + rand_bytes(rng, rng.randrange(6)).replace(b"\r", b"") + b"\r\n"
    if kind == 1:
        return b"-ERR " + rand_bytes(rng, rng.randrange(6)).replace(b"\r", b"") + b"\r\n"
    if kind == 2:
        return b":%d\r\n" % rng.randrange(-(2**40), 2**40)
    if kind in (3, 4):
        body = rand_bytes(rng, rng.randrange(12))
        return b"$%d\r\n%s\r\n" % (len(body), body)
    if kind == 5:
        return b"$-1\r\n"
    if kind == 6:
        return rand_message(rng)
    if kind == 7:
        return b"*-1\r\n"
    items = [rand_reply(rng, depth + 1) for _ in range(rng.randrange(4))]
    return b"*%d\r\n%s" % (len(items), b"".join(items))


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


PREFIX = b"socket.io#/#"
PATTERN = PREFIX + b"*"
ROOMS = {"held": {"sid"}, 5: {"sid2"}, "\u00e9t\u00e9": {"sid3"}}
OWN = b"\x93\xacabcdefabcdef"


def rand_channel(rng: random.Random) -> bytes:
    room = rng.choice(
        [b"", b"held", b"other", b"5", b"6", b"05", "\u00e9t\u00e9".encode(), b"\xff\xfe", b"x"]
    )
    return PREFIX + room + rng.choice([b"#", b"#", b"", b"!"])


def rand_payload(rng: random.Random) -> bytes:
    head = rng.choice([OWN, b"\x93\xacotherotherot", b"", OWN[:5]])
    return head + rand_bytes(rng, rng.randrange(10))


def rand_message(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    channel = rand_channel(rng) if rng.random() < 0.7 else rand_bytes(rng, rng.randrange(8))
    payload = rand_payload(rng)
    if kind == 0:
        pattern = PATTERN if rng.random() < 0.7 else rand_bytes(rng, rng.randrange(5))
        return b"*4\r\n" + bulk(b"pmessage") + bulk(pattern) + bulk(channel) + bulk(payload)
    name = b"message" if kind == 1 else b"smessage"
    return b"*3\r\n" + bulk(name) + bulk(channel) + bulk(payload)


def rand_stream(rng: random.Random, items: int = 5) -> bytes:
    return b"".join(
        rand_message(rng) if rng.random() < 0.5 else rand_reply(rng)
        for _ in range(rng.randrange(1, items + 1))
    )


#: replies a strict scanner leaves to hiredis, and outright garbage
ODD = [
    b"$07\r\nmessage\r\n",  # a leading zero
    b"$+7\r\nmessage\r\n",
    b"* 3\r\n",
    b"*3\r\n$7\r\nmessage\r\n:1\r\n$1\r\nx\r\n",  # an integer where a bulk is expected
    b"*3\r\n$7\r\nmessage\r\n$1\r\nx\r\n$-1\r\n",  # a nil payload
    b"*4\r\n$8\r\npmessage\r\n$1\r\np\r\n$1\r\nc\r\n$1\r\nxYZ",  # no CRLF after the body
    b"$3\r\nabcXY",
    b"+a\rb\r\n",  # a lone CR
    b"-ERR a\rb\r\n",
    b":12x\r\n",  # not an integer
    b":\r\n",
    b"$-2\r\n",
    b"*-2\r\n",
    b"$-0\r\n",
    b"$1234567890\r\n",
    b"*99999999999999999999\r\n",  # (a large valid count would make hiredis allocate it)
    b"$99999999999999999999\r\n",
    b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",  # deep
    b"%1\r\n+a\r\n+b\r\n",  # RESP3 map
    b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\np\r\n",  # RESP3 push
    b"_\r\n",
    b"#t\r\n",
    b",1.5\r\n",
    b"(123\r\n",
    b"=5\r\ntxt:a\r\n",
    b"!3\r\nerr\r\n",
    b"?\r\n",
    b"\r\n",
    b"hello\r\n",
    b"$\r\n",
    b"*\r\n",
    b"$1\r\n",
    b"*3\r\n$7\r\nmessage",
]


# -- the tests -------------------------------------------------------------------------------------


def test_compiled_reader_is_compiled(compiled) -> None:
    assert Path(compiled.__file__).suffix in (".so", ".pyd"), compiled.__file__


def test_in_place_build_is_up_to_date(compiled) -> None:
    built = Path(compiled.__file__)
    speedups = ROOT / "fastsio" / "_speedups"
    if built.parent != speedups:
        return  # installed elsewhere: built from its own sources
    sources = [ROOT / "fastsio" / "redis" / "_reader.py", speedups / "respreader_c.pxd"]
    stale = [p.name for p in sources if p.stat().st_mtime > built.stat().st_mtime]
    assert not stale, f"{built.name} is older than {stale}: `python setup.py build_ext --inplace`"


def test_selection() -> None:
    if _impl.NO_EXTENSIONS:
        assert _impl.redis_reader() is None
    elif respreader_c is not None:
        assert _impl.redis_reader() is respreader_c


@pytest.mark.parametrize(
    "stream",
    [
        b"*4\r\n$8\r\npmessage\r\n$13\r\nsocket.io#/#*\r\n$18\r\nsocket.io#/#room1#\r\n$3\r\nabc\r\n",
        b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n",
        b"*3\r\n$8\r\nsmessage\r\n$2\r\nch\r\n$4\r\n\r\n\r\n\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
        b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
        b"+OK\r\n-ERR unknown command\r\n:42\r\n$-1\r\n*-1\r\n*0\r\n",
        b"*3\r\n$7\r\nmessagX\r\n$2\r\nch\r\n$1\r\nx\r\n",
        b"*4\r\n$8\r\nsmessage\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
        b"*3\r\n*1\r\n:1\r\n$2\r\nch\r\n$1\r\nx\r\n",
        *ODD,
    ],
)
def test_known_streams(reader_module, stream: bytes) -> None:
    check(reader_module, stream)
    check(reader_module, stream + stream)
    tail = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
    check(reader_module, stream + tail)
    check(reader_module, tail + stream + tail)


def test_random_valid_streams(reader_module) -> None:
    rng = random.Random(1)
    for _ in range(150):
        check(reader_module, rand_stream(rng))


def test_random_broken_streams(reader_module) -> None:
    rng = random.Random(2)
    for _ in range(300):
        stream = bytearray(rand_stream(rng))
        for _ in range(rng.randrange(1, 3)):
            what = rng.randrange(5)
            at = rng.randrange(len(stream) + 1)
            if what == 0 and at < len(stream):
                stream[at] = rng.randrange(256)
            elif what == 1:
                stream[at:at] = bytes([rng.choice(b"$*:+-\r\n0123456789%>_#")])
            elif what == 2:
                del stream[at : at + rng.randrange(1, 4)]
            elif what == 3:
                stream[at:at] = rng.choice(ODD)
            else:
                stream = stream[:at]
        check(reader_module, bytes(stream), every_split=len(stream) < 200)


def test_random_garbage(reader_module) -> None:
    rng = random.Random(3)
    for _ in range(300):
        check(reader_module, rand_bytes(rng, rng.randrange(1, 30)))


def test_feed_accepts_what_hiredis_accepts(reader_module) -> None:
    data = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n"
    for value in (bytearray(data), memoryview(data)):
        reader = reader_module.SubscribeReader()
        reader.feed(value)
        assert reader.gets() == [b"message", b"ch", b"x"]
    reader = reader_module.SubscribeReader()
    reader.feed("$2\r\n\u00e9\r\n")  # hiredis takes a str, as UTF-8
    assert reader.gets() == b"\xc3\xa9"
    for value in (5, None, 1.5):
        with pytest.raises(TypeError):
            hiredis.Reader().feed(value)
        with pytest.raises(TypeError):
            reader_module.SubscribeReader().feed(value)


def test_a_huge_reply_fed_in_small_pieces_is_joined_once(reader_module) -> None:
    body = os.urandom(1 << 20)
    stream = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n" + bulk(body)
    reader = reader_module.SubscribeReader()
    pieces = [stream[k : k + 4096] for k in range(0, len(stream), 4096)]
    for piece in pieces[:-1]:
        reader.feed(piece)
        assert reader.gets() is False
    reader.feed(pieces[-1])
    assert reader.gets() == [b"message", b"ch", body]
    assert reader.gets() is False


# -- filters: exactly what the classic adapter's handler drops unread ----------------------------


def handler_drops(channel: bytes, payload: bytes) -> bool:
    """RedisAdapter._on_broadcast's checks before it decodes (prefix_length = len(PREFIX))."""
    if len(channel) > len(PREFIX) + 1:
        try:
            room = channel[len(PREFIX) : -1].decode()
        except UnicodeDecodeError:
            return True
        if room not in ROOMS and not (room.isascii() and room.isdigit() and int(room) in ROOMS):
            return True
    return payload.startswith(OWN)


def test_filters_drop_exactly_what_the_handler_drops(reader_module) -> None:
    rng = random.Random(4)

    def wants(reply: list) -> bool:
        if not reply or not all(type(item) is bytes for item in reply):
            return True  # not a message push of bulk strings: never filtered
        kind = reply[0]
        if kind == b"pmessage" and len(reply) == 4 and reply[1] == PATTERN:
            return not handler_drops(reply[2], reply[3])
        if kind in (b"message", b"smessage") and len(reply) == 3 and reply[1] == PREFIX:
            return not handler_drops(reply[1], reply[2])
        return True

    dropped = 0
    for _ in range(200):
        stream = rand_stream(rng, 8)
        third = len(stream) // 3
        for pieces in ([stream], [stream[:third], stream[third:]], [bytes([b]) for b in stream]):
            reader = reader_module.SubscribeReader(
                {PATTERN: reader_module.BroadcastFilter(len(PREFIX), ROOMS, OWN)},
                {PREFIX: reader_module.BroadcastFilter(len(PREFIX), ROOMS, OWN)},
                {PREFIX: reader_module.BroadcastFilter(len(PREFIX), ROOMS, OWN)},
            )
            assert run(reader, pieces) == expected(pieces, wants), stream
            dropped += reader.dropped
    assert dropped > 100


def test_filter_reads_the_rooms_dict_at_each_message(reader_module) -> None:
    rooms: dict = {}
    reader = reader_module.SubscribeReader(
        {PATTERN: reader_module.BroadcastFilter(len(PREFIX), rooms, OWN)}
    )
    message = b"*4\r\n" + bulk(b"pmessage") + bulk(PATTERN) + bulk(PREFIX + b"r#") + bulk(b"x")
    reader.feed(message)
    assert reader.gets() is False
    assert reader.dropped == 1
    rooms["r"] = {"sid"}
    reader.feed(message)
    assert reader.gets() == [b"pmessage", PATTERN, PREFIX + b"r#", b"x"]
    del rooms["r"]
    reader.feed(message * 3)
    assert reader.gets() is False
    assert reader.dropped == 4
    # a filter removed from the dict is not consulted any more
    reader.pattern_filters.clear()
    reader.feed(message)
    assert reader.gets() == [b"pmessage", PATTERN, PREFIX + b"r#", b"x"]


def test_after_broken_data_the_reader_is_hiredis(reader_module) -> None:
    rooms: dict = {}
    reader = reader_module.SubscribeReader(
        {PATTERN: reader_module.BroadcastFilter(len(PREFIX), rooms, OWN)}
    )
    foreign = b"*4\r\n" + bulk(b"pmessage") + bulk(PATTERN) + bulk(PREFIX + b"r#") + bulk(b"x")
    reader.feed(foreign + b"%1\r\n+a\r\n+b\r\n" + foreign)
    assert reader.gets() == {b"a": b"b"}  # RESP3, hiredis's
    assert reader.gets() == [b"pmessage", PATTERN, PREFIX + b"r#", b"x"]  # no longer filtered
    assert reader.dropped == 1
