"""Load: 200 processes of mixed shapes from 8 client threads, on two ``celery worker`` processes.

The load runs once per broker; each test checks one promise against what the
workers recorded. ``python -m benchmarks.load`` runs the same load for figures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tasktronaut_celery import CeleryBackend, RunState
from tasktronaut_celery.dispatch import Dispatch
from tests.services import BROKERS

from .load import RUNS, THREADS, Started, load_workers, settle, start_load
from .order import check_run
from .processes import LoadOrder, seen_key
from .recorder import Recorder, typed
from .worker_app import make_app

SETTLE_TIMEOUT = 300

pytestmark = pytest.mark.reliability


@pytest.fixture(scope="module")
def workers(broker: str) -> Iterator[list[int]]:
    """Two recording ``celery worker`` processes on the module's broker; their pids."""
    with load_workers(BROKERS[broker], record=True) as pids:
        yield pids


@pytest.fixture(scope="module")
def client(broker: str) -> CeleryBackend:
    """The default canvas limit: small runs go as canvas, large ones are worker-dispatched."""
    return CeleryBackend(make_app(BROKERS[broker], name="tasktronaut-load-client"))


@pytest.fixture(scope="module")
def load(client: CeleryBackend, workers: list[int]) -> list[Started]:
    """The whole load, started from the client threads and waited for until settled."""
    started = start_load(client)
    settle(started, SETTLE_TIMEOUT)
    return started


def test_every_run_succeeds(load: list[Started], client: CeleryBackend) -> None:
    """All runs succeed; every thread enqueued some, as canvas and worker-dispatched runs."""
    assert [each.run.state for each in load] == [RunState.SUCCESS] * RUNS
    assert len({each.thread for each in load}) == THREADS
    assert {
        client.runner.plan(each.run.id, client.store.record(each.run.id)).dispatch for each in load
    } == set(Dispatch)


def test_every_step_saw_its_own_runs_context(load: list[Started], recorder: Recorder) -> None:
    """Each step's context names its own run and path and holds that run's arguments."""
    for each in load:
        seen = {e["path"]: (e["process_id"], e["arguments"]) for e in recorder.steps(each.run.id)}
        expected = {s.path: (each.run.id, typed(s.arguments)) for s in each.process.steps()}
        assert seen == expected, each.shape.name


def test_every_step_received_its_own_runs_arguments(
    load: list[Started], recorder: Recorder
) -> None:
    """The load's own steps were called with exactly the arguments of their run and path."""
    orders = [each for each in load if each.shape.definition is LoadOrder]
    assert orders
    for each in orders:
        stored = recorder.client.hgetall(seen_key(each.run.id))
        received = {path.decode(): json.loads(arguments) for path, arguments in stored.items()}
        assert received == {s.path: dict(s.arguments) for s in each.process.steps()}


def test_every_step_ran_once_in_order_and_each_hook_once(
    load: list[Started], recorder: Recorder
) -> None:
    """Steps ran once each in tree order; on_started and on_completed fired once per instance."""
    for each in load:
        events = recorder.events(each.run.id)
        check_run(each.process, events)
        assert {e["hook"] for e in events if e["kind"] == "hook"} == {"on_started", "on_completed"}


def test_both_workers_ran_steps(
    load: list[Started], recorder: Recorder, workers: list[int]
) -> None:
    """The steps were spread over both worker processes (the parents of their pool processes)."""
    ran_in = {e["ppid"] for each in load for e in recorder.steps(each.run.id)}
    assert ran_in == set(workers)
