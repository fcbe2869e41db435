"""Resuming a failed or cancelled run with ``Run.retry()``, on real workers and brokers.

Each test breaks a step (it raises while the test says so), lets the run end,
mends it and resumes the run: the steps that had succeeded do not run again,
and each process's hooks fire once per outcome.
"""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
import redis

from tasktronaut import ProcessDefinition
from tasktronaut_celery import (
    CeleryBackend,
    PlanChangedError,
    ProcessCancelled,
    ProcessFailed,
    RetryRefusedError,
    Run,
    RunState,
    StepState,
)
from tests.services import EVENTS, RESULTS
from tests.support import wait_until

from . import processes, resumable
from .recorder import Recorder

pytestmark = pytest.mark.usefixtures("worker")


def broken_run(backend: CeleryBackend, definition: type[ProcessDefinition], *broken: str) -> Run:
    """A run of ``definition`` whose steps ``broken`` raise until mended, waited on to its end."""
    run_id = f"resume-{uuid.uuid4().hex}"
    resumable.break_steps(run_id, *broken)
    run = definition.build(identifier=run_id).enqueue(backend)
    with pytest.raises((ProcessFailed, ProcessCancelled)):
        run.wait(timeout=60)
    return run


def runs_per_step(recorder: Recorder, run: Run) -> Counter[str]:
    return Counter(event["path"] for event in recorder.steps(run.id))


def ran_steps(recorder: Recorder, run: Run) -> Counter[str]:
    """How often each step method ran, by name."""
    return Counter(event["name"].rpartition(".")[2] for event in recorder.steps(run.id))


def hooks(recorder: Recorder, run: Run) -> Counter[tuple[str, str]]:
    return Counter((event["hook"], event["process"]) for event in recorder.hooks(run.id))


