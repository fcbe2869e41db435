"""A run's end, with the interleavings held in place: one terminal hook per process."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import pytest
from celery import Task
from celery.exceptions import Ignore
from celery.signals import task_postrun

from tasktronaut import Builder, Context, ExecutionMode, ProcessDefinition
from tasktronaut_celery import EmbeddedBackend, ProcessCancelled, RunState, StepState
from tasktronaut_celery.protocol import JOIN_TASK, STEP_TASK, join_task_id, step_task_id
from tests.support import wait_until

HELD = 10


class Gates:
    """Events a test opens to let a held step or hook go on, per run."""

    events: ClassVar[dict[tuple[str, str], threading.Event]] = {}
    hooks: ClassVar[list[tuple[str, str, str]]] = []  # (run, hook, process)

    @classmethod
    def gate(cls, run_id: str, name: str) -> threading.Event:
        return cls.events.setdefault((run_id, name), threading.Event())


class HeldInner(ProcessDefinition):
    """A step held at the ``step`` gate; ``on_cancelled`` held at the ``cancelled`` gate."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.held)

    def held(self, context: Context) -> None:
        Gates.gate(context.process_id, "step").wait(HELD)

    def on_completed(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_completed", "HeldInner"))

    def on_cancelled(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_cancelled", "HeldInner"))
        Gates.gate(identifier, "cancelled").wait(HELD)


class HeldOuter(ProcessDefinition):
    """Only the held sub-process: its step is the last of both processes."""

    def define_process(self, builder: Builder) -> None:
        builder.sub_process(HeldInner)

    def on_completed(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_completed", "HeldOuter"))

    def on_cancelled(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_cancelled", "HeldOuter"))


@pytest.fixture
def step_ended() -> Iterator[dict[str, threading.Event]]:
    """An event per task id, set when that task has finished running."""
    ended: dict[str, threading.Event] = {}

    def on_postrun(task_id: str, **_: Any) -> None:
        ended.setdefault(task_id, threading.Event()).set()

    task_postrun.connect(on_postrun, weak=False)
    yield ended
    task_postrun.disconnect(on_postrun)


def test_a_step_ending_while_the_cancel_hooks_fire_leaves_them_all_to_fire(
    embedded: EmbeddedBackend, step_ended: dict[str, threading.Event]
) -> None:
    """The step completes nothing; the root still gets on_cancelled after the sub-process."""
    run = HeldOuter.build().enqueue(embedded)
    wait_until(lambda: run.steps()[0].attempts, HELD, "the step starting")

    assert run.cancel() is True
    cancelling = (run.id, "on_cancelled", "HeldInner")  # then the settle task is held
    wait_until(lambda: cancelling in Gates.hooks, HELD, "HeldInner.on_cancelled firing")
    Gates.gate(run.id, "step").set()
    assert step_ended.setdefault(step_task_id(run.id, "0.0"), threading.Event()).wait(HELD)
    Gates.gate(run.id, "cancelled").set()

    with pytest.raises(ProcessCancelled):
        run.wait(timeout=HELD)
    assert [hook for run_id, *hook in Gates.hooks if run_id == run.id] == [
        ["on_cancelled", "HeldInner"],
        ["on_cancelled", "HeldOuter"],
    ]


class Recording(ProcessDefinition):
    """Records its hooks in ``Gates.hooks``."""

    def on_started(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_started", type(self).__name__))

    def on_completed(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_completed", type(self).__name__))

    def on_failed(self, identifier: str, step: str, e: Exception) -> None:
        Gates.hooks.append((identifier, "on_failed", type(self).__name__))

    def on_cancelled(self, identifier: str) -> None:
        Gates.hooks.append((identifier, "on_cancelled", type(self).__name__))


class Reached(Recording):
    """A sub-process with one step."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.only)

    def only(self) -> None:
        pass


class ReachesASubProcess(Recording):
    """A step, then a sub-process."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(Reached)

    def first(self) -> None:
        pass


class ConcurrentToTheEnd(Recording):
    """Two concurrent steps: the run ends at the join after them."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.one)
        builder.task(self.two)

    def one(self) -> None:
        pass

    def two(self) -> None:
        pass


class Redelivered:
    """The request of a first attempt's message that the broker delivers again."""

    retries = 0
    id = "the-first-go's-message"
    delivery_info: ClassVar[dict[str, bool]] = {"redelivered": True}


def hooks_of(run_id: str) -> list[tuple[str, str]]:
    return [(hook, process) for identifier, hook, process in Gates.hooks if identifier == run_id]


def test_a_sub_process_reached_as_the_run_is_cancelled_never_starts(
    embedded: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands after the run's state was read, just before on_started is claimed.

    Its hooks have fired by then: the sub-process does not start (had its
    on_started fired, nothing would have ended it), and its step never runs.
    """
    claim = embedded.store.claim

    def cancel_first(run_id: str, marker: str, **options: Any) -> bool:
        if marker == "started:1" and embedded.cancel(run_id):
            wait_until(lambda: embedded.run(run_id).record.settled_at, HELD, "the cancel settled")
        return claim(run_id, marker, **options)

    monkeypatch.setattr(embedded.store, "claim", cancel_first)
    run = ReachesASubProcess.build().enqueue(embedded)

    with pytest.raises(ProcessCancelled):
        run.wait(timeout=HELD)
    wait_until(lambda: run.steps()[1].state is not StepState.STARTED, HELD, "the step skipped")
    assert [(s.state, s.attempts) for s in run.steps()] == [
        (StepState.SUCCESS, 1),
        (StepState.SKIPPED, 0),
    ]
    assert hooks_of(run.id) == [
        ("on_started", "ReachesASubProcess"),
        ("on_cancelled", "ReachesASubProcess"),
    ]


@pytest.mark.parametrize(
    ("definition", "message"),
    [(Reached, "step"), (ConcurrentToTheEnd, "join")],
)
def test_a_run_whose_worker_died_while_completing_it_ends_when_its_message_returns(
    embedded: EmbeddedBackend,
    monkeypatch: pytest.MonkeyPatch,
    definition: type[ProcessDefinition],
    message: str,
) -> None:
    """The root's end was claimed, the run not yet SUCCESS: the redelivered last message ends it.

    on_completed is not called again, and the run can no longer be cancelled.
    """
    finish = embedded.store.finish
    died = threading.Event()

    def die_before_success(run_id: str, state: RunState, *args: Any, **options: Any) -> bool:
        if state is RunState.SUCCESS and not died.is_set():
            died.set()  # the worker is lost here: the run stays RUNNING
            return False
        return finish(run_id, state, *args, **options)

    monkeypatch.setattr(embedded.store, "finish", die_before_success)
    run = definition.build().enqueue(embedded)
    assert died.wait(HELD)
    wait_until(lambda: ("on_completed", definition.__name__) in hooks_of(run.id), HELD, "hook")
    assert run.state is RunState.RUNNING

    task_name = STEP_TASK if message == "step" else JOIN_TASK
    redelivered = cast(Task, SimpleNamespace(name=task_name, request=Redelivered()))
    runner = embedded.runner
    with contextlib.suppress(Ignore):  # when workers dispatch, nothing follows
        if message == "step":
            runner.step(redelivered, run.id, "0")
        else:
            runner.join(redelivered, run.id, "")

    assert run.wait(timeout=HELD).state is RunState.SUCCESS
    assert run.cancel() is False
    assert hooks_of(run.id) == [
        ("on_started", definition.__name__),
        ("on_completed", definition.__name__),
    ]


class Side(ProcessDefinition):
    """Two steps side by side: the root ends at its join."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.one)
        builder.task(self.two)

    def one(self) -> None:
        """Do nothing."""

    def two(self) -> None:
        """Do nothing."""


def test_nothing_is_claimed_after_the_root_join_ended_the_run(
    embedded: EmbeddedBackend,
    step_ended: dict[str, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the waiter of a settled run reads is the store's last word on it."""
    claim = embedded.store.claim
    late: list[str] = []

    def claim_noting_late(run_id: str, marker: str, **options: Any) -> bool:
        record = embedded.store.record(run_id)
        if record is not None and record.settled_at is not None:
            late.append(marker)
        return claim(run_id, marker, **options)

    monkeypatch.setattr(embedded.store, "claim", claim_noting_late)
    run = Side.build().enqueue(embedded)
    assert run.wait(timeout=HELD).state is RunState.SUCCESS
    assert step_ended.setdefault(join_task_id(run.id, ""), threading.Event()).wait(HELD)

    assert late == []
