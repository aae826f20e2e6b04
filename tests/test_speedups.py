"""The compiled speedups (fastsio._speedups) against their pure-Python twins.

- selection: ``fastsio.SPEEDUPS`` / ``fastsio._impl`` with and without FASTSIO_NO_EXTENSIONS, and
  the one warning when the extensions are missing (in subprocesses, as a user would start them);
- differential: compiled == pure on random, valid-then-corrupted and malformed input for the three
  codecs (same results; same exception classes, close codes and messages), and for the two optional
  ones (Engine.IO v3, the msgpack parser), which are picked on their own and never count for
  ``SPEEDUPS`` (nor need msgpack to be installed for ``import fastsio``);
- the fan-out twins on fake sessions;
- the WebSocket connection twins (fastsio/http/websocket.py and wsconn_c, that file compiled):
  selected with the compiled codecs, and the same listener calls, writes, closes and timers for
  the same script of reads, sends, ticks and closes.

The compiled cases skip when the extensions are not built, and fail instead when
FASTSIO_REQUIRE_EXTENSIONS is set (CI builds them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsio import _impl
from fastsio._speedups import fanout_py
from fastsio.protocol import engineio as pure_engineio
from fastsio.protocol import socketio as pure_socketio
from fastsio.protocol import websocket as pure_websocket
from fastsio.protocol.errors import ProtocolError, WebSocketError
from tests import codec_impls
from tests.test_protocol_websocket import client_frame

ROOT = Path(__file__).resolve().parent.parent
COMPILED = codec_impls.IMPLEMENTATIONS.get("compiled")

try:
    from fastsio._speedups import fanout_c  # type: ignore[attr-defined]
except ImportError:  # not built
    fanout_c = None


def _import_built(*names: str) -> tuple:
    """(the compiled modules ``fastsio._speedups.<name>``, None) or (None, the ImportError)."""
    try:
        return tuple(importlib.import_module(f"fastsio._speedups.{name}") for name in names), None
    except ImportError as exc:  # not built
        return None, exc


def _built(modules: Any, what: str, error: BaseException | None) -> Any:
    """``modules``; when they are not built, skip (fail under FASTSIO_REQUIRE_EXTENSIONS)."""
    if modules is None:
        msg = f"{what} not built: {error}"
        if codec_impls.REQUIRE_EXTENSIONS:
            pytest.fail(msg)
        pytest.skip(msg)
    return modules


_WSCONN, WSCONN_IMPORT_ERROR = _import_built("wsconn_c")
wsconn_c = _WSCONN and _WSCONN[0]


@pytest.fixture(scope="session")
def compiled() -> codec_impls.Codecs:
    """The compiled codecs (skip, or fail under FASTSIO_REQUIRE_EXTENSIONS, when not built)."""
    built = COMPILED if fanout_c is not None else None
    return _built(built, "compiled speedups", codec_impls.COMPILED_IMPORT_ERROR)


@pytest.fixture(scope="session")
def compiled_wsconn(compiled) -> Any:
    """fastsio._speedups.wsconn_c (skip, or fail under FASTSIO_REQUIRE_EXTENSIONS, when not
    built)."""
    return _built(wsconn_c, "wsconn_c", WSCONN_IMPORT_ERROR)


def _outcome(fn: Any, *args: Any) -> tuple:
    """What a call did, comparable across implementations: its result (Packets as tuples), or its
    exception's class, close code and (for the protocol's own errors) message."""
    try:
        result = fn(*args)
    except WebSocketError as exc:
        return ("raise", WebSocketError, exc.close_code, str(exc))
    except ProtocolError as exc:
        return ("raise", type(exc), str(exc))
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError ...: the class must match
        return ("raise", type(exc))
    return ("ok", _plain(result))


def _plain(value: Any) -> Any:
    if type(value).__name__ == "Packet":
        return ("Packet", value.type, value.nsp, value.data, value.id, value.attachments)
    if type(value) is list:
        return [_plain(item) for item in value]
    if type(value) is tuple:
        return tuple(_plain(item) for item in value)
    return value


def same(pure_fn: Any, compiled_fn: Any, *args: Any) -> tuple:
    pure = _outcome(pure_fn, *args)
    assert _outcome(compiled_fn, *args) == pure, args
    return pure


# -- selection ----------------------------------------------------------------------------------

PROBE = """
import warnings
warnings.simplefilter("always")
import fastsio, fastsio._impl as i
import fastsio.http, fastsio.http.server as s, fastsio.http.protocol as p
assert fastsio.http.WebSocketConnection is p.WebSocketConnection is s.WebSocketConnection
assert s.TickWriter.__module__ == i.WebSocketConnection.__module__
assert not hasattr(i, "__getattr__")  # the lazy import of the pure classes is gone once used
print(fastsio.SPEEDUPS, i.SPEEDUPS, i.engineio.__name__, i.socketio.__name__,
      i.websocket.__name__, i.fanout.__module__, fastsio.http.WebSocketConnection.__module__)
"""


def _import_blocker(condition: str) -> str:
    """A prelude for _probe: modules whose ``name`` meets ``condition`` fail to import."""
    return (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if {condition}:\n"
        '            raise ImportError(f"blocked {name}")\n'
        "sys.meta_path.insert(0, Block())\n"
    )


BLOCK_EXTENSIONS = _import_blocker('name.startswith("fastsio._speedups.") and name.endswith("_c")')


def _probe(env_update: dict, prelude: str = "", probe: str = PROBE) -> tuple[list[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTSIO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(env_update)
    proc = subprocess.run(
        [sys.executable, "-c", prelude + probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(), proc.stderr


def test_selection_compiled(compiled) -> None:
    out, err = _probe({})
    assert out == [
        "True",
        "True",
        "fastsio._speedups.engineio_c",
        "fastsio._speedups.socketio_c",
        "fastsio._speedups.websocket_c",
        "fastsio._speedups.fanout_c",
        "fastsio._speedups.wsconn_c",
    ]
    assert "Warning" not in err


def test_selection_no_extensions() -> None:
    out, err = _probe({"FASTSIO_NO_EXTENSIONS": "1"})
    assert out == [
        "False",
        "False",
        "fastsio.protocol.engineio",
        "fastsio.protocol.socketio",
        "fastsio.protocol.websocket",
        "fastsio._speedups.fanout_py",
        "fastsio.http.websocket",
    ]
    assert err == ""  # chosen on purpose: no warning


def test_selection_extensions_missing_warns_once() -> None:
    out, err = _probe({}, prelude=BLOCK_EXTENSIONS)
    assert out[:2] == ["False", "False"]
    assert out[2:] == [
        "fastsio.protocol.engineio",
        "fastsio.protocol.socketio",
        "fastsio.protocol.websocket",
        "fastsio._speedups.fanout_py",
        "fastsio.http.websocket",
    ]
    assert err.count("RuntimeWarning") == 1, err
    assert "compiled speedups are not built" in err


BLOCK_WSCONN = _import_blocker('name == "fastsio._speedups.wsconn_c"')


def test_selection_wsconn_missing_alone(compiled) -> None:
    # the codecs compiled, the connection class not: the pure class, silently (as the optional
    # codecs), and SPEEDUPS still tells about the codecs
    out, err = _probe({}, prelude=BLOCK_WSCONN)
    assert out[:2] == ["True", "True"]
    assert out[2:] == [
        "fastsio._speedups.engineio_c",
        "fastsio._speedups.socketio_c",
        "fastsio._speedups.websocket_c",
        "fastsio._speedups.fanout_c",
        "fastsio.http.websocket",
    ]
    assert "Warning" not in err


def test_selection_in_this_process() -> None:
    import fastsio
    from fastsio import http
    from fastsio.http import protocol, request, server
    from fastsio.http import websocket as pure_wsconn

    assert fastsio.SPEEDUPS is _impl.SPEEDUPS
    if _impl.SPEEDUPS:
        assert _impl.socketio is COMPILED.socketio and _impl.fanout is fanout_c.fanout
    else:
        assert _impl.socketio is pure_socketio and _impl.fanout is fanout_py.fanout
    wsconn = wsconn_c if _impl.SPEEDUPS and wsconn_c is not None else pure_wsconn
    assert _impl.WebSocketConnection is wsconn.WebSocketConnection
    assert _impl.TickWriter is wsconn.TickWriter
    # every user in fastsio.http gets the selected classes
    assert http.WebSocketConnection is protocol.WebSocketConnection is _impl.WebSocketConnection
    assert server.WebSocketConnection is _impl.WebSocketConnection
    assert server.TickWriter is _impl.TickWriter
    assert "from .._impl import WebSocketConnection" in Path(request.__file__).read_text()
    # the HTTP connection: compiled with the codecs (when built), else the pure module
    assert server.HttpProtocol is _impl.http_protocol.HttpProtocol
    if not _impl.SPEEDUPS:
        assert _impl.http_protocol is protocol


# the optional codecs: picked one by one, never counted in SPEEDUPS, never warned about
OPTIONAL_PROBE = """
import warnings
warnings.simplefilter("always")
import fastsio, fastsio._impl as i
mp = i.msgpack_parser
print(fastsio.SPEEDUPS, i.socketio.__name__, i.engineio3.__name__, mp and mp.__name__)
"""

BLOCK_OPTIONAL_EXTENSIONS = _import_blocker(
    'name in ("fastsio._speedups.engineio3_c", "fastsio._speedups.msgpack_parser_c")'
)

HIDE_MSGPACK = "import sys\nsys.modules['msgpack'] = None  # as if not installed\n"


@pytest.fixture(scope="session")
def compiled_optional(compiled) -> tuple:
    """(engineio3_c, msgpack_parser_c); skip, or fail under FASTSIO_REQUIRE_EXTENSIONS, when not
    built (the msgpack one also skips when msgpack is not installed)."""
    return (
        codec_impls.pick("compiled", codec_impls.ENGINEIO3, codec_impls.ENGINEIO3_IMPORT_ERROR),
        codec_impls.pick(
            "compiled", codec_impls.MSGPACK_PARSER, codec_impls.MSGPACK_PARSER_IMPORT_ERROR
        ),
    )


def test_selection_optional_compiled(compiled_optional) -> None:
    out, err = _probe({}, probe=OPTIONAL_PROBE)
    assert out == [
        "True",
        "fastsio._speedups.socketio_c",
        "fastsio._speedups.engineio3_c",
        "fastsio._speedups.msgpack_parser_c",
    ]
    assert "Warning" not in err


def test_selection_optional_no_extensions() -> None:
    pytest.importorskip("msgpack")
    out, err = _probe({"FASTSIO_NO_EXTENSIONS": "1"}, probe=OPTIONAL_PROBE)
    assert out == [
        "False",
        "fastsio.protocol.socketio",
        "fastsio.protocol.engineio3",
        "fastsio.protocol.msgpack_parser",
    ]
    assert err == ""


def test_selection_optional_missing_changes_nothing_else(compiled_optional) -> None:
    # the main codecs compiled, the optional twins not: pure ones for those, silently
    out, err = _probe({}, prelude=BLOCK_OPTIONAL_EXTENSIONS, probe=OPTIONAL_PROBE)
    assert out == [
        "True",
        "fastsio._speedups.socketio_c",
        "fastsio.protocol.engineio3",
        "fastsio.protocol.msgpack_parser",
    ]
    assert "Warning" not in err
    # no extension at all: the one warning is about the main codecs
    out, err = _probe({}, prelude=BLOCK_EXTENSIONS, probe=OPTIONAL_PROBE)
    assert out[:3] == ["False", "fastsio.protocol.socketio", "fastsio.protocol.engineio3"]
    assert err.count("RuntimeWarning") == 1, err


MSGPACK_MISSING_PROBE = """
import fastsio, fastsio._impl as i
from fastsio.parser import resolve_parser
assert i.msgpack_parser is None and resolve_parser("json").name == "json"
try:
    resolve_parser("msgpack")
except ImportError as exc:
    assert "pip install" in str(exc) and "fastsio[msgpack]" in str(exc), exc
else:
    raise AssertionError("resolve_parser('msgpack') without msgpack")
