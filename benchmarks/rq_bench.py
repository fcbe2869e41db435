"""Run one shape on the RQ-based tasktronaut 0.3: ``python rq_bench.py SHAPE N``.

Runs inside the virtual environment ``benchmarks/.venv-rq`` (tasktronaut 0.3.0
and rq 2.12.0; ``benchmarks.run --rq`` creates it), with two ``rq worker``
processes, and prints one JSON line of measurements.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import redis
import rq
import rq_shapes
from tasktronaut.backends.rq import RqBackend

HERE = Path(__file__).resolve().parent
RQ_URL = os.environ.get("BENCH_RQ_URL", "redis://127.0.0.1:6379/4")
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "900"))


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    shape, n = sys.argv[1], int(sys.argv[2])
    connection = redis.Redis.from_url(RQ_URL)
    connection.flushdb()
    counter = redis.Redis.from_url(rq_shapes.COUNTER_URL)
    key = f"bench:rq:{uuid.uuid4().hex}"
    rq_command = str(Path(sys.executable).with_name("rq"))
    workers = [
        subprocess.Popen(
            [rq_command, "worker", "--url", RQ_URL, "--path", str(HERE), "--quiet", "bench"],
            cwd=HERE,
        )
        for _ in range(2)
    ]
    try:
        while len(rq.Worker.all(connection=connection)) < 2:
            time.sleep(0.05)
        tracemalloc.start()  # in a pass of its own: tracing slows allocations several-fold
        rq_shapes.SHAPES[shape].build(n=n, key=key)
        _, client_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        began = time.perf_counter()
        process = rq_shapes.SHAPES[shape].build(n=n, key=key)
        built = time.perf_counter()
        process.enqueue(RqBackend(rq.Queue("bench", connection=connection)))
        enqueued = time.perf_counter()
        deadline = time.monotonic() + TIMEOUT
        while int(counter.get(key) or 0) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        ended = time.perf_counter()
        done = int(counter.get(key) or 0) >= n
        result = {
            "build": built - began,
            "enqueue": enqueued - built,
            "total": ended - began if done else None,
            "client_mb": client_peak / 2**20,
            "worker_mb": max(peak_mb(worker.pid) for worker in workers),
        }
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
