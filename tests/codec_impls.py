"""The codec implementations the codec tests run on.

Every codec test takes the ``codec`` fixture and so runs once per implementation: "pure"
(fastsio.protocol) always, "compiled" (fastsio._speedups) when the extension modules import. When
they do not, the "compiled" cases are skipped, or fail if FASTSIO_REQUIRE_EXTENSIONS is set (CI,
after building the extensions).

Use it as ``from tests import codec_impls``.
"""

from __future__ import annotations

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
