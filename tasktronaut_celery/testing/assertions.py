"""Assertions on a run's outcome that say, when they fail, which steps differ and how."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from ..run import Run
from ..store import RunState, StepState

_NEVER = datetime.max.replace(tzinfo=timezone.utc)  # steps not started come after the others


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, step by step: each list holds step names in the order the steps started.

    A name is ``Definition.method``; a step that ran for several members of an
    ``each`` appears once for each. Steps never started (skipped, or not yet
    reached) are in the order of the tree; ``running`` holds steps started or
    waiting to retry, of a run not yet ended.
    """

    state: RunState
    succeeded: list[str]
    failed: list[str]
    skipped: list[str]
    cancelled: list[str]
    running: list[str]

    def lines(self) -> list[str]:
        """The outcome as lines, one per step, for diffs."""
        lines = [f"state: {self.state.value}"]
        for label, names in self.buckets().items():
            lines += [f"{label}: {name}" for name in names]
        return lines

    def buckets(self) -> dict[str, list[str]]:
        """Each list of steps by its label."""
        return {
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "cancelled": self.cancelled,
            "running": self.running,
        }


def run_outcome(run: Run) -> RunOutcome:
    """The outcome of ``run`` as it stands (wait for the run first)."""
    in_tree = list(enumerate(run.steps()))
    steps = [
        step
        for _, step in sorted(in_tree, key=lambda item: (item[1].started_at or _NEVER, item[0]))
    ]

    def named(*states: StepState) -> list[str]:
        return [step.name for step in steps if step.state in states]

    return RunOutcome(
        run.state,
        named(StepState.SUCCESS),
        named(StepState.FAILURE),
        named(StepState.SKIPPED, StepState.PENDING),
        named(StepState.CANCELLED),
        named(StepState.STARTED, StepState.RETRY),
    )


def assert_run(
    run: Run,
    state: RunState | str,
    *,
    succeeded: Sequence[str] | None = None,
    failed: Sequence[str] | None = None,
    skipped: Sequence[str] | None = None,
    cancelled: Sequence[str] | None = None,
    ordered: bool = True,
) -> RunOutcome:
    """Check how ``run`` ended; fail with a diff of the expected and actual outcome.

    ``state`` is a :class:`RunState` or its name. Each list given is compared
    in the order the steps started, or as a multiset with ``ordered=False``
    (steps of a concurrent block start in any order); a list left ``None`` is
    not checked. Steps never started count as skipped. Returns the outcome.
    """
    actual = run_outcome(run)
    if not ordered:
        actual = RunOutcome(actual.state, *(sorted(names) for names in actual.buckets().values()))

    def given(names: Sequence[str] | None, found: list[str]) -> list[str]:
        if names is None:
            return found
        return list(names) if ordered else sorted(names)

    expected = RunOutcome(
        RunState(state.upper()) if isinstance(state, str) else state,
        given(succeeded, actual.succeeded),
        given(failed, actual.failed),
        given(skipped, actual.skipped),
        given(cancelled, actual.cancelled),
        actual.running,
    )
    if expected != actual:
        diff = difflib.unified_diff(
            expected.lines(), actual.lines(), "expected", f"run {run.id}", lineterm="", n=100
        )
        raise AssertionError(f"run {run.id} did not end as expected:\n" + "\n".join(diff))
    return actual