fastsio.Server(parser="json", allow_eio3=True)
print(fastsio.SPEEDUPS, i.engineio3.__name__, i.msgpack_parser)
"""


@pytest.mark.parametrize("no_extensions", [False, True])
def test_import_without_msgpack(no_extensions) -> None:
    """msgpack is optional: ``import fastsio`` works without it, compiled or pure, and
    ``parser="msgpack"`` says how to install it."""
    env = {"FASTSIO_NO_EXTENSIONS": "1"} if no_extensions else {}
    out, err = _probe(env, prelude=HIDE_MSGPACK, probe=MSGPACK_MISSING_PROBE)
    speedups = not no_extensions and COMPILED is not None and fanout_c is not None
    eio3_c = not no_extensions and "compiled" in codec_impls.ENGINEIO3
    assert out == [
        str(speedups),
        "fastsio._speedups.engineio3_c" if eio3_c else "fastsio.protocol.engineio3",
        "None",
    ]
    assert err.count("RuntimeWarning") == (0 if speedups or no_extensions else 1), err


def test_optional_selection_in_this_process() -> None:
    from fastsio.engine import session3
    from fastsio.protocol import engineio3 as pure_engineio3

    assert session3.engineio3 is _impl.engineio3
    if _impl.NO_EXTENSIONS or "compiled" not in codec_impls.ENGINEIO3:
        assert _impl.engineio3 is pure_engineio3
    else:
        assert _impl.engineio3 is codec_impls.ENGINEIO3["compiled"]
    if _impl.msgpack_parser is not None:
        from fastsio.parser import resolve_parser

        parser_module = type(resolve_parser("msgpack")).__module__
        assert parser_module == _impl.msgpack_parser.__name__


# -- same interface -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["engineio", "socketio", "websocket"])
def test_same_public_names_and_constants(compiled, name: str) -> None:
    pure = {"engineio": pure_engineio, "socketio": pure_socketio, "websocket": pure_websocket}[name]
    module = getattr(compiled, name)
    assert sorted(module.__all__) == sorted(pure.__all__)
    for attr in pure.__all__:
        value = getattr(pure, attr)
        assert hasattr(module, attr), attr
        if isinstance(value, (int, str, frozenset)):
            assert getattr(module, attr) == value, attr


@pytest.mark.parametrize("index", [0, 1], ids=["engineio3", "msgpack_parser"])
def test_optional_same_public_names_and_constants(compiled_optional, index: int) -> None:
    module = compiled_optional[index]
    pure = codec_impls.ENGINEIO3["pure"] if index == 0 else codec_impls.MSGPACK_PARSER["pure"]
    assert sorted(module.__all__) == sorted(pure.__all__)
    for attr in pure.__all__:
        value = getattr(pure, attr)
        assert hasattr(module, attr), attr
        if isinstance(value, (int, str, frozenset)):
            assert getattr(module, attr) == value, attr


def test_compiled_modules_use_the_shared_errors(compiled) -> None:
    with pytest.raises(ProtocolError):
        compiled.engineio.decode_packet("")
    with pytest.raises(ProtocolError):
        compiled.socketio.decode_packet("9")
    with pytest.raises(WebSocketError) as info:
        compiled.websocket.FrameReader().feed(b"\x81\x05hello")  # unmasked
    assert info.value.close_code == 1002


def test_compiled_codecs_are_compiled(compiled) -> None:
    for module in (compiled.engineio, compiled.socketio, compiled.websocket, fanout_c):
        assert Path(module.__file__).suffix in (".so", ".pyd"), module.__file__


def test_compiled_wsconn_is_compiled(compiled_wsconn) -> None:
    assert Path(compiled_wsconn.__file__).suffix in (".so", ".pyd"), compiled_wsconn.__file__
    # compiled with wsconn_c.pxd: C attributes and cdef methods are not Python attributes
    from fastsio.http import websocket as pure_wsconn

    for name in ("_out", "_state", "_reader", "_handle", "_fail"):
        assert hasattr(pure_wsconn.WebSocketConnection, name), name
        assert not hasattr(compiled_wsconn.WebSocketConnection, name), name
    assert not hasattr(compiled_wsconn.TickWriter, "_pending")


def test_compiled_optional_codecs_are_compiled(compiled_optional) -> None:
    for module in compiled_optional:
        assert Path(module.__file__).suffix in (".so", ".pyd"), module.__file__


def test_in_place_build_is_up_to_date(compiled) -> None:
    """An in-place build older than its sources tests stale code: rebuild it."""
    speedups, protocol = ROOT / "fastsio" / "_speedups", ROOT / "fastsio" / "protocol"
    sources = {
        compiled.engineio: [protocol / "engineio.py", speedups / "engineio_c.pxd"],
        compiled.socketio: [
            protocol / "socketio.py",
            speedups / "socketio_c.pxd",
            speedups / "json_c.pxd",  # the Packet's fields it is compiled against
        ],
        compiled.websocket: [speedups / "websocket_c.pyx", speedups / "websocket_c.pxd"],
        fanout_c: [speedups / "fanout_py.py", speedups / "fanout_c.pxd"],
    }
    if wsconn_c is not None:
        sources[wsconn_c] = [
            ROOT / "fastsio" / "http" / "websocket.py",
            speedups / "wsconn_c.pxd",
            speedups / "websocket_c.pxd",  # the FrameReader layout it is compiled against
        ]
    try:
        from fastsio._speedups import client_c, socket_c  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        sources[client_c] = [ROOT / "fastsio" / "client.py", speedups / "client_c.pxd"]
        sources[socket_c] = [
            ROOT / "fastsio" / "socket.py",
            speedups / "socket_c.pxd",
            speedups / "client_c.pxd",  # the Client layout it is compiled against
        ]
    for name, modules in (
        ("engineio3", codec_impls.ENGINEIO3),
        ("msgpack_parser", codec_impls.MSGPACK_PARSER),
    ):
        if "compiled" in modules:
            pxd = speedups / f"{name}_c.pxd"
            sources[modules["compiled"]] = [protocol / f"{name}.py"] + [pxd] * pxd.exists()
    if session_c is not None:
        engine, engine_pxd = ROOT / "fastsio" / "engine", speedups / "engine"
        sources[session_c] = [engine / "session.py", engine_pxd / "session.pxd"]
        sources[transports_c] = [
            engine / "transports.py",
            engine_pxd / "transports.pxd",
            engine_pxd / "session.pxd",  # the EngineSession layout it is compiled against
        ]
    from fastsio._speedups import json_c  # type: ignore[attr-defined]

    sources[json_c] = [speedups / "json_c.pyx"]
    for module, paths in sources.items():
        built = Path(module.__file__)
        if not built.is_relative_to(speedups):
            continue  # installed elsewhere (pip install .): built from its own sources
        stale = [p.name for p in paths if p.stat().st_mtime > built.stat().st_mtime]
        assert not stale, (
            f"{built.name} is older than {stale}: rebuild with "
            "`python setup.py build_ext --inplace` (or `pip install -e .`)"
        )


# -- Socket.IO ----------------------------------------------------------------------------------

_keys = st.text(max_size=6)
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    _leaves,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(_keys, c, max_size=4),
    max_leaves=12,
)
values_with_bytes = st.recursive(
    _leaves | st.binary(max_size=8) | st.just(bytearray(b"ba")) | st.just(memoryview(b"mv")),
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(_keys | st.integers(0, 3), c, max_size=4)
    ),
    max_leaves=12,
)
namespaces = st.sampled_from(["/", "", "/chat", "chat", "/a,b", None]) | st.text(max_size=6)
ack_ids = st.none() | st.integers(-2, 2**53 + 1) | st.sampled_from([True, 1.0, 2.5, "3", 2**64])
packet_types = st.integers(-2, 8) | st.sampled_from([2.0, 7.5, True, None, "2", 2**70])


@settings(max_examples=400, deadline=None)
@given(packet_type=packet_types, nsp=namespaces, data=st.none() | values_with_bytes, ack=ack_ids)
def test_socketio_encode_differential(compiled, packet_type, nsp, data, ack) -> None:
    same(pure_socketio.encode_packet, compiled.socketio.encode_packet, packet_type, nsp, data, ack)


def test_socketio_encode_deep_data(compiled) -> None:
    # in a subprocess: a compiled module without a depth bound would overflow the C stack
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from fastsio._speedups import socketio_c\n"
        "from fastsio.protocol import socketio\n"
        "for depth in (300, 600, 5000, 200000):\n"
        "    data = b'x'\n"
        "    for _ in range(depth):\n"
        "        data = [data]\n"
        "    kinds = []\n"
        "    for module in (socketio, socketio_c):\n"
        "        try:\n"
        "            module.encode_packet(2, '/', ['e', data])\n"
        "            kinds.append('ok')\n"
        "        except Exception as exc:\n"
        "            kinds.append(type(exc).__name__)\n"
        "    print(depth, *kinds)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        _depth, pure, comp = line.split()
        assert pure == comp == "TypeError", line


def _corrupt(text: str, edits: list) -> str:
    chars = list(text)
    for kind, position, char in edits:
        if not chars and kind != "insert":
            continue
        position = position % (len(chars) + 1)
        if kind == "insert":
            chars.insert(position, char)
        elif position < len(chars):
            if kind == "delete":
                del chars[position]
            else:
                chars[position] = char
    return "".join(chars)


edits = st.lists(
    st.tuples(
        st.sampled_from(["insert", "delete", "replace"]),
        st.integers(0, 200),
        st.sampled_from(list('0123456789-/,[]{}"_ ax\x00é')) | st.characters(),
    ),
    max_size=4,
)


#: the reserved event names and names that only look like one
_NEAR_RESERVED = sorted(
    {n for name in pure_socketio.RESERVED_EVENTS for n in (name, name[:-1], name + "x", name[1:])}
)


@st.composite
def socketio_texts(draw) -> str:
    """A packet as a client would send it, often corrupted."""
    packet_type = draw(st.integers(0, 9))
    text = str(packet_type)
    if packet_type in (5, 6) or draw(st.booleans()):
        text += str(draw(st.integers(0, 3000))) + "-" if draw(st.integers(0, 4)) else "-"
    if draw(st.booleans()):
        text += draw(st.sampled_from(["/", "/chat", "/a/b", "/x"])) + ","
    if draw(st.booleans()):
        text += str(draw(st.integers(0, 10**18)))
    if draw(st.integers(0, 3)):
        kind = draw(st.integers(0, 2))
        if kind == 0:  # an event: [name, *args]
            name = draw(st.text(max_size=8) | st.sampled_from(_NEAR_RESERVED))
            payload = [name, *draw(st.lists(json_values, max_size=3))]
        elif kind == 1:
            payload = draw(json_values)
        else:
            payload = [{"_placeholder": True, "num": draw(st.integers(-1, 2))}]
        text += json.dumps(payload)
    return _corrupt(text, draw(edits))


@settings(max_examples=600, deadline=None)
@given(text=socketio_texts() | st.text(max_size=40), max_attachments=st.sampled_from([1000, 2, 0]))
def test_socketio_decode_differential(compiled, text, max_attachments) -> None:
    same(pure_socketio.decode_packet, compiled.socketio.decode_packet, text, max_attachments)


@settings(max_examples=300, deadline=None)
@given(
    feeds=st.lists(
        socketio_texts()
        | st.sampled_from(
            [
                '51-["e",{"_placeholder":true,"num":0}]',
                '62-1[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]',
                '5-["e"]',
            ]
        )
        | st.binary(max_size=6)
        | st.just(bytearray(b"ab")),
        max_size=8,
    )
)
def test_socketio_packet_decoder_differential(compiled, feeds) -> None:
    pure = pure_socketio.PacketDecoder(max_attachments=5)
    comp = compiled.socketio.PacketDecoder(max_attachments=5)
    for data in feeds:
        outcome = same(pure.feed, comp.feed, data)
        assert pure.pending == comp.pending
        if outcome[0] == "raise":
            break


def test_socketio_packet_class(compiled) -> None:
    Packet = compiled.socketio.Packet
    packet = Packet(2, "/", ["e", 1])
    assert packet == Packet(2, "/", ["e", 1]) and packet != Packet(3, "/", ["e", 1])
    assert repr(packet) == repr(pure_socketio.Packet(2, "/", ["e", 1]))
    assert (packet.type, packet.nsp, packet.data, packet.id, packet.attachments) == (
        2,
        "/",
        ["e", 1],
        None,
        0,
    )
    packet.id = 5  # the layers above set fields
    with pytest.raises(TypeError):
        hash(packet)
    with pytest.raises(AttributeError):
        packet.other = 1  # type: ignore[attr-defined]


def test_socketio_decode_requires_exact_str(compiled) -> None:
    """The one deliberate difference: the compiled decode_packet takes exactly ``str`` (a typed
    argument is what makes it fast); the pure one also takes a str subclass."""

    class Text(str):
        pass

    assert pure_socketio.decode_packet(Text('2["e"]')).data == ["e"]
    with pytest.raises(TypeError):
        compiled.socketio.decode_packet(Text('2["e"]'))
    for bad in (None, b'2["e"]', 5):
        with pytest.raises(TypeError):
            compiled.socketio.decode_packet(bad)
        with pytest.raises(TypeError):
            pure_socketio.decode_packet(bad)


# -- json_c: the compiled codec's fast paths in front of orjson ------------------------------------


@pytest.fixture(scope="session")
def json_c(compiled) -> Any:
    from fastsio._speedups import json_c  # type: ignore[attr-defined]

    return json_c


def _typed(value: Any) -> Any:
    """A value with its types spelled out: [True] and [1] (equal in Python) must differ here."""
    if type(value) is list:
        return ["list", [_typed(item) for item in value]]
    return [type(value).__name__, value]


def _loads_outcome(loads: Any, text: str) -> tuple:
    try:
        return ("ok", _typed(loads(text)))
    except Exception as exc:  # noqa: BLE001 - the class must match
        return ("raise", type(exc), str(exc))


flat_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.sampled_from([0, -0, 10**17, 10**18, -(10**18), 2**63 - 1, -(2**63), 1.5, -0.0, 1e300])
    | st.text(max_size=10)
    | st.text(st.characters(max_codepoint=127), max_size=10)
    | st.sampled_from(['a"b', "a\\b", "\x00", "\x1f", "\x7f", "é", "\u2028", "\ud800"])
)
flat_lists = st.lists(flat_values, max_size=6)


@st.composite
def json_texts(draw) -> str:
    """Mostly flat arrays (what the fast path reads), spaced or corrupted now and then."""
    values = draw(flat_lists | st.lists(flat_lists, max_size=2) | json_values)
    try:
        text = json.dumps(values, ensure_ascii=draw(st.booleans()))
    except ValueError:
        text = "[]"
    if draw(st.booleans()):
        text = text.replace(",", draw(st.sampled_from([" , ", ",\n", ",\t", ",,", " "])))
    if draw(st.booleans()):
        text = (
            draw(st.sampled_from([" ", "\r\n", "", "x"]))
            + text
            + draw(st.sampled_from([" ", "\n", "", "]", ","]))
        )
    return _corrupt(text, draw(edits))


@settings(max_examples=1500, deadline=None)
@given(text=json_texts() | st.text(max_size=30), head=st.sampled_from(["", "2", "42/chat,7", "["]))
def test_json_loads_is_orjson_loads(json_c, text, head) -> None:
    expected = _loads_outcome(orjson.loads, text)
    assert _loads_outcome(json_c.loads, text) == expected, text
    at = _loads_outcome(lambda t: json_c.loads_at(t, len(head)), head + text)
    assert at == expected, (head, text)


@settings(max_examples=1500, deadline=None)
@given(
    data=flat_lists | st.lists(flat_lists, max_size=2) | json_values,
    prefix=st.sampled_from(["2", "3", "", "é"]),
)
def test_json_dumps_prefixed_is_orjson_dumps(json_c, data, prefix) -> None:
    text = json_c.dumps_prefixed(prefix, data)
    if text is not None:  # None: the caller takes the orjson path
        assert type(text) is str
        assert text == prefix + orjson.dumps(data).decode(), data


def test_json_fast_paths_are_taken(json_c) -> None:
    """The cases the fast paths exist for do not fall back (else the tests above prove little)."""
    data = ["chat", "alice", "hello there", 0, -(2**63), 2**63 - 1, True, False, None]
    assert json_c.dumps_prefixed("2", data) == "2" + orjson.dumps(data).decode()
    assert json_c.dumps_prefixed("2", []) == "2[]"
    for declined in (["é"], ['a"b'], [1.5], [[1]], [2**63], ("a",), ["x" * 2000]):
        assert json_c.dumps_prefixed("2", declined) is None, declined
    assert json_c.loads(' [ "a" , -12 ,true,false , null ] ') == ["a", -12, True, False, None]
    assert json_c.loads_at('2["chat","alice"]', 1) == ["chat", "alice"]


#: bytes around the ones a string's 8-byte check looks for (control characters, '"', '\\')
_WORD_EDGES = [0, 1, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7E, 0x7F]


def test_json_strings_checked_a_word_at_a_time(json_c) -> None:
    """Strings are checked 8 bytes at a time: every byte near a special one, at every position
    of strings of 0-24 characters (whole words, tails, several words), raw and escaped, in the
    first and a later element, with the text ending in or just after the string: the same as
    orjson."""
    for length in range(25):
        for position in range(length):
            for byte in _WORD_EDGES:
                chars = ["a"] * length
                chars[position] = chr(byte)
                string = "".join(chars)
                for data in ([string], ["x", string, 1]):
                    text = json_c.dumps_prefixed("2", data)
                    if text is not None:
                        assert text == "2" + orjson.dumps(data).decode(), data
                    else:
                        assert byte in (0x22, 0x5C) or byte < 0x20, data
                    encoded = json.dumps(data)
                    raw = '["x","' + string + '",1]'  # unescaped: orjson refuses some
                    cut = '["x","' + string  # the text ends inside the string
                    for source in (encoded, raw, cut, cut + '"', cut + '"]'):
                        expected = _loads_outcome(orjson.loads, source)
                        assert _loads_outcome(json_c.loads, source) == expected, source
    long = "b" * 500
    assert json_c.dumps_prefixed("2", ["echo", long]) == '2["echo","' + long + '"]'
    assert json_c.loads('["echo","' + long + '"]') == ["echo", long]
    assert json_c.loads('["","a",""]') == ["", "a", ""]


def test_json_event_names_cached(json_c) -> None:
    """The first string of an array comes from a small cache of recent names: equal to orjson's
    for names of every length (cached or not), names that share a slot (same length, first and
    last characters), evictions, and strings further in the array (never cached)."""
    names = ["", "a", "ab", "chat", "ch_t", "cHat", "cxat", "message", "x" * 32, "y" * 33]
    names += [f"e{i:03d}" for i in range(200)]  # many names per slot: evictions
    names += ["a" + "b" * k + "a" for k in range(40)]
    for _ in range(2):
        for name in names:
            for text in (json.dumps([name]), json.dumps([name, name, 1])):
                assert _loads_outcome(json_c.loads, text) == _loads_outcome(orjson.loads, text)
    first = json_c.loads('["chat","alice"]')
    again = json_c.loads('["chat","alice"]')
    assert first == again == ["chat", "alice"]
    assert first[0] is again[0] and first[1] is not again[1]  # the name only
    assert json_c.loads('["chbt"]') == ["chbt"]  # the same slot: "chat" is evicted
    assert json_c.loads('["chat"]') == ["chat"]


#: events of each shape the compiled decode and encode read or write themselves, and of those
#: they hand to orjson: text of each str width, escapes, numbers, nesting, ack ids, namespaces,
#: attachments
_TWIN_EVENTS = [
    ["chat", "alice", "hello there"],
    ["chat", "héllo", "x"],  # 1-byte non-ASCII
    ["chat", "€ uro"],  # 2-byte
    ["chat", "😀 emoji"],  # 4-byte
    ["€", "a"],
    ["chat", 'a"b', "c\\d", "\n\t", "\x00\x1f"],
    ["chat", 0, -1, 2**63 - 1, -(2**63), 2**63, -(2**64), 10**30, 1.5, -0.0, 1e300],
    ["chat", True, False, None, [], {}, [1, [2, [3]]], {"a": {"b": [None]}}],
    ["e" * 40, "f" * 1500],
    ["chat", b"\x00\x01", {"blob": b"abc"}],
]


@pytest.mark.parametrize("data", _TWIN_EVENTS, ids=range(len(_TWIN_EVENTS)))
@pytest.mark.parametrize(
    ("packet_type", "nsp", "ack"),
    [(2, "/", None), (3, "/", 7), (2, "/chat", None), (2, "/", 2**53 - 1), (5, "/", None)],
)
def test_socketio_events_twins(compiled, data, packet_type, nsp, ack) -> None:
    parts = same(
        pure_socketio.encode_packet, compiled.socketio.encode_packet, packet_type, nsp, data, ack
    )
    if parts[0] == "ok":
        text = parts[1][0]
        same(pure_socketio.decode_packet, compiled.socketio.decode_packet, text, 1000)
        for head in ("2", "3", "51-", "2/chat,", "212", "3" + str(2**53), "29" * 9, "5x-", "/"):
            body = text[text.index("[") :] if "[" in text else ""
            same(pure_socketio.decode_packet, compiled.socketio.decode_packet, head + body, 1000)


def test_socketio_packets_reused(compiled) -> None:
    """Decoded packets come from a free list (json_c.PacketFields): one reused after another was
    freed starts clean, and packets held at once stay distinct."""
    decode = compiled.socketio.decode_packet
    held = [decode(f'2{i}["e{i}",{i}]') for i in range(100)]
    del held[::2]
    for _ in range(3):
        assert (decode('3/x,5["a"]').id, decode('2["b"]').id) == (5, None)
        assert decode('51-["c",{"_placeholder":true,"num":0}]').attachments == 1
        packet = decode('2["d"]')
        assert (packet.type, packet.nsp, packet.data, packet.id, packet.attachments) == (
            2,
            "/",
            ["d"],
            None,
            0,
        )
    assert [(p.id, p.data) for p in held] == [(i, [f"e{i}", i]) for i in range(1, 100, 2)]
    assert type(held[0]) is compiled.socketio.Packet


def test_compiled_codec_uses_the_fast_paths(compiled, json_c, monkeypatch) -> None:
    """_impl installs json_c into the compiled codec it selects (and only into it)."""
    if _impl.socketio is not compiled.socketio:
        pytest.skip("the compiled codec is not the selected one in this process")
    seen = []

    class Spy(json_c.FastJson):  # the codec calls its methods in C: a Python override still runs
        def flat_array_at(self, text: str, start: int) -> Any:
            seen.append((text, start))
            return super().flat_array_at(text, start)

        def dumps_prefixed(self, prefix: str, data: Any) -> Any:
            seen.append(data)
            return super().dumps_prefixed(prefix, data)

    compiled.socketio._use_fast_json(Spy())
    try:
        assert compiled.socketio.encode_packet(2, "/", ["e", 1]) == ['2["e",1]']
        assert pure_socketio.encode_packet(2, "/", ["e", 1]) == ['2["e",1]']
        assert compiled.socketio.decode_packet('2["e",1]').data == ["e", 1]
        assert pure_socketio.decode_packet('2["e",1]').data == ["e", 1]
        assert compiled.socketio.decode_packet('2["e",{}]').data == ["e", {}]  # orjson's
    finally:
        compiled.socketio._use_fast_json(json_c.FastJson())
    assert seen == [["e", 1], ('2["e",1]', 1), ('2["e",{}]', 1)]
    with pytest.raises(TypeError):  # the compiled codec's hook is typed
        compiled.socketio._use_fast_json(json_c.dumps_prefixed)


# -- Engine.IO ----------------------------------------------------------------------------------


@st.composite
def engineio_payloads(draw) -> bytes:
    import base64

    parts = draw(
        st.lists(
            st.sampled_from("0123456").flatmap(lambda t: st.text(max_size=10).map(lambda s: t + s))
            | st.binary(max_size=10).map(lambda b: "b" + base64.b64encode(b).decode()),
            min_size=1,
            max_size=5,
        )
    )
    raw = "\x1e".join(parts).encode()
    if draw(st.booleans()):  # corrupt some bytes
        raw = bytearray(raw)
        for position, byte in draw(
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3)
        ):
            if raw:
                raw[position % len(raw)] = byte
        raw = bytes(raw)
    return raw


@settings(max_examples=500, deadline=None)
@given(
    body=engineio_payloads() | st.binary(max_size=30),
    as_text=st.booleans(),
    max_packets=st.sampled_from([None, 0, 1, 3, -1]),
)
def test_engineio_payload_differential(compiled, body, as_text, max_packets) -> None:
    if as_text:
        body = body.decode("utf-8", "replace")
    same(pure_engineio.decode_payload, compiled.engineio.decode_payload, body, max_packets)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.text(max_size=12)
    | st.binary(max_size=12)
    | st.just(bytearray(b"x"))
    | st.sampled_from(["b", "bAA==", "b!!", "4", "7", None, 5]),
    packet_type=st.integers(-2, 8) | st.sampled_from([2.0, 7.5, "4"]),
    data=st.none() | st.text(max_size=5) | st.binary(max_size=5) | st.sampled_from([5, [1]]),
    packets=st.lists(st.text(max_size=6) | st.binary(max_size=6) | st.just(3), max_size=4),
)
def test_engineio_packets_differential(compiled, raw, packet_type, data, packets) -> None:
    same(pure_engineio.decode_packet, compiled.engineio.decode_packet, raw)
    same(pure_engineio.encode_packet, compiled.engineio.encode_packet, packet_type, data)
    same(pure_engineio.encode_payload, compiled.engineio.encode_payload, packets)


# -- Engine.IO v3 -------------------------------------------------------------------------------


class Text(str):
    """A str subclass: both implementations take it wherever they take a str."""


@st.composite
def engineio3_payloads(draw) -> Any:
    """A v3 polling body as a client would send it (text with UTF-16 lengths, or XHR2 binary),
    often corrupted; sometimes of another type."""
    import base64

    from fastsio.protocol import engineio3

    items = draw(
        st.lists(
            st.sampled_from("0123456").flatmap(lambda t: st.text(max_size=10).map(lambda s: t + s))
            | st.binary(max_size=10)
            | st.binary(max_size=6).map(lambda b: "b4" + base64.b64encode(b).decode()),
            min_size=1,
            max_size=5,
        )
    )
    body = engineio3.encode_payload(items, draw(st.booleans()))
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # corrupt some bytes, truncate
        raw = bytearray(body)
        for position, byte in draw(
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3)
        ):
            if raw:
                raw[position % len(raw)] = byte
        body = bytes(raw[: draw(st.integers(0, len(raw)))])
    kind = draw(st.sampled_from(["bytes", "bytes", "text", "Text", "bytearray", "memoryview"]))
    if kind in ("text", "Text"):
        text = body.decode("utf-8", draw(st.sampled_from(["replace", "surrogateescape"])))
        return Text(text) if kind == "Text" else text
    return {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview}[kind](body)


@settings(max_examples=600, deadline=None)
@given(
    body=engineio3_payloads()
    | st.binary(max_size=30)
    | st.text(alphabet="0123456789:b4\U0001f600\u00e9x", max_size=30)
    | st.sampled_from([None, 5, ["1:2"], b"", ""]),
    binary=st.sampled_from([False, True, 0, 1, None]),
    max_packets=st.sampled_from([-1, 0, 1, 3, None, 2**70, 2.5]),
)
def test_engineio3_payload_differential(compiled_optional, body, binary, max_packets) -> None:
    from fastsio.protocol import engineio3

    same(engineio3.decode_payload, compiled_optional[0].decode_payload, body, binary, max_packets)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.text(max_size=12)
    | st.binary(max_size=12)
    | st.just(bytearray(b"\x04x"))
    | st.just(memoryview(b"\x04y"))
    | st.just(Text("4z"))
    | st.sampled_from(["b", "b4", "bAA==", "b4AA==", "b4!!", "b2AA==", "4", "7", None, 5]),
    packet_type=st.integers(-2, 8) | st.sampled_from([2.0, 7.5, "4", True, None, 2**70]),
    data=st.none()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.sampled_from([5, [1], bytearray(b"ba"), memoryview(b"mv"), Text("t")]),
    supports_binary=st.sampled_from([True, False, 0, None]),
    packets=st.lists(
        st.text(max_size=6)
        | st.binary(max_size=6)
        | st.sampled_from(
            [3, None, bytearray(b"b"), memoryview(b"m"), Text("x\U0001f600"), "\ud800"]
        ),
        max_size=4,
    ),
)
def test_engineio3_packets_differential(
    compiled_optional, raw, packet_type, data, supports_binary, packets
) -> None:
    from fastsio.protocol import engineio3

    comp = compiled_optional[0]
    same(engineio3.decode_packet, comp.decode_packet, raw)
    same(engineio3.encode_packet, comp.encode_packet, packet_type, data, supports_binary)
    same(engineio3.encode_payload, comp.encode_payload, packets, supports_binary)
    same(engineio3.utf16_length, comp.utf16_length, raw)


# -- the msgpack parser -------------------------------------------------------------------------


def same_repr(pure_fn: Any, compiled_fn: Any, *args: Any) -> tuple:
    """``same`` for decoded MessagePack, which may hold NaN (never equal to itself): compares
    reprs, which also tells 0.0 from -0.0 and a datetime's time zone."""
    pure = _outcome(pure_fn, *args)
    assert repr(_outcome(compiled_fn, *args)) == repr(pure), args
    return pure


