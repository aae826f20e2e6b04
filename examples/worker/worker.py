"""The worker of examples/worker: takes jobs from the Redis list and reports their progress to the
browsers through ``fastsio.redis.Emitter``. A plain blocking program, as a Celery or RQ worker is:
the body of ``run_job`` would be a task's body there, unchanged.

    python examples/worker/worker.py

Settings (environment), the same as the server's: REDIS_URL, SOCKETIO_KEY, JOBS_QUEUE.
"""

from __future__ import annotations

import json
import math
import os

import redis

from fastsio.redis import Emitter

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEY = os.environ.get("SOCKETIO_KEY", "socket.io")
QUEUE = os.environ.get("JOBS_QUEUE", "jobs")
STEPS = 10  # progress reports per job


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def run_job(emitter: Emitter, job: dict) -> int:
    """Count the primes below ``job["limit"]`` in STEPS slices, reporting after each."""
    room = emitter.to(f"job:{job['id']}")  # only the socket(s) that asked for this job
    limit, found = job["limit"], 0
    bounds = [limit * step // STEPS for step in range(STEPS + 1)]
    for step in range(STEPS):
        found += sum(1 for n in range(bounds[step], bounds[step + 1]) if is_prime(n))
        room.emit("progress", job["id"], step + 1, STEPS)
    room.emit("done", job["id"], {"limit": limit, "primes": found})
    return found


def main() -> None:
    queue = redis.Redis.from_url(REDIS_URL)
    with Emitter(REDIS_URL, key=KEY) as emitter:
        print(f"worker: waiting for jobs on the Redis list {QUEUE!r}", flush=True)
        while True:
            item = queue.blpop([QUEUE], timeout=5)
            if item is None:
                continue
            job = json.loads(item[1])
            found = run_job(emitter, job)
            print(f"worker: job {job['id']}: {found} primes below {job['limit']}", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
