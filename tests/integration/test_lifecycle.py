"""A run's end on a real worker: one terminal hook per process, blamed on the right place.

Each process gets exactly one of ``on_completed``, ``on_failed`` and
``on_cancelled``, whichever wins the race between its last step and a client's
cancel; a hook that raises is named as the failure; a step waiting for its
retry when the run fails ends in a terminal state.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from celery import Task
from celery.signals import task_postrun, task_prerun

from tasktronaut import (
    Builder,
    Context,
    ExecutionMode,
    NonRetryableProcessError,
    ProcessDefinition,
    TaskOptions,
)
from tasktronaut_celery import CeleryBackend, ProcessCancelled, ProcessFailed, RunState, StepState
from tasktronaut_celery.protocol import step_task_id
from tests.services import EVENTS
from tests.support import wait_until

from .processes import gate_key, wait_for_gate
from .recorder import Recorder

pytestmark = pytest.mark.usefixtures("worker")

# The retry is due at once and held by ``held_retries`` until the run has failed: an
# in-process worker of Celery 5.3 never ran a second countdown retry in one module.
RETRY_COUNTDOWN = 0


class GatedToTheEnd(ProcessDefinition):
    """A sub-process whose only step, the last of the run, waits at the run's gate."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait_at_gate)

    def wait_at_gate(self, context: Context) -> None:
        wait_for_gate(context.process_id)


class CancelledAtTheEnd(ProcessDefinition):
    """A step, then a sub-process whose step is the last one of both processes."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(GatedToTheEnd)

    def first(self) -> None:
        pass


class SlowToComplete(ProcessDefinition):
    """One step; ``on_completed`` waits at the run's gate, so a client can cancel meanwhile."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.only)

    def only(self) -> None:
        pass

    def on_completed(self, identifier: str) -> None:
        super().on_completed(identifier)  # recorded: the test sees it under way
        wait_for_gate(identifier)


class FailsToComplete(ProcessDefinition):
    """A sub-process whose steps succeed and whose ``on_completed`` raises."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.only)

    def only(self) -> None:
        pass

    def on_completed(self, identifier: str) -> None:
        super().on_completed(identifier)
        raise ValueError("no receipt")


class CompletesBadly(ProcessDefinition):
    """A step, then a sub-process whose ``on_completed`` raises."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(FailsToComplete)

    def first(self) -> None:
        pass


class FailsToStart(ProcessDefinition):
    """A sub-process whose ``on_started`` raises: its step never runs."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.never)

    def never(self) -> None:
        pass

    def on_started(self, identifier: str) -> None:
        super().on_started(identifier)
        raise ValueError("no licence")


class StartsBadly(ProcessDefinition):
    """A step, then a sub-process whose ``on_started`` raises."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(FailsToStart)

    def first(self) -> None:
        pass


class HeldPastTheFailure(ProcessDefinition):
    """A sub-process whose only step, its last, waits at the run's gate."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait_at_gate)

    def wait_at_gate(self, context: Context) -> None:
        wait_for_gate(context.process_id)


class CutShortByTheFailure(ProcessDefinition):
    """A sub-process whose first step waits at the run's gate; its second never runs."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait_at_gate)
        builder.task(self.never)

    def wait_at_gate(self, context: Context) -> None:
        wait_for_gate(context.process_id)

    def never(self) -> None:
        pass


