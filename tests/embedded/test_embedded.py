"""The embedded default runs every user-guide process with the same semantics as a broker."""

from __future__ import annotations

from typing import Any

import pytest

from tasktronaut import ProcessDefinition
from tasktronaut_celery import (
    EmbeddedBackend,
    ProcessCancelled,
    ProcessFailed,
    RunState,
    StepState,
)
from tests.guide_cases import GUIDE, GUIDE_IDS
from tests.integration import processes
from tests.integration.order import must_precede


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
