"""Processes on a real ``celery -A ... worker`` subprocess with the prefork pool."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from examples import user_guide
from tasktronaut import Builder, ProcessDefinition
from tasktronaut_celery import CeleryBackend, ProcessFailed, RunState
from tests.services import BROKERS
from tests.support import celery_worker

from . import processes
from .order import check_run
from .recorder import Recorder
from .worker_app import make_app

REPOSITORY = Path(__file__).resolve().parents[2]
WORKER_NAME = "tasktronaut-subprocess@localhost"


@pytest.fixture(scope="module")
def app() -> Celery:
    return make_app(BROKERS["redis"], name="tasktronaut-subprocess-client")


@pytest.fixture(scope="module")
def client(app: Celery) -> CeleryBackend:
    return CeleryBackend(app)


@pytest.fixture(scope="module")
def worker_process(app: Celery, client: CeleryBackend) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tests.integration.worker_app worker -P prefork -c 2 -E``, answering pings."""
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS["redis"],
        "TASKTRONAUT_TEST_WORKER": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    queues = ("-Q", "celery,special")
    app_module = "tests.integration.worker_app"
    with celery_worker(app_module, WORKER_NAME, REPOSITORY, env, BROKERS["redis"], *queues) as w:
        yield w


class NotInWorker(ProcessDefinition):
    """Defined only in this test module, which the worker never imports."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.anything)

    def anything(self) -> None:
        raise AssertionError("a worker ran a step of a definition it never imported")


pytestmark = pytest.mark.usefixtures("worker_process")


def test_a_user_guide_process_runs_on_a_prefork_worker(
    client: CeleryBackend, recorder: Recorder
) -> None:
    """MainProcess with its ValidationProcess sub-process runs in order in worker children."""
    process = user_guide.MainProcess.build()

    run = process.enqueue(client).wait(timeout=60)

    check_run(process, recorder.events(run.id))
    assert {e["pid"] for e in recorder.steps(run.id)} - {os.getpid()}


def test_a_definition_the_worker_does_not_know_fails_the_run(
    client: CeleryBackend, recorder: Recorder
) -> None:
    """The run fails with an error naming the unregistered definition; nothing runs."""
    run = NotInWorker.build().enqueue(client)

    with pytest.raises(ProcessFailed, match=r"not registered.*import the module") as failure:
        run.wait(timeout=60)

    assert "test_worker_process:NotInWorker" in failure.value.error
    assert recorder.steps(run.id) == []


def test_a_soft_time_limit_fails_the_step(client: CeleryBackend) -> None:
    """The step option soft_time_limit is enforced by the worker; the error names the limit."""
    run = processes.TimeLimited.build().enqueue(client)
    named = (
        "SoftTimeLimitExceeded: step 0 (TimeLimited.overrun) exceeded its soft time limit of 1 s"
    )

    with pytest.raises(ProcessFailed, match=re.escape(named)) as failure:
        run.wait(timeout=60)

    assert failure.value.step_name == "TimeLimited.overrun"
    assert failure.value.error == named
    assert run.state is RunState.FAILURE
    assert run.steps()[0].error == named


def test_a_hard_time_limit_fails_the_run(client: CeleryBackend) -> None:
    """The worker kills the step at its time limit; the run fails there instead of hanging."""
    run = processes.HardLimited.build().enqueue(client)

    with pytest.raises(ProcessFailed, match="TimeLimitExceeded") as failure:
        run.wait(timeout=60)

    assert failure.value.step_name == "HardLimited.overrun"
    assert [s.state.value for s in run.steps()] == ["FAILURE", "SKIPPED"]


def test_flower_and_logs_see_steps_under_their_own_names(
    app: Celery, client: CeleryBackend
) -> None:
    """Task events carry the shadow name, the run id and path, and a unique id per step."""
    received: list[dict[str, Any]] = []
    receivers: list[Any] = []
    ready = threading.Event()
    finished = threading.Event()
    process = user_guide.MainProcess.build()
    expected = {f"{s.definition.__qualname__}.{s.method}" for s in process.steps()}

    def on_received(event: dict[str, Any]) -> None:
        if event.get("uuid", "").startswith(process.identifier):
            received.append(event)
            if expected <= {e["name"] for e in received}:
                finished.set()

    def listen() -> None:
        with app.connection() as connection:
            handlers = {"task-received": on_received, "*": lambda event: ready.set()}
            receiver = app.events.Receiver(connection, handlers=handlers)
            receivers.append(receiver)
            receiver.capture(limit=None, timeout=None, wakeup=True)

    listener = threading.Thread(target=listen, daemon=True)

    listener.start()
    assert ready.wait(30), "no event (not even a worker heartbeat) reached the receiver"
    process.enqueue(client).wait(timeout=60)
    assert finished.wait(30), f"received {[e['name'] for e in received]}"
    receivers[0].should_stop = True
    listener.join(10)

    steps = [e for e in received if e["name"] in expected]
    assert sorted(e["name"] for e in steps) == sorted(expected)
    assert len({e["uuid"] for e in received}) == len(received)
    for event in steps:
        assert process.identifier in event["kwargs"]
        path = event["uuid"].removeprefix(process.identifier + ":")
        assert f"'step': '{path}'" in event["kwargs"]
