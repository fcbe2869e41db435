"""The Redis store's index of runs: kept by its scripts, cleaned as runs expire, read narrowly.

The contract (listing, pruning, progress) is tested for every store in
``test_stores.py``; these tests look at the Redis keys themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import redis
import redis.client

from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.store import RunState, RunSummary, StepRecord, StepState
from tasktronaut_celery.stores.redis import RedisRunStore
from tests.support import wait_until

TTL = 60
PLAN = EncodedPlan("application/json", "utf-8", b'{"version": 1}')
SHIPPING = RunSummary("Shipping", "order_id=7", 2)
ALL = "tasktronaut:runs"


def state_index(state: RunState) -> str:
    return f"{ALL}:state:{state.value}"


def definition_index(name: str) -> str:
    return f"{ALL}:definition:{name}"


def indexes_of(client: redis.Redis, run_id: str) -> set[str]:
    """The index keys that list ``run_id``."""
    keys = [key.decode() for key in client.keys(f"{ALL}*")]
    return {key for key in keys if client.zscore(key, run_id) is not None}


def keys_of(client: redis.Redis, run_id: str) -> set[str]:
    """Every Redis key holding something of ``run_id``: its own keys and index entries."""
    own = {key.decode() for key in client.scan_iter() if f"{{{run_id}}}" in key.decode()}
    return own | indexes_of(client, run_id)


def listed(store: RedisRunStore, **filters: Any) -> list[str]:
    return [run_id for run_id, _ in store.runs(**filters)]


def worked_on(store: RedisRunStore, run_id: str) -> None:
    """Write every kind of key a run has: steps, claims, chord arrivals; then fail it."""
    started = StepRecord(StepState.STARTED, attempts=1)
    record = store.record(run_id)
    assert record is not None
    assert store.start_step(run_id, "0", started, record.created_at).started
    store.claim(run_id, "started:")
    store.arrive_and_claim(run_id, "join:2", 0, 2, ("0", started.moved_to(StepState.SUCCESS)))
    store.put_step(run_id, "1", started.moved_to(StepState.FAILURE, error="boom"))
    store.arrive(run_id, "step:3", 0)
    store.finish(run_id, RunState.FAILURE, step="1", error="boom", settled=True)


@contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Counts the Redis requests sent meanwhile (a pipeline is one) and the records it reads."""
    sent = {"request": 0, "hgetall": 0}

    def counted(call: Callable[..., Any], what: str) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            sent[what] += 1
            return call(*args, **kwargs)

        return counting

    with pytest.MonkeyPatch.context() as patch:
        # Single commands go through Redis.execute_command; a pipeline queues them instead.
        patch.setattr(
            redis.Redis, "execute_command", counted(redis.Redis.execute_command, "request")
        )
        patch.setattr(
            redis.client.Pipeline, "execute", counted(redis.client.Pipeline.execute, "request")
        )
        patch.setattr(
            redis.client.Pipeline, "hgetall", counted(redis.client.Pipeline.hgetall, "hgetall")
        )
        yield sent


def test_the_scripts_keep_a_run_in_the_index_of_its_state(
    redis_client: redis.Redis, run_id: str
) -> None:
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN, SHIPPING)
    assert indexes_of(redis_client, run_id) == {
        ALL,
        state_index(RunState.PENDING),
        definition_index("Shipping"),
    }
    record = store.record(run_id)
    assert record is not None
    assert redis_client.zscore(ALL, run_id) == record.created_at.timestamp()

    worked_on(store, run_id)

    assert indexes_of(redis_client, run_id) == {
        ALL,
        state_index(RunState.FAILURE),
        definition_index("Shipping"),
    }
    assert store.resume(run_id, 0, {"1": StepRecord(StepState.PENDING, resumes=1)}, ["started:"])
    assert state_index(RunState.RUNNING) in indexes_of(redis_client, run_id)
    assert state_index(RunState.FAILURE) not in indexes_of(redis_client, run_id)
    record = store.record(run_id)
    assert record is not None
    assert (record.state, record.done, record.failed, record.resumes) == (
        RunState.RUNNING,
        1,
        0,
        1,
    )
    assert (record.finished_at, record.settled_at, record.step, record.error) == (None,) * 4
    assert store.claimed(run_id) == set()
    assert not store.resume(run_id, 1, {}, [])  # running: not resumed again


