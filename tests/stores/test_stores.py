"""The run store contract, held alike by the memory, Redis, SQLAlchemy and Django stores.

Each test gets a fresh run id and an empty store, so none depends on another's leftovers.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
import redis.client

from tasktronaut_celery.claims import Claim
from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.store import (
    Arrival,
    FirstLook,
    RunRecord,
    RunState,
    RunStore,
    RunSummary,
    StepRecord,
    StepStart,
    StepState,
)
from tasktronaut_celery.stores.memory import MemoryRunStore
from tasktronaut_celery.stores.redis import RedisRunStore
from tests.databases import configure_django

TTL = 60
PLAN = EncodedPlan("application/json", "utf-8", b'{"version": 1}')


@pytest.fixture(params=["memory", "redis", "sqlalchemy", "django"])
def store(request: pytest.FixtureRequest) -> Iterator[RunStore]:
    """Each kind of store, empty; the database ones on the test PostgreSQL."""
    if request.param == "memory":
        yield MemoryRunStore()
    elif request.param == "redis":
        yield RedisRunStore(request.getfixturevalue("redis_client"), ttl=TTL)
    elif request.param == "sqlalchemy":
        import sqlalchemy

        from tasktronaut_celery.stores import sql

        url = request.getfixturevalue("postgres")
        store = sql.SqlRunStore(url)
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as connection:
            for table in reversed(sql.metadata.sorted_tables):
                connection.execute(table.delete())
        yield store
        store.close()
        engine.dispose()
    else:
        request.getfixturevalue("postgres")
        configure_django()
        from django.apps import apps

        from tasktronaut_celery.contrib.django.store import DjangoRunStore

        for model in apps.get_app_config("tasktronaut").get_models():
            model.objects.all().delete()
        yield DjangoRunStore()


def test_create_succeeds_once_per_run_id(store: RunStore, run_id: str, other_run_id: str) -> None:
    """The first create of a run id returns True, every later one False."""
    assert store.create(run_id, PLAN) is True
    assert store.create(run_id, PLAN) is False
    assert store.create(other_run_id, PLAN) is True


def test_second_create_leaves_the_first_plan_untouched(store: RunStore, run_id: str) -> None:
    """A refused create does not overwrite the stored plan or record."""
    store.create(run_id, PLAN)
    store.mark_running(run_id)

    store.create(run_id, EncodedPlan("application/x-python-serialize", "binary", b"other"))

    assert store.plan(run_id) == PLAN
    record = store.record(run_id)
    assert record is not None
    assert record.state is RunState.RUNNING


def test_plan_is_returned_as_stored(store: RunStore, run_id: str, other_run_id: str) -> None:
    """plan() gives back the content type, encoding and bytes that create stored."""
    binary = EncodedPlan("application/x-python-serialize", "binary", bytes(range(256)))
    store.create(run_id, PLAN)
    store.create(other_run_id, binary)

    assert store.plan(run_id) == PLAN
    assert store.plan(other_run_id) == binary


def test_unknown_run_has_no_plan_record_claims_or_steps(store: RunStore) -> None:
    """A run id never created reads as absent everywhere."""
    assert store.plan("missing") is None
    assert store.record("missing") is None
    assert store.claimed("missing") == set()
    assert store.step("missing", "0") is None
    assert store.steps("missing") == {}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def test_new_run_is_pending_with_its_creation_time(store: RunStore, run_id: str) -> None:
    """A created run is PENDING, created now (aware, UTC), not finished, with no step or error."""
    before = utc_now()
    store.create(run_id, PLAN)
    after = utc_now()

    record = store.record(run_id)

    assert record is not None
    assert record.state is RunState.PENDING
    assert before <= record.created_at <= after
    assert record.created_at.tzinfo is timezone.utc
    assert record.finished_at is None
    assert record.step is None
    assert record.error is None


def test_mark_running_moves_pending_to_running(store: RunStore, run_id: str) -> None:
    """mark_running turns a PENDING run RUNNING and keeps its creation time."""
    store.create(run_id, PLAN)
    created = store.record(run_id)

    store.mark_running(run_id)
    store.mark_running(run_id)

    record = store.record(run_id)
    assert created is not None
    assert record is not None
    assert record.started_at is not None
    assert record == RunRecord(
        RunState.RUNNING, created_at=created.created_at, started_at=record.started_at
    )


@pytest.mark.parametrize("state", [RunState.SUCCESS, RunState.FAILURE, RunState.CANCELLED])
def test_mark_running_leaves_a_finished_run_alone(
    store: RunStore, state: RunState, run_id: str
) -> None:
    """mark_running after the run ended does not bring it back to RUNNING."""
    store.create(run_id, PLAN)
    store.finish(run_id, state, step="0", error="boom")

    store.mark_running(run_id)

    record = store.record(run_id)
    assert record is not None
    assert record.state is state


def test_mark_running_does_not_create_a_run(store: RunStore) -> None:
    """mark_running on an unknown run id leaves it unknown."""
    store.mark_running("missing")

    assert store.record("missing") is None


def test_only_the_first_terminal_transition_wins(store: RunStore, run_id: str) -> None:
    """Finish returns True once; later finishes return False and change nothing."""
    store.create(run_id, PLAN)
    store.mark_running(run_id)
    before = utc_now()

    assert store.finish(run_id, RunState.FAILURE, step="1.0", error="OSError: disk full") is True
    assert store.finish(run_id, RunState.CANCELLED, step="2", error="cancelled") is False
    assert store.finish(run_id, RunState.SUCCESS) is False

    record = store.record(run_id)
    assert record is not None
    assert record.state is RunState.FAILURE
    assert record.step == "1.0"
    assert record.error == "OSError: disk full"
    assert record.finished_at is not None
    assert before <= record.finished_at <= utc_now()
    assert record.finished_at.tzinfo is timezone.utc
    assert record.settled_at is None


def test_settled_at_is_the_end_or_the_later_settle(
    store: RunStore, run_id: str, other_run_id: str
) -> None:
    """Settled on finishing: the same moment as finished_at; else when settle() is called."""
    store.create(run_id, PLAN)
    store.create(other_run_id, PLAN)
    store.finish(run_id, RunState.CANCELLED, error="cancelled", settled=True)
    store.finish(other_run_id, RunState.CANCELLED, error="cancelled")
    before = utc_now()
    store.settle(other_run_id)

    at_once, later = store.record(run_id), store.record(other_run_id)
    assert at_once is not None
    assert later is not None
    assert at_once.settled_at == at_once.finished_at
    assert later.settled_at is not None
    assert later.settled_at.tzinfo is timezone.utc
    assert before <= later.settled_at <= utc_now()


def test_a_run_record_round_trips_through_json(store: RunStore, run_id: str) -> None:
    """to_json is JSON-ready (times in seconds since the epoch); from_json reads it back."""
    store.create(run_id, PLAN)
    store.finish(run_id, RunState.FAILURE, step="0", error="ValueError: no", settled=True)
    record = store.record(run_id)
    assert record is not None

    data = json.loads(json.dumps(record.to_json()))

    assert isinstance(data["created_at"], float)
    assert RunRecord.from_json(data) == record


def test_finish_from_pending_is_allowed(store: RunStore, run_id: str) -> None:
    """A run cancelled before any step ran ends from PENDING."""
    store.create(run_id, PLAN)

    assert store.finish(run_id, RunState.CANCELLED, error="cancelled by a client") is True

    record = store.record(run_id)
    assert record is not None
    assert record.state is RunState.CANCELLED
    assert record.step is None
    assert record.error == "cancelled by a client"


def test_finish_stores_the_root_path_as_the_step(store: RunStore, run_id: str) -> None:
    """The root's empty path is a step like any other, not "no step"."""
    store.create(run_id, PLAN)

    assert store.finish(run_id, RunState.FAILURE, step="", error="join failed") is True

    record = store.record(run_id)
    assert record is not None
    assert record.step == ""
    assert record.error == "join failed"


