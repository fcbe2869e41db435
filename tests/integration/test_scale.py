"""Large processes on a real Redis worker: every message small, one message from the client."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish

from tasktronaut import Builder, ExecutionMode, ProcessDefinition
from tasktronaut_celery import CeleryBackend, RunState, StepState
from tasktronaut_celery.dispatch import Dispatch
from tests.services import BROKERS

from .conftest import WORKER_QUEUES
from .worker_app import make_app

MESSAGE_BOUND = 16 * 1024


class LongSequence(ProcessDefinition):
    """``count`` steps one after another, each with its own item."""

    def items(self, count: int) -> Iterator[dict[str, int]]:
        return ({"item": number} for number in range(count))

    def define_process(self, builder: Builder) -> None:
        for each in builder.each(self.items):
            each.task(self.touch)

    def touch(self, item: int) -> None:
        pass


class WideBlock(LongSequence):
    """``count`` steps side by side, then one after them all."""

    process_execution_mode = ExecutionMode.SEQUENTIAL

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as side_by_side:
            for each in side_by_side.each(self.items):
                each.task(self.touch)
        builder.task(self.after)

    def after(self) -> None:
        pass


@dataclass
class Messages:
    """Every message published in this process: its size, and whether the client sent it."""

    sizes: list[int] = field(default_factory=list)
    from_client: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, body: Any, headers: dict[str, Any], **_: Any) -> None:
        size = len(json.dumps([headers, body], default=str))
        with self.lock:
            self.sizes.append(size)
            self.from_client += threading.current_thread() is threading.main_thread()


@pytest.fixture(scope="module")
def app() -> Iterator[Celery]:
    app = make_app(BROKERS["redis"], name="tasktronaut-scale")
    CeleryBackend(app)
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING",
        queues=WORKER_QUEUES,
    ):  # fmt: skip
        yield app


@pytest.fixture
def messages() -> Iterator[Messages]:
    seen = Messages()
    before_task_publish.connect(seen.record, weak=False)
    yield seen
    before_task_publish.disconnect(seen.record)


@pytest.mark.parametrize(
    ("definition", "count", "sent"), [(LongSequence, 10_000, 10_000), (WideBlock, 2_000, 2_002)]
)
def test_a_large_process_runs_with_small_messages(
    app: Celery, messages: Messages, definition: type[ProcessDefinition], count: int, sent: int
) -> None:
    """The client sends one message, each message stays under 16 KB, every step succeeds."""
    backend = CeleryBackend(app)
    process = definition.build(count=count)

    run = process.enqueue(backend)
    assert messages.from_client == 1
    run.wait(timeout=600)

    assert run.state is RunState.SUCCESS
    assert backend.runner.plan(run.id, backend.store.record(run.id)).dispatch is Dispatch.WORKER
    statuses = run.steps()
    assert len(statuses) == len(process)
    assert all(status.state is StepState.SUCCESS for status in statuses)
    # one per step; a block opening the run adds its start message, and its join
    assert len(messages.sizes) == sent
    assert max(messages.sizes) < MESSAGE_BOUND
