"""The codec implementations the codec tests run on.

Every codec test takes the ``codec`` fixture and so runs once per implementation: "pure"
(fastsio.protocol) always, "compiled" (fastsio._speedups) when the extension modules import. When
they do not, the "compiled" cases are skipped, or fail if FASTSIO_REQUIRE_EXTENSIONS is set (CI,
after building the extensions).

The two optional codecs, each with its own compiled twin, have their own fixtures the same way:
``engineio3_impl`` (fastsio.protocol.engineio3 / fastsio._speedups.engineio3_c) and
``msgpack_parser_impl`` (fastsio.protocol.msgpack_parser / fastsio._speedups.msgpack_parser_c;
both cases skip when the optional msgpack package is not installed, whatever the environment).

Use it as ``from tests import codec_impls``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

from fastsio.protocol import engineio as _engineio
from fastsio.protocol import socketio as _socketio
from fastsio.protocol import websocket as _websocket


class Codecs:
    """One implementation of the three codec modules."""

    __slots__ = ("engineio", "name", "socketio", "websocket")

    def __init__(
        self, name: str, engineio: ModuleType, socketio: ModuleType, websocket: ModuleType
    ) -> None:
        self.name = name
        self.engineio = engineio
        self.socketio = socketio
        self.websocket = websocket

    def __repr__(self) -> str:
        return f"<Codecs {self.name}>"


IMPLEMENTATIONS: dict[str, Codecs] = {
    "pure": Codecs("pure", _engineio, _socketio, _websocket),
}

COMPILED_IMPORT_ERROR: BaseException | None = None
try:
    from fastsio._speedups import engineio_c as _engineio_c  # type: ignore[attr-defined]
    from fastsio._speedups import socketio_c as _socketio_c  # type: ignore[attr-defined]
    from fastsio._speedups import websocket_c as _websocket_c  # type: ignore[attr-defined]
except ImportError as exc:  # not built (yet)
    COMPILED_IMPORT_ERROR = exc
else:
    IMPLEMENTATIONS["compiled"] = Codecs("compiled", _engineio_c, _socketio_c, _websocket_c)

IMPLEMENTATION_NAMES = ("pure", "compiled")
REQUIRE_EXTENSIONS = bool(os.environ.get("FASTSIO_REQUIRE_EXTENSIONS"))


@pytest.fixture(scope="session", params=IMPLEMENTATION_NAMES)
def codec(request: pytest.FixtureRequest) -> Codecs:
    """The implementation under test (session-scoped, so hypothesis tests can use it)."""
    name = request.param
    impl = IMPLEMENTATIONS.get(name)
    if impl is None:
        msg = f"{name} codecs not available: {COMPILED_IMPORT_ERROR}"
        if REQUIRE_EXTENSIONS:
            pytest.fail(msg)
        pytest.skip(msg)
    return impl


# -- the optional codecs: one module each -------------------------------------------------------


def _load(pure: str, compiled: str) -> tuple[dict[str, ModuleType], BaseException | None]:
    """{"pure": module, "compiled": module} as far as they import, and why one did not."""
    modules: dict[str, ModuleType] = {}
    try:
        modules["pure"] = importlib.import_module(f"fastsio.protocol.{pure}")
        modules["compiled"] = importlib.import_module(f"fastsio._speedups.{compiled}")
    except ImportError as exc:
        return modules, exc
    return modules, None


ENGINEIO3, ENGINEIO3_IMPORT_ERROR = _load("engineio3", "engineio3_c")
MSGPACK_PARSER, MSGPACK_PARSER_IMPORT_ERROR = _load("msgpack_parser", "msgpack_parser_c")


def pick(name: str, modules: dict[str, ModuleType], error: BaseException | None) -> ModuleType:
    """``modules[name]``; else skip, or fail under FASTSIO_REQUIRE_EXTENSIONS when only the compiled
    twin is missing (without the pure module, msgpack is not installed: always a skip)."""
    module = modules.get(name)
    if module is None:
        msg = f"{name} implementation not available: {error}"
        if REQUIRE_EXTENSIONS and "pure" in modules:
            pytest.fail(msg)
        pytest.skip(msg)
    return module


@pytest.fixture(scope="session", params=IMPLEMENTATION_NAMES)
def engineio3_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The Engine.IO v3 codec module under test."""
    return pick(request.param, ENGINEIO3, ENGINEIO3_IMPORT_ERROR)


@pytest.fixture(scope="session", params=IMPLEMENTATION_NAMES)
def msgpack_parser_impl(request: pytest.FixtureRequest) -> ModuleType:
    """The msgpack parser module under test."""
    return pick(request.param, MSGPACK_PARSER, MSGPACK_PARSER_IMPORT_ERROR)
