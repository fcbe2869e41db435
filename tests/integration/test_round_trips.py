"""What a step costs in trips to the Redis run store, counted on a real worker.

A step takes two: one that admits and starts it, one that records its success
(with its arrival at the join that follows, in a concurrent section). Counted
as the difference between a run of 2n steps and a run of n steps, so what a
run costs once (its plan, its hooks, its end) cancels out. The broker is
RabbitMQ, so every Redis request counted is the run store's; the worker
dispatches (``canvas_limit=0``), as Tasktronaut does for large processes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import redis.client
import redis.commands.core
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import before_task_publish

from tasktronaut import Builder, Context, ExecutionMode, ProcessDefinition
from tasktronaut_celery import CeleryBackend
from tasktronaut_celery.stores import redis as redis_store
from tasktronaut_celery.stores.redis import RedisRunStore
from tests.services import BROKERS
from tests.support import empty_queues

from .worker_app import make_app

pytestmark = pytest.mark.integration

QUEUE = "round-trips"


class Quiet(ProcessDefinition):
    """Steps that do nothing, and a wrapper that records nothing (unlike the tests' recorder)."""

    def nothing(self) -> None:
        """Do nothing: the step's cost is the runner's."""

    @contextmanager
    def around_task(
        self, identifier: str, step: str, description: str | None, context: Context
    ) -> Iterator[None]:
        yield

    def define_process(self, builder: Builder) -> None:
        for _ in range(builder.arguments["n"]):
            builder.task(self.nothing)


class QuietConcurrent(Quiet):
    """The same steps side by side, joined at the end."""

    process_execution_mode = ExecutionMode.CONCURRENT


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, CeleryBackend]]:
    """A worker on RabbitMQ, its run store in Redis; runs sent as canvas or worker-dispatched."""
    app: Celery = make_app(BROKERS["rabbitmq"], name="tasktronaut-round-trips")
    app.conf.update(task_default_queue=QUEUE, worker_send_task_events=False)
    with app.connection_for_write() as connection:
        empty_queues(connection, [QUEUE])
    canvas = CeleryBackend(app, canvas_limit=None)
    workers = CeleryBackend(app, canvas_limit=0)
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        yield {"canvas": canvas, "worker": workers}


@pytest.fixture
def backend(backends: dict[str, CeleryBackend]) -> CeleryBackend:
    """Worker dispatch, as Tasktronaut does for large processes."""
    return backends["worker"]


def noted(notes: list[str], note: str, call: Any) -> Any:
    """``call``, adding ``note`` to ``notes`` whenever another thread (a worker's) calls it.

    The thread that wraps it is the client's: its own calls are left out.
    """
    client = threading.current_thread()

    def noting(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not client:
            notes.append(note)
        return call(*args, **kwargs)

    return noting


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the run store's requests from the worker's threads (a pipeline is one).

    Counted where the store sends them (its scripts, sent alone or ahead of
    their answer, its pipelines, and its single commands), so a connection
    redis-py opens meanwhile (its handshake) does not count; the client's own
    requests (enqueue, wait) happen on this thread and are left out.
    """
    sent: list[str] = []
    script = redis.commands.core.Script.__call__
    monkeypatch.setattr(redis.commands.core.Script, "__call__", noted(sent, "script", script))
    pipeline = redis.client.Pipeline.execute
    monkeypatch.setattr(redis.client.Pipeline, "execute", noted(sent, "pipeline", pipeline))
    # A script sent ahead, its answer read later (a step's success while what follows goes out).
    monkeypatch.setattr(
        redis_store, "_send_script", noted(sent, "ahead", redis_store._send_script)
    )
    for name in ("hgetall", "hget", "hkeys"):
        monkeypatch.setattr(redis.Redis, name, noted(sent, name, getattr(redis.Redis, name)))
    return sent


def requests_for(backend: CeleryBackend, definition: type[Quiet], n: int, sent: list[str]) -> int:
    """Redis requests a run of ``n`` steps takes, from enqueue to settled."""
    before = len(sent)
    definition.build(n=n).enqueue(backend).wait(timeout=60)
    return len(sent) - before


@pytest.mark.parametrize("definition", [Quiet, QuietConcurrent], ids=["sequential", "concurrent"])
def test_a_step_costs_two_trips_to_the_run_store(
    backend: CeleryBackend, trips: list[str], definition: type[Quiet]
) -> None:
    """Ten more steps cost twenty more requests: admit and start, then record and join."""
    requests_for(backend, definition, 2, trips)  # the worker's scripts are loaded
    ten = requests_for(backend, definition, 10, trips)
    twenty = requests_for(backend, definition, 20, trips)

    assert (twenty - ten) / 10 == 2, f"10 steps: {ten} requests, 20 steps: {twenty}"


@pytest.mark.parametrize("dispatch", ["canvas", "worker"])
def test_a_step_does_not_wait_for_its_success_to_be_stored_before_what_follows_is_sent(
    backends: dict[str, CeleryBackend], monkeypatch: pytest.MonkeyPatch, dispatch: str
) -> None:
    """The first step's success goes to Redis, the second step is published, then Redis answers.

    Whether the worker sends the second step or Celery does (the rest of the
    canvas chain, once the task has returned).
    """
    events: list[str] = []
    monkeypatch.setattr(
        redis_store, "_send_script", noted(events, "sent", redis_store._send_script)
    )
    monkeypatch.setattr(redis_store, "_answered", noted(events, "answered", redis_store._answered))
    published = noted(events, "published", lambda **_: None)
    before_task_publish.connect(published, weak=False)
    try:
        Quiet.build(n=2).enqueue(backends[dispatch]).wait(timeout=60)
    finally:
        before_task_publish.disconnect(published)

    assert events == ["sent", "published", "answered"]


@pytest.mark.parametrize(
    ("dispatch", "definition"),
    [("canvas", Quiet), ("worker", Quiet), ("worker", QuietConcurrent)],
    ids=["canvas", "worker", "worker-concurrent"],
)
def test_a_worker_reads_a_runs_plan_with_its_records(
    backends: dict[str, CeleryBackend],
    monkeypatch: pytest.MonkeyPatch,
    dispatch: str,
    definition: type[Quiet],
) -> None:
    """Each worker thread meets the run first by one read of its records and plan together."""
    looks: list[str] = []
    for name in ("plan", "first_look"):
        monkeypatch.setattr(RedisRunStore, name, noted(looks, name, getattr(RedisRunStore, name)))

    definition.build(n=4).enqueue(backends[dispatch]).wait(timeout=60)

    assert "plan" not in looks
    assert 1 <= looks.count("first_look") <= 2  # one per worker thread that met the run
