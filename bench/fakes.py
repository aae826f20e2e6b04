"""Stand-ins the benchmarks share (nothing here touches the network)."""

from __future__ import annotations


class CountingTransport:
    """What a WebSocket connection or the fan-out needs of its transport: counts the writes and
    bytes it is given, and sends nothing."""

    __slots__ = ("nbytes", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.nbytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.nbytes += len(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0
