"""What a resume sends again and forgets, worked out from a run's records and claims."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pytest

from tasktronaut_celery.claims import Claim
from tasktronaut_celery.compiler import Action, Begin, Chain, Chord, Flow, Join, Step, actions
from tasktronaut_celery.plan import plan_process
from tasktronaut_celery.protocol import (
    BEGIN_TASK,
    JOIN_TASK,
    STEP_TASK,
    begin_task_id,
    join_task_id,
    parse_task_id,
    resume_of,
    step_task_id,
)
from tasktronaut_celery.rebuilding import tree_changes
from tasktronaut_celery.resumption import plan_resumption, remaining
from tasktronaut_celery.store import RunRecord, RunState, StepRecord, StepState
from tests.integration import resumable

FLOW = Chain(
    (
        Step("0"),
        Chord((Chain((Step("1.0"), Step("1.1"))), Step("1.2")), Join("1")),
        Begin("2"),
        Step("2.0"),
        Join("2"),
    )
)


def done_of(*done: Action) -> Callable[[Action], bool]:
    return lambda action: action in done


def _actions(flow: Flow) -> list[Action]:
    return list(actions(flow))


def test_a_chain_goes_on_from_its_first_unfinished_item() -> None:
    assert remaining(FLOW, done_of()) == FLOW
    assert remaining(FLOW, done_of(Step("0"), Step("1.0"))) == Chain(
        (Chord((Step("1.1"), Step("1.2")), Join("1")), Begin("2"), Step("2.0"), Join("2"))
    )


def test_a_concurrent_section_keeps_its_unfinished_members_or_only_its_join() -> None:
    members_done = done_of(Step("0"), Step("1.0"), Step("1.1"), Step("1.2"))
    assert remaining(FLOW, members_done) == Chain((Join("1"), Begin("2"), Step("2.0"), Join("2")))
    every = done_of(Step("0"), Step("1.0"), Step("1.1"), Step("1.2"), Join("1"), Begin("2"))
    assert remaining(FLOW, every) == Chain((Step("2.0"), Join("2")))
    assert remaining(Step("0"), done_of(Step("0"))) is None


def _failed(step: str, error: str = "RuntimeError: broken") -> RunRecord:
    now = datetime.now(timezone.utc)
    return RunRecord(RunState.FAILURE, now, now, step, error, now)


def test_a_resume_resets_what_runs_again_and_forgets_the_ends_of_unfinished_processes() -> None:
    plan = plan_process(resumable.BrokenNested.build())  # prepare, BrokenInner(x, y), finish
    steps = {
        "0": StepRecord(StepState.SUCCESS, attempts=1),
        "1.0": StepRecord(StepState.SUCCESS, attempts=1),
        "1.1": StepRecord(StepState.FAILURE, attempts=1, error="broken", resumes=1),
    }
    claimed = {"started:", "started:1", "ended:1", "ended:", "completed:9"}

    resumption = plan_resumption(plan, _failed("1.1"), steps, claimed)

    assert resumption is not None
    assert _actions(resumption.flow) == [Step("1.1"), Step("2")]  # steps start their processes
    assert resumption.reset == {
        "1.1": StepRecord(StepState.PENDING, resumes=1),
        "2": StepRecord(StepState.PENDING),
    }
    assert resumption.drop == {"ended:1", "ended:"}


def test_a_process_whose_on_started_failed_starts_again() -> None:
    plan = plan_process(resumable.BrokenNested.build())
    steps = {"0": StepRecord(StepState.SUCCESS, attempts=1)}
    claimed = {"started:", "started:1", "ended:1", "ended:"}
    error = "on_started of BrokenNested > BrokenInner raised ValueError: no"

    resumption = plan_resumption(plan, _failed("1", error), steps, claimed)

    assert resumption is not None
    assert resumption.drop == {"ended:1", "ended:", "started:1"}
    assert _actions(resumption.flow) == [Step("1.0"), Step("1.1"), Step("2")]
    assert set(resumption.reset) == {"1.0", "1.1", "2"}


def test_a_step_whose_process_did_not_complete_is_passed_on_not_reset() -> None:
    plan = plan_process(resumable.TenSteps.build())
    steps = {str(n): StepRecord(StepState.SUCCESS, attempts=1) for n in range(10)}
    error = "on_completed of TenSteps raised ValueError: no"

    resumption = plan_resumption(plan, _failed("", error), steps, {"started:", "ended:"})
    assert resumption is not None
    assert list(_actions(resumption.flow)) == [Step("9")]
    assert resumption.reset == {}
    completed = {"started:", "ended:", Claim.completed("").marker}
    assert plan_resumption(plan, _failed("", error), steps, completed) is None


@pytest.mark.parametrize(
    ("name", "make"),
    [(STEP_TASK, step_task_id), (JOIN_TASK, join_task_id), (BEGIN_TASK, begin_task_id)],
)
@pytest.mark.parametrize("resume", [0, 1, 12])
def test_task_ids_say_which_resume_sent_them(name: str, make: object, resume: int) -> None:
    task_id = make("order@42:7", "1.2", resume)  # type: ignore[operator]
    assert parse_task_id(name, task_id) == ("order@42:7", "1.2")
    assert resume_of(name, task_id) == resume
    assert ("@" in task_id.rpartition(":1.2")[2]) is bool(resume)


def test_a_definition_that_builds_another_tree_is_told_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = plan_process(resumable.BrokenMember.build())
    assert tree_changes(plan) == []

    monkeypatch.setattr(resumable.BrokenMember, "define_process", resumable.without_c)
    assert tree_changes(plan) == ["step 1.2 (BrokenMember.c) is gone"]
