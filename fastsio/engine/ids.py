"""Random ids for Engine.IO sessions and Socket.IO sockets: 20 URL-safe characters made from 15
random bytes, like Node's base64id.

``secrets.token_urlsafe(15)`` costs a getrandom() system call and a base64 pass per id, and every
connection needs two ids (the Engine.IO sid and the socket id). Here the bytes for 256 ids come
from one ``os.urandom`` call and are encoded in one pass: 15 bytes are exactly 20 base64
characters, so the ids are slices of the encoded block. Node's base64id keeps a pool of random
bytes the same way. The randomness is the same (the OS's CSPRNG); ids are never reused.
"""

from __future__ import annotations

import binascii
import os

ID_BYTES = 15
_ID_CHARS = 20  # 15 bytes -> 20 base64 characters, no padding
_IDS_PER_REFILL = 256
_URLSAFE = bytes.maketrans(b"+/", b"-_")

# Taken with list.pop(), which is atomic under the GIL: two threads never get the same id.
_pool: list[str] = []


def _refill() -> None:
    raw = os.urandom(ID_BYTES * _IDS_PER_REFILL)
    text = binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode("ascii")
    _pool.extend([text[i : i + _ID_CHARS] for i in range(0, len(text), _ID_CHARS)])


def random_id() -> str:
    """A new random id: 20 characters of [A-Za-z0-9_-]."""
    try:
        return _pool.pop()
    except IndexError:
        _refill()
        return _pool.pop()


# A forked child must not hand out the ids its parent already holds (two workers, same sids).
if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_pool.clear)
