"""The one stored text of a step record, and the run states the stores derive from RunState."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
import sqlalchemy

from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.store import RunState, StepRecord, StepState
from tasktronaut_celery.stores import redis, relational
from tasktronaut_celery.stores.sql import SqlRunStore, steps

RECORDS = [
    StepRecord(StepState.STARTED, attempts=1, started_at=1764633600.125),
    StepRecord(
        StepState.RETRY,
        attempts=2,
        started_at=1764633600.0,
        finished_at=1764633601.5,
        error='ValueError: "café" is not a number',
        deliveries=3,
    ),
    StepRecord(StepState.SKIPPED),
]


def written_before(record: StepRecord) -> str:
    """How the stores encoded a step record before ``StepRecord.encode`` (each its own copy).

    Those versions knew no ``resumes``: their records are the ones no resume ran.
    """
    assert not record.resumes
    fields = {name: value for name, value in asdict(record).items() if name != "resumes"}
    return json.dumps({**fields, "state": record.state.value})


def test_encode_writes_the_text_earlier_versions_wrote() -> None:
    """Compare-and-set matches stored text, so a record written before an upgrade must match."""
    assert RECORDS[0].encode() == (
        '{"state": "STARTED", "attempts": 1, "started_at": 1764633600.125, '
        '"finished_at": null, "error": null, "deliveries": 1}'
    )
    assert RECORDS[1].encode() == (
        '{"state": "RETRY", "attempts": 2, "started_at": 1764633600.0, '
        '"finished_at": 1764633601.5, "error": "ValueError: \\"caf\\u00e9\\" is not a number", '
        '"deliveries": 3}'
    )


@pytest.mark.parametrize("record", RECORDS, ids=lambda record: record.state.value)
def test_decode_reads_back_what_encode_wrote(record: StepRecord) -> None:
    """Decoding the stored text, as text or as the bytes Redis returns, gives the record."""
    assert StepRecord.decode(record.encode()) == record
    assert StepRecord.decode(record.encode().encode()) == record


def test_decode_reads_any_json_spelling_of_a_record() -> None:
    """Key order and spacing do not matter for reading."""
    record = RECORDS[1]
    data = json.loads(record.encode())

    assert StepRecord.decode(json.dumps(data, sort_keys=True, separators=(",", ":"))) == record


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database: the relational store without a database server."""
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlRunStore]:
    """The SQLAlchemy store on :func:`sqlite_url`."""
    store = SqlRunStore(sqlite_url)
    yield store
    store.close()


def test_a_step_written_before_an_upgrade_is_compared_and_set(
    sqlite_url: str, sqlite_store: SqlRunStore
) -> None:
    """A retry of a run in flight during an upgrade starts on the record the old code wrote."""
    sqlite_store.create("run", EncodedPlan("application/json", "utf-8", b"{}"))
    retrying = RECORDS[1]
    engine = sqlalchemy.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            steps.insert().values(run_id="run", path="0", record=written_before(retrying))
        )
    engine.dispose()
    read = sqlite_store.step("run", "0")
    assert read is not None
    assert read == retrying

    started = read.moved_to(StepState.STARTED, attempts=3)

    assert sqlite_store.put_step_if("run", "0", started, read) is True
    assert sqlite_store.step("run", "0") == started


def test_the_relational_store_runs_a_step_on_sqlite(sqlite_store: SqlRunStore) -> None:
    """The shared algorithm over SQLAlchemy's primitives, without a database server."""
    plan = EncodedPlan("application/json", "utf-8", b"{}")
    assert sqlite_store.create("run", plan) is True
    assert sqlite_store.put_step_if("run", "0", RECORDS[0], None) is True
    assert sqlite_store.put_step_if("run", "0", RECORDS[0], None) is False
    assert sqlite_store.arrive("run", "1", 0) == sqlite_store.arrive("run", "1", 0) == 1
    assert sqlite_store.claim("run", "ended:", unless_ended=True) is True
    assert sqlite_store.finish("run", RunState.CANCELLED, unless_claimed="ended:") is False
    assert sqlite_store.finish("run", RunState.SUCCESS) is True
    assert sqlite_store.claim("run", "late", unless_ended=True) is False

    sqlite_store.delete("run")

    assert sqlite_store.record("run") is None
    assert sqlite_store.steps("run") == {}
    assert sqlite_store.arrive("run", "1", 1) == 0


def test_the_stores_take_the_ended_states_from_run_state() -> None:
    """Redis's scripts and the relational guards name the states ``RunState`` says."""
    ended = {state.value for state in RunState if state.finished}
    for script in (redis._FINISH, redis._HSET_IF_RUN):
        assert script.startswith(redis._ENDED)
        assert {value for value in ended if f"'{value}'" in script} == ended
        assert "'SUCCESS' or" not in script  # no hand-made list beside the derived one
    assert set(relational.UNFINISHED_STATES) == {state.value for state in RunState} - ended
