"""Random valid trees run on real workers in tree order: every step once, every hook once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from tasktronaut_celery import CeleryBackend, RunState, StepState
from tests.trees import Case, Shape, cases, define, expect

from .order import check_run
from .recorder import Recorder, typed

pytestmark = [pytest.mark.usefixtures("worker"), pytest.mark.reliability]

ON_WORKERS = settings(max_examples=25, deadline=None, database=None, derandomize=True)
"""Few examples, each a real run; the same ones every time, so CI time and failures repeat."""
MIN_STEPS = 4


def worth_running(case: Case) -> bool:
    """Whether the tree has steps enough to order (the unit tests cover the tiny ones)."""
    return len(expect(case).steps) >= MIN_STEPS


@ON_WORKERS
@given(case=cases(Shape(items=2)).filter(worth_running))
def test_a_random_tree_runs_in_tree_order(
    backend: CeleryBackend, recorder: Recorder, case: Case
) -> None:
    """Order constraints hold, each step runs once with its own arguments, hooks fire once."""
    process = define(case.tree).build(**case.arguments)

    run = process.enqueue(backend).wait(timeout=60)

    assert run.state is RunState.SUCCESS, run.record
    events = recorder.events(run.id)
    check_run(process, events)
    ran = {e["path"]: (e["name"], e["arguments"]) for e in events if e["kind"] == "step"}
    assert ran == {s.path: (s.name, typed(s.arguments)) for s in process.steps()}
    assert all(s.state is StepState.SUCCESS and s.attempts == 1 for s in run.steps())