class FailsBesideSubProcesses(ProcessDefinition):
    """Two started sub-processes, and a sibling step that fails the run while they run."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.sub_process(HeldPastTheFailure)
        builder.sub_process(CutShortByTheFailure)
        builder.task(self.explode)

    def explode(self, context: Context) -> None:
        wait_for_gate(failure_gate(context.process_id))  # once both sub-processes run
        raise NonRetryableProcessError("branch failed")


class RetryingWhenASiblingFails(ProcessDefinition):
    """One branch waits for its retry while the other fails the run."""

    task_options = TaskOptions(default_retry_delay=RETRY_COUNTDOWN)

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as branches:
            branches.task(self.flaky, max_retries=2)
            branches.task(self.explode)

    def flaky(self) -> None:
        raise ConnectionError("the partner timed out")

    def explode(self, context: Context) -> None:
        wait_for_gate(context.process_id)  # once the sibling waits for its retry
        raise RuntimeError("branch failed")


@pytest.fixture
def finished_tasks() -> Iterator[Counter[str]]:
    """How often each task id has finished running on the in-process worker."""
    finished: Counter[str] = Counter()
    lock = threading.Lock()

    def on_postrun(task_id: str, **_: object) -> None:
        with lock:
            finished[task_id] += 1

    task_postrun.connect(on_postrun, weak=False)
    yield finished
    task_postrun.disconnect(on_postrun)


def failure_gate(run_id: str) -> str:
    """The gate a failing step waits at, apart from the one its siblings wait at."""
    return f"{run_id}:failure"


def open_gate(run_id: str, times: int = 1) -> None:
    """Let ``times`` steps waiting at the gate of ``run_id`` go on."""
    redis.Redis.from_url(EVENTS).rpush(gate_key(run_id), *["open"] * times)


def hooks(recorder: Recorder, run_id: str) -> list[tuple[str, str]]:
    return sorted((e["hook"], e["process"]) for e in recorder.hooks(run_id))


def test_a_cancel_while_the_last_step_runs_fires_on_cancelled_and_nothing_else(
    backend: CeleryBackend, recorder: Recorder, finished_tasks: Counter[str]
) -> None:
    """The last step finishes after the cancel: no on_completed for its processes."""
    run = CancelledAtTheEnd.build().enqueue(backend)
    wait_until(lambda: run.steps()[1].state is StepState.STARTED, 30, "the last step starting")

    assert run.cancel() is True
    open_gate(run.id)

    with pytest.raises(ProcessCancelled):
        run.wait(timeout=60)
    wait_until(
        lambda: finished_tasks[step_task_id(run.id, "1.0")] == 1, 30, "the last step ending"
    )
    assert run.state is RunState.CANCELLED
    assert [s.state for s in run.steps()] == [StepState.SUCCESS, StepState.SUCCESS]
    assert hooks(recorder, run.id) == [
        ("on_cancelled", "CancelledAtTheEnd"),
        ("on_cancelled", "GatedToTheEnd"),
        ("on_started", "CancelledAtTheEnd"),
        ("on_started", "GatedToTheEnd"),
    ]


def test_a_cancel_after_the_last_step_loses_to_the_completion_under_way(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """Once the root's on_completed is under way, cancel() returns False and the run succeeds."""
    run = SlowToComplete.build().enqueue(backend)
    wait_until(lambda: recorder.hooks(run.id, "on_completed"), 30, "on_completed under way")

    assert run.cancel() is False
    open_gate(run.id)

    assert run.wait(timeout=60).state is RunState.SUCCESS
    assert hooks(recorder, run.id) == [
        ("on_completed", "SlowToComplete"),
        ("on_started", "SlowToComplete"),
    ]


def test_on_completed_raising_is_named_as_the_failure(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """ProcessFailed names the process and its hook; every step shows SUCCESS."""
    run = CompletesBadly.build().enqueue(backend)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)

    assert failure.value.step == "1"
    assert failure.value.hook == "on_completed"
    assert failure.value.step_name == "FailsToComplete.on_completed"
    assert failure.value.error == (
        "on_completed of CompletesBadly > FailsToComplete raised ValueError: no receipt"
    )
    assert (run.record.step, run.record.error) == ("1", failure.value.error)
    assert [s.state for s in run.steps()] == [StepState.SUCCESS, StepState.SUCCESS]
    assert hooks(recorder, run.id) == [
        ("on_completed", "FailsToComplete"),
        ("on_failed", "CompletesBadly"),
        ("on_started", "CompletesBadly"),
        ("on_started", "FailsToComplete"),
    ]
    (failed,) = recorder.hooks(run.id, "on_failed")
    assert failed["step"] == "<on_completed>"


