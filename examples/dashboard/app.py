"""A live dashboard: each metric is a room, and a page receives only the metrics it shows.

From the repository root:

    npm ci --prefix examples/dashboard     # the browser client, served at /socket.io/socket.io.js
    fastsio run examples/dashboard/app.py:sio

then open http://127.0.0.1:8000 and tick the metrics to watch.

What it shows:
- rooms as subscriptions: ``subscribe`` / ``unsubscribe`` join and leave the room ``metric:<name>``;
  the acknowledgement carries the recent history, so a chart is full at once;
- one broadcast per metric and tick (``sio.to(room).volatile.emit``): encoded once whatever the
  number of viewers, and volatile, since a stale sample is worth nothing to a slow client;
- a periodic task tied to the server's life with ``sio.add_service`` (started when the server
  starts, stopped when it closes);
- ``fetch_sockets`` / room sizes for the "viewers" count each metric shows.

The samples are simulated (a bounded random walk); put your own source in ``Metric.sample``.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import deque
from pathlib import Path

import fastsio

HERE = Path(__file__).parent
CLIENT_BUNDLE = HERE / "node_modules" / "socket.io-client" / "dist"
INTERVAL = float(os.environ.get("DASHBOARD_INTERVAL", "1.0"))  # seconds between two samples
HISTORY = 60  # samples kept per metric, sent to a new subscriber

if not CLIENT_BUNDLE.is_dir():
    raise SystemExit(
        f"The browser client is missing ({CLIENT_BUNDLE}): run `npm ci --prefix {HERE}` first."
    )

sio = fastsio.Server(serve_client=CLIENT_BUNDLE, static_files=HERE / "public")


class Metric:
    """A simulated gauge between ``low`` and ``high``, with its recent history."""

    def __init__(self, name: str, unit: str, low: float, high: float) -> None:
        self.name, self.unit, self.low, self.high = name, unit, low, high
        self.value = (low + high) / 2
        self.history: deque[tuple[int, float]] = deque(maxlen=HISTORY)

    @property
    def room(self) -> str:
        return f"metric:{self.name}"

    def sample(self, tick: int) -> tuple[int, float]:
        step = (self.high - self.low) * 0.05
        self.value = min(self.high, max(self.low, self.value + random.uniform(-step, step)))
        point = (tick, round(self.value, 2))
        self.history.append(point)
        return point


METRICS = {
    metric.name: metric
    for metric in (
        Metric("cpu", "%", 0, 100),
        Metric("memory", "MB", 200, 800),
        Metric("requests", "req/s", 0, 500),
    )
}


class Sampler:
    """Samples every metric each ``INTERVAL`` seconds and sends each to its room only."""

    def __init__(self) -> None:
        self.task: asyncio.Task | None = None
        self.tick = 0

    def start(self) -> None:  # sio.add_service: called once the server listens
        self.task = asyncio.get_running_loop().create_task(self.run())

    def stop(self) -> None:  # ... and when it closes
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        while True:
            self.tick += 1
            for metric in METRICS.values():
                tick, value = metric.sample(self.tick)
                viewers = sio.to(metric.room)
                viewers.volatile.emit("sample", metric.name, tick, value)
            await asyncio.sleep(INTERVAL)


sio.add_service(Sampler())


@sio.on("connection")
def connected(socket):
    socket.emit(
        "metrics", [{"name": m.name, "unit": m.unit, "low": m.low, "high": m.high}
                    for m in METRICS.values()]
    )  # fmt: skip


@sio.on("subscribe")
def subscribe(socket, name):
    """Join the metric's room; the ack is the history, oldest first, or an error."""
    metric = METRICS.get(name) if isinstance(name, str) else None
    if metric is None:
        return {"ok": False, "error": f"unknown metric {name!r}"}
    socket.join(metric.room)
    return {"ok": True, "history": list(metric.history)}


@sio.on("unsubscribe")
def unsubscribe(socket, name):
    metric = METRICS.get(name) if isinstance(name, str) else None
    if metric is None:
        return {"ok": False, "error": f"unknown metric {name!r}"}
    socket.leave(metric.room)
    return {"ok": True}


@sio.on("viewers")
async def viewers(socket):
    """How many sockets watch each metric (on every server, with a cluster adapter)."""
    counts = {}
    for name, metric in METRICS.items():
        counts[name] = len(await sio.in_(metric.room).fetch_sockets())
    return counts