_ack_values = st.none() | st.integers(-2, 2**53 + 1) | st.sampled_from([True, 1.5, "3", 2**64])
_msgpack_leaves = (
    _leaves
    | st.floats()
    | st.binary(max_size=8)
    | st.datetimes(
        timezones=st.none() | st.just(datetime.timezone.utc),
        min_value=datetime.datetime(1, 1, 2),
    )
)
msgpack_values = st.recursive(
    _msgpack_leaves,
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(_keys | st.integers(0, 3), c, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(
    packet_type=packet_types,
    nsp=namespaces,
    data=st.none()
    | msgpack_values
    | st.sampled_from([object(), 2**70, -(2**64), {1.5: "x"}, bytearray(b"b"), memoryview(b"m")]),
    ack=_ack_values,
)
def test_msgpack_encode_differential(compiled_optional, packet_type, nsp, data, ack) -> None:
    from fastsio.protocol import msgpack_parser

    comp = compiled_optional[1]
    same_repr(msgpack_parser.encode_packet, comp.encode_packet, packet_type, nsp, data, ack)
    same_repr(msgpack_parser.encode_packet_v2, comp.encode_packet_v2, packet_type, nsp, data, ack)


@st.composite
def msgpack_packets(draw) -> bytes | str:
    """A packet as socket.io-msgpack-parser / notepack.io write it (extension types included), a
    near miss, or the JSON text of the 2.x line; often corrupted."""
    import msgpack

    ext = st.sampled_from(
        [
            msgpack.ExtType(0, b"\x00"),  # undefined
            msgpack.ExtType(0, (1700000000123).to_bytes(8, "big")),  # Date
            msgpack.ExtType(0, (2**62).to_bytes(8, "big")),  # Date out of range
            msgpack.ExtType(0, b"abc"),  # ArrayBuffer
            msgpack.ExtType(5, b"xyz"),  # another application's
        ]
    )
    leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    value = st.recursive(
        leaves | st.text(max_size=8) | st.binary(max_size=6) | ext,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_keys, c, max_size=3),
        max_leaves=8,
    )
    values = st.lists(value, max_size=3)
    if draw(st.integers(0, 3)):  # well formed, for one of the two lines (types 5, 6: 2.x only)
        packet_type = draw(st.integers(0, 6))
        packet: dict = {"type": packet_type, "nsp": draw(st.sampled_from(["/", "/chat"]))}
        if packet_type in (2, 5):
            packet["data"] = [draw(st.sampled_from(["e", "chat message"])), *draw(values)]
            if draw(st.booleans()):
                packet["id"] = draw(st.integers(0, 2**53 - 1))
        elif packet_type in (3, 6):
            packet["data"] = draw(values)
            packet["id"] = draw(st.integers(0, 2**53 - 1))
        elif packet_type == 0 and draw(st.booleans()):
            packet["data"] = draw(st.dictionaries(_keys, value, max_size=3))
        elif packet_type == 4:
            packet["data"] = draw(st.text(max_size=8) | st.dictionaries(_keys, value, max_size=2))
        if draw(st.integers(0, 4)) == 0:  # what socket.io-client adds
            packet["options"] = {"compress": True}
            packet.setdefault("id", msgpack.ExtType(0, b"\x00"))
        items = list(packet.items())
        packet = dict(draw(st.permutations(items)))
    else:  # near misses
        packet = {"type": draw(st.integers(-1, 7) | st.sampled_from(["2", True, 2.0]))}
        if draw(st.integers(0, 4)):
            packet["nsp"] = draw(st.sampled_from(["/", "/chat", 2, None]) | ext)
        kind = draw(st.integers(0, 3))
        if kind == 0:
            packet["data"] = [draw(st.sampled_from(["e", "connect", 1]) | ext), *draw(values)]
        elif kind == 1:
            packet["data"] = draw(value)
        if draw(st.booleans()):
            packet["id"] = draw(
                _ack_values.filter(lambda v: not isinstance(v, int) or v < 2**64) | ext
            )
        if draw(st.integers(0, 5)) == 0:
            return msgpack.packb([packet["type"], packet.get("data")], use_bin_type=True)
    if draw(st.integers(0, 5)) == 0:  # the 2.x line's JSON text
        plain = {k: v for k, v in packet.items() if not isinstance(v, msgpack.ExtType)}
        return json.dumps(plain, default=repr)
    raw = msgpack.packb(packet, use_bin_type=True)
    if draw(st.integers(0, 2)) == 0:
        chars = bytearray(raw)
        for position, byte in draw(
            st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3)
        ):
            if chars:
                chars[position % len(chars)] = byte
        raw = bytes(chars[: draw(st.integers(0, len(chars)))]) + draw(st.binary(max_size=4))
    return raw


