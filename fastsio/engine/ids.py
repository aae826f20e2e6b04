"""Random ids for Engine.IO sessions and Socket.IO sockets: 20 URL-safe characters made from 15
random bytes, like Node's base64id.

``secrets.token_urlsafe(15)`` costs a getrandom() system call and a base64 pass per id, and every
connection needs two ids (the Engine.IO sid and the socket id). Here the bytes for 256 ids come
from one ``os.urandom`` call and are encoded in one pass: 15 bytes are exactly 20 base64
characters, so the ids are slices of the encoded block. Node's base64id keeps a pool of random
bytes the same way. The randomness is the same (the OS's CSPRNG); ids are never reused.

Several worker processes (``fastsio run --workers N``): the Engine.IO sid says which worker owns
the session, so that a worker receiving a request for another's session knows where to hand it
(see ``http/handover.py``). The owner's index is the sid's first character in the same alphabet
(``owner_prefix``: one character up to 64 workers, two up to 4096), and the other 19 (18) are
random; ``owner_of`` reads it back. ``id_source(prefix)`` gives a generator of such ids with a
pool of its own: the prefix is put on when the pool is refilled, so an id still costs one
``list.pop()``.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable

ID_BYTES = 15
_ID_CHARS = 20  # 15 bytes -> 20 base64 characters, no padding
_IDS_PER_REFILL = 256
_URLSAFE = bytes.maketrans(b"+/", b"-_")

#: the characters of an id, in base64 order (a worker's index is its position here)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_INDEX = {char: index for index, char in enumerate(ALPHABET)}
#: the most workers ``owner_prefix`` can name (two characters)
MAX_WORKERS = 64 * 64

# Taken with list.pop(), which is atomic under the GIL: two threads never get the same id.
_pool: list[str] = []
# The pools of id_source(prefix), by prefix.
_prefixed: dict[str, list[str]] = {}


def _random_block() -> str:
    raw = os.urandom(ID_BYTES * _IDS_PER_REFILL)
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode("ascii")


def _refill() -> None:
    text = _random_block()
    _pool.extend([text[i : i + _ID_CHARS] for i in range(0, len(text), _ID_CHARS)])


def random_id() -> str:
    """A new random id: 20 characters of [A-Za-z0-9_-]."""
    try:
        return _pool.pop()
    except IndexError:
        _refill()
        return _pool.pop()


def owner_prefix(index: int, count: int) -> str:
    """The start of the sids of worker ``index`` among ``count`` ("" for a single process)."""
    if not 0 <= index < count:
        raise ValueError(f"worker index {index} out of range for {count} workers")
    if count == 1:
        return ""
    if count <= 64:
        return ALPHABET[index]
    if count <= MAX_WORKERS:
        return ALPHABET[index >> 6] + ALPHABET[index & 63]
    raise ValueError(f"at most {MAX_WORKERS} workers, not {count}")


def owner_of(sid: str, count: int) -> int | None:
    """The index of the worker that made ``sid`` (an ``owner_prefix`` of ``count`` workers), or
    None when ``sid`` names no worker of ``count`` (not one of our sids)."""
    if count <= 64:
        index = _INDEX.get(sid[:1])
    else:
        high = _INDEX.get(sid[:1])
        low = _INDEX.get(sid[1:2])
        index = None if high is None or low is None else (high << 6) | low
    if index is None or index >= count:
        return None
    return index


def id_source(prefix: str = "") -> Callable[[], str]:
    """A function returning new random ids that start with ``prefix`` (20 characters in all, the
    rest random); ``random_id`` itself for no prefix."""
    if not prefix:
        return random_id
    if len(prefix) >= _ID_CHARS or any(char not in _INDEX for char in prefix):
        raise ValueError(f"invalid id prefix {prefix!r}")
    pool = _prefixed.setdefault(prefix, [])
    skip = len(prefix)

    def refill() -> None:
        text = _random_block()
        pool.extend(
            [prefix + text[i + skip : i + _ID_CHARS] for i in range(0, len(text), _ID_CHARS)]
        )

    def prefixed_id() -> str:
        try:
            return pool.pop()
        except IndexError:
            refill()
            return pool.pop()

    return prefixed_id


def _forget_pools() -> None:
    _pool.clear()
    for pool in _prefixed.values():
        pool.clear()


# A forked child must not hand out the ids its parent already holds (two workers, same sids).
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_forget_pools)
