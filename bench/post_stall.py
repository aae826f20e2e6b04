"""How long one huge long-polling POST holds the server's event loop (issue 11: "one request must
not stall everyone").

    python bench/post_stall.py [--events 60000] [--repeat 3]

The server (this process, uvloop) has an ``a`` handler that returns its argument. A client
process opens a polling session, connects to "/", and POSTs ``--events`` acked events in one
payload (``42<id>["a",1]``, ~840 KB for 60,000), then collects the acks. Meanwhile a timer
in the server's loop, due every millisecond, records how late it fires (the largest lateness is
the longest time any other client had to wait) and the CPU time the loop spent since it last
ran (the longest uninterrupted work; robust to other processes taking the CPU). Printed per
repeat: the POST's size, the longest stall in wall time and in CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def client_main(port: int, events: int) -> None:
    """The hostile client: one POST with every event, then GETs until every ack is back."""

    def request(method: str, target: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = (
                f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            sock.sendall(head + body)
            chunks = []
            while chunk := sock.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks).partition(b"\r\n\r\n")[2]

    base = "/socket.io/?EIO=4&transport=polling"
    sid = json.loads(request("GET", base)[1:])["sid"]
    target = f"{base}&sid={sid}"
    request("POST", target, b"40")
    request("GET", target)  # the CONNECT reply
    body = "\x1e".join(f'42{i}["a",1]' for i in range(events)).encode()
    print(len(body), flush=True)
    started = time.monotonic()
    request("POST", target, body)
    acks = 0
    while acks < events and time.monotonic() - started < 60:
        acks += sum(packet[:2] == b"43" for packet in request("GET", target).split(b"\x1e"))
    print(acks, flush=True)


async def measure(events: int) -> tuple[int, float, float]:
    """(the POST's size, the longest lateness of the timer in ms, the most CPU time the loop
    spent between two runs of the timer in ms: unlike the lateness, not lengthened by other
    processes taking the CPU on a busy machine)."""
    import fastsio

    sio = fastsio.Server(ping_timeout=60, ping_interval=60)
    sio.on("a", lambda socket, n: n)
    await sio.start("127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    busy: list[float] = []  # the loop's CPU time between two ticks
    running = True
    last_cpu = [time.thread_time()]

    def tick(due: float) -> None:
        now = loop.time()
        cpu = time.thread_time()
        lateness.append(now - due)
        busy.append(cpu - last_cpu[0])
        last_cpu[0] = cpu
        if running:
            loop.call_at(now + 0.001, tick, now + 0.001)

    try:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            str(sio.port),
            str(events),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        size = int(await client.stdout.readline())
        loop.call_soon(tick, loop.time())
        await asyncio.wait_for(client.wait(), 120)
        running = False
    finally:
        await sio.close()
    return size, max(lateness) * 1000, max(busy) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--client", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(*args.client)
        return
    import uvloop

    for _ in range(args.repeat):
        size, worst, cpu = uvloop.run(measure(args.events))
        print(
            f"POST of {args.events} acked events ({size} bytes): longest loop stall "
            f"{worst:.1f} ms wall, {cpu:.1f} ms of CPU without a turn for others"
        )


if __name__ == "__main__":
    main()
