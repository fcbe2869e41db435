"""The embedded default runs every user-guide process with the same semantics as a broker."""

from __future__ import annotations

import threading
import uuid
from typing import Any, ClassVar

import pytest
from celery.signals import before_task_publish, task_postrun

from tasktronaut import Builder, Context, ProcessDefinition
from tasktronaut_celery import (
    EmbeddedBackend,
    ProcessCancelled,
    ProcessFailed,
    Run,
    RunState,
    StepState,
)
from tasktronaut_celery.canvas import step_signature
from tests.guide_cases import GUIDE, GUIDE_IDS
from tests.integration import processes
from tests.integration.order import must_precede
from tests.support import wait_until


@pytest.mark.parametrize(("definition", "arguments", "options"), GUIDE, ids=GUIDE_IDS)
def test_user_guide_process_runs_in_order(
    embedded: EmbeddedBackend,
    definition: type[ProcessDefinition],
    arguments: dict[str, Any],
    options: dict[str, bool],
) -> None:
    """Each example succeeds; every step ran once, none before the steps it must follow."""
    process = definition.build(options=options, **arguments)

    run = process.enqueue(embedded).wait(timeout=30)

    statuses = {status.path: status for status in run.steps()}
    assert run.state is RunState.SUCCESS
    assert list(statuses) == [step.path for step in process.steps()]
    assert all(s.state is StepState.SUCCESS and s.attempts == 1 for s in statuses.values())
    for earlier, later in must_precede(process):
        assert statuses[earlier].finished_at <= statuses[later].started_at  # type: ignore[operator]


def test_concurrent_steps_overlap(embedded: EmbeddedBackend) -> None:
    """The worker's threads run the concurrent block's steps at the same time."""
    run = processes.Overlapping.build().enqueue(embedded).wait(timeout=30)

    block = [s for s in run.steps() if s.path.startswith("0.")]
    assert max(s.started_at for s in block) < min(s.finished_at for s in block)  # type: ignore[type-var]


def test_failure_and_retries_behave_as_on_a_broker(embedded: EmbeddedBackend) -> None:
    """A retried step succeeds on attempt 3; a failing one stops the run at once."""
    flaky = processes.Flaky.build().enqueue(embedded).wait(timeout=30)
    failing = processes.FailsOnce.build().enqueue(embedded)

    with pytest.raises(ProcessFailed, match="ledger"):
        failing.wait(timeout=30)

    assert [s.attempts for s in flaky.steps()] == [3, 1]
    assert [s.state for s in failing.steps()] == [
        StepState.SUCCESS,
        StepState.FAILURE,
        StepState.SKIPPED,
    ]


def test_a_step_can_cancel_the_run(embedded: EmbeddedBackend) -> None:
    """CancelProcessError ends the embedded run CANCELLED."""
    run = processes.CancelsItself.build().enqueue(embedded)

    with pytest.raises(ProcessCancelled):
        run.wait(timeout=30)

    assert run.state is RunState.CANCELLED


def test_two_embedded_backends_share_a_process_without_crosstalk(
    embedded: EmbeddedBackend,
) -> None:
    """A second embedded backend runs its own runs; the first keeps working meanwhile."""
    with EmbeddedBackend(concurrency=2) as other:
        mine = processes.Overlapping.build().enqueue(embedded)
        theirs = processes.Overlapping.build().enqueue(other)

        assert theirs.wait(timeout=30).state is RunState.SUCCESS
        assert mine.wait(timeout=30).state is RunState.SUCCESS
    assert other.store.record(mine.id) is None
    assert embedded.store.record(theirs.id) is None


class Held(ProcessDefinition):
    """A step between two others that waits until the test releases its run."""

    releases: ClassVar[dict[str, threading.Event]] = {}
    entries: ClassVar[list[str]] = []

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.task(self.held)
        builder.task(self.last)

    def first(self) -> None:
        pass

    def held(self, context: Context) -> None:
        Held.entries.append(context.process_id)
        Held.releases.setdefault(context.process_id, threading.Event()).wait(10)

    def last(self) -> None:
        pass


def wait_until_held(run: Run) -> None:
    """Wait until ``Held``'s first step has succeeded and its second is under way."""
    wait_until(
        lambda: [s.state for s in run.steps()][:2] == [StepState.SUCCESS, StepState.STARTED],
        10,
        "Held's first step succeeded and its second under way",
    )


def send_duplicate(backend: EmbeddedBackend, run: Run, path: str) -> list[str]:
    """Send a second message for the step at ``path``; the task ids published meanwhile."""
    handled = threading.Event()
    published: list[str] = []

    def on_publish(headers: dict[str, Any], **_: Any) -> None:
        published.append(str(headers.get("id")))

    def on_postrun(task_id: str, **_: Any) -> None:
        if task_id == "duplicate":
            handled.set()

    before_task_publish.connect(on_publish, weak=False)
    task_postrun.connect(on_postrun, weak=False)
    try:
        plan = backend.runner.plan(run.id, backend.store.record(run.id))
        step_signature(backend.app, plan, path).set(task_id="duplicate").apply_async()
        assert handled.wait(10), "the duplicate message was never handled"
    finally:
        task_postrun.disconnect(on_postrun)
        before_task_publish.disconnect(on_publish)
    return published


def release(run: Run) -> None:
    """Let ``Held``'s waiting step of ``run`` finish."""
    Held.releases.setdefault(run.id, threading.Event()).set()


def test_a_succeeded_step_delivered_again_does_not_run_what_follows_twice() -> None:
    """A duplicate of a finished step's message (a redelivery) starts nothing twice."""
    with EmbeddedBackend(canvas_limit=0) as backend:
        run = Held.build().enqueue(backend)
        wait_until_held(run)

        published = send_duplicate(backend, run, "0")

        assert published == ["duplicate"]  # the step that follows was not sent again
        release(run)
        run.wait(timeout=10)

    assert Held.entries.count(run.id) == 1
    assert [s.attempts for s in run.steps()] == [1, 1, 1]


@pytest.mark.parametrize("canvas_limit", [None, 0], ids=["canvas", "worker"])
def test_a_fresh_duplicate_of_a_step_under_way_is_ignored(canvas_limit: int | None) -> None:
    """A second message for a started step that is no redelivery runs nothing."""
    with EmbeddedBackend(canvas_limit=canvas_limit) as backend:
        run = Held.build().enqueue(backend)
        wait_until_held(run)

        send_duplicate(backend, run, "1")
        release(run)
        run.wait(timeout=10)

    assert Held.entries.count(run.id) == 1
    assert [(s.attempts, s.deliveries) for s in run.steps()] == [(1, 1)] * 3


def test_an_identifier_enqueued_again_after_its_run_expired_runs_its_new_plan(
    embedded: EmbeddedBackend,
) -> None:
    """Workers cache plans by run id; a new run under an expired run's id is not mistaken."""
    first = processes.Overlapping.build(identifier=f"again-{uuid.uuid4().hex}")
    embedded.store.delete(first.enqueue(embedded).wait(timeout=30).id)  # as result_expires would

    second = processes.Flaky.build(identifier=first.identifier).enqueue(embedded)

    assert second.wait(timeout=30).state is RunState.SUCCESS
    assert [(s.name, s.state) for s in second.steps()] == [
        ("Flaky.flaky", StepState.SUCCESS), ("Flaky.after", StepState.SUCCESS),
    ]  # fmt: skip