def test_success_stores_no_step_or_error(store: RunStore, run_id: str) -> None:
    """A run finished as SUCCESS without step or error reads back with neither."""
    store.create(run_id, PLAN)

    assert store.finish(run_id, RunState.SUCCESS) is True

    record = store.record(run_id)
    assert record is not None
    assert record.state is RunState.SUCCESS
    assert (record.step, record.error) == (None, None)


def test_finish_of_an_unknown_run_is_refused(store: RunStore) -> None:
    """Finish on a run id never created returns False and creates nothing."""
    assert store.finish("missing", RunState.SUCCESS) is False
    assert store.record("missing") is None


def test_claim_is_once_only_per_marker(store: RunStore, run_id: str, other_run_id: str) -> None:
    """Each marker is claimed once; different markers and runs are independent."""
    store.create(run_id, PLAN)
    store.create(other_run_id, PLAN)

    assert store.claim(run_id, "started:") is True
    assert store.claim(run_id, "started:") is False
    assert store.claim(run_id, "started:1") is True
    assert store.claim(run_id, "completed:") is True
    assert store.claim(other_run_id, "started:") is True
    assert store.claim(run_id, "completed:") is False


def test_claimed_lists_every_marker_of_the_run(
    store: RunStore, run_id: str, other_run_id: str
) -> None:
    """Claimed returns the markers claimed for that run only."""
    store.create(run_id, PLAN)
    store.create(other_run_id, PLAN)
    store.claim(run_id, "started:")
    store.claim(run_id, "started:1.2")
    store.claim(run_id, "started:")
    store.claim(other_run_id, "failed:")

    assert store.claimed(run_id) == {"started:", "started:1.2"}
    assert store.claimed(other_run_id) == {"failed:"}


def test_claim_on_an_unknown_run_is_refused(store: RunStore) -> None:
    """A marker cannot be claimed for a run that does not exist (never created, or expired)."""
    assert store.claim("missing", "started:") is False
    assert store.claimed("missing") == set()


def test_claim_unless_ended_is_refused_once_the_run_has_ended(
    store: RunStore, run_id: str
) -> None:
    """A process's end is claimed by its last step only while the run is under way."""
    store.create(run_id, PLAN)
    store.mark_running(run_id)

    assert store.claim(run_id, "ended:1", unless_ended=True) is True
    assert store.claim(run_id, "ended:1", unless_ended=True) is False
    store.finish(run_id, RunState.CANCELLED)

    assert store.claim(run_id, "ended:2", unless_ended=True) is False
    assert store.claim(run_id, "ended:2") is True  # what a cancel's hooks claim
    assert store.claim("missing", "ended:", unless_ended=True) is False
    assert store.claimed(run_id) == {"ended:1", "ended:2"}


def test_finish_unless_claimed_is_refused_once_the_marker_is_claimed(
    store: RunStore, run_id: str
) -> None:
    """A cancel loses to the completion that claimed the root's end; others still finish."""
    store.create(run_id, PLAN)
    store.mark_running(run_id)
    store.claim(run_id, "ended:", unless_ended=True)

    assert store.finish(run_id, RunState.CANCELLED, error="x", unless_claimed="ended:") is False
    record = store.record(run_id)
    assert record is not None
    assert (record.state, record.error, record.finished_at) == (RunState.RUNNING, None, None)
    assert store.finish(run_id, RunState.SUCCESS, unless_claimed="ended:1") is True
    assert store.finish(run_id, RunState.FAILURE) is False


