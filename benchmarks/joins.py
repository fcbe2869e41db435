"""A small concurrent process joined by the workers vs as a Celery chord: ``python -m benchmarks.joins``.

Runs the user guide's ``ConcurrentProcess`` one run at a time, alternating
between a backend with the default dispatch (its concurrent section joined by
the workers) and one that sends it as a Celery chord (``canvas_limit=32``),
on two ``celery worker -P prefork -c 2`` processes, and prints the median and
90th percentile of each run's time from enqueue to settled. Brokers and
results are found as the tests find them, from ``TASKTRONAUT_REDIS_URL`` and
``TASKTRONAUT_AMQP_URL``.
"""

from __future__ import annotations

import argparse
import statistics
import time

from examples import user_guide
from tasktronaut_celery import CeleryBackend
from tests.integration.load import load_workers
from tests.integration.worker_app import make_app
from tests.services import BROKERS

WARM_UP = 5


def measure(broker: str, runs: int) -> dict[str, list[float]]:
    """Seconds per run for each variant, alternating which goes first."""
    url = BROKERS[broker]
    with load_workers(url, False, "--loglevel", "ERROR"):
        variants = {
            "workers join": CeleryBackend(make_app(url, name="joins-by-workers")),
            "celery chord": CeleryBackend(make_app(url, name="joins-by-chord"), canvas_limit=32),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(runs + WARM_UP):
            order = list(variants.items())
            for name, backend in order if index % 2 else reversed(order):
                began = time.perf_counter()
                process = user_guide.ConcurrentProcess.build(token=f"join-{index}")
                process.enqueue(backend).wait(timeout=60)
                if index >= WARM_UP:
                    times[name].append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--runs", type=int, default=55)
    arguments = parser.parse_args()
    results = {broker: measure(broker, arguments.runs) for broker in arguments.brokers.split(",")}
    print(f"\n{arguments.runs} runs of ConcurrentProcess per variant, one at a time")
    for broker, times in results.items():
        for name, values in times.items():
            median = statistics.median(values) * 1000
            p90 = statistics.quantiles(values, n=10)[8] * 1000
            print(f"{broker:9} {name:13} median {median:6.1f} ms   p90 {p90:6.1f} ms")


if __name__ == "__main__":
    main()
