"""What the Admin UI's traffic counting costs per broadcast delivery (issue 14), in instructions.

    python bench/meter_cost.py [--connections 1000] [--batch 1]

One broadcast's way from the fan-out to the transports, on real WebSocket connections
(``fastsio._impl.WebSocketConnection``, compiled or pure as ``FASTSIO_NO_EXTENSIONS`` says) with a
transport that only counts, and real Engine.IO sessions: ``fanout`` -> ``send_prepared`` ->
``send_frame`` -> the tick writer -> ``_flush`` -> ``transport.write``. ``--batch`` broadcasts are
written before each flush (a flush is one write per connection, as at the end of a loop tick).
Nothing here depends on timing, so the count per delivery is the same on every run.

Each variant (connections without a meter, with one) runs under ``valgrind --tool=callgrind``
twice, with ``--rounds`` and three times as many; the difference of the totals over the difference
of the deliveries is the cost of one delivery (start-up cancels out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the bench package beside fastsio

from bench.fakes import CountingTransport
from bench.instructions import callgrind_python, callgrind_total


class FakeHttpServer:
    """What a WebSocketConnection takes from its HttpServer: the loop and the tick writer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from fastsio import _impl

        self._loop = loop
        self.tick_writer = _impl.TickWriter(loop)


def run(connections: int, rounds: int, batch: int, metered: bool) -> None:
    """``rounds`` x ``batch`` broadcasts to ``connections`` sessions, then check the counts."""
    from fastsio import _impl
    from fastsio.adapter import prepare_packets
    from fastsio.engine.session import EngineSession

    loop = asyncio.new_event_loop()
    server = FakeHttpServer(loop)
    meter = _impl.WireMeter() if metered else None
    sessions = []
    for _ in range(connections):
        conn = _impl.WebSocketConnection(CountingTransport(), None, server=server)
        conn.meter = meter
        session = EngineSession.__new__(EngineSession)
        session.closed = False
        session._ws = conn
        sessions.append(session)
    packets, frames = prepare_packets(_impl.socketio.encode_packet(2, "/", ["tick", "x" * 100]))
    fanout, tick_writer = _impl.fanout, server.tick_writer
    for _ in range(rounds):
        for _ in range(batch):
            fanout(sessions, packets, frames)
        tick_writer.flush()
    writes = sum(s._ws.transport.writes for s in sessions)
    assert writes == connections * rounds, writes
    if meter is not None:
        sent = sum(s._ws.transport.nbytes for s in sessions)
        assert (meter.bytes_out, meter.packets_out) == (sent, connections * rounds * batch)
    loop.close()


def instructions(args: argparse.Namespace, rounds: int, metered: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = callgrind_python(
            out,
            __file__,
            "--child",
            str(rounds),
            "--connections",
            str(args.connections),
            "--batch",
            str(args.batch),
            *(["--metered"] if metered else []),
        )
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run(cmd, check=True, env=env, stderr=subprocess.DEVNULL, cwd=ROOT)
        return callgrind_total(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1, help="broadcasts per flush (default 1)")
    p.add_argument("--rounds", type=int, default=20, help="flushes in the short run")
    p.add_argument("--metered", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        run(args.connections, args.child, args.batch, args.metered)
        return
    from fastsio import _impl

    build = "compiled" if _impl.SPEEDUPS else "pure"
    deliveries = 2 * args.rounds * args.batch * args.connections
    for metered in (False, True):
        low = instructions(args, args.rounds, metered)
        high = instructions(args, 3 * args.rounds, metered)
        print(
            f"{build}, {'meter' if metered else 'no meter':8} batch {args.batch}: "
            f"{(high - low) / deliveries:8,.1f} instructions per delivery "
            f"({low:,} / {high:,})",
            flush=True,
        )


if __name__ == "__main__":
    main()
