"""How cluster messages are written: MessagePack as Node's notepack.io reads and writes it, and
JSON as Node's ``JSON.stringify`` would (the classic adapter's requests)."""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

__all__ = ["json_dumps", "json_loads", "pack", "unpack"]

_packer_options = {"use_bin_type": True, "datetime": True}


def pack(value: Any) -> bytes:
    """bytes -> bin (a Buffer in Node), str -> str, datetime (aware) -> timestamp (a Date)."""
    return msgpack.packb(value, **_packer_options)


def unpack(data: bytes) -> Any:
    """notepack.io's output -> Python: Buffer/ArrayBuffer -> bytes, Date -> datetime (UTC),
    undefined -> None. Raises ValueError on anything that is not one whole MessagePack value."""
    try:
        return msgpack.unpackb(data, raw=False, timestamp=3, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ValueError(f"invalid MessagePack: {exc}") from None
    except (UnicodeDecodeError, TypeError) as exc:
        raise ValueError(f"invalid MessagePack: {exc}") from None


def _node_json(value: Any) -> Any:
    # what JSON.stringify makes of a Node Buffer, so a Node server reads back the same thing
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_node_json, option=orjson.OPT_NON_STR_KEYS)


def json_loads(data: bytes) -> Any:
    return orjson.loads(data)