@settings(max_examples=800, deadline=None)
@given(
    raw=msgpack_packets()
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.sampled_from([None, 5, bytearray(b"\x80"), memoryview(b"\x80"), Text('{"type":0}')]),
)
def test_msgpack_decode_differential(compiled_optional, raw) -> None:
    pytest.importorskip("msgpack")
    from fastsio.protocol import msgpack_parser

    comp = compiled_optional[1]
    same_repr(msgpack_parser.decode_packet, comp.decode_packet, raw)
    same_repr(msgpack_parser.decode_packet_v2, comp.decode_packet_v2, raw)
    same_repr(msgpack_parser.PacketDecoder().feed, comp.PacketDecoder().feed, raw)
    same_repr(msgpack_parser.PacketDecoderV2().feed, comp.PacketDecoderV2().feed, raw)


def test_msgpack_deep_nesting(compiled_optional) -> None:
    from fastsio.protocol import msgpack_parser

    comp = compiled_optional[1]
    for depth in (100, 199, 200, 201, 300, 600, 5000, 100_000):
        # through the msgpack package, and through the exact reader (an undefined at the bottom)
        for leaf in (b"\x01", b"\xd4\x00\x00"):
            raw = b"\x91" * depth + leaf
            same_repr(msgpack_parser.decode_packet, comp.decode_packet, raw)
        data: Any = 1
        for _ in range(min(depth, 5000)):
            data = [data]
        same_repr(msgpack_parser.encode_packet, comp.encode_packet, 2, "/", ["e", data])


def test_msgpack_parser_objects(compiled_optional) -> None:
    from fastsio.protocol import msgpack_parser

    comp = compiled_optional[1]
    packet = pure_socketio.Packet(2, "/", ["e", b"\x01"], 5)
    for pure, compiled_parser in (
        (msgpack_parser.MsgpackParser(), comp.MsgpackParser()),
        (msgpack_parser.MsgpackParser().for_eio3(), comp.MsgpackParser().for_eio3()),
    ):
        assert pure.name == compiled_parser.name == "msgpack"
        assert compiled_parser.encode(packet) == pure.encode(packet)
        assert compiled_parser.encode_packet(0, "/", {"a": 1}) == pure.encode_packet(
            0, "/", {"a": 1}
        )
        decoder = compiled_parser.decoder()
        assert decoder.pending is False and decoder.reset() is None
        assert decoder.feed(pure.encode(packet)[0]) == packet