def test_a_run_failed_at_step_7_of_10_resumes_there(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = broken_run(backend, resumable.TenSteps, "step 7")
    assert run.progress == (7, 1, 10)
    resumable.mend(run.id)

    assert run.retry().wait(timeout=60).state is RunState.SUCCESS

    ran = runs_per_step(recorder, run)
    assert [ran[str(n)] for n in range(10)] == [1] * 7 + [2, 1, 1]
    assert (run.record.resumes, run.progress) == (1, (10, 0, 10))
    assert [status.resumes for status in run.steps()] == [0] * 7 + [1] * 3
    assert hooks(recorder, run) == {
        ("on_started", "TenSteps"): 1,
        ("on_failed", "TenSteps"): 1,
        ("on_completed", "TenSteps"): 1,
    }


def test_a_failed_member_of_a_concurrent_section_runs_again_alone(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = broken_run(backend, resumable.BrokenMember, "b")
    states = {status.name: status.state for status in run.steps()}
    assert states["BrokenMember.b"] is StepState.FAILURE
    assert states["BrokenMember.last"] is StepState.SKIPPED
    resumable.mend(run.id)

    run.retry().wait(timeout=60)

    ran = ran_steps(recorder, run)
    assert ran == {"first": 1, "a": 1, "b": 2, "c": 1, "last": 1}
    assert hooks(recorder, run)[("on_completed", "BrokenMember")] == 1


def test_a_failure_inside_a_sub_process_resumes_inside_it(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = broken_run(backend, resumable.BrokenNested, "y")
    resumable.mend(run.id)

    run.retry().wait(timeout=60)

    ran = ran_steps(recorder, run)
    assert ran == {"prepare": 1, "x": 1, "y": 2, "finish": 1}
    assert hooks(recorder, run) == {
        ("on_started", "BrokenNested"): 1,
        ("on_started", "BrokenInner"): 1,
        ("on_failed", "BrokenInner"): 1,
        ("on_failed", "BrokenNested"): 1,
        ("on_completed", "BrokenInner"): 1,
        ("on_completed", "BrokenNested"): 1,
    }


def test_a_run_resumed_twice_fires_its_end_hooks_once_per_outcome(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = broken_run(backend, resumable.TenSteps, "step 3")

    with pytest.raises(ProcessFailed) as again:
        run.retry().wait(timeout=60)
    assert again.value.step_name == "TenSteps.step"
    resumable.mend(run.id)
    run.retry().wait(timeout=60)

    ran = runs_per_step(recorder, run)
    assert [ran[str(n)] for n in range(10)] == [1, 1, 1, 3, 1, 1, 1, 1, 1, 1]
    assert run.record.resumes == 2
    assert run.steps()[3].resumes == 2
    assert hooks(recorder, run)[("on_failed", "TenSteps")] == 2
    assert hooks(recorder, run)[("on_completed", "TenSteps")] == 1


def test_a_run_a_step_cancelled_resumes_from_that_step(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = broken_run(backend, resumable.CancelsWhileBroken, "decide")
    assert run.state is RunState.CANCELLED
    resumable.mend(run.id)

    run.retry().wait(timeout=60)

    ran = ran_steps(recorder, run)
    assert ran == {"first": 1, "decide": 2, "last": 1}
    assert hooks(recorder, run)[("on_cancelled", "CancelsWhileBroken")] == 1
    assert hooks(recorder, run)[("on_completed", "CancelsWhileBroken")] == 1


def test_a_run_a_client_cancelled_resumes_once_its_running_step_has_ended(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    run = processes.Gated.build().enqueue(backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the gated step starting")
    run.cancel()
    wait_until(lambda: run.record.settled_at is not None, 30, "the cancel settling")

    with pytest.raises(RetryRefusedError, match=r"step 0 \(Gated.wait_at_gate\) is still STARTED"):
        run.retry()
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")
    wait_until(lambda: run.steps()[0].state is StepState.SUCCESS, 30, "the gated step ending")
    run.retry().wait(timeout=60)

    ran = ran_steps(recorder, run)
    assert ran == {"wait_at_gate": 1, "never_a": 1, "never_b": 1, "never_c": 1}
    assert hooks(recorder, run)[("on_cancelled", "Gated")] == 1
    assert hooks(recorder, run)[("on_completed", "Gated")] == 1


@pytest.mark.parametrize("state", [RunState.SUCCESS, RunState.RUNNING])
def test_a_run_that_has_not_failed_is_not_retried(backend: CeleryBackend, state: RunState) -> None:
    if state is RunState.SUCCESS:
        run = resumable.TenSteps.build().enqueue(backend).wait(timeout=60)
    else:
        run = processes.Gated.build().enqueue(backend)
        wait_until(lambda: run.state is RunState.RUNNING, 30, "the run starting")

    with pytest.raises(RetryRefusedError, match=f"it is {state.value}; only a run that ended"):
        run.retry()
    if state is RunState.RUNNING:
        redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")
        run.wait(timeout=60)


def test_a_run_whose_definition_builds_another_tree_is_retried_only_if_forced(
    backend: CeleryBackend, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = broken_run(backend, resumable.BrokenMember, "b")
    resumable.mend(run.id)
    original = resumable.BrokenMember.define_process

    monkeypatch.setattr(resumable.BrokenMember, "define_process", resumable.without_c)
    with pytest.raises(PlanChangedError, match=r"step 1\.2 \(BrokenMember\.c\) is gone"):
        run.retry()
    assert run.state is RunState.FAILURE

    run.retry(force=True).wait(timeout=60)  # the stored plan runs: the workers' code has c
    monkeypatch.setattr(resumable.BrokenMember, "define_process", original)
    assert ran_steps(recorder, run)["last"] == 1


def test_a_run_whose_plan_has_expired_is_not_retried(backend: CeleryBackend) -> None:
    run = broken_run(backend, resumable.TenSteps, "step 2")
    redis.Redis.from_url(RESULTS).delete(
        f"tasktronaut:{{{run.id}}}:plan"
    )  # as result_expires does

    with pytest.raises(RetryRefusedError, match=r"its plan has expired \(result_expires\)"):
        run.retry()
    assert run.state is RunState.FAILURE