def test_a_claim_unless_ended_and_a_finish_unless_claimed_racing_have_one_winner(
    store: RunStore, run_id: str
) -> None:
    """The root's completion claiming its end and a cancel ending the run: exactly one wins."""
    for round_ in range(10):
        each = f"{run_id}-{round_}"
        store.create(each, PLAN)
        store.mark_running(each)

        def act(index: int, each: str = each) -> bool:
            if index == 0:
                return store.claim(each, "ended:", unless_ended=True)
            return store.finish(each, RunState.CANCELLED, unless_claimed="ended:")

        claimed, cancelled = race(2, act)

        assert claimed != cancelled
        record = store.record(each)
        assert record is not None
        assert record.state is (RunState.CANCELLED if cancelled else RunState.RUNNING)
        assert store.claimed(each) == ({"ended:"} if claimed else set())


def test_step_records_round_trip(store: RunStore, run_id: str) -> None:
    """put_step stores a StepRecord that step and steps return equal."""
    store.create(run_id, PLAN)
    started = StepRecord(StepState.STARTED, attempts=1, started_at=1700000000.25)
    failed = StepRecord(
        StepState.FAILURE,
        attempts=3,
        started_at=1700000001.5,
        finished_at=1700000002.75,
        error="ValueError: bad input ü",
    )

    store.put_step(run_id, "0", started)
    store.put_step(run_id, "1.2.3", failed)
    store.put_step(run_id, "", StepRecord(StepState.SKIPPED))

    assert store.step(run_id, "0") == started
    assert store.step(run_id, "1.2.3") == failed
    assert store.step(run_id, "4") is None
    assert store.steps(run_id) == {
        "0": started,
        "1.2.3": failed,
        "": StepRecord(StepState.SKIPPED),
    }


def test_put_step_replaces_the_previous_record(store: RunStore, run_id: str) -> None:
    """A step's later record replaces its earlier one."""
    store.create(run_id, PLAN)
    started = StepRecord(StepState.STARTED, attempts=1, started_at=10.0)
    store.put_step(run_id, "0", started)

    store.put_step(run_id, "0", started.moved_to(StepState.SUCCESS, finished_at=11.0))

    assert store.steps(run_id) == {
        "0": StepRecord(StepState.SUCCESS, attempts=1, started_at=10.0, finished_at=11.0)
    }


def test_put_step_on_an_unknown_run_stores_nothing(store: RunStore) -> None:
    """A step record for a run that does not exist (never created, or expired) is dropped."""
    store.put_step("missing", "0", StepRecord(StepState.SKIPPED))

    assert store.step("missing", "0") is None
    assert store.steps("missing") == {}


def test_put_step_if_stores_only_over_the_expected_record(store: RunStore, run_id: str) -> None:
    """Compare-and-set: a new record, then a swap of the record read, but no stale swap."""
    store.create(run_id, PLAN)
    first = StepRecord(StepState.STARTED, attempts=1, started_at=10.0)
    again = first.moved_to(StepState.STARTED, started_at=12.5, deliveries=2)

    assert store.put_step_if(run_id, "0", first, None)
    assert not store.put_step_if(run_id, "0", first, None)  # a record exists now
    assert store.put_step_if(run_id, "0", again, first)
    assert not store.put_step_if(run_id, "0", first, first)  # ``first`` is no longer stored
    assert store.step(run_id, "0") == again


def test_put_step_if_on_an_unknown_run_stores_nothing(store: RunStore) -> None:
    """Like put_step, a compare-and-set for a run that does not exist is refused."""
    assert not store.put_step_if("missing", "0", StepRecord(StepState.STARTED), None)
    assert store.steps("missing") == {}


def test_first_look_reads_the_run_its_plan_and_one_step(store: RunStore, run_id: str) -> None:
    """The record, the plan and, when a path is given, that step's record."""
    store.create(run_id, PLAN)
    started = StepRecord(StepState.STARTED, attempts=1, started_at=10.0)
    store.put_step(run_id, "0", started)

    with_step = store.first_look(run_id, "0")
    without = store.first_look(run_id)

    assert with_step.run == store.record(run_id) == without.run
    assert with_step.plan == PLAN == without.plan
    assert (with_step.step, without.step) == (started, None)
    assert store.first_look(run_id, "1").step is None


def test_first_look_at_an_unknown_run_finds_nothing(store: RunStore) -> None:
    assert store.first_look("missing", "0") == FirstLook(None, None, None)


