"""Processes, worker hooks and helpers for the crash tests, which kill workers mid-run.

``celery worker`` subprocesses of the tests import this module (through
``worker_app``). A step of :class:`Crashable` reports each delivery, with the
pid of the worker child running it, then waits at its run's gate; a test can
also ask a worker child to die right after a task returned, before its
message is acknowledged.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from celery.signals import task_postrun

from tasktronaut import Builder, Context, ProcessDefinition
from tests.services import BROKERS, EVENTS

from . import resumable
from .processes import gate_key, wait_for_gate

REPOSITORY = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT = 5  # seconds before Redis gives a lost worker's message to another


@functools.cache
def _events() -> redis.Redis:
    return redis.Redis.from_url(EVENTS)


def deliveries_key(run_id: str) -> str:
    """The Redis list where the waiting step records each of its deliveries."""
    return f"test-deliveries:{run_id}"


def die_after_key(task_id: str) -> str:
    """Set this key and the worker child that runs ``task_id`` dies once the task returned."""
    return f"test-die-after:{task_id}"


def died_key(task_id: str) -> str:
    """Where a child records that it died after running ``task_id``."""
    return f"test-died:{task_id}"


def deliveries(run_id: str) -> list[dict[str, Any]]:
    """Each delivery of the waiting step so far: when, and the pid and parent pid that ran it."""
    return [json.loads(raw) for raw in _events().lrange(deliveries_key(run_id), 0, -1)]


class Crashable(ProcessDefinition):
    """A step that waits at its gate between others, sequential and concurrent."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.before)
        builder.task(self.wait_at_gate)
        with builder.concurrent() as side_by_side:
            side_by_side.task(self.after_a)
            side_by_side.task(self.after_b)
        builder.task(self.last)

    def before(self) -> None:
        pass

    def wait_at_gate(self, context: Context) -> None:
        delivery = {"pid": os.getpid(), "ppid": os.getppid(), "at": time.time()}
        _events().rpush(deliveries_key(context.process_id), json.dumps(delivery))
        wait_for_gate(context.process_id)

    def after_a(self) -> None:
        pass

    def after_b(self) -> None:
        pass

    def last(self) -> None:
        pass


class Steady(ProcessDefinition):
    """Quick steps in a chain, a chord and a chain again: what follows a step is known."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.task(self.second)
        with builder.concurrent() as side_by_side:
            side_by_side.task(self.third_a)
            side_by_side.task(self.third_b)
        builder.task(self.last)

    def first(self) -> None:
        pass

    def second(self) -> None:
        pass

    def third_a(self) -> None:
        pass

    def third_b(self) -> None:
        pass

    def last(self) -> None:
        pass


class KillsItsWorker(ProcessDefinition):
    """A step that kills the worker child running it, on every delivery."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.crash)
        builder.task(self.never)

    def crash(self, context: Context) -> None:
        _events().rpush(deliveries_key(context.process_id), json.dumps({"pid": os.getpid()}))
        os.kill(os.getpid(), signal.SIGKILL)

    def never(self) -> None:
        raise AssertionError("a step after the crashing one ran")


class KillsItsWorkerWhileBroken(ProcessDefinition):
    """A step that kills the worker child running it while the test marks it broken."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.crash)
        builder.task(self.after)

    def crash(self, context: Context) -> None:
        _events().rpush(deliveries_key(context.process_id), json.dumps({"pid": os.getpid()}))
        if resumable.is_broken(context.process_id, "crash"):
            os.kill(os.getpid(), signal.SIGKILL)

    def after(self) -> None:
        pass


class Chaotic(ProcessDefinition):
    """Steps that take a while, in a chain and side by side: a random kill lands mid-step."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.work)
        with builder.concurrent() as side_by_side:
            for _ in range(4):
                side_by_side.task(self.work)
        for _ in range(5):
            builder.task(self.work)

    def work(self, token: str) -> None:
        time.sleep(0.1)


