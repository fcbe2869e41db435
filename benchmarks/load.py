"""The load of issue 6, measured: ``python -m benchmarks.load``.

Runs the load of ``tests/integration/load.py`` (200 processes of mixed shapes,
built and enqueued from 8 client threads at once, on two ``celery worker -P
prefork -c 2`` processes of the tests' app) on each broker and prints its
figures: enqueue and wall time, runs and steps per second, each run's latency
from its enqueue to its settling (p50, p95, max), and the messages published.
Brokers and results are found as the tests find them, from
``TASKTRONAUT_REDIS_URL`` and ``TASKTRONAUT_AMQP_URL``.

The workers import this module too (``--include``), so that the messages they
publish are counted along with the client's.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from dataclasses import dataclass

import redis
from celery.signals import before_task_publish

from tasktronaut_celery import CeleryBackend
from tests.integration.load import RUNS, THREADS, WORKERS, load_workers, settle, start_load
from tests.integration.worker_app import make_app
from tests.services import BROKERS, redis_db

STATS_URL = redis_db(7)
MESSAGES_KEY = "bench:load:messages"
SETTLE_TIMEOUT = 600.0


@functools.cache
def _stats() -> redis.Redis:
    return redis.Redis.from_url(STATS_URL)


@before_task_publish.connect
def _count_message(**_: object) -> None:
    """Count one message published by this process, a client or a worker."""
    _stats().incr(MESSAGES_KEY)


@dataclass(frozen=True, slots=True)
class Figures:
    """What one load measured; times in seconds."""

    broker: str
    runs: int
    steps: int
    enqueue: float
    wall: float
    latencies: list[float]
    messages: int

    def rows(self) -> list[tuple[str, str]]:
        """The figures as (name, value) pairs, for printing."""
        percentiles = statistics.quantiles(self.latencies, n=100)
        return [
            ("runs / steps / messages", f"{self.runs} / {self.steps:,} / {self.messages:,}"),
            ("all enqueued after", f"{self.enqueue:.2f} s"),
            ("wall time", f"{self.wall:.2f} s"),
            ("runs/s", f"{self.runs / self.wall:.1f}"),
            ("steps/s", f"{self.steps / self.wall:.0f}"),
            (
                "latency p50 / p95 / max",
                f"{percentiles[49]:.2f} / {percentiles[94]:.2f} / {max(self.latencies):.2f} s",
            ),
        ]


def measure(broker: str, runs: int, threads: int) -> Figures:
    """Run the load on ``broker`` with fresh workers and measure it from the client."""
    url = BROKERS[broker]
    options = ("--loglevel", "ERROR", "--include", "benchmarks.load")
    with load_workers(url, False, *options):
        backend = CeleryBackend(make_app(url, name="tasktronaut-load-benchmark"))
        _stats().delete(MESSAGES_KEY)
        began = time.time()
        started = start_load(backend, runs, threads)
        enqueued = time.time()
        records = settle(started, SETTLE_TIMEOUT)
        settled = [record.settled_at.timestamp() for record in records if record.settled_at]
        return Figures(
            broker=broker,
            runs=runs,
            steps=sum(len(each.process) for each in started),
            enqueue=enqueued - began,
            wall=max(settled) - began,
            latencies=[end - each.enqueued_at for end, each in zip(settled, started, strict=True)],
            messages=int(_stats().get(MESSAGES_KEY) or 0),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--threads", type=int, default=THREADS)
    arguments = parser.parse_args()
    measured = [
        measure(broker, arguments.runs, arguments.threads)
        for broker in arguments.brokers.split(",")
    ]
    print(f"\n{arguments.threads} client threads, {WORKERS} workers")  # after the workers' banners
    for figures in measured:
        print(figures.broker)
        for name, value in figures.rows():
            print(f"  {name:24} {value}")


if __name__ == "__main__":
    main()
