"""The load of issue 6, shared by its test and its benchmark: many runs of mixed shapes.

``RUNS`` processes, the shapes of :data:`SHAPES` in turn, each with arguments
of its own (a per-run ``token``), are built and enqueued from ``THREADS``
client threads at once, through one backend, against ``WORKERS`` real
``celery -A tests.integration.worker_app worker`` processes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from examples import user_guide
from tasktronaut import Process, ProcessDefinition
from tasktronaut_celery import CeleryBackend, Run, RunRecord
from tests.support import celery_worker

from .processes import LoadOrder

RUNS = 200
THREADS = 8
WORKERS = 2
WORKER_APP = "tests.integration.worker_app"
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Shape:
    """A definition and the arguments of its run number ``index`` with ``token``."""

    name: str
    definition: type[ProcessDefinition]
    arguments: Callable[[int, str], dict[str, Any]]


def _token_only(index: int, token: str) -> dict[str, Any]:
    return {"token": token}


SHAPES = (
    Shape("sequential", user_guide.MyProcess, _token_only),
    Shape("concurrent", user_guide.ConcurrentProcess, _token_only),
    Shape("mixed blocks", user_guide.MixedProcess, _token_only),
    Shape(
        "each",
        user_guide.IterativeProcessWithDescriptions,
        lambda index, token: {"token": token, "files": [f"{token}-{n}.csv" for n in range(3)]},
    ),
    Shape(
        "transform",
        user_guide.TransformingProcessWithDescription,
        lambda index, token: {"token": token, "item_id": index},
    ),
    Shape("sub-process", user_guide.MainProcess, _token_only),
    Shape(
        "batches",
        user_guide.ComplexProcess,
        lambda index, token: {"token": token, "items": [f"{token}-{n}" for n in range(25)]},
    ),
    Shape("order", LoadOrder, lambda index, token: {"token": token, "lines": 3}),
    # Above the default canvas limit of 32 actions: dispatched by the workers.
    Shape("large order", LoadOrder, lambda index, token: {"token": token, "lines": 30}),
    Shape(
        "long each",
        user_guide.IterativeProcess,
        lambda index, token: {"token": token, "files": [f"{token}-{n}.csv" for n in range(40)]},
    ),
)


@dataclass(frozen=True, slots=True)
class Started:
    """One run of the load: what was built, its handle, when and from which thread it went."""

    index: int
    shape: Shape
    process: Process
    run: Run
    enqueued_at: float
    thread: int


def start_load(
    backend: CeleryBackend,
    runs: int = RUNS,
    threads: int = THREADS,
    shapes: tuple[Shape, ...] = SHAPES,
) -> list[Started]:
    """Build and enqueue ``runs`` processes of ``shapes`` from ``threads`` threads at once.

    Thread ``k`` starts runs ``k``, ``k + threads``, ...; the result is in run order.
    """
    ready = threading.Barrier(threads)

    def start_share(first: int) -> list[Started]:
        ready.wait()
        return [start_one(backend, index, shapes) for index in range(first, runs, threads)]

    with ThreadPoolExecutor(threads) as pool:
        shares = list(pool.map(start_share, range(threads)))
    return sorted((s for share in shares for s in share), key=lambda s: s.index)


def start_one(backend: CeleryBackend, index: int, shapes: tuple[Shape, ...] = SHAPES) -> Started:
    """Build run number ``index`` of the load, with a token of its own, and enqueue it."""
    shape = shapes[index % len(shapes)]
    token = f"load-{index:03d}"
    process = shape.definition.build(**shape.arguments(index, token))
    enqueued_at = time.time()
    run = process.enqueue(backend)
    return Started(index, shape, process, run, enqueued_at, threading.get_ident())


def settle(started: list[Started], timeout: float) -> list[RunRecord]:
    """Wait for every run to succeed (raising as ``Run.wait`` does); their final records."""
    deadline = time.monotonic() + timeout
    for each in started:
        each.run.wait(timeout=max(0.0, deadline - time.monotonic()))
    return [each.run.record for each in started]


@contextmanager
def load_workers(broker: str, record: bool, *options: str) -> Iterator[list[int]]:
    """``WORKERS`` worker processes of the tests' app on ``broker``; yields their pids.

    With ``record`` they record hooks and steps (see ``recorder``); ``options``
    are added to each ``celery worker`` command line.
    """
    env = {**os.environ, "TASKTRONAUT_TEST_BROKER": broker, "PYTHONPATH": str(REPOSITORY)}
    if record:
        env["TASKTRONAUT_TEST_WORKER"] = "1"
    else:
        env.pop("TASKTRONAUT_TEST_WORKER", None)
    with ExitStack() as stack:
        workers = [
            stack.enter_context(
                celery_worker(
                    WORKER_APP, f"load-{number}@localhost", REPOSITORY, env, broker, *options
                )
            )
            for number in range(1, WORKERS + 1)
        ]
        yield [worker.pid for worker in workers]