def die_after_marked_tasks() -> None:
    """In a worker: a child whose finished task is marked dies before the ack (SIGKILL)."""

    @task_postrun.connect(weak=False)
    def die_if_marked(task_id: str | None = None, **_: Any) -> None:
        if task_id and _events().delete(die_after_key(task_id)):
            _events().set(died_key(task_id), os.getpid(), ex=3600)
            os.kill(os.getpid(), signal.SIGKILL)


def worker_env(broker: str) -> dict[str, str]:
    """The environment of a crash test's ``celery worker`` subprocess on ``broker``."""
    return {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS[broker],
        "TASKTRONAUT_TEST_WORKER": "1",
        "TASKTRONAUT_TEST_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "PYTHONPATH": str(REPOSITORY),
    }


def open_gate(run_id: str, times: int = 1) -> None:
    """Let the waiting step of ``run_id`` finish (``times`` deliveries of it)."""
    _events().rpush(gate_key(run_id), *["open"] * times)


def kill_outright(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker's children and then its main process, as a machine crash would."""
    subprocess.run(["pkill", "-KILL", "-P", str(worker.pid)], check=False)
    worker.kill()
    worker.wait()


def single_flight_key(group: str) -> str:
    """The Redis list where :class:`TwoAtATime`'s steps record entering and leaving."""
    return f"test-single-flight:{group}"


def single_flight_events(group: str) -> list[dict[str, str]]:
    """What :class:`TwoAtATime` and :class:`OneAfterAKiller` runs of ``group`` did, in order."""
    return [json.loads(raw) for raw in _events().lrange(single_flight_key(group), 0, -1)]


class TwoAtATime(ProcessDefinition):
    """At most two runs per group at once; a step waits at its run's gate."""

    concurrency_limit = 2

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(group=str)
        builder.task(self.hold)
        builder.task(self.done)

    def concurrency_key(self, **arguments: Any) -> str:
        return f"two-at-a-time-{arguments['group']}"

    def hold(self, group: str, context: Context) -> None:
        entered = {"run": context.process_id, "event": "enter"}
        _events().rpush(single_flight_key(group), json.dumps(entered))
        wait_for_gate(context.process_id)
        left = {"run": context.process_id, "event": "leave"}
        _events().rpush(single_flight_key(group), json.dumps(left))

    def done(self) -> None:
        pass


class OneAfterAKiller(ProcessDefinition):
    """One run per group at once; a run told to kills the worker child running it, every time."""

    concurrency_limit = 1

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(group=str, kill=bool)
        builder.task(self.work)

    def concurrency_key(self, **arguments: Any) -> str:
        return f"one-after-a-killer-{arguments['group']}"

    def work(self, group: str, kill: bool, context: Context) -> None:
        entered = {"run": context.process_id, "event": "enter", "pid": str(os.getpid())}
        _events().rpush(single_flight_key(group), json.dumps(entered))
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)


class OneOrRefused(ProcessDefinition):
    """One run per group at once, another refused; its step waits at its run's gate."""

    concurrency_limit = 1
    concurrency_policy = "reject"

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(group=str)
        builder.task(self.hold)

    def concurrency_key(self, **arguments: Any) -> str:
        return f"{type(self).__name__}-{arguments['group']}"

    def hold(self, group: str, context: Context) -> None:
        entered = {"run": context.process_id, "event": "enter"}
        _events().rpush(single_flight_key(group), json.dumps(entered))
        wait_for_gate(context.process_id)


class OneOrSkipped(OneOrRefused):
    """One run per group at once, another skipped."""

    concurrency_policy = "skip"


class OneAtATime(ProcessDefinition):
    """One run per group at once, the others queued; its step reports each delivery and waits."""

    concurrency_limit = 1

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(group=str)
        builder.task(self.wait_at_gate)

    def concurrency_key(self, **arguments: Any) -> str:
        return f"one-at-a-time-{arguments['group']}"

    def wait_at_gate(self, context: Context) -> None:
        delivery = {"pid": os.getpid(), "ppid": os.getppid(), "at": time.time()}
        _events().rpush(deliveries_key(context.process_id), json.dumps(delivery))
        wait_for_gate(context.process_id)
