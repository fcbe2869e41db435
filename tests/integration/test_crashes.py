"""Worker children killed mid-step or right after a step: each run completes, steps run once.

A real ``celery worker`` subprocess (prefork) on Redis, with a short
visibility timeout, and on RabbitMQ, for runs sent as Celery canvas and runs
dispatched by workers. Killing a child with SIGKILL is what the kernel's
out-of-memory killer or a crashing C extension does to a step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS, EVENTS
from tests.support import celery_worker, wait_until

from .crashing import (
    REPOSITORY,
    Crashable,
    Steady,
    deliveries,
    die_after_key,
    died_key,
    open_gate,
    worker_env,
)
from .order import check_run
from .recorder import Recorder
from .worker_app import make_app

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def client_app(broker: str) -> Celery:
    return make_app(BROKERS[broker], name=f"tasktronaut-crash-client-{broker}")


@pytest.fixture(scope="module", params=["canvas", "worker"])
def backend(client_app: Celery, request: pytest.FixtureRequest) -> CeleryBackend:
    """Runs sent as Celery canvas, then runs dispatched step by step by the workers."""
    return CeleryBackend(client_app, canvas_limit=None if request.param == "canvas" else 0)


@pytest.fixture(scope="module")
def worker(broker: str) -> Iterator[subprocess.Popen[bytes]]:
    name = f"tasktronaut-crash-{broker}@localhost"
    app = "tests.integration.worker_app"
    with celery_worker(app, name, REPOSITORY, worker_env(broker), BROKERS[broker]) as process:
        yield process


def test_a_step_whose_worker_child_is_killed_runs_again(
    backend: CeleryBackend, worker: subprocess.Popen[bytes], recorder: Recorder
) -> None:
    """The broker delivers the killed step again; the run completes, every step once."""
    process = Crashable.build()
    run = process.enqueue(backend)
    first = wait_until(lambda: deliveries(run.id)[:1], 30, "the step reaching a worker")[0]

    os.kill(first["pid"], signal.SIGKILL)
    wait_until(lambda: deliveries(run.id)[1:], 60, "the step delivered again")
    open_gate(run.id)
    run.wait(timeout=60)

    check_run(process, recorder.events(run.id))  # the killed attempt never finished
    assert [(s.path, s.deliveries) for s in run.steps()] == [
        ("0", 1), ("1", 2), ("2.0", 1), ("2.1", 1), ("3", 1),
    ]  # fmt: skip


@pytest.mark.parametrize("path", ["1", "2.0"])
def test_a_step_that_succeeded_before_its_worker_died_is_not_run_again(
    backend: CeleryBackend, worker: subprocess.Popen[bytes], recorder: Recorder, path: str
) -> None:
    """The child dies after the step (a chain member, a chord member), before the ack."""
    run_id = f"steady-{uuid.uuid4().hex}"
    events = redis.Redis.from_url(EVENTS)
    events.set(die_after_key(f"{run_id}:{path}"), 1, ex=600)
    process = Steady.build(identifier=run_id)

    run = process.enqueue(backend).wait(timeout=60)

    # In a chord the run may end (the body sent when the member's result is
    # stored) before Celery's task_postrun kills the member's child: wait for it.
    died = died_key(f"{run_id}:{path}")
    wait_until(lambda: events.get(died), 30, "the worker child dying after the step")
    check_run(process, recorder.events(run.id))  # every step exactly once, in order
