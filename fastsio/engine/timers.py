"""Many timers of one delay on one event-loop timer: the sessions' heartbeat.

Every session keeps one heartbeat timer armed for as long as it lives (the next ping, or the
pong it waits for), re-armed every ``ping_interval``. A ``loop.call_later`` handle for each costs
about 540 bytes per session under uvloop (the handle, libuv's timer, a bound method, a copied
context): a tenth of an idle WebSocket client. Timers of the same delay expire in the order
they were armed, so they can wait in a FIFO with their due times, and one loop timer, set for
the oldest, serves them all: a timer is then an entry of ~90 bytes, and it fires when its own
``call_later`` would have, give or take uvloop's rounding to the millisecond.

A cancelled entry stays in the queue until its due time without its target (so a closed session
is not kept), and the queue is compacted when such entries are more than half of it, so churn
does not grow it beyond twice the live timers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

# uvloop's clock counts milliseconds and rounds a timer's delay to them: a loop timer (its
# call_later too) may wake up to half a millisecond before the due time it was set for. Entries
# due within that much (and a float's error) are fired then, not left for another loop timer.
_CLOCK_SLACK = 0.0005 + 1e-6
# compact a queue only past this many cancelled entries (and when they are half of it)
_MIN_COMPACT = 64


class QueuedTimer:
    """One timer of a :class:`TimerQueue`, cancelled as a loop handle is (``cancel()``)."""

    __slots__ = ("queue", "target", "when")

    def __init__(self, queue: TimerQueue, when: float, target: Any) -> None:
        self.queue = queue
        self.when = when
        self.target = target

    def cancel(self) -> None:
        if self.target is not None:
            self.target = None
            self.queue._cancelled()


class TimerQueue:
    """Calls ``fire(target)`` ``delay`` seconds after ``add(target)``, for every target, on one
    loop timer at a time."""

    __slots__ = ("_entries", "_handle", "_stale", "delay", "fire", "loop")

    def __init__(self, loop: Any, delay: float, fire: Callable[[Any], None]) -> None:
        self.loop = loop
        self.delay = delay
        self.fire = fire
        self._entries: deque[QueuedTimer] = deque()
        self._handle: Any = None  # the loop timer for the oldest entry, while there is one
        self._stale = 0  # cancelled entries still in the queue

    def __len__(self) -> int:
        """The timers waiting (cancelled ones not counted)."""
        return len(self._entries) - self._stale

    def add(self, target: Any) -> QueuedTimer:
        when = self.loop.time() + self.delay
        entry = QueuedTimer(self, when, target)
        self._entries.append(entry)
        if self._handle is None:
            self._handle = self.loop.call_at(when, self._expire)
        return entry

    def _expire(self) -> None:
        # self._handle stays set while the targets run: what they add goes behind, due later
        entries = self._entries
        horizon = self.loop.time() + _CLOCK_SLACK
        while entries and entries[0].when <= horizon:
            entry = entries.popleft()
            target = entry.target
            if target is None:
                self._stale -= 1
                continue
            entry.target = None
            try:
                self.fire(target)
            except Exception as exc:  # noqa: BLE001 - as the loop does for a callback: report, go on
                message = f"exception in timer callback {self.fire!r}"
                self.loop.call_exception_handler({"message": message, "exception": exc})
        self._handle = self.loop.call_at(entries[0].when, self._expire) if entries else None

    def _cancelled(self) -> None:
        self._stale += 1
        entries = self._entries
        if self._stale > _MIN_COMPACT and self._stale * 2 > len(entries):
            live = [entry for entry in entries if entry.target is not None]
            entries.clear()
            entries.extend(live)
            self._stale = 0

    def close(self) -> None:
        """Cancel every timer."""
        for entry in self._entries:
            entry.target = None
        self._entries.clear()
        self._stale = 0
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class TimerQueues:
    """The queues of one server, one per (delay, fire) and event loop."""

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[tuple[float, Callable], TimerQueue] = {}

    def call_later(
        self, loop: Any, delay: float, fire: Callable[[Any], None], target: Any
    ) -> QueuedTimer:
        """``fire(target)`` in ``delay`` seconds on ``loop``; returns the timer (``cancel()``)."""
        key = (delay, fire)
        queue = self._queues.get(key)
        if queue is None or queue.loop is not loop:
            # a queue of a loop that has ended keeps its entries to itself
            queue = self._queues[key] = TimerQueue(loop, delay, fire)
        return queue.add(target)
