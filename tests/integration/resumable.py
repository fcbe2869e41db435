"""Processes the resume tests break and mend: a step raises while the test marks it broken.

Workers import this module (see ``worker_app``). What is broken lives in
Redis, so workers in other processes see the test mend it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import redis

from tasktronaut import Builder, CancelProcessError, Context, ProcessDefinition
from tests.services import EVENTS


@functools.cache
def _events() -> redis.Redis:
    return redis.Redis.from_url(EVENTS)


def _broken_key(run_id: str) -> str:
    return f"test-broken:{run_id}"


def break_steps(run_id: str, *names: str) -> None:
    """Have the steps called ``names`` of run ``run_id`` raise until mended."""
    _events().sadd(_broken_key(run_id), *names)


def mend(run_id: str) -> None:
    """Let every step of run ``run_id`` succeed."""
    _events().delete(_broken_key(run_id))


def is_broken(run_id: str, name: str) -> bool:
    """Whether the test marked the step ``name`` of run ``run_id`` broken."""
    return bool(_events().sismember(_broken_key(run_id), name))


def check(context: Context, name: str) -> None:
    """Raise if the test marked the step ``name`` of this run broken."""
    if is_broken(context.process_id, name):
        raise RuntimeError(f"{name} is broken")


class TenSteps(ProcessDefinition):
    """Ten steps one after another."""

    def numbers(self) -> Iterator[dict[str, int]]:
        return ({"number": number} for number in range(10))

    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.numbers):
            item.task(self.step)

    def step(self, number: int, context: Context) -> None:
        check(context, f"step {number}")


class BrokenMember(ProcessDefinition):
    """A step, three side by side (b may break), and one after them."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent() as side_by_side:
            side_by_side.task(self.a)
            side_by_side.task(self.b)
            side_by_side.task(self.c)
        builder.task(self.last)

    def first(self) -> None:
        pass

    def a(self) -> None:
        pass

    def b(self, context: Context) -> None:
        check(context, "b")

    def c(self) -> None:
        pass

    def last(self) -> None:
        pass


def without_c(self: BrokenMember, builder: Builder) -> None:
    """``BrokenMember.define_process`` with ``c`` taken out: a definition changed since a run."""
    builder.task(self.first)
    with builder.concurrent() as side_by_side:
        side_by_side.task(self.a)
        side_by_side.task(self.b)
    builder.task(self.last)


class BrokenInner(ProcessDefinition):
    """A sub-process whose second step may break."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.x)
        builder.task(self.y)

    def x(self) -> None:
        pass

    def y(self, context: Context) -> None:
        check(context, "y")


class BrokenNested(ProcessDefinition):
    """A step, a sub-process that may break inside, and a step after it."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.prepare)
        builder.sub_process(BrokenInner)
        builder.task(self.finish)

    def prepare(self) -> None:
        pass

    def finish(self) -> None:
        pass


class CancelsWhileBroken(ProcessDefinition):
    """A step that cancels the run while it is marked broken."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.task(self.decide)
        builder.task(self.last)

    def first(self) -> None:
        pass

    def decide(self, context: Context) -> None:
        try:
            check(context, "decide")
        except RuntimeError as error:
            raise CancelProcessError(f"withdrawn: {error}") from None

    def last(self) -> None:
        pass