def test_redis_first_look_is_one_request(
    redis_client: redis.Redis, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a worker process reads of a run it meets first costs one trip to Redis."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    requests: list[str] = []
    execute_command, execute = redis.Redis.execute_command, redis.client.Pipeline.execute

    def command(client: redis.Redis, *args: Any, **options: Any) -> Any:
        requests.append(str(args[0]))
        return execute_command(client, *args, **options)

    def pipeline(pipe: redis.client.Pipeline, *args: Any, **options: Any) -> Any:
        requests.append("pipeline")
        return execute(pipe, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)

    store.first_look(run_id, "0")

    assert requests == ["pipeline"]


def test_putting_step_has_stored_the_record_once_its_block_ends(
    store: RunStore, run_id: str
) -> None:
    """The record is stored by the time the ``with`` block around what follows is left."""
    store.create(run_id, PLAN)
    succeeded = StepRecord(StepState.SUCCESS, attempts=1, started_at=10.0, finished_at=11.0)
    ran = []

    with store.putting_step(run_id, "0", succeeded):
        ran.append(True)

    assert ran == [True]
    assert store.steps(run_id) == {"0": succeeded}


def test_putting_step_stores_the_record_when_its_block_raises(
    store: RunStore, run_id: str
) -> None:
    """What the block raised is raised, and the record was stored all the same."""
    store.create(run_id, PLAN)
    succeeded = StepRecord(StepState.SUCCESS, attempts=1, started_at=10.0, finished_at=11.0)

    with pytest.raises(OSError, match="broker down"), store.putting_step(run_id, "0", succeeded):
        raise OSError("broker down")

    assert store.step(run_id, "0") == succeeded


def test_redis_putting_step_runs_its_block_while_the_record_travels(
    redis_client: redis.Redis, run_id: str
) -> None:
    """The block does not wait for Redis's answer: it runs while the write is held up.

    Redis holds every script while its clients are paused for writes; the block
    finds the record not stored yet, and lets the write go on.
    """
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    succeeded = StepRecord(StepState.SUCCESS, attempts=1, started_at=10.0, finished_at=11.0)
    seen = []
    redis_client.execute_command("CLIENT", "PAUSE", 5_000, "WRITE")
    try:
        with store.putting_step(run_id, "0", succeeded):
            seen.append(store.step(run_id, "0"))
            redis_client.execute_command("CLIENT", "UNPAUSE")
    finally:
        redis_client.execute_command("CLIENT", "UNPAUSE")

    assert seen == [None]
    assert store.step(run_id, "0") == succeeded


def test_redis_putting_step_stores_the_record_after_the_server_lost_its_scripts(
    redis_client: redis.Redis, run_id: str
) -> None:
    """A server restarted or flushed since the store loaded its script: it is loaded again."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    succeeded = StepRecord(StepState.SUCCESS, attempts=1, started_at=10.0, finished_at=11.0)
    redis_client.script_flush()

    with store.putting_step(run_id, "0", succeeded):
        pass

    assert store.step(run_id, "0") == succeeded


def test_delete_forgets_everything_about_the_run(
    store: RunStore, run_id: str, other_run_id: str
) -> None:
    """After delete the run reads as absent and its id can be created again."""
    store.create(run_id, PLAN)
    store.create(other_run_id, PLAN)
    store.mark_running(run_id)
    store.claim(run_id, "started:")
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))
    store.finish(run_id, RunState.FAILURE, step="0", error="boom")

    store.delete(run_id)

    assert store.plan(run_id) is None
    assert store.record(run_id) is None
    assert store.claimed(run_id) == set()
    assert store.steps(run_id) == {}
    assert store.create(run_id, PLAN) is True
    assert store.claim(run_id, "started:") is True
    assert store.record(other_run_id) is not None


def test_delete_of_an_unknown_run_does_nothing(store: RunStore, run_id: str) -> None:
    """Deleting a run id that was never created raises nothing and touches no other run."""
    store.create(run_id, PLAN)

    store.delete("missing")

    assert store.plan(run_id) == PLAN


def race(calls: int, action: Callable[[int], Any]) -> list[Any]:
    """Run ``action(index)`` in ``calls`` threads released at the same moment."""
    barrier = threading.Barrier(calls)
    results: list[Any] = [None] * calls

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        finally:
            if "django.db" in sys.modules:  # Django keeps a connection per thread: close it
                from django.db import connections

                connections.close_all()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_finishes_have_exactly_one_winner(store: RunStore, run_id: str) -> None:
    """Of 20 threads finishing the same run at once, exactly one ends it, and its state sticks."""
    store.create(run_id, PLAN)
    store.mark_running(run_id)
    states = [RunState.SUCCESS, RunState.FAILURE, RunState.CANCELLED]

    results = race(
        20,
        lambda index: store.finish(run_id, states[index % 3], step=str(index), error=str(index)),
    )

    assert results.count(True) == 1
    assert results.count(False) == 19
    winner = results.index(True)
    record = store.record(run_id)
    assert record is not None
    assert (record.state, record.step, record.error) == (
        states[winner % 3],
        str(winner),
        str(winner),
    )


def test_concurrent_claims_have_exactly_one_winner(store: RunStore, run_id: str) -> None:
    """Of 20 threads claiming the same marker at once, exactly one gets it."""
    store.create(run_id, PLAN)

    results = race(20, lambda _: store.claim(run_id, "completed:"))

    assert results.count(True) == 1
    assert store.claimed(run_id) == {"completed:"}


def test_concurrent_step_starts_have_exactly_one_winner(store: RunStore, run_id: str) -> None:
    """Of 20 threads starting the same step from the same record, exactly one starts it."""
    store.create(run_id, PLAN)
    first = StepRecord(StepState.STARTED, attempts=1, started_at=10.0)
    store.put_step(run_id, "0", first)

    results = race(
        20,
        lambda index: store.put_step_if(
            run_id, "0", first.moved_to(StepState.STARTED, deliveries=2, error=str(index)), first
        ),
    )

    assert results.count(True) == 1
    stored = store.step(run_id, "0")
    assert stored is not None
    assert stored.error == str(results.index(True))


def test_concurrent_creates_have_exactly_one_winner(store: RunStore, run_id: str) -> None:
    """Of 20 threads creating the same run id at once, exactly one creates it."""
    results = race(20, lambda _: store.create(run_id, PLAN))

    assert results.count(True) == 1


def run_keys(client: redis.Redis, run_id: str) -> dict[str, int]:
    return {
        key.decode(): client.ttl(key) for key in client.scan_iter(f"tasktronaut:{{{run_id}}}:*")
    }


def test_redis_keys_of_a_run_expire_within_the_ttl(redis_client: redis.Redis, run_id: str) -> None:
    """Every Redis key a run writes carries a TTL of at most the store's ttl."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    store.mark_running(run_id)
    store.claim(run_id, "started:")
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))
    store.finish(run_id, RunState.FAILURE, step="0", error="boom")

    ttls = run_keys(redis_client, run_id)

    assert set(ttls) == {
        f"tasktronaut:{{{run_id}}}:{part}" for part in ("run", "plan", "claims", "steps")
    }
    assert all(0 < ttl <= TTL for ttl in ttls.values()), ttls