def test_index_keys_expire_with_the_runs_they_list(redis_client: redis.Redis, run_id: str) -> None:
    """Index keys get the ttl on create, and again whenever a run they list is written."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN, SHIPPING)
    index = [ALL, state_index(RunState.PENDING), definition_index("Shipping")]
    assert all(0 < redis_client.ttl(key) <= TTL for key in index)

    for key in index:
        redis_client.expire(key, 5)
    store.put_step(run_id, "0", StepRecord(StepState.STARTED, attempts=1))

    assert all(redis_client.ttl(key) > 5 for key in index)


def test_index_keys_do_not_expire_without_a_ttl(redis_client: redis.Redis, run_id: str) -> None:
    store = RedisRunStore(redis_client, ttl=None)
    store.create(run_id, PLAN, SHIPPING)
    store.finish(run_id, RunState.SUCCESS)

    assert {redis_client.ttl(key) for key in indexes_of(redis_client, run_id)} == {-1}


def test_an_idle_index_vanishes_with_its_runs(redis_client: redis.Redis, run_id: str) -> None:
    store = RedisRunStore(redis_client, ttl=1)
    store.create(run_id, PLAN, SHIPPING)
    worked_on(store, run_id)
    assert indexes_of(redis_client, run_id)

    wait_until(lambda: not redis_client.keys(), 10, "every key of the run and its index gone")


def test_a_listing_skips_and_removes_runs_whose_keys_expired(
    redis_client: redis.Redis, run_id: str, other_run_id: str
) -> None:
    RedisRunStore(redis_client, ttl=1).create(run_id, PLAN, SHIPPING)
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(other_run_id, PLAN, SHIPPING)  # keeps the index keys for TTL seconds
    wait_until(lambda: store.record(run_id) is None, 10, "the short-lived run expired")
    assert indexes_of(redis_client, run_id)  # left behind, until met

    assert listed(store, definition="Shipping") == [other_run_id]

    assert indexes_of(redis_client, run_id) == set()
    assert listed(store) == [other_run_id]


def test_a_create_removes_the_oldest_entries_of_runs_that_expired(
    redis_client: redis.Redis, run_id: str, other_run_id: str
) -> None:
    short = RedisRunStore(redis_client, ttl=1)
    short.create(run_id, PLAN, SHIPPING)
    RedisRunStore(redis_client, ttl=TTL).create(f"{other_run_id}-kept", PLAN, SHIPPING)
    wait_until(lambda: short.record(run_id) is None, 10, "the short-lived run expired")
    assert indexes_of(redis_client, run_id)

    short.create(other_run_id, PLAN, SHIPPING)  # looks at the index entries it adds to

    assert indexes_of(redis_client, run_id) == set()
    assert indexes_of(redis_client, f"{other_run_id}-kept") == {
        ALL,
        state_index(RunState.PENDING),
        definition_index("Shipping"),
    }


def test_a_listing_removes_entries_of_deleted_hashes(redis_client: redis.Redis) -> None:
    """A run whose hash is gone (expiry, simulated) is not listed; the listing reads on past it."""
    store = RedisRunStore(redis_client, ttl=TTL)
    ids = [f"run-{index}-{time.time_ns()}" for index in range(6)]
    for run_id in ids:
        store.create(run_id, PLAN, SHIPPING)
        time.sleep(0.002)
    for run_id in ids[2:]:  # the four newest
        redis_client.delete(f"tasktronaut:{{{run_id}}}:run")

    assert listed(store, state=RunState.PENDING, limit=1) == [ids[1]]

    for run_id in ids[2:]:
        assert indexes_of(redis_client, run_id) == {definition_index("Shipping")}
    assert listed(store, definition="Shipping") == [ids[1], ids[0]]
    assert all(indexes_of(redis_client, run_id) == set() for run_id in ids[2:])


def test_a_listing_pages_through_runs_created_at_the_same_moment(
    redis_client: redis.Redis,
) -> None:
    """Entries with equal scores are read once each, whether skipped or gone."""
    store = RedisRunStore(redis_client, ttl=TTL)
    ids = [f"run-{letter}" for letter in "abcdef"]  # read newest first: f, e, ..., a
    for run_id, name in zip(ids, ["Mine"] * 3 + ["Other"] * 3, strict=True):
        store.create(run_id, PLAN, RunSummary(name, "", 1))
    for index in range(5):  # more runs of Mine than runs PENDING: the state's index is read
        store.create(f"ended-{index}", PLAN, RunSummary("Mine", "", 1))
        store.finish(f"ended-{index}", RunState.SUCCESS)
    same = 4_000_000_000.0  # newer than the ended runs
    redis_client.zadd(state_index(RunState.PENDING), dict.fromkeys(ids, same), xx=True)
    redis_client.zadd(ALL, dict.fromkeys(ids, same), xx=True)

    assert listed(store, definition="Mine", state=RunState.PENDING, limit=2) == [
        "run-c",
        "run-b",
    ]
    assert listed(store, definition="Mine", state=RunState.PENDING) == ["run-c", "run-b", "run-a"]

    redis_client.delete("tasktronaut:{run-f}:run", "tasktronaut:{run-e}:run")
    assert listed(store, limit=2) == ["run-d", "run-c"]
    assert listed(store, state=RunState.PENDING) == ["run-d", "run-c", "run-b", "run-a"]
    assert indexes_of(redis_client, "run-f") == {definition_index("Other")}


def test_a_run_stored_before_the_index_reads_with_defaults_and_is_not_listed(
    redis_client: redis.Redis, run_id: str
) -> None:
    """A hash an earlier version wrote has no summary or progress; its run is kept out of the index."""
    store = RedisRunStore(redis_client, ttl=TTL)
    created = repr(time.time())
    redis_client.hset(
        f"tasktronaut:{{{run_id}}}:run", mapping={"state": "PENDING", "created_at": created}
    )
    record = store.record(run_id)
    assert record is not None
    assert (record.definition, record.arguments, record.total, record.done, record.failed) == (
        "",
        "",
        0,
        0,
        0,
    )
    assert (record.started_at, record.resumes) == (None, 0)

    store.mark_running(run_id)
    store.put_step(run_id, "0", StepRecord(StepState.SUCCESS, attempts=1))
    store.finish(run_id, RunState.FAILURE, step="1", error="boom", settled=True)

    record = store.record(run_id)
    assert record is not None
    assert (record.state, record.done, record.failed) == (RunState.FAILURE, 1, 0)
    assert record.started_at is not None
    assert store.runs() == []
    assert redis_client.keys(f"{ALL}*") == []


def test_delete_leaves_nothing_of_the_run(
    redis_client: redis.Redis, run_id: str, other_run_id: str
) -> None:
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN, SHIPPING)
    worked_on(store, run_id)
    store.create(other_run_id, PLAN, SHIPPING)
    assert f"tasktronaut:{{{run_id}}}:arrived:step:3" in keys_of(redis_client, run_id)

    store.delete(run_id)

    assert keys_of(redis_client, run_id) == set()
    assert listed(store) == [other_run_id]

    store.delete(other_run_id)
    assert redis_client.keys() == []


@pytest.mark.parametrize("ttl", [TTL, None])
def test_prune_leaves_nothing_of_the_runs_it_forgets(
    redis_client: redis.Redis, run_id: str, other_run_id: str, ttl: int | None
) -> None:
    store = RedisRunStore(redis_client, ttl=ttl)
    store.create(run_id, PLAN, SHIPPING)
    worked_on(store, run_id)
    store.create(other_run_id, PLAN, SHIPPING)
    store.mark_running(other_run_id)
    later = datetime.now(timezone.utc) + timedelta(seconds=1)

    assert store.prune(later, RunState.SUCCESS) == 0
    assert store.prune(later) == 1

    assert keys_of(redis_client, run_id) == set()
    assert listed(store) == [other_run_id]
    store.finish(other_run_id, RunState.CANCELLED)
    assert store.prune(later, RunState.CANCELLED) == 1
    assert redis_client.keys() == []


def test_prune_of_many_runs_reads_them_in_batches(redis_client: redis.Redis) -> None:
    store = RedisRunStore(redis_client, ttl=TTL)
    ids = [f"run-{index}" for index in range(60)]
    for index, run_id in enumerate(ids):
        store.create(run_id, PLAN, SHIPPING)
        if index % 3:
            store.finish(run_id, RunState.SUCCESS if index % 3 == 1 else RunState.FAILURE)
    later = datetime.now(timezone.utc) + timedelta(seconds=1)

    with counting() as sent:
        assert store.prune(later) == 40

    assert sent["request"] == 9  # per ended state: entries, their chords, deletes; none left
    assert sorted(listed(store, limit=100)) == sorted(ids[::3])


def test_a_listing_by_state_reads_only_the_runs_in_that_state(
    redis_client: redis.Redis,
) -> None:
    store = RedisRunStore(redis_client, ttl=TTL)
    for index in range(2_000):
        store.create(f"bulk-{index}", PLAN, SHIPPING)
        store.finish(f"bulk-{index}", RunState.SUCCESS)
    failed = [f"failed-{index}" for index in range(7)]
    for run_id in failed:
        store.create(run_id, PLAN, RunSummary("Billing", "", 1))
        store.finish(run_id, RunState.FAILURE, step="0", error="boom")
    store.create("rare", PLAN, RunSummary("Rare", "", 1))
    store.finish("rare", RunState.SUCCESS)

    with counting() as sent:
        assert listed(store, state=RunState.FAILURE) == failed[::-1]
    assert sent == {"request": 2, "hgetall": 7}  # the index, then the candidates' records

    with counting() as sent:
        assert listed(store, state=RunState.SUCCESS, limit=10) == [
            "rare",
            *(f"bulk-{index}" for index in range(1999, 1990, -1)),
        ]
    assert sent == {"request": 2, "hgetall": 10}

    with counting() as sent:  # the definition's index is the narrower
        assert listed(store, state=RunState.SUCCESS, definition="Rare") == ["rare"]
    assert sent == {"request": 3, "hgetall": 1}  # the two indexes' sizes, the index, a record


def test_a_settled_or_resumed_run_keeps_its_chord_arrivals_as_long_as_its_plan(
    redis_client: redis.Redis, run_id: str
) -> None:
    """Arrivals are written only as members arrive; a resume hours later still needs them."""
    store = RedisRunStore(redis_client, ttl=TTL)
    store.create(run_id, PLAN, RunSummary("Shipping", "", 3))
    store.arrive_and_claim(run_id, "join:1", 0, 2, ("1.0", StepRecord(StepState.SUCCESS)))
    arrived = f"tasktronaut:{{{run_id}}}:arrived:join:1"
    chords = f"tasktronaut:{{{run_id}}}:arrivals"
    for key in (arrived, chords):
        redis_client.expire(key, 5)  # as if the member arrived long before the run ended
    store.finish(run_id, RunState.FAILURE, step="1.1", error="boom")

    store.settle(run_id)
    assert min(redis_client.ttl(arrived), redis_client.ttl(chords)) > TTL - 5
    for key in (arrived, chords):
        redis_client.expire(key, 5)
    assert store.resume(run_id, 0, {"1.1": StepRecord(StepState.PENDING)}, ())
    assert min(redis_client.ttl(arrived), redis_client.ttl(chords)) > TTL - 5
    assert redis_client.smembers(arrived) == {b"0"}
