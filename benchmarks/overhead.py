"""Tasktronaut against the plain Celery it runs on: ``python -m benchmarks.overhead``.

Both sides run on a ``celery -A benchmarks.app worker -P prefork -c 2`` with
Redis results; every step and every plain task counts itself in Redis and does
nothing else. Messages are not counted here (``benchmarks.run`` counts them at
the cost of a Redis round trip per message, on both sides alike, which would
flatten the ratios).

Throughput
    1,000 sequential steps against a raw relay (a plain task that sends its
    successor: the floor of sequential work), and 1,000 concurrent steps
    against 1,000 independent ``delay()`` calls; the ratio is Tasktronaut's
    tasks/s over plain Celery's. ``--rounds`` rounds, the order alternating,
    each case on a fresh worker and timed from build to settled, as in
    ``benchmarks.run``.

Latency of one small run at a time
    The user guide's ``MixedProcess``, 10 sequential steps, and 10 concurrent
    steps followed by one that joins them: ``enqueue(...).wait()`` against the
    same canvas written by hand (``chain``, and a chord for the join), awaited
    as ``benchmarks.run`` awaits canvas, by polling its counter, but every 2 ms
    (these runs take tens of ms). Since ``wait()`` wakes when the store
    announces the settling (and otherwise reads at a backoff from 5 ms up to
    200 ms), the run is also followed the way the canvas is
    (*polled*: its record read every 2 ms until it has settled), which tells
    the work from the waiting. ``--runs`` runs of each, interleaved and in
    turning order, on one worker after a few warm-up runs; the ratios are
    Tasktronaut's times over the hand-written canvas's, at the median and at
    the 90th percentile. (``MixedProcess``'s steps log, below the worker's log
    level, rather than count: a Redis round trip per step in its favour.)

Every case gives up after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import celery

from examples import user_guide
from tasktronaut import Process

from . import run, shapes

WARM_UP = 3
POLL = 0.002
VARIANTS = ("wait()", "polled", "canvas")

Measure = Callable[[str, int, float], run.Case]


def relay(broker: str, n: int, timeout: float) -> run.Case:
    """N tasks one after another, each sending the next: plain Celery's sequential floor."""
    app, _ = run.client(broker)

    def start(key: str) -> tuple[Callable[[], bool], None]:
        app.tasks["bench.relay"].delay(key=key, remaining=n)
        return (lambda: run.counted(key) >= n), None

    return run.measure(broker, "sequential", n, "relay", start, lambda: None, timeout)


def sequential(broker: str, n: int, timeout: float) -> run.Case:
    return run.tasktronaut(broker, "sequential", n, timeout)


def concurrent(broker: str, n: int, timeout: float) -> run.Case:
    return run.tasktronaut(broker, "concurrent", n, timeout)


# Each comparison: Tasktronaut's case, then plain Celery's.
THROUGHPUT: dict[str, tuple[Measure, Measure]] = {
    "sequential vs relay": (sequential, relay),
    "concurrent vs delay()": (concurrent, run.ceiling),
}


def throughput(
    broker: str, n: int, rounds: int, timeout: float
) -> dict[str, list[tuple[run.Case, run.Case]]]:
    """Both sides of each comparison, ``rounds`` times, alternating which goes first."""
    results: dict[str, list[tuple[run.Case, run.Case]]] = {name: [] for name in THROUGHPUT}
    for index in range(rounds):
        for name, pair in THROUGHPUT.items():
            order = pair if index % 2 == 0 else pair[::-1]
            first, second = (case(broker, n, timeout) for case in order)
            for done in (first, second):
                print(run.describe(done), flush=True)
                if done.total is None:  # what it left queued must not slow the next case
                    run.client(broker)[0].control.purge()
            results[name].append((first, second) if index % 2 == 0 else (second, first))
    return results


