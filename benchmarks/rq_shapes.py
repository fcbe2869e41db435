"""The benchmark shapes for the RQ-based tasktronaut 0.3, its predecessor.

Only ``rq_bench.py`` imports this, in a virtual environment of its own that
holds ``tasktronaut==0.3.0`` (the same distribution name as this project).
Steps count themselves in Redis exactly as the Celery benchmark's steps do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import redis

from tasktronaut import Builder, ExecutionMode, ProcessDefinition  # 0.3.0, in the RQ venv

COUNTER_URL = os.environ.get("BENCH_COUNTER_URL", "redis://127.0.0.1:6379/7")
BATCH = 10
DEPTH = 10
_counter = redis.Redis.from_url(COUNTER_URL)


class Counting(ProcessDefinition):
    """Steps that only count themselves."""

    # tasktronaut 0.3 replaces the arguments with each item's: items repeat what steps need.
    def numbers(self, n: int, key: str, **_: object) -> Iterator[dict[str, object]]:
        return ({"number": number, "key": key} for number in range(n))

    def work(self, key: str, **_: object) -> None:
        _counter.incr(key)

    def define_process(self, builder: Builder) -> None:
        raise NotImplementedError


class Sequential(Counting):
    """n steps one after another."""

    def define_process(self, builder: Builder) -> None:
        for _ in range(builder.kwargs["n"]):
            builder.task(self.work)


class Concurrent(Counting):
    """n steps side by side (0.3 spells the attribute execution_mode)."""

    execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        for _ in range(builder.kwargs["n"]):
            builder.task(self.work)


class EachSequential(Counting):
    """A sequential each over n items."""

    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.numbers):
            item.task(self.work)


class EachConcurrent(Counting):
    """A concurrent each over n items."""

    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as side_by_side:
            for item in side_by_side.each(self.numbers):
                item.task(self.work)


class Batches(Counting):
    """A chain of concurrent batches of ten."""

    def batches(self, n: int, key: str, **_: object) -> Iterator[dict[str, object]]:
        return ({"batch": start, "key": key, "n": n} for start in range(0, n, BATCH))

    def define_process(self, builder: Builder) -> None:
        for batch in builder.each(self.batches):
            with batch.concurrent() as members:
                for _ in range(min(BATCH, builder.kwargs["n"] - batch.kwargs["batch"])):
                    members.task(self.work)


def _nested(level: int) -> type[Counting]:
    def define_process(self: Counting, builder: Builder) -> None:
        for _ in range(builder.kwargs["n"] // DEPTH):
            builder.task(self.work)
        if level + 1 < DEPTH:
            builder.sub_process(NESTED[level + 1])

    name = f"Nested{level}"
    namespace = {"define_process": define_process, "__qualname__": name, "__module__": __name__}
    definition = type(name, (Counting,), namespace)
    globals()[name] = definition  # RQ workers find definitions by module and name
    return definition


NESTED = [_nested(level) for level in range(DEPTH)]

SHAPES: dict[str, type[ProcessDefinition]] = {
    "sequential": Sequential,
    "concurrent": Concurrent,
    "each-sequential": EachSequential,
    "each-concurrent": EachConcurrent,
    "batches": Batches,
    "nested-10": NESTED[0],
}