def test_redis_keys_of_a_run_expire_after_only_claims_and_steps(
    redis_client: redis.Redis, run_id: str
) -> None:
    """Keys first written by claim or put_step also get the TTL."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))
    store.claim(run_id, "started:")
    store.claim(run_id, "started:")

    ttls = run_keys(redis_client, run_id)

    assert len(ttls) == 4
    assert all(0 < ttl <= TTL for ttl in ttls.values()), ttls


def test_redis_keys_do_not_expire_without_a_ttl(redis_client: redis.Redis, run_id: str) -> None:
    """With no ttl (result_expires unset) the run's keys are kept."""
    store = RedisRunStore(redis_client, ttl=None)
    store.create(run_id, PLAN)
    store.claim(run_id, "started:")
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))

    ttls = run_keys(redis_client, run_id)

    assert len(ttls) == 4
    assert set(ttls.values()) == {-1}


def test_redis_delete_removes_every_key_of_the_run(redis_client: redis.Redis, run_id: str) -> None:
    """Delete leaves no key of the run behind in Redis."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN)
    store.claim(run_id, "started:")
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))

    store.delete(run_id)

    assert run_keys(redis_client, run_id) == {}


def test_arrivals_are_counted_once_per_member(store: RunStore, run_id: str) -> None:
    """A member arriving twice (a redelivered message) counts once; chords count apart."""
    store.create(run_id, PLAN)

    counts = [store.arrive(run_id, "join:1", member) for member in (0, 1, 1, 2)]

    assert counts == [1, 2, 2, 3]
    assert store.arrive(run_id, "step:4", 0) == 1


def test_arrivals_for_an_unknown_run_count_nothing(store: RunStore) -> None:
    """Arriving at a chord of a run that does not exist stores nothing and says 0."""
    assert store.arrive("no-such-run", "join:1", 0) == 0


def test_concurrent_arrivals_are_all_counted(store: RunStore, run_id: str) -> None:
    """Of twenty members arriving at once, at least one sees all twenty (and sends the body)."""
    store.create(run_id, PLAN)

    counts = race(20, lambda member: store.arrive(run_id, "join:1", member))

    assert max(counts) == 20
    assert store.arrive(run_id, "join:1", 0) == 20


STARTED = StepRecord(StepState.STARTED, attempts=1, started_at=10.0)


def created(store: RunStore, run_id: str) -> datetime:
    """Create the run; its creation time as a worker holding its plan knows it."""
    store.create(run_id, PLAN)
    record = store.record(run_id)
    assert record is not None
    return record.created_at


def test_start_step_starts_a_first_message_and_the_run(store: RunStore, run_id: str) -> None:
    """A step with no record, of a run under way: stored STARTED, and the run RUNNING."""
    created_at = created(store, run_id)

    assert store.start_step(run_id, "0", STARTED, created_at) == StepStart(True)

    assert store.step(run_id, "0") == STARTED
    record = store.record(run_id)
    assert record is not None
    assert record.state is RunState.RUNNING


def test_start_step_leaves_a_step_with_a_record_alone(store: RunStore, run_id: str) -> None:
    """A second message for a step gets the records back, for the full admission."""
    created_at = created(store, run_id)
    store.start_step(run_id, "0", STARTED, created_at)
    second = STARTED.moved_to(StepState.STARTED, attempts=2)

    start = store.start_step(run_id, "0", second, created_at)

    assert not start.started
    assert start.step == STARTED
    assert start.run is not None
    assert (start.run.state, start.run.created_at) == (RunState.RUNNING, created_at)
    assert store.step(run_id, "0") == STARTED


def test_start_step_leaves_an_ended_run_alone(store: RunStore, run_id: str) -> None:
    """A step of a cancelled run is not started: the caller sees the run's end."""
    created_at = created(store, run_id)
    store.finish(run_id, RunState.CANCELLED, error="cancelled")

    start = store.start_step(run_id, "0", STARTED, created_at)

    assert not start.started
    assert start.run is not None
    assert start.run.state is RunState.CANCELLED
    assert start.step is None
    assert store.step(run_id, "0") is None


def test_start_step_leaves_a_run_created_at_another_time_alone(
    store: RunStore, run_id: str
) -> None:
    """A run id enqueued again (its first run expired) is not the run whose plan the caller has."""
    created_at = created(store, run_id)
    earlier = datetime.fromtimestamp(created_at.timestamp() - 3600, timezone.utc)

    start = store.start_step(run_id, "0", STARTED, earlier)

    assert not start.started
    assert start.run is not None
    assert start.run.created_at == created_at
    assert store.step(run_id, "0") is None


def test_start_step_of_an_unknown_run_stores_nothing(store: RunStore) -> None:
    """No run, no step: the caller rejects the message."""
    start = store.start_step("no-such-run", "0", STARTED, utc_now())

    assert start == StepStart(False, None, None)
    assert store.step("no-such-run", "0") is None


def test_concurrent_step_starts_of_a_first_message_have_one_winner(
    store: RunStore, run_id: str
) -> None:
    """Of 20 threads starting the same fresh step at once, exactly one starts it."""
    created_at = created(store, run_id)

    results = race(
        20,
        lambda index: (
            store.start_step(
                run_id, "0", STARTED.moved_to(StepState.STARTED, error=str(index)), created_at
            ).started
        ),
    )

    assert results.count(True) == 1
    stored = store.step(run_id, "0")
    assert stored is not None
    assert stored.error == str(results.index(True))


