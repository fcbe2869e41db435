"""No run stays RUNNING when Celery ends a step's message without the step finishing.

A real ``celery worker`` subprocess on Redis: a step that kills its worker on
every delivery, a revoked step (before it runs, and terminated while it
runs), and a message the worker refuses to read each end the run, with the
reason on the run handle. (A step's own exception, exhausted retries, time
limits and unregistered definitions are covered in test_semantics and
test_worker_process.)
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from celery import Celery

from tasktronaut_celery import (
    CeleryBackend,
    ProcessCancelled,
    ProcessFailed,
    RunState,
    StepState,
    UnsafeSerializerWarning,
)
from tests.services import BROKERS
from tests.support import celery_worker, wait_until

from . import resumable
from .crashing import (
    REPOSITORY,
    Crashable,
    KillsItsWorker,
    KillsItsWorkerWhileBroken,
    deliveries,
    open_gate,
    worker_env,
)
from .recorder import Recorder
from .worker_app import make_app

pytestmark = pytest.mark.reliability

WORKER_NAME = "tasktronaut-stuck@localhost"


@pytest.fixture(scope="module")
def app() -> Celery:
    return make_app(BROKERS["redis"], name="tasktronaut-stuck-client")


@pytest.fixture(scope="module")
def client(app: Celery) -> CeleryBackend:
    return CeleryBackend(app, canvas_limit=0)


@pytest.fixture(scope="module", autouse=True)
def worker() -> Iterator[subprocess.Popen[bytes]]:
    with celery_worker(
        "tests.integration.worker_app",
        WORKER_NAME,
        REPOSITORY,
        worker_env("redis"),
        BROKERS["redis"],
    ) as process:
        yield process


def test_a_step_that_kills_its_worker_every_time_fails_the_run(
    client: CeleryBackend, recorder: Recorder
) -> None:
    """After max_deliveries (3) lost workers the run fails with StepLostError; on_failed once."""
    run = KillsItsWorker.build().enqueue(client)

    with pytest.raises(ProcessFailed, match="StepLostError: the worker running step 0 was lost"):
        run.wait(timeout=90)

    assert len(deliveries(run.id)) == client.max_deliveries
    crash, never = run.steps()
    assert (crash.state, crash.deliveries) == (StepState.FAILURE, client.max_deliveries)
    assert never.state is StepState.SKIPPED
    assert [e["process"] for e in recorder.hooks(run.id, "on_failed")] == ["KillsItsWorker"]


def test_a_run_failed_by_a_lost_worker_resumes_once_the_step_is_mended(
    client: CeleryBackend, recorder: Recorder
) -> None:
    """StepLostError ends the run; retry() runs the step again, and what follows it."""
    run_id = f"lost-{uuid.uuid4().hex}"
    resumable.break_steps(run_id, "crash")
    run = KillsItsWorkerWhileBroken.build(identifier=run_id).enqueue(client)
    with pytest.raises(ProcessFailed, match="StepLostError"):
        run.wait(timeout=90)
    resumable.mend(run_id)

    run.retry().wait(timeout=60)

    crash, after = run.steps()
    assert (crash.state, crash.resumes, crash.deliveries) == (StepState.SUCCESS, 1, 1)
    assert (after.state, after.resumes) == (StepState.SUCCESS, 1)
    assert len(deliveries(run_id)) == client.max_deliveries + 1
    assert [e["process"] for e in recorder.hooks(run_id, "on_failed")] == [
        "KillsItsWorkerWhileBroken"
    ]
    assert len(recorder.hooks(run_id, "on_completed")) == 1


def test_a_revoked_step_cancels_the_run(
    app: Celery, client: CeleryBackend, recorder: Recorder
) -> None:
    """The worker drops the revoked message of a later step; the run is cancelled there."""
    run = Crashable.build().enqueue(client)
    wait_until(lambda: deliveries(run.id), 30, "the waiting step starting")

    replies = app.control.revoke(f"{run.id}:3", destination=[WORKER_NAME], reply=True)
    assert replies, "the worker did not confirm the revoke"
    open_gate(run.id)

    with pytest.raises(ProcessCancelled, match="step 3 was revoked"):
        run.wait(timeout=60)
    assert run.record.step == "3"
    assert [s.state for s in run.steps()][-1] is StepState.CANCELLED
    assert len(recorder.hooks(run.id, "on_cancelled")) == 1


def test_a_step_terminated_while_it_runs_cancels_the_run(
    app: Celery, client: CeleryBackend, recorder: Recorder
) -> None:
    """revoke(terminate=True) kills the running step; the run is cancelled, not left RUNNING."""
    run = Crashable.build().enqueue(client)
    wait_until(lambda: deliveries(run.id), 30, "the waiting step starting")

    replies = app.control.revoke(
        f"{run.id}:1", terminate=True, signal="SIGKILL", destination=[WORKER_NAME], reply=True
    )
    assert replies, "the worker did not confirm the revoke"

    with pytest.raises(ProcessCancelled, match="step 1 was terminated"):
        run.wait(timeout=60)
    assert [s.state for s in run.steps()][:2] == [StepState.SUCCESS, StepState.CANCELLED]
    assert len(recorder.hooks(run.id, "on_cancelled")) == 1


def test_a_message_the_worker_refuses_to_read_fails_the_run() -> None:
    """A client sending pickle to a JSON-only worker: the run fails, naming the message."""
    app = make_app(BROKERS["redis"], name="tasktronaut-pickling-client")
    app.conf.update(task_serializer="pickle", accept_content=["json", "pickle"])
    with pytest.warns(UnsafeSerializerWarning, match="uses pickle"):
        pickling = CeleryBackend(app)

    run = Crashable.build().enqueue(pickling)

    with pytest.raises(ProcessFailed, match=r"could not read the tasktronaut\.step message"):
        run.wait(timeout=60)
    assert run.state is RunState.FAILURE
    assert "ContentDisallowed" in (run.record.error or "")
