"""The tasktronaut command against a user's Celery app: run, status and cancel by id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from click.testing import CliRunner

from tasktronaut_celery import StepState
from tasktronaut_celery.cli import EXIT_FAILED, main

from . import processes, worker_app
from .conftest import WORKER_QUEUES
from .services import EVENTS
from .test_semantics import wait_until

APP = "tests.integration.worker_app:app"


@pytest.fixture(scope="module", autouse=True)
def user_worker() -> Iterator[None]:
    """A worker for the app the command names with --app."""
    with start_worker(
        worker_app.app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=WORKER_QUEUES,
    ):
        yield


def test_run_with_app_enqueues_on_it_and_follows_the_run() -> None:
    """The user's own worker runs the process; the command exits 0 with the summary."""
    result = CliRunner().invoke(main, ["run", "examples.user_guide:MainProcess", "--app", APP])

    assert result.exit_code == 0, result.output
    assert "ValidationProcess.check_constraints  SUCCESS" in result.output


def test_status_and_cancel_by_run_id() -> None:
    """Status shows a running run; cancel stops it; a second cancel says it had ended."""
    run = processes.Gated.build().enqueue(worker_app.backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED)

    status = CliRunner().invoke(main, ["status", run.id, "--app", "tests.integration.worker_app"])
    cancel = CliRunner().invoke(main, ["cancel", run.id, "--app", APP])
    again = CliRunner().invoke(main, ["cancel", run.id, "--app", APP])
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")

    assert status.exit_code == 0
    assert f"Run {run.id}: RUNNING" in status.output
    assert "Gated.wait_at_gate" in status.output
    assert cancel.output.strip() == f"Run {run.id} cancelled."
    assert again.output.strip() == f"Run {run.id} had already ended: CANCELLED."


def test_status_of_an_unknown_run_is_an_error() -> None:
    """An id that was never enqueued gets a one-paragraph error and exit code 1."""
    result = CliRunner().invoke(main, ["status", "no-such-run", "--app", APP])

    assert result.exit_code == EXIT_FAILED
    assert result.output.startswith("Error: run 'no-such-run' does not exist")


def test_an_unreachable_broker_is_reported_in_one_paragraph() -> None:
    """With nothing listening on the app's Redis the command says so and exits 1."""
    result = CliRunner().invoke(
        main,
        ["run", "examples.user_guide:MyProcess", "--app", "tests.integration.unreachable:app"],
    )

    assert result.exit_code == EXIT_FAILED, result.output
    assert result.output.startswith("Error: MyProcess run ")
    assert "the result backend at redis://127.0.0.1:1/1 did not answer" in result.output
    assert "nothing was stored or sent" in result.output
    assert "Traceback" not in result.output