# -- WebSocket ----------------------------------------------------------------------------------


frame_specs = st.tuples(
    st.sampled_from([0, 1, 2, 8, 9, 10]) | st.integers(0, 15),
    st.one_of(
        st.binary(max_size=140),
        st.text(max_size=60).map(str.encode),
        st.sampled_from([b"\xff", "é".encode()[:1], b"\xed\xa0\x80", b"a" * 300]),
        st.sampled_from([124, 125, 126, 127, 65535, 65536]).map(lambda n: b"c" * n),
    ),
    st.booleans(),  # fin
    st.one_of(st.none(), st.binary(min_size=4, max_size=4)),  # mask
    st.sampled_from([0, 0, 0, 0, 0x40]),  # rsv
)


@st.composite
def websocket_streams(draw) -> bytes:
    stream = b"".join(client_frame(*spec) for spec in draw(st.lists(frame_specs, max_size=6)))
    if draw(st.booleans()):  # corrupt some bytes, truncate, or append junk
        raw = bytearray(stream)
        for position, byte in draw(
            st.lists(st.tuples(st.integers(0, 500), st.integers(0, 255)), max_size=3)
        ):
            if raw:
                raw[position % len(raw)] = byte
        stream = bytes(raw[: draw(st.integers(0, len(raw)))]) + draw(st.binary(max_size=12))
    return stream


sizes = st.integers(0, 140) | st.sampled_from([125, 126, 127, 65535, 65536])


@st.composite
def valid_websocket_streams(draw) -> bytes:
    """Protocol-valid client streams: messages, some fragmented with control frames between the
    fragments (boundary sizes included), sometimes with one corrupted byte at the end."""
    stream = b""
    for _ in range(draw(st.integers(0, 4))):
        mask = draw(st.binary(min_size=4, max_size=4))
        opcode = draw(st.sampled_from([1, 2, 8, 9, 10]))
        size = draw(sizes)
        if opcode >= 8:
            stream += client_frame(opcode, b"p" * min(size, 125), True, mask)
            continue
        if opcode == 1:
            text = draw(st.text(min_size=1, max_size=10))
            payload = (text * (size // len(text) + 1))[:size].encode()
        else:
            payload = (draw(st.binary(min_size=1, max_size=8)) * (size + 1))[:size]
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for i, piece in enumerate(pieces):
            stream += client_frame(0 if i else opcode, piece, i == len(pieces) - 1, mask)
            if i < len(pieces) - 1 and draw(st.booleans()):
                stream += client_frame(9, draw(st.binary(max_size=125)), True, mask)
    if stream and draw(st.booleans()):
        raw = bytearray(stream)
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        stream = bytes(raw)
    return stream


@pytest.mark.parametrize("opcode", [1, 2, 8, 9, 10])
@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 124, 125, 126, 127, 65535, 65536, 65537])
@pytest.mark.parametrize("max_size", [125, 126, 65536, 1_000_000])
def test_frame_reader_boundaries(compiled, opcode, size, max_size) -> None:
    frame = client_frame(opcode, b"\x7f" * size, True, b"\x01\x02\x03\x04")
    for cut in (None, 1, 2, 3, 5, 9, len(frame) - 1):
        pure = pure_websocket.FrameReader(max_size)
        comp = compiled.websocket.FrameReader(max_size)
        chunks = [frame] if cut is None else [frame[:cut], frame[cut:]]
        for chunk in chunks:
            if same(pure.feed, comp.feed, chunk)[0] == "raise":
                break


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=valid_websocket_streams() | websocket_streams() | st.binary(max_size=64),
    cuts=st.lists(st.integers(0, 80000), max_size=8),
    max_size=st.sampled_from([1_000_000, 100, 0, 1, -1, 2**70, 100.5, -0.5, None]),
    require_mask=st.sampled_from([True, False, 0]),
    kinds=st.lists(st.sampled_from([bytes, bytearray, memoryview]), min_size=1, max_size=3),
    max_fragments=st.sampled_from([16384, 1, 2, 3]),
)
def test_frame_reader_differential(
    compiled, stream, cuts, max_size, require_mask, kinds, max_fragments
) -> None:
    pure = pure_websocket.FrameReader(max_size, require_mask, max_fragments)
    comp = compiled.websocket.FrameReader(max_size, require_mask, max_fragments)
    bounds = sorted(c for c in cuts if c <= len(stream)) + [len(stream)]
    start = 0
    for i, end in enumerate(bounds):
        chunk = kinds[i % len(kinds)](stream[start:end])
        start = end
        if same(pure.feed, comp.feed, chunk)[0] == "raise":
            break
        assert pure.buffered == comp.buffered


@st.composite
def compressed_websocket_streams(draw) -> bytes:
    """Client streams with permessage-deflate: compressed messages (one client stream with
    context takeover, or a stream per message), some fragmented with pings between the fragments,
    plain messages between them, and sometimes RSV bits where they may not be, a bomb, or a
    corrupted byte."""
    import zlib

    takeover = draw(st.booleans())
    compressor = None
    stream = b""
    for _ in range(draw(st.integers(1, 4))):
        mask = draw(st.binary(min_size=4, max_size=4))
        kind = draw(st.sampled_from(["compressed", "compressed", "plain", "bomb", "ping"]))
        opcode = draw(st.sampled_from([1, 2]))
        if kind == "ping":
            rsv = draw(st.sampled_from([0, 0x40]))
            stream += client_frame(9, b"p", True, mask, rsv=rsv)
            continue
        text = draw(st.text(max_size=20)) * draw(st.sampled_from([1, 3, 50, 400]))
        data = text.encode() if draw(st.booleans()) else text.encode()[1:]  # maybe invalid UTF-8
        if kind == "bomb":
            data = bytes(draw(st.sampled_from([2000, 200_000])))
        if kind == "plain":
            stream += client_frame(opcode, data, True, mask, rsv=draw(st.sampled_from([0, 0x20])))
            continue
        if compressor is None or not takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        continuation_rsv = draw(st.sampled_from([0, 0, 0, 0x40]))
        for i, piece in enumerate(pieces):
            first, last = i == 0, i == len(pieces) - 1
            rsv = 0x40 if first else continuation_rsv
            stream += client_frame(opcode if first else 0, piece, last, mask, rsv=rsv)
            if not last and draw(st.booleans()):
                stream += client_frame(9, b"between", True, mask)
    if draw(st.integers(0, 4)) == 0:
        raw = bytearray(stream)
        raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        stream = bytes(raw)
    return stream


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stream=compressed_websocket_streams(),
    cuts=st.lists(st.integers(0, 20000), max_size=6),
    max_size=st.sampled_from([1_000_000, 1000, 100, 0, 2**70, 100.5, None]),
    window_bits=st.sampled_from([15, 9]),
    no_context_takeover=st.booleans(),
    extension=st.booleans(),
)
def test_frame_reader_deflate_differential(
    compiled, stream, cuts, max_size, window_bits, no_context_takeover, extension
) -> None:
    """The extension hook (permessage-deflate's Inflater) behaves the same in both readers."""
    from fastsio.protocol.deflate import Inflater

    pure = pure_websocket.FrameReader(max_size)
    comp = compiled.websocket.FrameReader(max_size)
    if extension:
        pure.extension = Inflater(window_bits, no_context_takeover)
        comp.extension = Inflater(window_bits, no_context_takeover)
    assert (pure.extension is None) == (comp.extension is None)
    bounds = sorted(c for c in cuts if c <= len(stream)) + [len(stream)]
    start = 0
    for end in bounds:
        chunk = stream[start:end]
        start = end
        if same(pure.feed, comp.feed, chunk)[0] == "raise":
            break
        assert pure.buffered == comp.buffered


def test_frame_reader_odd_input_types(compiled) -> None:
    for data in (3, "text", [0x81, 0x80], None):
        for prefix in (b"", b"\x81"):  # with an empty / a non-empty internal buffer
            pure = pure_websocket.FrameReader()
            comp = compiled.websocket.FrameReader()
            same(pure.feed, comp.feed, prefix)
            same(pure.feed, comp.feed, data)


def test_frame_reader_attributes(compiled) -> None:
    reader = compiled.websocket.FrameReader(max_message_size=10, require_mask=False)
    assert (reader.max_message_size, reader.require_mask, reader.buffered) == (10, False, 0)
    reader.max_message_size = 2
    assert reader.max_message_size == 2
    with pytest.raises(WebSocketError) as info:
        reader.feed(b"\x81\x03abc")
    assert info.value.close_code == 1009
    assert compiled.websocket.FrameReader(require_mask=False).feed(b"\x81\x03a") == []
    reader = compiled.websocket.FrameReader(max_fragments=2)
    assert reader.max_fragments == 2
    pure = pure_websocket.FrameReader()

    def set_pure(value: Any) -> None:
        pure.max_fragments = value

    def set_compiled(value: Any) -> None:
        reader.max_fragments = value

    for value in (0, -1, 1.5, None, "3"):  # refused alike, when made or set later
        same(set_pure, set_compiled, value)
        assert same(pure_websocket.FrameReader, compiled.websocket.FrameReader, 1, True, value)
    assert reader.max_fragments == 2


@settings(max_examples=400, deadline=None)
@given(
    opcode=st.integers(-2, 12) | st.sampled_from([1.0, 1.5, -0.5, 11.5, True, None, 2**70]),
    payload=st.binary(max_size=130) | st.sampled_from([b"x" * 126, b"y" * 65536, "text", 5]),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
    fin=st.sampled_from([True, False, 0, 1, None]),
    rsv1=st.sampled_from([False, True, 0, 1, None, "x"]),
)
def test_build_frame_differential(compiled, opcode, payload, kind, fin, rsv1) -> None:
    if isinstance(payload, bytes):
        payload = kind(payload)
    same(pure_websocket.build_frame, compiled.websocket.build_frame, opcode, payload, fin)
    same(pure_websocket.build_frame, compiled.websocket.build_frame, opcode, payload, fin, rsv1)
    same(pure_websocket.build_binary_frame, compiled.websocket.build_binary_frame, payload)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.sampled_from(["\ud800", "a" * 70000, "é" * 40000, b"x"]))
def test_build_text_frame_differential(compiled, text) -> None:
    same(pure_websocket.build_text_frame, compiled.websocket.build_text_frame, text)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=100) | st.sampled_from([b"", "str", [1, 2, 3]]),
    mask=st.binary(max_size=6) | st.sampled_from(["abcd"]),
    kinds=st.tuples(
        st.sampled_from([bytes, bytearray, memoryview]),
        st.sampled_from([bytes, bytearray, memoryview]),
    ),
)
def test_apply_mask_differential(compiled, data, mask, kinds) -> None:
    if isinstance(data, bytes):
        data = kinds[0](data)
    if isinstance(mask, bytes):
        mask = kinds[1](mask)
    same(pure_websocket.apply_mask, compiled.websocket.apply_mask, data, mask)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=10), code=st.integers(0, 5000), reason=st.text(max_size=70))
def test_close_frames_differential(compiled, payload, code, reason) -> None:
    ws = compiled.websocket
    same(pure_websocket.parse_close_payload, ws.parse_close_payload, payload)
    same(pure_websocket.build_close_frame, ws.build_close_frame, code, reason)
    same(pure_websocket.is_valid_close_code, ws.is_valid_close_code, code)
    same(pure_websocket.accept_key, ws.accept_key, reason)


# -- fan-out ------------------------------------------------------------------------------------


class FakeSession:
    """Records what send_prepared got; a closed one ignores it, like EngineSession."""

    def __init__(self, log: list, name: int, closed: bool = False, fail: bool = False) -> None:
        self.log = log
        self.name = name
        self.closed = closed
        self.fail = fail

    def send_prepared(self, packet: Any, frame: bytes) -> None:
        if self.fail:
            raise RuntimeError("boom")
        if not self.closed:
            self.log.append((self.name, packet, frame))