def test_arrive_and_claim_stores_the_step_and_claims_the_body_once_all_are_in(
    store: RunStore, run_id: str
) -> None:
    """The last member in claims the body; a member arriving again counts once, claims nothing."""
    store.create(run_id, PLAN)
    succeeded = STARTED.moved_to(StepState.SUCCESS, finished_at=11.0)

    first = store.arrive_and_claim(run_id, "join:1", 0, 2, ("1.0", succeeded))
    again = store.arrive_and_claim(run_id, "join:1", 0, 2)
    last = store.arrive_and_claim(run_id, "join:1", 1, 2, ("1.1", succeeded))
    late = store.arrive_and_claim(run_id, "join:1", 1, 2)

    assert (first, again, last, late) == (
        Arrival(complete=False, claimed=False),
        Arrival(complete=False, claimed=False),
        Arrival(complete=True, claimed=True),
        Arrival(complete=True, claimed=False),
    )
    assert store.steps(run_id) == {"1.0": succeeded, "1.1": succeeded}
    assert Claim.joined("join:1").marker in store.claimed(run_id)


def test_arrive_and_claim_of_an_unknown_run_stores_nothing(store: RunStore) -> None:
    """Arriving at a chord of a run that does not exist claims nothing and stores no step."""
    succeeded = STARTED.moved_to(StepState.SUCCESS, finished_at=11.0)

    arrival = store.arrive_and_claim("no-such-run", "join:1", 0, 1, ("0", succeeded))

    assert arrival == Arrival(complete=False, claimed=False)
    assert store.steps("no-such-run") == {}


def test_concurrent_last_arrivals_have_one_claimant(store: RunStore, run_id: str) -> None:
    """Of twenty members arriving at once, exactly one claims the body."""
    store.create(run_id, PLAN)

    arrivals = race(20, lambda member: store.arrive_and_claim(run_id, "join:1", member, 20))

    assert [arrival.claimed for arrival in arrivals].count(True) == 1
    assert store.arrive_and_claim(run_id, "join:1", 0, 20) == Arrival(True, False)


@pytest.mark.parametrize("store", ["memory", "redis"], indirect=True)
def test_watch_wakes_a_waiting_client_when_the_run_settles(store: RunStore, run_id: str) -> None:
    """The stores that can tell (Redis publishes, memory signals) end a pause at the settling."""
    store.create(run_id, PLAN)
    store.finish(run_id, RunState.FAILURE, step="0", error="boom")
    watching = threading.Event()

    def settle_when_watched() -> None:
        watching.wait(timeout=10)
        store.settle(run_id)

    settler = threading.Thread(target=settle_when_watched)
    settler.start()
    with store.watch(run_id) as pause:
        watching.set()
        began = time.monotonic()
        pause(30.0)
        waited = time.monotonic() - began
    settler.join(timeout=10)

    record = store.record(run_id)
    assert record is not None
    assert record.settled_at is not None
    assert waited < 10, "the pause outlasted the settling: nobody told the client"


@pytest.mark.parametrize("store", ["memory", "redis"], indirect=True)
def test_watch_is_told_by_a_finish_that_settles(store: RunStore, run_id: str) -> None:
    """A run ending settled (a success) ends the pause too."""
    store.create(run_id, PLAN)
    with store.watch(run_id) as pause:
        store.finish(run_id, RunState.SUCCESS, settled=True)
        began = time.monotonic()
        pause(30.0)
        waited = time.monotonic() - began

    assert waited < 10, "the pause outlasted the settling: nobody told the client"


@pytest.mark.parametrize("store", ["sqlalchemy", "django"], indirect=True)
def test_watch_of_a_database_store_sleeps_its_time(store: RunStore, run_id: str) -> None:
    """A database cannot tell: the pause lasts its time, and the client reads again after it."""
    store.create(run_id, PLAN)
    with store.watch(run_id) as pause:
        store.finish(run_id, RunState.SUCCESS, settled=True)
        began = time.monotonic()
        pause(0.05)
        waited = time.monotonic() - began

    assert waited >= 0.05


SUMMARY = RunSummary(definition="Shipping", arguments="order_id=7, card=<masked>", total=3)


def test_a_new_run_keeps_its_summary_and_has_not_started(store: RunStore, run_id: str) -> None:
    store.create(run_id, PLAN, SUMMARY)

    record = store.record(run_id)
    assert record is not None
    assert (record.definition, record.arguments, record.total) == (
        "Shipping",
        SUMMARY.arguments,
        3,
    )
    assert (record.done, record.failed, record.started_at) == (0, 0, None)
    assert record.progress == (0, 0, 3)


@pytest.mark.parametrize("how", ["mark_running", "start_step"])
def test_a_run_notes_when_a_worker_took_it_up(store: RunStore, run_id: str, how: str) -> None:
    store.create(run_id, PLAN, SUMMARY)
    created = store.record(run_id)
    assert created is not None
    if how == "mark_running":
        store.mark_running(run_id)
    else:
        started = StepRecord(StepState.STARTED, attempts=1, started_at=time.time())
        assert store.start_step(run_id, "0", started, created.created_at).started

    record = store.record(run_id)
    assert record is not None
    assert record.started_at is not None
    assert record.started_at.tzinfo is not None
    assert created.created_at <= record.started_at <= datetime.now(timezone.utc)
    store.mark_running(run_id)
    assert store.record(run_id) == record  # started once


