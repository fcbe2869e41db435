"""Single flight on real ``celery worker`` processes (prefork; Redis and RabbitMQ brokers).

Ten runs of one key with a limit of two: never three at once, each in order of
enqueue, all succeed; a run whose step kills its worker child on every
delivery fails and gives its slot to the next; reject and skip while the one
slot is held. The steps wait at gates the
test opens, and record entering and leaving in Redis, so the order is known.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tasktronaut_celery import (
    CeleryBackend,
    ConcurrencyLimitError,
    ProcessFailed,
    Run,
    RunState,
)
from tests.services import BROKERS
from tests.support import celery_worker, require, wait_until

from .crashing import (
    REPOSITORY,
    OneAfterAKiller,
    OneOrRefused,
    OneOrSkipped,
    TwoAtATime,
    open_gate,
    single_flight_events,
    worker_env,
)
from .worker_app import make_app

pytestmark = pytest.mark.integration

APP = "tests.integration.worker_app"


@pytest.fixture(scope="module", params=sorted(BROKERS))
def client(request: pytest.FixtureRequest) -> Iterator[CeleryBackend]:
    """A client of a four-child worker on each broker (results in Redis), one at a time."""
    broker = request.param
    require(BROKERS[broker], broker)
    app = make_app(BROKERS[broker], name=f"tasktronaut-single-flight-{broker}")
    name = f"single-flight-{broker}@localhost"
    env = worker_env(broker)
    with celery_worker(APP, name, REPOSITORY, env, BROKERS[broker], "--concurrency", "4"):
        yield CeleryBackend(app)


def entered(group: str, count: int) -> list[str]:
    """The runs of ``group`` whose step has entered, in order, once there are ``count``."""

    def enough() -> list[str] | None:
        runs = [event["run"] for event in single_flight_events(group) if event["event"] == "enter"]
        return runs if len(runs) >= count else None

    return wait_until(enough, 30, f"{count} runs of {group} entering")


def most_at_once(group: str) -> int:
    """The most runs of ``group`` that were inside their step at the same moment."""
    inside, most = 0, 0
    for event in single_flight_events(group):
        inside += 1 if event["event"] == "enter" else -1
        most = max(most, inside)
    return most


def test_ten_runs_of_a_key_limited_to_two_run_two_at_a_time_in_order(
    client: CeleryBackend,
) -> None:
    group = uuid.uuid4().hex
    runs = [TwoAtATime.build(group=group).enqueue(client) for _ in range(10)]
    ids = [run.id for run in runs]

    assert sorted(entered(group, 2)) == sorted(ids[:2])
    assert {run.state for run in runs[2:]} == {RunState.PENDING}
    for index in range(8):
        open_gate(ids[index])
        assert entered(group, index + 3)[-1] == ids[index + 2]  # the next in order of enqueue
    for run_id in ids[8:]:
        open_gate(run_id)

    assert [run.wait(timeout=60).state for run in runs] == [RunState.SUCCESS] * 10
    assert most_at_once(group) == 2


def test_a_worker_killed_while_its_run_holds_the_slot_does_not_keep_it(
    client: CeleryBackend,
) -> None:
    group = uuid.uuid4().hex
    killer: Run = OneAfterAKiller.build(group=group, kill=True).enqueue(client)
    waiting: Run = OneAfterAKiller.build(group=group, kill=False).enqueue(client)

    with pytest.raises(ProcessFailed, match="StepLostError"):
        killer.wait(timeout=90)
    assert waiting.wait(timeout=60).state is RunState.SUCCESS

    runs = [event["run"] for event in single_flight_events(group)]
    assert runs == [killer.id] * 3 + [waiting.id]  # each delivery killed its child; then the next


def test_reject_and_skip_while_a_run_holds_the_only_slot(client: CeleryBackend) -> None:
    group = uuid.uuid4().hex
    refusing = OneOrRefused.build(group=group).enqueue(client)
    skipping = OneOrSkipped.build(group=group).enqueue(client)
    entered(group, 2)

    with pytest.raises(ConcurrencyLimitError, match=f"held by run {refusing.id}"):
        OneOrRefused.build(identifier=f"refused-{group}", group=group).enqueue(client)
    skipped = OneOrSkipped.build(group=group).enqueue(client)

    assert client.store.record(f"refused-{group}") is None
    assert skipped.state is RunState.CANCELLED  # ended at once, never sent
    assert skipped.record.error is not None
    assert skipped.record.error.startswith(f"skipped: concurrency key 'OneOrSkipped-{group}'")
    for run in (refusing, skipping):
        open_gate(run.id)
        assert run.wait(timeout=60).state is RunState.SUCCESS
    after = OneOrRefused.build(group=group).enqueue(client)  # the slot is free again
    open_gate(after.id)
    assert after.wait(timeout=60).state is RunState.SUCCESS
    assert len(entered(group, 3)) == 3