def _run_fanout(fanout: Any, n: int, packets: list, closed: set, fail: int = -1) -> tuple:
    log: list = []
    sessions = [FakeSession(log, i, i in closed, i == fail) for i in range(n)]
    try:
        fanout(sessions, packets, [b"frame:" + str(p).encode() for p in packets])
    except RuntimeError as exc:
        return log, str(exc)
    return log, None


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(0, 20),
    packets=st.lists(st.text(max_size=3) | st.binary(max_size=3), min_size=1, max_size=3),
    closed=st.sets(st.integers(0, 20)),
    fail=st.integers(-1, 20),
)
def test_fanout_twins(compiled, n, packets, closed, fail) -> None:
    expected = _run_fanout(fanout_py.fanout, n, packets, closed, fail)
    assert _run_fanout(fanout_c.fanout, n, packets, closed, fail) == expected
    # what the pure twin does: send_prepared(packets[i], frames[i]) per session, in order
    order = [(s, p) for s in range(n) for p in packets if s not in closed]
    if 0 <= fail < n:
        order = [(s, p) for s, p in order if s < fail]
    assert [(s, p) for s, p, _ in expected[0]] == order


def test_fanout_takes_any_iterable(compiled) -> None:
    for fanout in (fanout_py.fanout, fanout_c.fanout):
        log: list = []
        fanout({FakeSession(log, 1)}, ("4x",), (b"f",))
        fanout((FakeSession(log, 2) for _ in range(2)), ["4y", b"z"], [b"f1", b"f2"])
        assert log == [(1, "4x", b"f")] + [(2, "4y", b"f1"), (2, b"z", b"f2")] * 2


# -- the WebSocket connection -------------------------------------------------------------------


class FakeLoop:
    """call_soon / call_later recorded and run on demand: the script decides when a tick ends and
    when the close timer fires."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.soon: list = []
        self.later: list = []

    def call_soon(self, callback: Any, *args: Any) -> Any:
        handle = FakeHandle()
        self.soon.append((handle, callback, args))
        return handle

    def call_later(self, delay: float, callback: Any, *args: Any) -> Any:
        self.log.append(("call_later", delay))
        handle = FakeHandle()
        self.later.append((handle, callback, args))
        return handle

    def run_soon(self) -> None:
        while self.soon:
            handle, callback, args = self.soon.pop(0)
            if not handle.cancelled:
                callback(*args)

    def run_later(self) -> None:
        timers, self.later = self.later, []
        for handle, callback, args in timers:
            if not handle.cancelled:
                callback(*args)


class FakeHandle:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTransport:
    def __init__(self, log: list) -> None:
        self.log = log
        self.closing = False
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.log.append(("write", bytes(data)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.log.append(("transport.close",))

    def abort(self) -> None:
        self.closing = True
        self.log.append(("transport.abort",))

    def get_write_buffer_size(self) -> int:
        return self.buffered


class FakeHttpServer:
    """What WebSocketConnection uses of an HttpServer."""

    def __init__(self, loop: FakeLoop, tick_writer_class: Any) -> None:
        self._loop = loop
        self.tick_writer = tick_writer_class(loop)
        self._connections: set = set()


class ScriptListener:
    """Echoes; "close me" closes with 4000, "raise" raises, "replace" swaps the listener."""

    def __init__(self, log: list, name: str = "first") -> None:
        self.log = log
        self.name = name
        self.conn: Any = None

    def on_text(self, text: str) -> None:
        self.log.append((self.name, "on_text", text))
        if text == "raise":
            raise RuntimeError("listener bug")
        if text == "close me":
            self.conn.close(4000, "as you wish")
        elif text == "replace":
            other = ScriptListener(self.log, "second")
            other.conn = self.conn
            self.conn.listener = other
        else:
            self.conn.send_text(text)

    def on_binary(self, data: bytes) -> None:
        self.log.append((self.name, "on_binary", data))
        self.conn.send_binary(data)

    def on_close(self, code: int, reason: str) -> None:
        self.log.append((self.name, "on_close", code, reason))

    def on_drain(self) -> None:
        self.log.append((self.name, "on_drain"))


def _run_connection(module: Any, script: list, max_size: int, max_fragments: int = 3) -> list:
    """Run ``script`` on ``module``'s WebSocketConnection; what it did, in order."""
    with compiled_codecs():
        return _run_script(module, script, max_size, max_fragments)


