"""Process definitions the integration tests run, beside the user guide's own.

Workers import this module (see ``worker_app``), exactly as a user's worker
imports the module that defines their processes.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

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
from tests.services import EVENTS

STEP_SECONDS = 0.6
GATE_TIMEOUT = 60


def gate_key(run_id: str) -> str:
    """The Redis list a gated step waits on; push to it to let the step finish."""
    return f"test-gate:{run_id}"


def wait_for_gate(run_id: str) -> None:
    """Block until the test opens the gate of ``run_id``, or fail after ``GATE_TIMEOUT``.

    Short waits in a loop: redis-py 8 gives up reading a socket after 5 s by default.
    """
    deadline = time.monotonic() + GATE_TIMEOUT
    while not _events().blpop([gate_key(run_id)], timeout=1):
        if time.monotonic() > deadline:
            raise TimeoutError("nobody opened the gate")


def seen_key(run_id: str) -> str:
    """The Redis hash where the load's steps record, by path, the arguments they received."""
    return f"test-seen:{run_id}"


@functools.cache  # one connection pool per process: the load test runs thousands of steps
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


class GivesUp(ProcessDefinition):
    """A step that fails on every attempt, with two retries allowed."""

    task_options = TaskOptions(default_retry_delay=0)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.keeps_failing, max_retries=2)
        builder.task(self.never)

    def keeps_failing(self, context: Context) -> None:
        raise ConnectionError(f"attempt {context.attempt} failed")

    def never(self) -> None:
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
        wait_for_gate(context.process_id)

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


def _record_seen(context: Context, arguments: dict[str, Any]) -> None:
    """Record the arguments a step received under the run and path its context names."""
    key = seen_key(context.process_id)
    with _events().pipeline() as pipeline:
        pipeline.hset(key, context.path, json.dumps(arguments)).expire(key, 3600).execute()


class LoadAudit(ProcessDefinition):
    """The load's sub-process: two checks side by side."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.check_totals)
        builder.task(self.check_owner)

    def check_totals(self, context: Context, **arguments: Any) -> None:
        _record_seen(context, arguments)

    def check_owner(self, context: Context, **arguments: Any) -> None:
        _record_seen(context, arguments)


class LoadOrder(ProcessDefinition):
    """The load's own shape: a step, a transform around a concurrent ``each``, a sub-process.

    Every step records the arguments it received (see :func:`seen_key`), so a
    test can tell that each step got its own run's arguments and context.
    """

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(token=str, lines=int)
        builder.task(self.receive)
        with builder.transform(self.label) as labelled, labelled.concurrent() as packing:
            for line in packing.each(self.order_lines):
                line.task(self.pack)
        builder.sub_process(LoadAudit)
        builder.task(self.ship)

    def label(self, token: str, lines: int) -> dict[str, str]:
        return {"label": f"{token}/{lines}"}

    def order_lines(self, lines: int) -> Iterator[tuple[dict[str, int], str]]:
        return (({"line": line}, f"Line {line}") for line in range(lines))

    def receive(self, context: Context, **arguments: Any) -> None:
        _record_seen(context, arguments)

    def pack(self, context: Context, **arguments: Any) -> None:
        _record_seen(context, arguments)

    def ship(self, context: Context, **arguments: Any) -> None:
        _record_seen(context, arguments)


def received_key(run_id: str) -> str:
    """The Redis hash where the steps below record the sensitive value they received."""
    return f"test-received:{run_id}"


def _record_received(context: Context, value: str) -> None:
    _events().hset(received_key(context.process_id), f"{context.path}#{context.attempt}", value)


class HoldsToken(ProcessDefinition):
    """A sub-process that marks ``api_token`` sensitive for the whole run it is part of."""

    sensitive_arguments = ("api_token",)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.check_token)

    def check_token(self, api_token: str, context: Context) -> None:
        _record_received(context, api_token)


class LeaksTokenOnFailure(ProcessDefinition):
    """Marks nothing itself; its step fails quoting ``api_token``, sensitive by ``HoldsToken``."""

    def define_process(self, builder: Builder) -> None:
        builder.sub_process(HoldsToken)
        builder.task(self.call_partner)

    def call_partner(self, api_token: str, context: Context) -> None:
        _record_received(context, api_token)
        raise PermissionError(f"the partner refused token {api_token}")


class LeaksTokenOnRetry(ProcessDefinition):
    """The first attempt fails quoting the sensitive token; the retry succeeds."""

    sensitive_arguments = ("api_token",)
    task_options = TaskOptions(default_retry_delay=0)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.call_partner, max_retries=1)

    def call_partner(self, api_token: str, context: Context) -> None:
        _record_received(context, api_token)
        if context.attempt == 1:
            raise ConnectionError(f"token {api_token} timed out")