def test_on_started_of_a_sub_process_raising_leaves_its_step_never_run(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """The failure names the sub-process's on_started; its step shows SKIPPED, not FAILURE."""
    run = StartsBadly.build().enqueue(backend)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)

    assert (failure.value.step, failure.value.hook) == ("1", "on_started")
    assert failure.value.step_name == "FailsToStart.on_started"
    assert failure.value.error == (
        "on_started of StartsBadly > FailsToStart raised ValueError: no licence"
    )
    never = run.steps()[1]
    assert (never.state, never.attempts, never.error) == (StepState.SKIPPED, 0, None)
    assert [e["path"] for e in recorder.steps(run.id)] == ["0"]
    assert hooks(recorder, run.id) == [
        ("on_failed", "FailsToStart"),
        ("on_failed", "StartsBadly"),
        ("on_started", "FailsToStart"),
        ("on_started", "StartsBadly"),
    ]


def test_a_failure_fires_on_failed_for_every_started_process_once(
    backend: CeleryBackend, recorder: Recorder, finished_tasks: Counter[str]
) -> None:
    """Sub-processes running when a sibling fails the run get on_failed, innermost first.

    One's last step succeeds afterwards (it completes nothing), the other's
    next step never runs; each process that started gets exactly one end hook.
    """
    run = FailsBesideSubProcesses.build().enqueue(backend)
    held = ("0.0", "1.0")
    wait_until(
        lambda: all(run.steps()[i].state is StepState.STARTED for i in (0, 1)),
        30,
        "both sub-processes' steps running",
    )
    open_gate(failure_gate(run.id))

    with pytest.raises(ProcessFailed, match="branch failed"):
        run.wait(timeout=60)
    open_gate(run.id, times=2)
    wait_until(
        lambda: all(finished_tasks[step_task_id(run.id, path)] == 1 for path in held),
        30,
        "the held steps ending",
    )

    assert [s.state for s in run.steps()] == [
        StepState.SUCCESS,
        StepState.SUCCESS,
        StepState.SKIPPED,
        StepState.FAILURE,
    ]
    assert hooks(recorder, run.id) == [
        ("on_failed", "CutShortByTheFailure"),
        ("on_failed", "FailsBesideSubProcesses"),
        ("on_failed", "HeldPastTheFailure"),
        ("on_started", "CutShortByTheFailure"),
        ("on_started", "FailsBesideSubProcesses"),
        ("on_started", "HeldPastTheFailure"),
    ]
    failed = recorder.hooks(run.id, "on_failed")
    assert failed[-1]["process"] == "FailsBesideSubProcesses"  # after its sub-processes
    assert {e["step"] for e in failed} == {"explode"}


@pytest.fixture
def held_retries() -> Iterator[threading.Event]:
    """Holds every retry's message before it runs on the in-process worker, until set."""
    released = threading.Event()

    def hold(task: Task, **_: object) -> None:
        if task.request.retries:
            released.wait(60)

    task_prerun.connect(hold, weak=False)
    yield released
    released.set()
    task_prerun.disconnect(hold)


def test_a_step_waiting_for_its_retry_ends_when_a_sibling_fails_the_run(
    backend: CeleryBackend, finished_tasks: Counter[str], held_retries: threading.Event
) -> None:
    """The retrying step is CANCELLED once the run fails, before and after its retry arrives.

    Its retry is held until the run has failed, however slowly the sibling fails.
    """
    run = RetryingWhenASiblingFails.build().enqueue(backend)
    wait_until(lambda: run.steps()[0].state is StepState.RETRY, 30, "the step waiting to retry")
    open_gate(run.id)

    with pytest.raises(ProcessFailed, match="branch failed"):
        run.wait(timeout=60)

    def check_retrying_step() -> None:
        flaky, explode = run.steps()
        assert (flaky.state, flaky.attempts) == (StepState.CANCELLED, 1)
        assert flaky.error == (
            "not retried: the run failed at step 0.1 (RetryingWhenASiblingFails.explode); "
            "last attempt: ConnectionError: the partner timed out"
        )
        assert flaky.finished_at is not None
        assert explode.state is StepState.FAILURE

    check_retrying_step()  # before the retry runs
    held_retries.set()
    flaky_task = step_task_id(run.id, "0.0")
    wait_until(lambda: finished_tasks[flaky_task] == 2, RETRY_COUNTDOWN + 30, "the retry arriving")
    check_retrying_step()  # its retry arrived, and was skipped