@contextlib.contextmanager
def compiled_codecs() -> Iterator[None]:
    """The compiled connection needs the compiled FrameReader, which _impl only picks with it;
    under FASTSIO_NO_EXTENSIONS both twins run on the compiled codecs here."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_impl, "websocket", COMPILED.websocket)
        yield


def _run_script(module: Any, script: list, max_size: int, max_fragments: int) -> list:
    log: list = []
    loop = FakeLoop(log)
    server = FakeHttpServer(loop, module.TickWriter)
    transport = FakeTransport(log)
    listener = ScriptListener(log)
    conn = module.WebSocketConnection(
        transport,
        listener,
        max_size,
        client=("127.0.0.1", 5),
        server=server,
        max_fragments=max_fragments,
    )
    listener.conn = conn
    server._connections.add(conn)
    conn.close_timeout = 0.5
    for step, arg in script:
        try:
            if step == "data":
                conn.data_received(arg)
            elif step == "meter":  # the Admin UI's counters (EngineServer.meter)
                conn.meter = module.WireMeter()
            elif step == "handshake tail":  # as HttpProtocol.accept_websocket does
                conn._write(b"HTTP/1.1 101\r\n\r\n")
                conn._pending = arg
                loop.call_soon(conn._feed_pending)
            elif step == "send":
                conn.send_text(arg)
            elif step == "send_binary":
                conn.send_binary(arg)
            elif step == "send_frame":
                conn.send_frame(arg)
            elif step == "ping":
                conn.send_ping(arg)
            elif step == "close":
                conn.close(*arg)
            elif step == "abort":
                conn.abort()
            elif step == "tick":
                loop.run_soon()
            elif step == "timers":
                loop.run_later()
            elif step == "pause":
                conn.pause_writing()
            elif step == "resume":
                conn.resume_writing()
            elif step == "eof":
                log.append(("eof_received", conn.eof_received()))
            elif step == "lost":
                conn.connection_lost(None)
        except Exception as exc:  # noqa: BLE001 - close(bad code): the class must match
            log.append(("raise", step, type(exc)))
        transport.buffered = len(log)
        log.append(
            ("state", conn.closed, conn.writing_paused, conn.write_buffer_size(), repr(conn))
        )
        if conn.meter is not None:
            meter = conn.meter
            log.append(
                ("meter", meter.bytes_in, meter.bytes_out, meter.packets_in, meter.packets_out)
            )
    conn.connection_lost(None)
    loop.run_soon()
    loop.run_later()
    log.append(("end", conn.closed, conn in server._connections, conn.listener.name))
    return log


MASK = b"\x0b\x16\x21\x2c"


def _close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else code.to_bytes(2, "big") + reason


client_frames = st.one_of(
    st.sampled_from(["hi", "close me", "raise", "replace", "é" * 3, ""]).map(
        lambda t: client_frame(1, t.encode(), True, MASK)
    ),
    st.binary(max_size=200).map(lambda b: client_frame(2, b, True, MASK)),
    st.binary(max_size=125).map(lambda b: client_frame(9, b, True, MASK)),
    st.binary(max_size=20).map(lambda b: client_frame(10, b, True, MASK)),
    st.sampled_from([None, 1000, 1001, 4000, 1005, 999, 5000]).map(
        lambda code: client_frame(8, _close_payload(code, b"bye"), True, MASK)
    ),
    st.sampled_from(
        [
            client_frame(8, b"\x03", True, MASK),  # 1-byte close payload: 1002
            client_frame(8, b"\x03\xe8\xff", True, MASK),  # reason not UTF-8: 1007
            client_frame(1, b"\xff", True, MASK),  # text not UTF-8: 1007
            client_frame(1, b"a", True, None),  # unmasked: 1002
            client_frame(1, b"frag", False, MASK) + client_frame(0, b"ment", True, MASK),
            client_frame(3, b"", True, MASK),  # unknown opcode
            client_frame(2, b"x" * 300, True, MASK),  # past max_size 256: 1009
            # 5 frames, past max_fragments 3: 1008
            client_frame(2, b"a", False, MASK)
            + client_frame(0, b"b", False, MASK) * 3
            + client_frame(0, b"c", True, MASK),
        ]
    ),
)


# reads more often than the rest
SCRIPT_STEPS = ("data",) * 3 + ("tick",) * 2
SCRIPT_STEPS += ("send", "send_binary", "send_frame", "ping", "close", "abort", "timers")
SCRIPT_STEPS += ("pause", "resume", "eof", "lost")


@st.composite
def connection_scripts(draw) -> list:
    script: list = []
    if draw(st.booleans()):
        script.append(("meter", None))
    if draw(st.booleans()):
        script.append(("handshake tail", draw(client_frames)))
    for _ in range(draw(st.integers(1, 10))):
        step = draw(st.sampled_from(SCRIPT_STEPS))
        if step == "data":
            stream = b"".join(draw(st.lists(client_frames, min_size=1, max_size=4)))
            cut = draw(st.integers(0, len(stream)))
            script.append(("data", stream[:cut]))
            script.append(("data", stream[cut:]))
        elif step == "send":
            script.append((step, draw(st.sampled_from(["4hello", "é", "x" * 200]))))
        elif step in ("send_binary", "ping"):
            script.append((step, draw(st.binary(max_size=130))))
        elif step == "send_frame":
            script.append((step, b"\x81\x02hi"))
        elif step == "close":
            code = draw(st.sampled_from([1000, 1001, 4000, 1006, 999]))
            script.append((step, (code, draw(st.sampled_from(["", "bye", "é" * 100])))))
        else:
            script.append((step, None))
    return script


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=connection_scripts())
def test_connection_twins(compiled_wsconn, script) -> None:
    from fastsio.http import websocket as pure_wsconn

    expected = _run_connection(pure_wsconn, script, 256)
    assert _run_connection(compiled_wsconn, script, 256) == expected


def test_connection_twins_echo_and_close(compiled_wsconn) -> None:
    """A fixed script through the main paths, checked against what the pure class must do."""
    from fastsio.http import websocket as pure_wsconn

    script = [
        ("data", client_frame(1, b"hi", True, MASK) * 2),  # one write for both echoes
        ("send", "4out"),  # from elsewhere: corked until the tick ends
        ("tick", None),
        ("data", client_frame(8, _close_payload(1000, b"bye"), True, MASK)),
        ("timers", None),
    ]
    log = _run_connection(pure_wsconn, script, 256)
    writes = [entry[1] for entry in log if entry[0] == "write"]
    assert writes == [b"\x81\x02hi" * 2, b"\x81\x044out", b"\x88\x02\x03\xe8"]
    assert ("first", "on_close", 1000, "bye") in log
    assert ("call_later", 0.5) in log and ("transport.abort",) in log
    assert _run_connection(compiled_wsconn, script, 256) == log


def test_connection_twins_count_the_traffic(compiled_wsconn) -> None:
    """With a WireMeter (the Admin UI's), both classes count every byte read and written and
    the messages and frames in them, per read and per write; without one, nothing."""
    from fastsio.http import websocket as pure_wsconn

    hi = client_frame(1, b"hi", True, MASK)  # 2 + 4 (mask) + 2 bytes
    script = [
        ("meter", None),
        ("data", hi * 2),  # one read, two messages, their echoes in one write
        ("send", "4out"),
        ("tick", None),
        ("data", hi[:3]),  # half a frame: bytes, no message yet
        ("data", hi[3:]),
    ]
    log = _run_connection(pure_wsconn, script, 256)
    meters = [entry[1:] for entry in log if entry[0] == "meter"]
    assert meters[1] == (16, 8, 2, 2)  # the echoes: b"\x81\x02hi" * 2
    assert meters[2] == meters[1]  # "4out" corked until the tick ends
    assert meters[3] == (16, 14, 2, 3)
    assert meters[4] == (19, 14, 2, 3)  # bytes without a whole message yet
    assert meters[5] == (24, 18, 3, 4)
    assert _run_connection(compiled_wsconn, script, 256) == log
    unmetered = _run_connection(compiled_wsconn, script[1:], 256)
    assert not [entry for entry in unmetered if entry[0] == "meter"]
    assert pure_wsconn.WireMeter().bytes_in == compiled_wsconn.WireMeter().packets_out == 0


def test_connection_twins_bound_the_fragments(compiled_wsconn) -> None:
    """``max_fragments`` reaches the reader of either class: a message of more frames is closed
    with 1008 (policy violation)."""
    from fastsio.http import websocket as pure_wsconn

    two = client_frame(2, b"a", False, MASK) + client_frame(0, b"b", False, MASK)
    script = [("data", two + client_frame(0, b"c", True, MASK)), ("data", two), ("tick", None)]
    script.append(("data", client_frame(0, b"c", False, MASK) * 2))  # the 3rd frame, the 4th
    for module in (pure_wsconn, compiled_wsconn):
        log = _run_connection(module, script, 256, max_fragments=3)
        assert ("first", "on_binary", b"abc") in log
        writes = [entry[1] for entry in log if entry[0] == "write"]
        assert writes[-1] == b"\x88\x02\x03\xf0"  # close 1008
        closes = [entry for entry in log if entry[1:2] == ("on_close",)]
        assert closes == [("first", "on_close", 1008, "message in more than 3 fragments")]
    assert pure_wsconn.WebSocketConnection.__init__.__kwdefaults__["max_fragments"] == 16384


def test_connection_twins_closed_connection(compiled_wsconn) -> None:
    from fastsio.http import websocket as pure_wsconn

    async def main(module: Any) -> list:
        log: list = []
        conn = module.WebSocketConnection.closed_connection(ScriptListener(log), ("::1", 7))
        log.append(("state", conn.closed, conn.transport, conn.write_buffer_size(), repr(conn)))
        conn.send_text("dropped")
        await asyncio.sleep(0)
        conn.connection_lost(None)  # on_close stays once
        return log

    with compiled_codecs():
        expected = asyncio.run(main(pure_wsconn))
        assert expected[-1] == ("first", "on_close", 1006, "")
        assert asyncio.run(main(compiled_wsconn)) == expected


def test_connection_twins_interface(compiled_wsconn) -> None:
    """The same methods and public attributes (and the private ones the http layer uses)."""
    from fastsio.http import websocket as pure_wsconn

    for name in ("WebSocketConnection", "TickWriter", "WireMeter"):
        pure_cls = getattr(pure_wsconn, name)
        compiled_cls = getattr(compiled_wsconn, name)
        public = {n for n in dir(pure_cls) if not n.startswith("_")}
        assert public == {n for n in dir(compiled_cls) if not n.startswith("_")}, name
    for attr in ("_write", "_pending", "_feed_pending", "_flush", "_notify_closed", "_abort"):
        assert hasattr(compiled_wsconn.WebSocketConnection, attr), attr
    assert compiled_wsconn.CLOSE_TIMEOUT == pure_wsconn.CLOSE_TIMEOUT == 1.0


# -- the Socket.IO dispatch twins: fastsio/client.py + socket.py and client_c + socket_c ---------


def _interface(cls: type) -> set:
    """The names a pure class offers that its compiled twin must offer too."""
    return set(dir(cls)) - {"__annotations__", "__dict__", "__module__", "__weakref__"}


_DISPATCH, DISPATCH_IMPORT_ERROR = _import_built("client_c", "socket_c")
client_c, socket_c = _DISPATCH or (None, None)


@pytest.fixture(scope="session")
def compiled_dispatch(compiled) -> tuple:
    """(client_c, socket_c) (skip, or fail under FASTSIO_REQUIRE_EXTENSIONS, when not built)."""
    return _built(_DISPATCH, "client_c / socket_c", DISPATCH_IMPORT_ERROR)


#: what the client of a dispatch script may send: events with and without acks (to handlers that
#: return nothing, a value, a tuple, raise, await, take fewer arguments), to "/" and to "/admin",
#: acks of the server's emits (known, unknown, repeated), binary events, connects, disconnects,
#: malformed packets, events for a namespace not connected
DISPATCH_MESSAGES = [
    '2["echo","hi"]',
    '21["echo","hi",2]',
    '22["value",1]',
    '23["tuple"]',
    '24["boom"]',
    '25["slow","x"]',
    '2["few","a","b","c"]',
    '26["few","a","b"]',
    '2["once","x"]',
    '2["nothing"]',
    '2["ask"]',
    "30[1,2]",
    "31[]",
    "399[]",
    '2/admin,["echo","adm"]',
    '2/admin,7["value","q"]',
    '51-["bin",{"_placeholder":true,"num":0}]',
    b"\x01\x02",
    "0/admin,",
    "0/admin,",
    "1/admin,",
    "0/nope,",
    '2/nope,["echo","x"]',
    '2["use","x"]',
    # the argument count (one, none, two) and names as long as the reserved ones: "connection"
    # is refused by Socket._on_event (the decoder takes it), the others dispatched
    '2["tuple","x"]',
    '2["few"]',
    '2["echo"]',
    '2["connection","x"]',
    '2["connections","x"]',
    '2["drop"]',
    "9",
    '2["disconnect"]',
    "1",
]


async def _run_dispatch(modules: tuple, script: list) -> list:
    """Connect a fake session to "/", deliver ``script`` (indexes into DISPATCH_MESSAGES), then
    close it; everything the handlers saw and the session was sent, in order."""
    from fastsio import Server
    from tests.fakes import FakeEngine

    clients, sockets = modules
    log: list = []
    sio = Server(connect_timeout=None)

    @sio.on("echo")
    def echo(socket, *args):
        log.append(("echo", socket.nsp.name, args))
        socket.emit("echo", *args)

    @sio.on("value")
    def value(socket, *args):
        log.append(("value", args))
        return {"got": list(args)}

    @sio.on("tuple")
    def tuple_(socket):
        return (1, "two")

    @sio.on("boom")
    def boom(socket):
        raise RuntimeError("boom")

    @sio.on("slow")
    async def slow(socket, item):
        await asyncio.sleep(0)
        log.append(("slow", item))
        return item

    @sio.on("few")
    def few(socket, first):
        log.append(("few", first))
        return first

    @sio.on("bin")
    def binary(socket, data):
        log.append(("bin", data))
        socket.emit("bin", data)

    @sio.on("ask")
    def ask(socket):
        socket.emit("question", 1, ack=lambda *a: log.append(("answer", a)))

    @sio.on("use")
    def use(socket, item):
        log.append(("use", item))

    @sio.on("connections")
    def connections(socket, item):
        log.append(("connections", item))
        socket.emit("connections", item)
        for name in ("connect", "connection", "connect_error", 7):
            try:
                socket.emit(name, item)  # reserved names and a non-str one are refused
            except (TypeError, ValueError) as exc:
                log.append(("emit", name, type(exc).__name__, str(exc)))

    @sio.on("connection")
    def connection(socket):
        log.append(("connected", socket.nsp.name))
        # data: {} until set (made when first read), then what was set, None included
        first = socket.data
        log.append(("data", first, socket.data is first))
        socket.data = None
        log.append(("data", socket.data))
        socket.data = {"n": 1}
        log.append(("data", socket.data))
        socket.once("once", lambda *a: log.append(("once", a)))
        socket.on_any(lambda event, *a: log.append(("any", event, a)))
        socket.use(lambda event, args: DROP if event == "drop" else None)

    @sio.on("disconnect")
    def disconnect(socket, reason):
        log.append(("disconnect", socket.nsp.name, reason))

    admin = sio.of("/admin")
    admin.on("echo", echo)
    admin.on("value", value)

    from fastsio import DROP

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_impl, "clients", clients)
        patch.setattr(_impl, "sockets", sockets)
        engine = FakeEngine(sio)
        session, _ = engine.connect("/")
        client = next(iter(sio._clients))
        assert type(client) is clients.Client
        assert type(client.sockets["/"]) is sockets.Socket
        for index in script:
            session.receive(DISPATCH_MESSAGES[index])
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            log.append(("sent", [_no_ids(item) for item in session.take()]))
        session.drop()
        log.append(("closed", client.closed, sorted(client.sockets)))
    return log


def _no_ids(item: Any) -> Any:
    """A sent packet without the random socket ids (CONNECT answers)."""
    if isinstance(item, str) and item.startswith("0") and '"sid"' in item:
        return item.split("{")[0] + "{sid}"
    return item


def _dispatch_twins(compiled_dispatch: tuple, script: list) -> list:
    from fastsio import client as pure_client
    from fastsio import socket as pure_socket

    pure = asyncio.run(_run_dispatch((pure_client, pure_socket), script))
    assert asyncio.run(_run_dispatch(compiled_dispatch, script)) == pure
    return pure


def test_dispatch_twins_every_message(compiled_dispatch) -> None:
    """Each message once, in order (the last ones disconnect), on both: the same handler calls,
    acks, errors and packets sent."""
    log = _dispatch_twins(compiled_dispatch, list(range(len(DISPATCH_MESSAGES))))
    assert ("echo", "/", ("hi",)) in log
    assert ("answer", (1, 2)) in log  # the client's ack "30[1,2]" of the server's "ask"
    assert ("few", "a") in log and ("slow", "x") in log and ("use", "x") in log
    assert ("any", "drop", ()) in log  # catch-all listeners see what a middleware drops
    assert log[1:4] == [("data", {}, True), ("data", None), ("data", {"n": 1})]
    assert ("disconnect", "/", "parse error") in log  # "9": the session closed
    assert ("connections", "x") in log
    assert [entry[1] for entry in log if entry[0] == "emit"] == [
        "connect",
        "connection",
        "connect_error",
        7,
    ]
    assert log.count(("connected", "/")) == 1  # '2["connection","x"]' calls no handler


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(DISPATCH_MESSAGES) - 1), max_size=25))
def test_dispatch_twins(compiled_dispatch, script) -> None:
    """Random scripts of the messages above: the same on both."""
    _dispatch_twins(compiled_dispatch, script)


def test_dispatch_twins_interface(compiled_dispatch) -> None:
    """The same methods and public attributes, the private ones other modules use, and the
    compiled classes in use (fastsio.Socket / fastsio.Client) when the speedups are."""
    import fastsio
    from fastsio import client as pure_client
    from fastsio import socket as pure_socket

    clients, sockets = compiled_dispatch
    for pure_cls, compiled_cls in (
        (pure_client.Client, clients.Client),
        (pure_socket.Socket, sockets.Socket),
        (pure_socket.Handshake, sockets.Handshake),
        (pure_socket.SocketEmitter, sockets.SocketEmitter),
    ):
        # (__weakref__ is a C slot of the compiled classes: weak references work, see below)
        # (and Socket._data, behind the data property, is a private C attribute)
        names = _interface(pure_cls)
        names.discard("_data")
        assert names <= set(dir(compiled_cls)), pure_cls
    in_use = (sockets, clients) if _impl.SPEEDUPS else (pure_socket, pure_client)
    assert fastsio.Socket is _impl.sockets.Socket is in_use[0].Socket
    assert fastsio.Client is _impl.clients.Client is in_use[1].Client
    # a Python subclass of the compiled Socket, with slots (fastsio.recovery's)
    from fastsio.recovery import RecoverableSocket

    assert issubclass(RecoverableSocket, in_use[0].Socket)
    # the server keeps weak references to clients and sockets (as the pure classes allow)
    assert "__weakref__" in pure_client.Client.__slots__
    assert "__weakref__" in pure_socket.Socket.__slots__
    assert clients.Client.__weakrefoffset__ and sockets.Socket.__weakrefoffset__


def test_sessions_of_twins(compiled_dispatch) -> None:
    """The broadcast targets' sessions (InMemoryAdapter): the same on both, in order."""
    from fastsio import socket as pure_socket

    async def main(clients: Any, sockets: Any) -> list:
        from fastsio import Server
        from tests.fakes import FakeEngine

        sio = Server(connect_timeout=None)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_impl, "clients", clients)
            patch.setattr(_impl, "sockets", sockets)
            engine = FakeEngine(sio)
            opened = [engine.connect("/")[0] for _ in range(3)]
            targets = list(sio.of("/").sockets.values())
            assert sockets.sessions_of(targets) == opened
            assert sockets.sessions_of([]) == []
            return [opened.index(session) for session in sockets.sessions_of(targets[::-1])]

    from fastsio import client as pure_client

    pure = asyncio.run(main(pure_client, pure_socket))
    assert pure == [2, 1, 0]
    assert asyncio.run(main(*compiled_dispatch)) == pure


