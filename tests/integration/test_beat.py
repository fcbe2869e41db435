"""Real ``celery beat`` processes start runs, one per tick, on a real worker (Redis).

Beat runs as a subprocess with the one-second schedule of ``beat_app``; the
worker runs in-process, so the test counts the ticks it receives.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun

from tasktronaut_celery import Run, RunState
from tests.support import empty_queues, running, wait_until

from . import beat_app

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def worker() -> Iterator[None]:
    with beat_app.app.connection_for_write() as connection:
        empty_queues(connection, [beat_app.QUEUE])
    with start_worker(
        beat_app.app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[beat_app.QUEUE],
    ):
        yield


@pytest.fixture
def ticks() -> Iterator[list[str]]:
    """The identifiers the worker's scheduled tasks returned, one per tick received."""
    received: list[str] = []
    lock = threading.Lock()

    def record(sender: Any = None, retval: Any = None, **_: Any) -> None:
        if getattr(sender, "name", None) == "tasktronaut.scheduled":
            with lock:
                received.append(str(retval))

    task_postrun.connect(record, weak=False)
    yield received
    task_postrun.disconnect(record)


def beats(count: int, directory: Path) -> ExitStack:
    """``count`` beat processes, each with its own schedule file."""
    stack = ExitStack()
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    for number in range(count):
        command = [
            sys.executable, "-m", "celery", "-A", "tests.integration.beat_app", "beat",
            "--schedule", str(directory / f"schedule-{number}"), "--loglevel", "WARNING",
        ]  # fmt: skip
        stack.enter_context(running(command, REPOSITORY, env))
    return stack


def nightly_runs() -> list[Run]:
    return beat_app.backend.runs(definition="Nightly", limit=1000)


@pytest.mark.usefixtures("worker")
def test_beat_starts_a_run_each_second_with_its_arguments(
    ticks: list[str], tmp_path: Path
) -> None:
    before = {run.id for run in nightly_runs()}

    with beats(1, tmp_path):
        wait_until(lambda: len(set(ticks)) >= 3, 30, "three ticks of beat")

    started = [run for run in nightly_runs() if run.id in set(ticks) - before]
    assert len(started) >= 3
    for run in started:
        assert run.id.startswith("nightly-eu@")
        assert run.wait(timeout=30).state is RunState.SUCCESS
        assert run.record.arguments == "region='eu'"


@pytest.mark.usefixtures("worker")
def test_two_beat_processes_start_one_run_per_tick(ticks: list[str], tmp_path: Path) -> None:
    with beats(2, tmp_path):
        wait_until(lambda: len(set(ticks)) >= 4, 30, "four ticks of two beats")

    assert len(ticks) > len(set(ticks))  # ticks were delivered twice, by the two beats
    for identifier in set(ticks):  # and each started one run, whose step ran once
        run = beat_app.backend.run(identifier).wait(timeout=30)
        assert [step.attempts for step in run.steps()] == [1]
