"""Assertions on a run's outcome that say, when they fail, which steps differ and how."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from ..run import Run
from ..store import RunState, StepState

_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, step by step: each list holds step names in the order the steps started.

    A name is ``Definition.method``; a step that ran for several members of an
    ``each`` appears once for each.
    """

    state: RunState
    succeeded: list[str]
    failed: list[str]
    skipped: list[str]
    cancelled: list[str]

    def lines(self) -> list[str]:
        """The outcome as lines, one per step, for diffs."""
        lines = [f"state: {self.state.value}"]
        for label, names in (
            ("succeeded", self.succeeded),
            ("failed", self.failed),
            ("skipped", self.skipped),
            ("cancelled", self.cancelled),
        ):
            lines += [f"{label}: {name}" for name in names]
        return lines


def run_outcome(run: Run) -> RunOutcome:
    """The outcome of ``run`` as it stands (wait for the run first)."""
    steps = sorted(run.steps(), key=lambda step: (step.started_at or _EPOCH, step.path))

    def named(*states: StepState) -> list[str]:
        return [step.name for step in steps if step.state in states]

    return RunOutcome(
        run.state,
        named(StepState.SUCCESS),
        named(StepState.FAILURE),
        named(StepState.SKIPPED, StepState.PENDING),
        named(StepState.CANCELLED),
    )


def assert_run(
    run: Run,
    state: RunState | str,
    *,
    succeeded: Sequence[str] | None = None,
    failed: Sequence[str] | None = None,
    skipped: Sequence[str] | None = None,
    cancelled: Sequence[str] | None = None,
) -> RunOutcome:
    """Check how ``run`` ended; fail with a diff of the expected and actual outcome.

    ``state`` is a :class:`RunState` or its name. Each list given is compared
    in order (the order the steps started); a list left ``None`` is not
    checked. Steps never started count as skipped. Returns the outcome.
    """
    outcome = run_outcome(run)
    expected = RunOutcome(
        RunState(state.upper()) if isinstance(state, str) else state,
        list(outcome.succeeded if succeeded is None else succeeded),
        list(outcome.failed if failed is None else failed),
        list(outcome.skipped if skipped is None else skipped),
        list(outcome.cancelled if cancelled is None else cancelled),
    )
    if expected != outcome:
        diff = difflib.unified_diff(
            expected.lines(), outcome.lines(), "expected", f"run {run.id}", lineterm="", n=100
        )
        raise AssertionError(f"run {run.id} did not end as expected:\n" + "\n".join(diff))
    return outcome
