"""A run's end, with the interleavings held in place: one terminal hook per process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from celery.signals import task_postrun

from tasktronaut import Builder, Context, ProcessDefinition
from tasktronaut_celery import EmbeddedBackend, ProcessCancelled
from tasktronaut_celery.protocol import step_task_id
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