# -- the HTTP connection: HttpProtocol's HTTP version -------------------------------------------


class _Transport:
    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool:
        return False


def _http_protocol_classes() -> list:
    from fastsio.http import protocol

    classes = [protocol.HttpProtocol]
    with contextlib.suppress(ImportError):
        from fastsio._speedups import httpproto_c  # type: ignore[attr-defined]

        classes.append(httpproto_c.HttpProtocol)
    return classes


# request lines whose version HttpProtocol reads off the line itself or asks the parser for, in
# reads cut anywhere: every version must be what httptools says for the same bytes
VERSION_CASES = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET /x HTTP/1.0\r\nX: a HTTP/1.1\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\n\r\n",
    b"\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /?q= HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    (
        b"POST /p HTTP/1.0\r\nContent-Length: 14\r\nConnection: keep-alive\r\n\r\n"
        b" HTTP/1.1\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    ),
    b"GET http://h/ HTTP/1.1\r\n\r\nGET * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/0.9\r\n\r\n",
    b"GET / HTTP/1.1\n\r\n",
    b"GET / HTTP/1.0\nX: HTTP/1.1\r\n\r\n",
]


def _versions_of(protocol_class: Any, loop: Any, data: bytes, cuts: tuple) -> list:
    import httptools

    from fastsio.http import HttpServer

    seen: list = []
    server = HttpServer()
    server.mount("/", lambda request: (seen.append(request.http_version), request.respond(200)))
    protocol = protocol_class(server, loop)  # never run: only asked the time
    protocol.connection_made(_Transport())
    start = 0
    for cut in (*cuts, len(data)):
        if cut > start:
            protocol.data_received(data[start:cut])
            start = cut
    # what httptools says: a fresh parser per request, each fed whole
    expected: list = []

    class Heads:
        def on_headers_complete(self) -> None:
            expected.append(parser.get_http_version())

    parser = httptools.HttpRequestParser(Heads())
    with contextlib.suppress(httptools.HttpParserError):
        parser.feed_data(data)
    return [seen, expected[: len(seen)]]


@pytest.mark.parametrize("data", VERSION_CASES)
def test_http_version_is_the_parsers(data: bytes) -> None:
    loop = asyncio.new_event_loop()
    try:
        for protocol_class in _http_protocol_classes():
            for cuts in [(), *((i,) for i in range(1, len(data))), (3, 9, 17)]:
                seen, expected = _versions_of(protocol_class, loop, data, cuts)
                assert seen == expected, (protocol_class, cuts)
    finally:
        loop.close()


# -- the Engine.IO session twins: fastsio/engine/session.py + transports.py, compiled ----------

_ENGINE, ENGINE_IMPORT_ERROR = _import_built("engine.session", "engine.transports")
session_c, transports_c = _ENGINE or (None, None)


@pytest.fixture(scope="session")
def compiled_engine(compiled) -> tuple:
    """(session, transports) compiled (skip, or fail under FASTSIO_REQUIRE_EXTENSIONS)."""
    return _built(_ENGINE, "the compiled engine session", ENGINE_IMPORT_ERROR)


class EngineConn:
    """A WebSocket connection as the session and its transports use it: every call logged."""

    deflater = None

    def __init__(self, log: list, listener: Any) -> None:
        self.log = log
        self.listener = listener
        self.writing_paused = False
        self.buffered = 0

    def send_text(self, text: str, compress: bool = True) -> None:
        self.log.append(("send_text", text, compress))

    def send_binary(self, data: bytes, compress: bool = True) -> None:
        self.log.append(("send_binary", data, compress))

    def send_frame(self, frame: bytes) -> None:
        self.log.append(("send_frame", frame))

    def write_buffer_size(self) -> int:
        return self.buffered

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.log.append(("ws_close", code, reason))


class EngineRequest:
    client = ("10.0.0.1", 1234)
    query: dict = {}  # noqa: RUF012 - read only
    headers: dict = {}  # noqa: RUF012 - read only

    def __init__(self, log: list, body: bytes = b"") -> None:
        self.log = log
        self.body = body
        self.on_close = None

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        self.log.append(("respond", status, list(headers), body))


class EngineTimers:
    def __init__(self, log: list) -> None:
        self.log = log
        self.pending: list = []

    def call_later(self, loop: Any, delay: float, fire: Any, session: Any) -> Any:
        self.log.append(("timer", delay, fire.__name__))
        handle = FakeHandle()
        self.pending.append((handle, fire, session))
        return handle

    def fire(self) -> None:
        pending, self.pending = self.pending, []
        for handle, fire, session in pending:
            if not handle.cancelled:
                fire(session)


class EngineServerStub:
    """What a session and its transports read of the EngineServer."""

    max_buffered_bytes = 100
    max_http_buffer_size = 1000
    ping_interval = 25.0
    ping_timeout = 20.0
    cors_allowed_origins = None
    _extra_headers = False
    http_compression = None
    meter = None

    def __init__(self, log: list) -> None:
        self.log = log
        self.timers = EngineTimers(log)
        self.conns: list = []

    def accept_websocket(self, request: Any, listener: Any) -> EngineConn:
        conn = EngineConn(self.log, listener)
        self.conns.append(conn)
        return conn

    def respond_error(self, request: Any, status: int, *args: Any) -> None:
        self.log.append(("respond_error", status, args))

    def remove_session(self, session: Any) -> None:
        self.log.append(("removed", session.sid))


#: steps of a session script: polling requests, sends, loop turns and timers, the upgrade probe,
#: WebSocket messages (messages, control packets, a failing handler), listeners; then the steps
#: that end a session (malformed packets, close packets, closes from either side, backpressure)
ENGINE_STEPS = [
    ("get",),
    ("post", b"4hello"),
    ("send", "hi", True),
    ("send", b"\x01\x02", True),
    ("send", "plain", False),
    ("soon",),
    ("listen",),
    ("post", b"4a\x1e4b\x1e3\x1e6"),
    ("get",),
    ("probe",),
    ("probe_text", "2probe"),
    ("probe_text", "5"),
    ("ws", "4hi"),
    ("ws", "4boom"),
    ("ws", "4"),
    ("ws", "6"),
    ("ws_binary", b"\x05"),
    ("timers",),
    ("ws", "3"),
    ("timers",),
    # the session ends
    ("paused",),
    ("ws", "2"),
    ("ws", ""),
    ("ws", "x"),
    ("ws", "1"),
    ("ws_close", 1009),
    ("post", b"1"),
    ("post", b"x"),
    ("probe_text", "x"),
    ("close",),
    ("abort",),
]
ENDS = ENGINE_STEPS.index(("paused",))


def _run_session(modules: tuple, transport: str, steps: list) -> list:
    session_mod, transports_mod = modules
    log: list = []
    server = EngineServerStub(log)
    loop = FakeLoop(log)
    session = session_mod.EngineSession(server, "sid1", EngineRequest(log), loop)

    def on_message(data: Any) -> None:
        log.append(("message", data))
        if data == "boom":
            raise RuntimeError("boom")

    session.on_message = on_message
    session.on_close = lambda reason: log.append(("on_close", reason))
    session.open(transport, '0{"sid":"sid1"}')
    assert type(session.transport).__module__ == transports_mod.__name__
    for step in steps:
        kind, *args = step
        try:
            if kind == "get":
                session.handle_poll(EngineRequest(log))
            elif kind == "post":
                session.handle_post(EngineRequest(log, args[0]))
            elif kind == "send":
                session.send(args[0], args[1])
            elif kind == "soon":
                loop.run_soon()
            elif kind == "timers":
                server.timers.fire()
                loop.run_later()
            elif kind == "probe":
                log.append(("probe", session.start_upgrade(EngineRequest(log))))
            elif kind == "probe_text":
                if session._probe is not None:
                    session._probe.on_text(args[0])
            elif kind in ("ws", "ws_binary", "ws_close") and session._ws is not None:
                listener = server.conns[-1].listener
                if kind == "ws":
                    listener.on_text(args[0])
                elif kind == "ws_binary":
                    listener.on_binary(args[0])
                else:
                    listener.on_close(args[0], "")
            elif kind == "paused" and session._ws is not None:
                server.conns[-1].writing_paused = True
                server.conns[-1].buffered = 1000
            elif kind == "listen":
                session.on("packet", lambda packet: log.append(("packet", tuple(packet))))
                session.on("upgrade", lambda t: log.append(("upgrade", type(t).__name__)))
                session.on("close", lambda reason: log.append(("close_event", reason)))
            elif kind == "close":
                session.close()
            elif kind == "abort":
                session.abort("test")
        except Exception as exc:  # noqa: BLE001 - compared
            log.append(("raised", type(exc).__name__))
        log.append(
            (
                session.closed,
                session.upgraded,
                session.transport_name,
                session.upgrading,
                session.writable,
                session.write_buffer_size(),
            )
        )
    return log


def _session_twins(compiled_engine: tuple, transport: str, script: list) -> None:
    from fastsio.engine import session as pure_session
    from fastsio.engine import transports as pure_transports

    steps = [ENGINE_STEPS[i] for i in script]
    pure = _run_session((pure_session, pure_transports), transport, steps)
    assert _run_session(compiled_engine, transport, steps) == pure


@pytest.mark.parametrize("transport", ["polling", "websocket"])
@pytest.mark.parametrize("end", range(ENDS, len(ENGINE_STEPS)))
def test_session_twins_every_step(compiled_engine, transport, end) -> None:
    """The steps in order (polling, the upgrade, the WebSocket), then sends and one way to end."""
    _session_twins(compiled_engine, transport, [*range(ENDS), 2, 3, 4, end, 2, 12])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["polling", "websocket"]), st.lists(st.integers(0, len(ENGINE_STEPS) - 1)))
def test_session_twins(compiled_engine, transport, script) -> None:
    """Random scripts of the steps above: the same calls, answers and state on both."""
    _session_twins(compiled_engine, transport, script)


def test_session_twins_interface(compiled_engine) -> None:
    """The same methods and attributes; the classes in use and their Python subclasses (v3, the
    packet-logging sessions) built on the compiled ones when the speedups are."""
    from fastsio import engine
    from fastsio.engine import packetlog, session3
    from fastsio.engine import session as pure_session
    from fastsio.engine import transports as pure_transports

    session_mod, transports_mod = compiled_engine
    for pure_cls, compiled_cls in (
        (pure_session.EngineSession, session_mod.EngineSession),
        (pure_transports.WebSocketTransport, transports_mod.WebSocketTransport),
        (pure_transports.PollingTransport, transports_mod.PollingTransport),
        (pure_transports.UpgradeProbe, transports_mod.UpgradeProbe),
    ):
        names = _interface(pure_cls)
        assert names <= set(dir(compiled_cls)), pure_cls
    assert session_mod.EngineSession.__weakrefoffset__
    # the compiled session makes the compiled transports
    assert session_mod.EngineSession.websocket_class is transports_mod.WebSocketTransport
    in_use = compiled_engine if _impl.SPEEDUPS else (pure_session, pure_transports)
    assert engine.EngineSession is _impl.engine_session.EngineSession is in_use[0].EngineSession
    assert _impl.engine_transports is in_use[1]
    assert issubclass(session3.EngineSession3, in_use[0].EngineSession)
    assert issubclass(session3.WebSocketTransport3, in_use[1].WebSocketTransport)
    assert issubclass(session3.PollingTransport3, in_use[1].PollingTransport)
    assert issubclass(packetlog.PacketLoggingSession, in_use[0].EngineSession)


def test_compiled_websocket_transport_takes_exact_str(compiled_engine) -> None:
    """The one typed argument (transports.pxd): on_text takes the exact str a connection decodes;
    anything else is a TypeError (the pure class would slice it)."""
    session_mod, _ = compiled_engine
    log: list = []
    session = session_mod.EngineSession(EngineServerStub(log), "s", EngineRequest(log), None)
    session.on_message = lambda data: log.append(data)
    session.open("websocket", "0")
    session.transport.on_text("4ok")
    assert log[-1] == "ok"
    for odd in (Text("4x"), b"4x", None):
        with pytest.raises(TypeError):
            session.transport.on_text(odd)