def test_progress_counts_each_step_once_as_it_ends(store: RunStore, run_id: str) -> None:
    store.create(run_id, PLAN, SUMMARY)
    started = StepRecord(StepState.STARTED, attempts=1)
    succeeded = started.moved_to(StepState.SUCCESS)
    failed = started.moved_to(StepState.FAILURE, error="boom")

    def progress() -> tuple[int, int, int]:
        record = store.record(run_id)
        assert record is not None
        return record.done, record.failed, record.total

    store.put_step(run_id, "0", started)
    assert progress() == (0, 0, 3)
    store.put_step(run_id, "0", succeeded)
    store.put_step(run_id, "0", succeeded)  # written again: counted once
    assert progress() == (1, 0, 3)
    assert store.put_step_if(run_id, "1", failed, None)
    assert not store.put_step_if(run_id, "1", failed, None)
    assert progress() == (1, 1, 3)
    store.arrive_and_claim(run_id, "join:2", 0, 1, ("2", succeeded))
    assert progress() == (2, 1, 3)


def test_progress_of_an_unknown_run_is_not_kept(store: RunStore) -> None:
    store.put_step("no-such-run", "0", StepRecord(StepState.SUCCESS))
    assert store.record("no-such-run") is None
    assert store.runs() == []


def _created(store: RunStore, run_id: str, definition: str) -> datetime:
    assert store.create(run_id, PLAN, RunSummary(definition, "", 1))
    record = store.record(run_id)
    assert record is not None
    time.sleep(0.002)  # distinct creation times, whatever the clock's resolution
    return record.created_at


def test_runs_are_listed_newest_first_with_their_records(store: RunStore) -> None:
    ids = [f"run-{index}-{time.time_ns()}" for index in range(4)]
    for run_id in ids:
        _created(store, run_id, "Shipping")
    store.finish(ids[1], RunState.FAILURE, step="0", error="boom")

    listed = store.runs()
    assert [run_id for run_id, _ in listed] == ids[::-1]
    assert dict(listed)[ids[1]] == store.record(ids[1])
    assert [run_id for run_id, _ in store.runs(limit=2)] == ids[:1:-1]


def test_runs_are_filtered_by_definition_state_and_creation_time(store: RunStore) -> None:
    ids = [f"run-{index}-{time.time_ns()}" for index in range(5)]
    times = [
        _created(store, run_id, name)
        for run_id, name in zip(
            ids, ["Shipping", "Billing", "Shipping", "Shipping", "Billing"], strict=True
        )
    ]
    store.mark_running(ids[0])
    store.finish(ids[2], RunState.FAILURE, step="0", error="boom")
    store.finish(ids[3], RunState.FAILURE, step="0", error="boom")
    store.finish(ids[4], RunState.SUCCESS)

    def listed(**filters: Any) -> list[str]:
        return [run_id for run_id, _ in store.runs(**filters)]

    assert listed(definition="Shipping") == [ids[3], ids[2], ids[0]]
    assert listed(state=RunState.FAILURE) == [ids[3], ids[2]]
    assert listed(state=RunState.RUNNING) == [ids[0]]
    assert listed(state=RunState.PENDING) == [ids[1]]
    assert listed(definition="Billing", state=RunState.SUCCESS) == [ids[4]]
    assert listed(since=times[2]) == [ids[4], ids[3], ids[2]]
    assert listed(until=times[2]) == [ids[1], ids[0]]
    assert listed(since=times[1], until=times[4], state=RunState.FAILURE, limit=1) == [ids[3]]
    assert listed(definition="Nobody") == []


