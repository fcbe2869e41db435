"""A worker whose code lacks part of a process runs nothing of it: the run fails up front.

The client knows ``deployed_pipeline:DeployedPipeline`` with a step
``publish``; a ``celery worker`` subprocess, left on the old code, has the
same class without it. Whichever message of a run that worker sees first,
it checks the whole plan and fails the run before running a step.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from tasktronaut_celery import CeleryBackend, ProcessFailed, RunState, StepState
from tests.services import BROKERS
from tests.support import celery_worker

from .recorder import Recorder
from .worker_app import make_app

REPOSITORY = Path(__file__).resolve().parents[2]
VERSIONS = Path(__file__).resolve().parent / "code_versions"
STALE_WORKER = "tasktronaut-stale@localhost"
LEGACY_QUEUE = "legacy"
MISMATCH = (
    r"WorkerCodeMismatchError: this worker's code differs from the client's.*"
    r"step 2 \(DeployedPipeline\.publish\): "
    r"deployed_pipeline:DeployedPipeline: DeployedPipeline has no instance method 'publish'"
)


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Any]:
    """The client's (new) ``DeployedPipeline``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(VERSIONS / "new"))
        yield importlib.import_module("deployed_pipeline").DeployedPipeline


@pytest.fixture(scope="module")
def stale_worker(pipeline: Any) -> Iterator[None]:
    """``celery worker`` on the old code, consuming only the legacy queue."""
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS["redis"],
        "TASKTRONAUT_TEST_WORKER": "1",
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY), str(VERSIONS / "old")]),
    }
    app_module = "tests.integration.worker_app"
    options = ("-Q", LEGACY_QUEUE, "-I", "deployed_pipeline")
    with celery_worker(app_module, STALE_WORKER, REPOSITORY, env, BROKERS["redis"], *options):
        yield


pytestmark = pytest.mark.usefixtures("stale_worker")


def test_a_stale_worker_fails_the_run_at_its_start(pipeline: Any, recorder: Recorder) -> None:
    """The stale worker takes the start message: no step runs, the run fails naming the method."""
    app = make_app(BROKERS["redis"], name="tasktronaut-stale-start")
    client = CeleryBackend(app, control_queue=LEGACY_QUEUE)

    run = pipeline.build(options={"all_on_legacy": True}).enqueue(client)

    with pytest.raises(ProcessFailed, match=MISMATCH) as failure:
        run.wait(timeout=60)
    assert failure.value.step is None
    assert recorder.steps(run.id) == []
    assert run.state is RunState.FAILURE
    assert [s.state for s in run.steps()] == [StepState.SKIPPED] * 3


def test_a_stale_worker_given_a_later_step_runs_none(pipeline: Any, recorder: Recorder) -> None:
    """An up-to-date worker runs the first step; the stale one, given the second, runs none."""
    app = make_app(BROKERS["redis"], name="tasktronaut-stale-step")
    client = CeleryBackend(app)

    with start_worker(
        app, pool="threads", concurrency=2, perform_ping_check=False, queues=["celery"]
    ):
        run = pipeline.build().enqueue(client)
        with pytest.raises(ProcessFailed, match=MISMATCH):
            run.wait(timeout=60)

    assert [step["name"] for step in recorder.steps(run.id)] == ["DeployedPipeline.extract"]
    states = [s.state for s in run.steps()]
    assert states == [StepState.SUCCESS, StepState.SKIPPED, StepState.SKIPPED]
