"""Worker children killed at random under load: ``python -m benchmarks.chaos``.

Starts runs of ``crashing.Chaotic`` (ten steps of 0.1 s, four of them side by
side) from 8 client threads, as the load of ``tests/integration/load.py``
does, on two ``celery worker -P prefork -c 2`` processes, while a killer
sends SIGKILL to a random worker child every ``--every`` seconds, as an
out-of-memory killer would. Then it counts, from the runs' records and from
what the workers recorded of each step's executions: runs that succeeded or
failed, steps delivered again after a lost worker, steps that completed more
than once, and any step that completed more than once *without* a lost worker
(which would break Tasktronaut's promise). ``--dispatch`` chooses Celery
canvas, worker dispatch or the backend's default; the workers log to
``/tmp/chaos-<broker>-<node>.log``. Brokers and results are found as the
tests find them, from ``TASKTRONAUT_REDIS_URL`` and ``TASKTRONAUT_AMQP_URL``.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from tasktronaut_celery import CeleryBackend, RunError, RunState
from tests.integration.crashing import Chaotic
from tests.integration.load import THREADS, Shape, Started, load_workers, start_load
from tests.integration.recorder import Recorder
from tests.integration.worker_app import make_app
from tests.services import BROKERS, EVENTS

SETTLE_TIMEOUT = 120.0
RUNS = 100
LOG_DIR = "/tmp"
SHAPES = (Shape("chaotic", Chaotic, lambda index, token: {"token": token}),)


class Killer(threading.Thread):
    """Sends SIGKILL to a random child of one of ``workers`` every ``every`` seconds."""

    def __init__(self, workers: list[int], every: float) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.every = every
        self.kills = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            children = subprocess.run(
                ["pgrep", "-P", str(random.choice(self.workers))],
                capture_output=True, text=True, check=False,
            ).stdout.split()  # fmt: skip
            if children:
                victim = random.choice(children)
                subprocess.run(["kill", f"-{signal.SIGKILL.value}", victim], check=False)
                self.kills += 1
                print(f"{time.time():.3f} killed {victim}", flush=True)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the load under fire came to."""

    broker: str
    kills: int
    wall: float
    states: Counter[str]
    steps: int
    redelivered: int
    completed_twice: int
    completed_twice_unlost: int
    failures: list[str]


def measure(
    broker: str, runs: int, threads: int, every: float, canvas_limit: int | Literal["auto"] | None
) -> Outcome:
    """Run the load on ``broker`` while killing worker children; count what happened."""
    url = BROKERS[broker]
    logs = ("--loglevel", "INFO", "--logfile", f"{LOG_DIR}/chaos-{broker}-%n.log")
    with load_workers(url, True, *logs) as workers:
        app = make_app(url, name="tasktronaut-chaos-benchmark")
        backend = CeleryBackend(app, canvas_limit=canvas_limit)
        killer = Killer(workers, every)
        began = time.time()
        killer.start()
        started = start_load(backend, runs, threads, SHAPES)
        failures = _settle(started)
        wall = time.time() - began
        killer.stopped.set()
        killer.join()
    return _count(broker, killer.kills, wall, started, failures)


def _settle(started: list[Started]) -> list[str]:
    """Wait for every run to end; the errors of those that did not succeed."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    failures = []
    for each in started:
        try:
            each.run.wait(timeout=max(0.0, deadline - time.monotonic()))
        except RunError as error:
            failures.append(str(error))
        except TimeoutError:
            failures.append(f"run {each.run.id} still {each.run.state.value}: stuck")
    return failures


def _count(
    broker: str, kills: int, wall: float, started: list[Started], failures: list[str]
) -> Outcome:
    recorder = Recorder(EVENTS)
    states: Counter[str] = Counter()
    steps = redelivered = twice = twice_unlost = 0
    for each in started:
        states[each.run.state.value] += 1
        completed = Counter(event["path"] for event in recorder.steps(each.run.id))
        for status in each.run.steps():
            steps += 1
            redelivered += status.deliveries > 1
            if completed[status.path] > 1:
                twice += 1
                twice_unlost += status.deliveries == 1
    return Outcome(broker, kills, wall, states, steps, redelivered, twice, twice_unlost, failures)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--every", type=float, default=0.5, help="seconds between kills")
    parser.add_argument(
        "--dispatch", choices=["auto", "canvas", "worker"], default="auto",
        help="send runs as Celery canvas, have workers dispatch them, or let the backend choose",
    )  # fmt: skip
    arguments = parser.parse_args()
    limits: dict[str, int | Literal["auto"] | None] = {"auto": "auto", "canvas": None, "worker": 0}
    limit = limits[arguments.dispatch]
    outcomes = [
        measure(broker, arguments.runs, arguments.threads, arguments.every, limit)
        for broker in arguments.brokers.split(",")
    ]
    print(
        f"\n{arguments.runs} runs from {arguments.threads} threads, dispatch {arguments.dispatch}"
    )
    print(f"one worker child killed every {arguments.every} s")
    for outcome in outcomes:
        succeeded = outcome.states.get(RunState.SUCCESS.value, 0)
        print(outcome.broker)
        print(f"  children killed            {outcome.kills}")
        print(f"  wall time                  {outcome.wall:.1f} s")
        print(f"  runs succeeded / all       {succeeded} / {sum(outcome.states.values())}")
        print(f"  steps                      {outcome.steps:,}")
        print(f"  delivered again            {outcome.redelivered}")
        print(f"  completed twice            {outcome.completed_twice}")
        print(f"  ... with no worker lost    {outcome.completed_twice_unlost}")
        for failure in outcome.failures:
            print(f"  failed: {failure}")


if __name__ == "__main__":
    main()
