"""Flower, fed by a ``celery worker`` subprocess, shows every step task by name and in a final state.

The apps send ``task-sent`` events (``task_send_sent_event``), as many
production apps do for Flower: the sent event must name the step like the
worker's events do. A step skipped because its run ended, or that cancelled
its run, must reach a final state in events rather than stay STARTED.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, states

from tasktronaut_celery import CeleryBackend, ProcessCancelled, StepState
from tests.services import BROKERS, EVENTS
from tests.support import celery_worker, wait_until
from tests.support import flower as run_flower

from . import processes
from .worker_app import make_app

REPOSITORY = Path(__file__).resolve().parents[2]
WORKER_NAME = "tasktronaut-flower@localhost"

Flower = Callable[[str], Any]


@pytest.fixture(scope="module")
def app() -> Celery:
    return make_app(BROKERS["redis"], name="tasktronaut-flower-client")


@pytest.fixture(scope="module")
def client(app: Celery) -> CeleryBackend:
    return CeleryBackend(app)


@pytest.fixture(scope="module")
def flower(client: CeleryBackend) -> Iterator[Flower]:
    """A worker on the default queue only (nothing takes the 'special' queue), and Flower."""
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS["redis"],
        "TASKTRONAUT_TEST_WORKER": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    app_module = "tests.integration.worker_app"
    with (
        celery_worker(app_module, WORKER_NAME, REPOSITORY, env, BROKERS["redis"], "-Q", "celery"),
        run_flower(app_module, REPOSITORY, env, WORKER_NAME) as get,
    ):
        yield get


def tasks_of(flower: Flower, run_id: str) -> dict[str, dict[str, Any]]:
    """Flower's tasks of the run ``run_id``, by task id."""
    tasks: dict[str, dict[str, Any]] = flower("/api/tasks")
    return {uuid: task for uuid, task in tasks.items() if uuid.startswith(f"{run_id}:")}


def test_skipped_and_cancelling_steps_end_in_flower(client: CeleryBackend, flower: Flower) -> None:
    """Steps sent after a client cancel, and a step cancelling its run, show REVOKED, not STARTED."""
    gated = processes.Gated.build().enqueue(client)
    wait_until(lambda: gated.steps()[0].state is StepState.STARTED, 30, "the gated step starting")
    gated.cancel()
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(gated.id), "open")
    cancels = processes.CancelsItself.build().enqueue(client)
    for run in (gated, cancels):
        with pytest.raises(ProcessCancelled):
            run.wait(timeout=60)
    expected = {
        f"{gated.id}:0": "SUCCESS",  # it finished after the cancel
        f"{gated.id}:1.0": "REVOKED",  # sent by then, skipped
        f"{gated.id}:1.1": "REVOKED",
        f"{cancels.id}:0": "SUCCESS",
        f"{cancels.id}:1": "REVOKED",  # it cancelled the run
    }

    def steps_ended() -> dict[str, str] | None:
        tasks = {**tasks_of(flower, gated.id), **tasks_of(flower, cancels.id)}
        seen = {uuid: tasks[uuid]["state"] for uuid in expected if uuid in tasks}
        ended = len(seen) == len(expected) and set(seen.values()) <= states.READY_STATES
        return seen if ended else None

    wait_until(steps_ended, 30, "Flower showing every step of both runs ended")
    assert steps_ended() == expected
    assert [s.state for s in gated.steps()] == [StepState.SUCCESS] + [StepState.SKIPPED] * 3


def test_a_step_flower_knows_only_as_sent_shows_its_name(
    client: CeleryBackend, flower: Flower
) -> None:
    """A step whose queue no worker takes is known to Flower by its task-sent event alone.

    That event is what would rename a step arriving late; it carries
    ``Definition.method`` like the worker's events, never ``tasktronaut.step``.
    """
    run = processes.Routed.build().enqueue(client)
    expected = {
        f"{run.id}:0": "Routed.on_default_queue",
        f"{run.id}:1": "Routed.on_special_queue",
    }
    try:

        def all_seen() -> dict[str, dict[str, Any]] | None:
            tasks = tasks_of(flower, run.id)
            return tasks if expected.keys() <= tasks.keys() else None

        tasks = wait_until(all_seen, 30, "Flower seeing the sent step")
    finally:
        run.cancel()

    assert {uuid: tasks[uuid]["name"] for uuid in expected} == expected
    assert tasks[f"{run.id}:1"]["state"] == "PENDING"  # sent, never received
