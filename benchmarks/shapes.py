"""The process shapes the benchmark runs, as Tasktronaut definitions and as hand-written canvas.

Every step and every hand-written task does the same work: it counts itself
in Redis, which is also how the benchmark knows that plain canvas has finished.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis
from celery import Celery, chain, group
from celery.canvas import Signature

from tasktronaut import Builder, ExecutionMode, ProcessDefinition

COUNTER_URL = os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/7")
BATCH = 10
DEPTH = 10

_counter: redis.Redis | None = None


def count(key: str) -> None:
    """Count one finished step or task under ``key``."""
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(COUNTER_URL)
    _counter.incr(key)


class Counting(ProcessDefinition):
    """Steps that only count themselves."""

    def numbers(self, n: int) -> Iterator[dict[str, int]]:
        return ({"number": number} for number in range(n))

    def work(self, key: str) -> None:
        count(key)

    def numbered_work(self, key: str, number: int) -> None:
        count(key)

    def define_process(self, builder: Builder) -> None:
        raise NotImplementedError


class Sequential(Counting):
    """n steps one after another, added one by one."""

    def define_process(self, builder: Builder) -> None:
        for _ in range(builder.arguments["n"]):
            builder.task(self.work)


class Concurrent(Counting):
    """n steps side by side, added one by one."""

    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        for _ in range(builder.arguments["n"]):
            builder.task(self.work)


class Joined(Counting):
    """n steps side by side, then one that follows them all."""

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as side_by_side:
            for _ in range(builder.arguments["n"]):
                side_by_side.task(self.work)
        builder.task(self.work)


class EachSequential(Counting):
    """A sequential each over n items."""

    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.numbers):
            item.task(self.numbered_work)


class EachConcurrent(Counting):
    """A concurrent each over n items."""

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as side_by_side:
            for item in side_by_side.each(self.numbers):
                item.task(self.numbered_work)


class Batches(Counting):
    """The user guide's ComplexProcess: a chain of concurrent batches of ten."""

    def batches(self, n: int) -> Iterator[dict[str, int]]:
        return ({"batch": start} for start in range(0, n, BATCH))

    def define_process(self, builder: Builder) -> None:
        for batch in builder.each(self.batches):
            with batch.concurrent() as members:
                for _ in range(min(BATCH, builder.arguments["n"] - batch.arguments["batch"])):
                    members.task(self.work)


def nested(level: int) -> type[Counting]:
    """A definition at ``level`` of a ten-deep tower of sub-processes.

    The class is made under its final name, since a definition is registered
    (and found by workers) under the name it has when its class is created.
    """

    def define_process(self: Counting, builder: Builder) -> None:
        for _ in range(builder.arguments["n"] // DEPTH):
            builder.task(self.work)
        if level + 1 < DEPTH:
            builder.sub_process(NESTED[level + 1])

    name = f"Nested{level}"
    namespace = {"define_process": define_process, "__qualname__": name, "__module__": __name__}
    return type(name, (Counting,), namespace)


NESTED = [nested(level) for level in range(DEPTH)]

SHAPES: dict[str, type[ProcessDefinition]] = {
    "sequential": Sequential,
    "concurrent": Concurrent,
    "each-sequential": EachSequential,
    "each-concurrent": EachConcurrent,
    "batches": Batches,
    "nested-10": NESTED[0],
}


def hand_written(app: Celery, shape: str, n: int, key: str) -> Signature:
    """The same shape as Celery canvas written by hand, on the ``bench.work`` task.

    Besides ``SHAPES``: *joined* is :class:`Joined` (a chord), *mixed* the
    user guide's ``MixedProcess`` (three steps, two side by side, one more).
    """
    work = app.signature("bench.work", kwargs={"key": key}, immutable=True)
    if shape in ("sequential", "each-sequential", "nested-10"):
        return chain(*(work.clone() for _ in range(n)), app=app)
    if shape in ("concurrent", "each-concurrent"):
        return group([work.clone() for _ in range(n)], app=app)
    if shape == "joined":
        return chain(group([work.clone() for _ in range(n)]), work.clone(), app=app)
    if shape == "mixed":
        steps = (work.clone() for _ in range(3))
        return chain(*steps, group([work.clone(), work.clone()]), work.clone(), app=app)
    # A chain of groups: Celery turns each group followed by more work into a chord.
    sizes = [min(BATCH, n - start) for start in range(0, n, BATCH)]
    return chain(*(group([work.clone() for _ in range(size)]) for size in sizes), app=app)