def test_prune_forgets_ended_runs_created_before_the_cutoff(store: RunStore) -> None:
    ids = [f"run-{index}-{time.time_ns()}" for index in range(5)]
    times = [_created(store, run_id, "Shipping") for run_id in ids]
    store.finish(ids[0], RunState.SUCCESS)
    store.finish(ids[1], RunState.FAILURE, step="0", error="boom")
    store.put_step(ids[1], "0", StepRecord(StepState.FAILURE, error="boom"))
    store.claim(ids[1], "started:")
    store.mark_running(ids[2])  # under way: kept, however old
    store.finish(ids[4], RunState.SUCCESS)  # too new

    assert store.prune(times[4], state=RunState.FAILURE) == 1
    assert store.record(ids[1]) is None
    assert store.plan(ids[1]) is None
    assert store.steps(ids[1]) == {}
    assert store.claimed(ids[1]) == set()
    assert store.prune(times[4]) == 1
    assert store.record(ids[0]) is None
    assert [run_id for run_id, _ in store.runs()] == [ids[4], ids[3], ids[2]]
    assert store.prune(datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    assert [run_id for run_id, _ in store.runs()] == [ids[3], ids[2]]


def _failed_and_settled(store: RunStore, run_id: str) -> None:
    store.create(run_id, PLAN, SUMMARY)
    store.mark_running(run_id)
    store.put_step(run_id, "0", StepRecord(StepState.SUCCESS, attempts=1))
    store.put_step(run_id, "1", StepRecord(StepState.FAILURE, attempts=2, error="boom"))
    store.put_step(run_id, "2", StepRecord(StepState.SKIPPED))
    for marker in ("started:", "ended:", "ended:1", "joined:join:3"):
        store.claim(run_id, marker)
    store.finish(run_id, RunState.FAILURE, step="1", error="boom")
    store.settle(run_id)


def test_resume_reopens_a_failed_run_with_its_steps_reset(store: RunStore, run_id: str) -> None:
    _failed_and_settled(store, run_id)
    failed = store.record(run_id)
    reset = {
        "1": StepRecord(StepState.PENDING, resumes=0),
        "2": StepRecord(StepState.PENDING, resumes=0),
    }

    assert store.resume(run_id, 0, reset, {"ended:", "ended:1"})

    record = store.record(run_id)
    assert failed is not None
    assert record is not None
    assert (record.state, record.resumes, record.progress) == (RunState.RUNNING, 1, (1, 0, 3))
    assert (record.finished_at, record.step, record.error, record.settled_at) == (None,) * 4
    assert (record.created_at, record.started_at) == (failed.created_at, failed.started_at)
    assert store.steps(run_id) == {"0": StepRecord(StepState.SUCCESS, attempts=1), **reset}
    assert store.claimed(run_id) == {"started:", "joined:join:3"}
    started = StepRecord(StepState.STARTED, attempts=1, resumes=1)
    assert store.put_step_if(run_id, "1", started, reset["1"])  # the resumed step starts
    store.put_step(run_id, "1", started.moved_to(StepState.FAILURE))
    store.finish(run_id, RunState.FAILURE, step="1", error="again")
    store.settle(run_id)
    assert not store.resume(run_id, 0, {"1": StepRecord(StepState.PENDING, resumes=1)}, ())
    assert store.resume(run_id, 1, {"1": StepRecord(StepState.PENDING, resumes=1)}, ())
    again = store.record(run_id)
    assert again is not None
    assert (again.resumes, again.failed) == (2, 0)


@pytest.mark.parametrize("end", ["pending", "running", "success", "unsettled", "cancelled"])
def test_resume_reopens_only_a_failed_or_cancelled_run_that_settled(
    store: RunStore, run_id: str, end: str
) -> None:
    store.create(run_id, PLAN, SUMMARY)
    if end != "pending":
        store.mark_running(run_id)
    if end in ("success", "unsettled", "cancelled"):
        state = {"success": RunState.SUCCESS, "cancelled": RunState.CANCELLED}
        store.finish(run_id, state.get(end, RunState.FAILURE), settled=end != "unsettled")
    before = store.record(run_id)
    pending = {"0": StepRecord(StepState.PENDING)}

    assert store.resume(run_id, 0, pending, ()) is (end == "cancelled")
    if end != "cancelled":
        assert store.record(run_id) == before
        assert store.steps(run_id) == {}
    assert not store.resume("no-such-run", 0, pending, ())
    assert store.record("no-such-run") is None


def test_concurrent_resumes_have_exactly_one_winner(store: RunStore, run_id: str) -> None:
    _failed_and_settled(store, run_id)
    pending = {"1": StepRecord(StepState.PENDING)}

    resumed = race(20, lambda _: store.resume(run_id, 0, pending, ()))

    assert resumed.count(True) == 1
    record = store.record(run_id)
    assert record is not None
    assert record.resumes == 1


def test_a_step_record_not_resumed_keeps_the_text_earlier_versions_wrote() -> None:
    record = StepRecord(StepState.STARTED, attempts=1, started_at=1.5)
    assert record.encode() == (
        '{"state": "STARTED", "attempts": 1, "started_at": 1.5, "finished_at": null, '
        '"error": null, "deliveries": 1}'
    )
    resumed = StepRecord(StepState.STARTED, attempts=1, resumes=2)
    assert json.loads(resumed.encode())["resumes"] == 2
    assert StepRecord.decode(resumed.encode()) == resumed


def test_a_run_cancelled_before_it_started_gets_its_start_when_resumed(
    store: RunStore, run_id: str
) -> None:
    store.create(run_id, PLAN, SUMMARY)
    store.finish(run_id, RunState.CANCELLED, error="cancelled by a client", settled=True)

    assert store.resume(run_id, 0, {"0": StepRecord(StepState.PENDING)}, ())

    record = store.record(run_id)
    assert record is not None
    assert record.started_at is not None
    assert record.created_at <= record.started_at


def test_a_slot_list_is_stored_once_then_compared_and_set(store: RunStore) -> None:
    key = f"key-{time.time_ns()}"
    assert store.slots(key) is None

    assert store.put_slots_if(key, '[["a", 1, 60.0, 1.0]]', None)
    assert not store.put_slots_if(key, "[]", None)  # a list is there: expecting none loses
    assert not store.put_slots_if(key, "[]", '[["b", 1, 60.0, 1.0]]')
    assert store.slots(key) == '[["a", 1, 60.0, 1.0]]'
    assert store.put_slots_if(key, "[]", '[["a", 1, 60.0, 1.0]]')
    assert store.slots(key) == "[]"
    assert not store.put_slots_if(key, None, '[["a", 1, 60.0, 1.0]]')
    assert store.put_slots_if(key, None, "[]")  # deleted: the key keeps nothing
    assert store.slots(key) is None
    assert store.put_slots_if(key, '[["b", 1, 60.0, 1.0]]', None)


def test_of_many_clients_taking_slots_at_once_two_hold_them_and_the_rest_queue(
    store: RunStore,
) -> None:
    from tasktronaut.concurrency import ConcurrencyLimit, ConcurrencyPolicy
    from tasktronaut_celery import slots

    limit = ConcurrencyLimit(
        f"key-{time.time_ns()}", 2, ConcurrencyPolicy.QUEUE, timedelta(hours=1)
    )
    runs = [f"run-{time.time_ns()}-{index}" for index in range(12)]
    for run in runs:
        store.create(run, PLAN)
    start = threading.Barrier(len(runs))
    takings: dict[str, slots.Taking] = {}

    def take(run: str) -> None:
        start.wait()
        takings[run] = slots.take(store, run, limit, wait=True)

    threads = [threading.Thread(target=take, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    holders = sorted(run for run, taking in takings.items() if taking.granted)
    assert len(takings) == len(runs)
    assert len(holders) == 2
    assert all(taking.queued for run, taking in takings.items() if run not in holders)
    queue = [slot.run_id for slot in slots.decode(store.slots(limit.key))]
    assert sorted(queue[:2]) == holders
    assert sorted(queue) == sorted(runs)

    store.finish(holders[0], RunState.SUCCESS)
    assert slots.release(store, holders[0], limit.key) == (queue[2],)
    for run in runs:
        store.finish(run, RunState.SUCCESS)
        slots.release(store, run, limit.key)
    assert store.slots(limit.key) is None  # nobody holds or waits: nothing is kept
