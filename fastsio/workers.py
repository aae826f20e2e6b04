"""Several worker processes on one port: ``fastsio run app:sio --workers N``.

(Being written: the supervisor and the workers' bus land in the following commits.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkerInfo"]


@dataclass(frozen=True)
class WorkerInfo:
    """Who this process is among the workers: set as ``Server.worker`` by the supervisor
    before the server starts (None in a single process).

    ``index``: 0 .. count-1; ``count``: the number of workers; ``runtime_dir``: a private
    directory of this group of workers (Unix sockets of the bus and of the hand-over live there:
    worker ``i`` accepts handed-over connections on ``handover_path(i)``).
    """

    index: int
    count: int
    runtime_dir: str

    def handover_path(self, index: int) -> str:
        return f"{self.runtime_dir}/handover-{index}.sock"

    @property
    def bus_path(self) -> str:
        return f"{self.runtime_dir}/bus.sock"
