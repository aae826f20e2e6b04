"""Room fan-out: one prepared broadcast written to many Engine.IO sessions.

This is the pure-Python twin of ``fastsio._speedups.fanout_c``, which is this same file compiled
with ``fanout_c.pxd`` (the source is the symlink ``src/fanout_c.py``); ``fastsio._impl.fanout`` is
one or the other. Both do exactly what ``fastsio.adapter.fanout`` does: the packet was encoded and
its WebSocket frame built once, and every target gets the same objects through
``session.send_prepared``.

Why each target still goes through ``send_prepared`` rather than ``transport.write(frame)`` from
here: ``WebSocketConnection`` corks its frames (they leave in one ``send()`` at the end of the read
or of the loop tick), so a frame written to the transport directly would overtake frames already
corked for that connection, and the session's back-pressure check must run after each write.
Those steps belong to the engine and HTTP layers; repeating them here would let the two paths
drift apart. The compiled loop removes the interpreter's loop overhead only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["fanout"]


def fanout(sessions: Sequence[Any], packets: Sequence[Any], frames: Sequence[bytes]) -> None:
    """Write the prepared packets (Engine.IO text ``"4..."`` or raw bytes) and their prebuilt
    WebSocket frames to every session, in order."""
    count = len(packets)
    if count == 1:
        packet = packets[0]
        frame = frames[0]
        for session in sessions:
            session.send_prepared(packet, frame)
        return
    for session in sessions:
        for i in range(count):
            session.send_prepared(packets[i], frames[i])