@dataclass(frozen=True)
class Small:
    """A small process and its hand-written canvas (``shapes.hand_written``)."""

    label: str
    build: Callable[[str], Process]
    shape: str
    n: int
    tasks: int  # in the hand-written canvas, each counting itself

    def waited(self, broker: str, key: str, timeout: float) -> float:
        began = time.perf_counter()
        self.build(key).enqueue(run.client(broker)[1]).wait(timeout=timeout)
        return time.perf_counter() - began

    def polled(self, broker: str, key: str, timeout: float) -> float:
        began = time.perf_counter()
        handle = self.build(key).enqueue(run.client(broker)[1])
        if not run.wait_for(lambda: handle.record.settled_at is not None, timeout, POLL):
            raise TimeoutError(f"{self.label} run {handle.id}: not settled after {timeout} s")
        if handle.record.state.value != "SUCCESS":
            raise RuntimeError(f"{self.label} run {handle.id} ended {handle.record.state.value}")
        return time.perf_counter() - began

    def by_hand(self, broker: str, key: str, timeout: float) -> float:
        began = time.perf_counter()
        shapes.hand_written(run.client(broker)[0], self.shape, self.n, key).apply_async()
        if not run.wait_for(lambda: run.counted(key) >= self.tasks, timeout, POLL):
            raise TimeoutError(f"{self.label} by hand: not finished after {timeout} s")
        return time.perf_counter() - began


SMALL = (
    Small("MixedProcess", lambda key: user_guide.MixedProcess.build(), "mixed", 0, 6),
    Small("10 sequential", lambda key: shapes.Sequential.build(n=10, key=key), "sequential", 10, 10),
    Small("10 concurrent + join", lambda key: shapes.Joined.build(n=10, key=key), "joined", 10, 11),
)  # fmt: skip


def latency(broker: str, runs: int, timeout: float) -> dict[str, dict[str, list[float]]]:
    """Seconds per run of each small process, each way, one run at a time on one worker."""
    times: dict[str, dict[str, list[float]]] = {
        small.label: {variant: [] for variant in VARIANTS} for small in SMALL
    }
    with run.worker(broker):
        for index in range(WARM_UP + runs):
            for small in SMALL:
                ways = {"wait()": small.waited, "polled": small.polled, "canvas": small.by_hand}
                turn = index % len(VARIANTS)
                for variant in VARIANTS[turn:] + VARIANTS[:turn]:
                    key = f"bench:small:{uuid.uuid4().hex}"
                    seconds = ways[variant](broker, key, timeout)
                    run.stats().delete(key)
                    if index >= WARM_UP:
                        times[small.label][variant].append(seconds)
    return times


def ratio(ours: float | None, theirs: float | None) -> str:
    return run.fmt(ours / theirs if ours and theirs else None)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[8]


def print_throughput(
    broker: str, n: int, results: dict[str, list[tuple[run.Case, run.Case]]]
) -> None:
    print(f"\n{broker}: {n:,} steps, Tasktronaut tasks/s against plain Celery's, per round")
    for name, pairs in results.items():
        cells = [
            f"{run.fmt(ours.per_second, 0)}/{run.fmt(theirs.per_second, 0)} "
            f"= {ratio(ours.per_second, theirs.per_second)}"
            for ours, theirs in pairs
        ]
        ratios = [
            ours.per_second / theirs.per_second
            for ours, theirs in pairs
            if ours.per_second and theirs.per_second
        ]
        middle = run.fmt(statistics.median(ratios) if ratios else None)
        print(f"  {name:22} " + "   ".join(cells) + f"   (median {middle})")


def print_latency(broker: str, runs: int, times: dict[str, dict[str, list[float]]]) -> None:
    print(f"\n{broker}: {runs} runs each, one at a time: ms, and x canvas by hand")
    print(f"  {'process':22} {'':4} " + "".join(f"{variant:>16}" for variant in VARIANTS))
    for label, variants in times.items():
        for name, statistic in (("p50", statistics.median), ("p90", p90)):
            hand = statistic(variants["canvas"])
            cells = []
            for variant in VARIANTS:
                value = statistic(variants[variant])
                shown = "" if variant == "canvas" else f" {ratio(value, hand)}x"
                cells.append(f"{value * 1000:.1f}{shown}".rjust(16))
            print(f"  {label if name == 'p50' else '':22} {name:4} " + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--n", type=int, default=1_000, help="steps in the throughput cases")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the throughput cases")
    parser.add_argument("--runs", type=int, default=30, help="runs of each small process")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a case fails")
    arguments = parser.parse_args()
    os.environ["BENCH_COUNT_MESSAGES"] = "off"  # here and in the workers started below
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
        f"Python {platform.python_version()}, Celery {celery.__version__}, "
        f"Redis {run.stats().info()['redis_version']}; worker -P prefork -c 2"
    )
    for broker in arguments.brokers.split(","):
        results = throughput(broker, arguments.n, arguments.rounds, arguments.timeout)
        times = latency(broker, arguments.runs, arguments.timeout)
        print_throughput(broker, arguments.n, results)
        print_latency(broker, arguments.runs, times)


if __name__ == "__main__":
    main()
