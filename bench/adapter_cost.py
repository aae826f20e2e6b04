"""CPU per broadcast of the Redis adapters (issue 11): the classic adapter (PUBLISH) against
the streams adapter (XADD, read back with XREAD), recovery off and on, in the same run.

    python bench/adapter_cost.py [--broadcasts 20000] [--repeat 3] [--redis redis://127.0.0.1:6379/0]

Two processes per case, each a started fastsio Server on the adapter: the publisher emits
``--broadcasts`` broadcasts (``sio.emit("tick", i, "x" * 40)``, to every socket; no client is
connected, so what is measured is the adapter's part, not the fan-out), in bursts of 100 per
loop turn; the receiver counts them as they reach its namespace (the adapter's local
broadcast). Figures: the publisher's CPU per broadcast published (from the first emit until
Redis answered every command), the receiver's CPU per broadcast received (from the first to the
last), both ``time.process_time()`` of the process (user + system), medians of ``--repeat``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BURST = 100


def make_server(kind: str, recovery: bool, redis: str, key: str):
    import fastsio
    from fastsio.redis import create_adapter, create_streams_adapter

    if kind == "classic":
        adapter = create_adapter(redis, key=key)
    else:
        adapter = create_streams_adapter(
            redis, stream_name=key, channel_prefix=key, max_len=100_000
        )
    return fastsio.Server(adapter=adapter, connection_state_recovery=recovery)


async def receive(kind: str, recovery: bool, redis: str, key: str, count: int) -> None:
    sio = make_server(kind, recovery, redis, key)
    await sio.start("127.0.0.1", 0)
    adapter = sio.main_namespace.adapter
    select = adapter.select
    seen = 0
    started = 0.0
    done = asyncio.get_running_loop().create_future()

    def counting_select(opts):
        nonlocal seen, started
        if seen == 0:
            started = time.process_time()
        seen += 1
        if seen == count and not done.done():
            done.set_result(time.process_time() - started)
        return select(opts)

    adapter.select = counting_select
    print(json.dumps({"ready": True}), flush=True)
    cpu = await asyncio.wait_for(done, 120)
    print(json.dumps({"cpu_us": cpu / (count - 1) * 1e6}), flush=True)
    await sio.close()


async def publish(kind: str, recovery: bool, redis: str, key: str, count: int) -> None:
    sio = make_server(kind, recovery, redis, key)
    await sio.start("127.0.0.1", 0)
    await asyncio.sleep(0.3)
    payload = "x" * 40
    publisher = sio.main_namespace.adapter.factory.publisher
    started = time.process_time()
    for i in range(0, count, BURST):
        for j in range(i, min(count, i + BURST)):
            sio.emit("tick", j, payload)
        await asyncio.sleep(0)
    await publisher.call("PING")  # every reply before it is in
    cpu = time.process_time() - started
    print(json.dumps({"cpu_us": cpu / count * 1e6}), flush=True)
    await sio.close()


def run_case(kind: str, recovery: bool, redis: str, count: int) -> tuple[float, float]:
    key = f"bench-{uuid.uuid4().hex}"
    args = [kind, "1" if recovery else "0", redis, key, str(count)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    me = os.path.abspath(__file__)
    receiver = subprocess.Popen(
        [sys.executable, me, "--role", "receive", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert json.loads(receiver.stdout.readline())["ready"]
    publisher = subprocess.run(
        [sys.executable, me, "--role", "publish", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    published = json.loads(publisher.stdout.splitlines()[-1])["cpu_us"]
    received = json.loads(receiver.stdout.readline())["cpu_us"]
    receiver.wait(30)
    subprocess.run(["redis-cli", "-u", redis, "DEL", key], stdout=subprocess.DEVNULL, check=False)
    return published, received


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broadcasts", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--role")
    parser.add_argument("rest", nargs="*")
    options = parser.parse_args()
    if options.role:
        kind, recovery, redis, key, count = options.rest
        role = receive if options.role == "receive" else publish
        asyncio.run(role(kind, recovery == "1", redis, key, int(count)))
        return
    import fastsio

    print(
        f"speedups: {fastsio.SPEEDUPS}; {options.broadcasts} broadcasts, median of {options.repeat}"
    )
    cases = [("classic", False), ("streams", False), ("streams", True)]
    results: dict = {case: ([], []) for case in cases}
    for _ in range(options.repeat):
        for case in cases:  # interleaved: the machine's noise hits every case alike
            published, received = run_case(*case, options.redis, options.broadcasts)
            results[case][0].append(published)
            results[case][1].append(received)
    for (kind, recovery), (published, received) in results.items():
        label = f"{kind}{' + recovery' if recovery else ''}"
        print(
            f"{label:20s} publish {statistics.median(published):6.1f} us CPU/broadcast   "
            f"receive {statistics.median(received):6.1f} us CPU/broadcast"
        )


if __name__ == "__main__":
    main()
