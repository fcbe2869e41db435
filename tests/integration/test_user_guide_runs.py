"""Every process of the user guide runs end to end on a real worker, in order."""

from __future__ import annotations

from typing import Any

import pytest

from examples import user_guide
from tasktronaut import ProcessDefinition
from tasktronaut_celery import CeleryBackend, RunState, StepState
from tests.guide_cases import GUIDE, GUIDE_IDS

from .order import check_run
from .recorder import Recorder

pytestmark = pytest.mark.usefixtures("worker")


@pytest.mark.parametrize(
    ("definition", "arguments", "options"),
    GUIDE,
    ids=GUIDE_IDS,
)
def test_user_guide_process_runs_in_order(
    backend: CeleryBackend,
    recorder: Recorder,
    definition: type[ProcessDefinition],
    arguments: dict[str, Any],
    options: dict[str, bool],
) -> None:
    """The example succeeds with every step run once, in tree order, hooks once each."""
    process = definition.build(options=options, **arguments)

    run = process.enqueue(backend).wait(timeout=60)

    assert run.state is RunState.SUCCESS
    check_run(process, recorder.events(run.id))
    statuses = run.steps()
    assert [s.path for s in statuses] == [s.path for s in process.steps()]
    assert all(s.state is StepState.SUCCESS and s.attempts == 1 for s in statuses)


def test_arguments_reach_steps_validated_and_coerced(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """ProcessWithArguments's step receives count as an int and date as a date."""
    process = user_guide.ProcessWithArguments.build(
        name="report", count="3", date="2026-11-29", tags=["a"], data=None
    )

    run = process.enqueue(backend).wait(timeout=60)

    (step,) = recorder.steps(run.id)
    assert step["arguments"]["count"] == ["int", 3]
    assert step["arguments"]["date"][0] == "date"
    assert step["arguments"]["description"] == ["NoneType", None]


def test_each_item_reaches_its_own_step(backend: CeleryBackend, recorder: Recorder) -> None:
    """Every IterativeProcess step sees the filename of its own item and its description."""
    process = user_guide.IterativeProcessWithDescriptions.build(files=["a.csv", "b.csv"])

    run = process.enqueue(backend).wait(timeout=60)

    seen = {
        e["path"]: (e["arguments"]["filename"][1], e["description"])
        for e in recorder.steps(run.id)
    }
    assert seen == {"0": ("a.csv", "Processing a.csv"), "1": ("b.csv", "Processing b.csv")}
