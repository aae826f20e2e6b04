"""Shared set-up of the micro-benchmarks: which implementations exist, and identical inputs.

Run: ``pytest bench/ --benchmark-only`` (add ``--benchmark-columns=min,median,ops`` for a narrow
table). Every test sets ``benchmark.group`` to the case it measures, so pytest-benchmark prints one
table per case with the implementations side by side. An implementation that is not available
(the compiled speedups before they are built, python-socketio without the ``[bench]`` extra) is
skipped with the reason, never silently left out.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def load(module: str) -> Any | None:
    """The module, or None when it cannot be imported (not built yet, not installed)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def require(module: str, why: str) -> Any:
    mod = load(module)
    if mod is None:
        pytest.skip(f"{module} is not importable ({why})")
    return mod


#: the compiled module of each codec, and its pure twin (the interfaces of docs/architecture.md)
FASTSIO_CODECS = {
    "socketio": ("fastsio._speedups.socketio_c", "fastsio.protocol.socketio"),
    "engineio": ("fastsio._speedups.engineio_c", "fastsio.protocol.engineio"),
    "websocket": ("fastsio._speedups.websocket_c", "fastsio.protocol.websocket"),
}

NOT_BUILT = "speedups not built: pip install -e . (needs Cython and a C compiler)"


def fastsio_codec(codec: str, variant: str) -> Any:
    compiled, pure = FASTSIO_CODECS[codec]
    if variant == "compiled":
        return require(compiled, NOT_BUILT)
    return require(pure, "fastsio's pure codecs")


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    # keep the implementations of one case next to each other in the run order
    items.sort(
        key=lambda item: (
            item.module.__name__,
            item.originalname,
            item.callspec.id if hasattr(item, "callspec") else "",
        )
    )
