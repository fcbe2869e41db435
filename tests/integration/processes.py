"""Process definitions the integration tests run, beside the user guide's own.

Workers import this module (see ``worker_app``), exactly as a user's worker
imports the module that defines their processes.
"""

from __future__ import annotations

import datetime
import decimal
import time
import uuid

import redis
from celery import current_task

from tasktronaut import (
    Builder,
    CancelProcessError,
    Context,
    ExecutionMode,
    NonRetryableProcessError,
    ProcessDefinition,
    TaskOptions,
    task,
)

from .services import EVENTS

STEP_SECONDS = 0.6
GATE_TIMEOUT = 60


def gate_key(run_id: str) -> str:
    """The Redis list a gated step waits on; push to it to let the step finish."""
    return f"test-gate:{run_id}"


def _events() -> redis.Redis:
    return redis.Redis.from_url(EVENTS)


class Overlapping(ProcessDefinition):
    """Three slow steps side by side, then one after them."""

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as side_by_side:
            side_by_side.task(self.slow_a)
            side_by_side.task(self.slow_b)
            side_by_side.task(self.slow_c)
        builder.task(self.after)

    def slow_a(self) -> None:
        time.sleep(STEP_SECONDS)

    def slow_b(self) -> None:
        time.sleep(STEP_SECONDS)

    def slow_c(self) -> None:
        time.sleep(STEP_SECONDS)

    def after(self) -> None:
        pass


class Flaky(ProcessDefinition):
    """A step that fails on its first two attempts and succeeds on the third."""

    task_options = TaskOptions(default_retry_delay=0)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.flaky, max_retries=3)
        builder.task(self.after)

    def flaky(self, context: Context) -> None:
        if context.attempt < 3:
            raise ConnectionError(f"attempt {context.attempt} failed")

    def after(self) -> None:
        pass


class FailsOnce(ProcessDefinition):
    """A step without retries that fails: nothing after it runs."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.before)
        builder.task(self.explode)
        builder.task(self.never)

    def before(self) -> None:
        pass

    def explode(self) -> None:
        raise ValueError("the ledger does not balance")

    def never(self) -> None:
        pass


class NonRetryable(ProcessDefinition):
    """A step allowed many retries that gives up at once."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.give_up, max_retries=5, default_retry_delay=0)

    def give_up(self) -> None:
        raise NonRetryableProcessError("the account is closed")


class FailsInConcurrentBlock(ProcessDefinition):
    """One branch fails while its sibling is still working; the step after never runs."""

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as branches:
            branches.task(self.slow_sibling)
            branches.task(self.explode)
        builder.task(self.never)

    def slow_sibling(self) -> None:
        time.sleep(STEP_SECONDS)

    def explode(self) -> None:
        raise RuntimeError("branch failed")

    def never(self) -> None:
        pass


class Inner(ProcessDefinition):
    """A sub-process whose second step fails."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.fine)
        builder.task(self.explode)

    def fine(self) -> None:
        pass

    def explode(self) -> None:
        raise KeyError("missing row")


class FailsInSubProcess(ProcessDefinition):
    """A failure inside a sub-process fails both processes, each hook once."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(Inner)
        builder.task(self.never)

    def first(self) -> None:
        pass

    def never(self) -> None:
        pass


class CancelsItself(ProcessDefinition):
    """A step that cancels its own run."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.task(self.cancel)
        builder.task(self.never)

    def first(self) -> None:
        pass

    def cancel(self) -> None:
        raise CancelProcessError("customer withdrew the order")

    def never(self) -> None:
        pass


class Gated(ProcessDefinition):
    """A step that waits until the test opens its gate, so a client can act meanwhile."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.wait_at_gate)
        with builder.concurrent() as later:
            later.task(self.never_a)
            later.task(self.never_b)
        builder.task(self.never_c)

    def wait_at_gate(self, context: Context) -> None:
        _events().blpop([gate_key(context.process_id)], timeout=GATE_TIMEOUT)

    def never_a(self) -> None:
        pass

    def never_b(self) -> None:
        pass

    def never_c(self) -> None:
        pass


class Typed(ProcessDefinition):
    """Arguments of the types JSON carries only with kombu's help."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(
            day=datetime.date,
            at=datetime.datetime,
            amount=decimal.Decimal,
            ref=uuid.UUID,
            count=int,
            tags=list[str],
        )
        builder.task(self.use_them)

    @task(description="Use typed arguments")
    def use_them(
        self,
        day: datetime.date,
        at: datetime.datetime,
        amount: decimal.Decimal,
        ref: uuid.UUID,
        count: int,
        tags: list[str],
        context: Context,
    ) -> None:
        assert isinstance(day, datetime.date)
        assert isinstance(at, datetime.datetime)
        assert isinstance(amount, decimal.Decimal)
        assert isinstance(ref, uuid.UUID)
        assert isinstance(count, int)
        assert context.kwargs["count"] == count


class ConcurrentRoot(ProcessDefinition):
    """A concurrent process whose steps each see their own iteration arguments."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def items(self, names: list[str]) -> list[tuple[dict[str, str], str]]:
        return [({"name": name}, f"Greet {name}") for name in names]

    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.items):
            item.task(self.greet)

    def greet(self, name: str) -> None:
        pass


class Routed(ProcessDefinition):
    """Steps sent to the queue their options name."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.on_default_queue)
        builder.task(self.on_special_queue, queue="special")

    def on_default_queue(self, context: Context) -> None:
        _record_queue(context)

    def on_special_queue(self, context: Context) -> None:
        _record_queue(context)


def _record_queue(context: Context) -> None:
    """Record the queue the worker took this step's message from."""
    delivery = current_task.request.delivery_info or {}
    _events().hset(
        f"test-queues:{context.process_id}", context.path, delivery.get("routing_key", "")
    )


class TimeLimited(ProcessDefinition):
    """A step that overruns its soft time limit (enforced by prefork workers)."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.overrun, soft_time_limit=1)
        builder.task(self.never)

    def overrun(self) -> None:
        time.sleep(30)

    def never(self) -> None:
        pass


class HardLimited(ProcessDefinition):
    """A step that overruns its hard time limit: the worker kills it."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.overrun, time_limit=1)
        builder.task(self.never)

    def overrun(self) -> None:
        time.sleep(30)

    def never(self) -> None:
        pass
