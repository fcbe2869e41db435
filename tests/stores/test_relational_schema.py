"""The relational stores' tables, upgraded from the layout the earlier version created.

The SQLAlchemy store adds the columns and indexes it lacks on first use; the
Django app does it in migrations 0002 and 0003 (which makes their times datetimes: the
earlier version must be stopped before it). Either way the runs already kept stay
readable, and processes of the earlier version can still create runs during
the upgrade. The tests here drop and recreate the tables, and leave them as a
fresh store would create them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.store import (
    RunRecord,
    RunState,
    RunStore,
    RunSummary,
    StepRecord,
    StepState,
    to_moment,
)
from tasktronaut_celery.stores import sql
from tests.databases import configure_django

PLAN = EncodedPlan("application/json", "utf-8", b'{"version": 1}')
SUMMARY = RunSummary("Shipping", "order_id=7", 2)


def old_runs_table(metadata: sa.MetaData) -> sa.Table:
    """The runs table as the earlier version created it (``git show HEAD~:.../sql.py``)."""
    return sa.Table(
        "tasktronaut_runs",
        metadata,
        sa.Column("run_id", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.Column("step", sa.String(1000)),
        sa.Column("error", sa.Text),
        sa.Column("settled_at", sa.Float),
        sa.Column("plan_type", sa.String(100), nullable=False),
        sa.Column("plan_encoding", sa.String(50), nullable=False),
        sa.Column("plan_body", sa.LargeBinary, nullable=False),
    )


OLD_METADATA = sa.MetaData()
OLD_RUNS = old_runs_table(OLD_METADATA)
for _table in (sql.claims, sql.steps, sql.arrivals):  # unchanged since
    _table.to_metadata(OLD_METADATA)

CREATED = time.time() - 3600
OLD_RUN = {
    "run_id": "old-run",
    "state": RunState.FAILURE.value,
    "created_at": CREATED,
    "finished_at": CREATED + 5,
    "step": "1",
    "error": "boom",
    "settled_at": CREATED + 6,
    "plan_type": PLAN.content_type,
    "plan_encoding": PLAN.content_encoding,
    "plan_body": PLAN.body,
}
OLD_RECORD = RunRecord(
    RunState.FAILURE,
    to_moment(CREATED),
    to_moment(CREATED + 5),
    "1",
    "boom",
    to_moment(CREATED + 6),
)
"""How the run the earlier version kept reads: no start, summary or progress."""


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database for the SQLAlchemy store: the test PostgreSQL, or a SQLite file."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    url: str = request.getfixturevalue("postgres")
    return url


@pytest.fixture
def old_database(database: str) -> Iterator[str]:
    """``database`` with the earlier version's tables, holding one ended run with a step."""
    engine = sa.create_engine(database)
    sql.metadata.drop_all(engine)
    OLD_METADATA.create_all(engine)
    with engine.begin() as connection:
        connection.execute(OLD_RUNS.insert().values(**OLD_RUN))
        failed = StepRecord(StepState.FAILURE, attempts=1, error="boom")
        connection.execute(
            sql.steps.insert().values(run_id="old-run", path="1", record=failed.encode())
        )
        connection.execute(sql.claims.insert().values(run_id="old-run", marker="started:"))
    try:
        yield database
    finally:
        sql.metadata.drop_all(engine)
        sql.metadata.create_all(engine)  # as the other tests' stores expect them
        engine.dispose()


def columns_and_indexes(url: str) -> tuple[set[str], set[str]]:
    engine = sa.create_engine(url)
    try:
        inspector = sa.inspect(engine)
        columns = {column["name"] for column in inspector.get_columns(sql.runs.name)}
        indexes = {str(index["name"]) for index in inspector.get_indexes(sql.runs.name)}
    finally:
        engine.dispose()
    return columns, indexes


def test_the_sqlalchemy_store_upgrades_the_tables_of_the_earlier_version(
    old_database: str,
) -> None:
    store = sql.SqlRunStore(old_database)
    try:
        columns, indexes = columns_and_indexes(old_database)
        assert columns == {column.name for column in sql.runs.columns}
        assert {str(index.name) for index in sql.runs.indexes} <= indexes

        assert store.record("old-run") == OLD_RECORD
        assert store.plan("old-run") == PLAN
        assert store.steps("old-run") == {
            "1": StepRecord(StepState.FAILURE, attempts=1, error="boom")
        }
        assert store.claimed("old-run") == {"started:"}
        works_as_a_new_store(store)
        assert store.prune(to_moment(CREATED + 1)) == 1
        assert store.record("old-run") is None
        assert store.steps("old-run") == {}
    finally:
        store.close()


def works_as_a_new_store(store: RunStore) -> None:
    """A new run keeps its summary, start and progress, and is listed before the old one."""
    assert store.create("new-run", PLAN, SUMMARY)
    store.mark_running("new-run")
    started = StepRecord(StepState.STARTED, attempts=1)
    assert store.put_step_if("new-run", "0", started, None)
    store.put_step("new-run", "0", started.moved_to(StepState.SUCCESS))
    record = store.record("new-run")
    assert record is not None
    assert record.started_at is not None
    assert (record.definition, record.arguments, record.progress) == (
        "Shipping",
        "order_id=7",
        (1, 0, 2),
    )
    assert [run_id for run_id, _ in store.runs()] == ["new-run", "old-run"]
    assert store.runs(definition="Shipping") == [("new-run", record)]
    assert store.runs(state=RunState.FAILURE) == [("old-run", OLD_RECORD)]
    assert store.runs(until=record.created_at - timedelta(minutes=30)) == [("old-run", OLD_RECORD)]


def test_the_earlier_version_still_creates_runs_in_the_upgraded_tables(
    old_database: str,
) -> None:
    """Its processes, still running during an upgrade, insert rows without the new columns."""
    store = sql.SqlRunStore(old_database)
    engine = sa.create_engine(old_database)
    try:
        with engine.begin() as connection:
            connection.execute(
                OLD_RUNS.insert().values(
                    **{**OLD_RUN, "run_id": "older-code", "state": RunState.PENDING.value}
                )
            )
        store.mark_running("older-code")
        store.put_step("older-code", "0", StepRecord(StepState.SUCCESS, attempts=1))

        record = store.record("older-code")
        assert record is not None
        assert (record.state, record.definition, record.arguments) == (RunState.RUNNING, "", "")
        assert record.progress == (1, 0, 0)
    finally:
        engine.dispose()
        store.close()


def test_a_fresh_store_has_nothing_to_upgrade(database: str) -> None:
    engine = sa.create_engine(database)
    sql.metadata.drop_all(engine)
    try:
        sql.SqlRunStore(database).close()
        sql.upgrade(engine)  # nothing left to add

        columns, indexes = columns_and_indexes(database)
        assert columns == {column.name for column in sql.runs.columns}
        assert {str(index.name) for index in sql.runs.indexes} <= indexes
    finally:
        sql.metadata.drop_all(engine)
        sql.metadata.create_all(engine)
        engine.dispose()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_processes_upgrading_the_tables_at_once_all_start(old_database: str) -> None:
    """Workers starting together after an upgrade each find or add the columns and indexes."""
    calls = 8
    barrier = threading.Barrier(calls)
    errors: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            sql.SqlRunStore(old_database).close()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    store = sql.SqlRunStore(old_database)
    try:
        assert store.record("old-run") == OLD_RECORD
    finally:
        store.close()


OLD_DJANGO_COLUMNS = (
    "run_id, state, created_at, finished_at, step, error, settled_at, "
    "plan_type, plan_encoding, plan_body"
)


def insert_old_django_run(run_id: str, state: RunState = RunState.FAILURE) -> None:
    """Insert a run as the earlier version's model did: its columns only."""
    from django.db import connection

    row: dict[str, Any] = {**OLD_RUN, "run_id": run_id, "state": state.value}
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO tasktronaut_runrow ({OLD_DJANGO_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [row[name.strip()] for name in OLD_DJANGO_COLUMNS.split(",")],
        )


def assert_migrates_back_and_forth(store: RunStore) -> None:
    """Migrating back to 0002 gives the times in seconds again; forward, as they were."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "tasktronaut", "0002", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT created_at, finished_at FROM tasktronaut_runrow WHERE run_id = %s", ["old-run"]
        )
        assert cursor.fetchone() == pytest.approx((CREATED, CREATED + 5), abs=1e-6)
    call_command("migrate", "tasktronaut", verbosity=0)
    assert store.record("old-run") == OLD_RECORD


@pytest.mark.usefixtures("postgres")
def test_the_django_migration_keeps_the_runs_of_the_earlier_schema() -> None:
    configure_django()
    from django.core.management import call_command

    from tasktronaut_celery.contrib.django.models import ClaimRow, RunRow, StepRow
    from tasktronaut_celery.contrib.django.store import DjangoRunStore

    for model in (RunRow, ClaimRow, StepRow):
        model.objects.all().delete()
    call_command("migrate", "tasktronaut", "0001", verbosity=0)
    try:
        insert_old_django_run("old-run")
        failed = StepRecord(StepState.FAILURE, attempts=1, error="boom")
        StepRow.objects.create(run_id="old-run", path="1", record=failed.encode())
        ClaimRow.objects.create(run_id="old-run", marker="started:")

        call_command("migrate", "tasktronaut", "0002", verbosity=0)
        insert_old_django_run("older-code", RunState.PENDING)  # the database has the defaults
        call_command("migrate", "tasktronaut", verbosity=0)

        store = DjangoRunStore()
        assert store.record("old-run") == OLD_RECORD
        assert store.plan("old-run") == PLAN
        assert store.steps("old-run") == {"1": failed}
        assert store.claimed("old-run") == {"started:"}
        assert RunRow.objects.get(run_id="old-run").created_at == to_moment(CREATED)
        record = store.record("older-code")
        assert record is not None
        assert (record.definition, record.progress) == ("", (0, 0, 0))
        store.delete("older-code")
        works_as_a_new_store(store)
        assert_migrates_back_and_forth(store)
        assert store.prune(to_moment(CREATED + 1)) == 1
        assert store.record("old-run") is None
    finally:
        call_command("migrate", "tasktronaut", verbosity=0)
        for model in (RunRow, ClaimRow, StepRow):
            model.objects.all().delete()


@pytest.mark.usefixtures("postgres")
def test_the_django_models_and_migrations_agree() -> None:
    configure_django()
    from django.core.management import call_command

    call_command("makemigrations", "tasktronaut", check=True, dry_run=True, verbosity=0)


@pytest.fixture(params=["sqlalchemy", "django"])
def relational_store(request: pytest.FixtureRequest) -> Iterator[RunStore]:
    """Each relational store on the test PostgreSQL, its tables emptied."""
    url = request.getfixturevalue("postgres")
    if request.param == "sqlalchemy":
        store = sql.SqlRunStore(url)
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            for table in reversed(sql.metadata.sorted_tables):
                connection.execute(table.delete())
        engine.dispose()
        yield store
        store.close()
        return
    configure_django()
    from django.apps import apps

    from tasktronaut_celery.contrib.django.store import DjangoRunStore

    for model in apps.get_app_config("tasktronaut").get_models():
        model.objects.all().delete()
    yield DjangoRunStore()


def race(calls: int, action: Any) -> list[Any]:
    """``action(index)`` in ``calls`` threads released at once; their results."""
    barrier = threading.Barrier(calls)
    results: list[Any] = [None] * calls

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action(index)
        finally:
            from django.conf import settings
            from django.db import connections

            if settings.configured:
                connections.close_all()  # Django keeps a connection per thread

    threads = [threading.Thread(target=run, args=(index,)) for index in range(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def progress(store: RunStore, run_id: str) -> tuple[int, int, int]:
    record = store.record(run_id)
    assert record is not None
    return record.progress


def test_a_step_ended_by_many_writers_at_once_counts_once(relational_store: RunStore) -> None:
    store = relational_store
    store.create("run", PLAN, SUMMARY)
    started = StepRecord(StepState.STARTED, attempts=1)
    assert store.put_step_if("run", "0", started, None)
    assert store.put_step_if("run", "1", started, None)
    succeeded = started.moved_to(StepState.SUCCESS)
    failed = started.moved_to(StepState.FAILURE, error="boom")

    race(12, lambda index: store.put_step("run", "0", succeeded))
    won = race(12, lambda index: store.put_step_if("run", "1", failed, started))

    assert won.count(True) == 1
    assert progress(store, "run") == (1, 1, 2)
    assert store.steps("run") == {"0": succeeded, "1": failed}


def test_steps_ending_at_once_all_count(relational_store: RunStore) -> None:
    store = relational_store
    store.create("run", PLAN, RunSummary("Shipping", "", 16))

    def end(index: int) -> None:
        started = StepRecord(StepState.STARTED, attempts=1)
        assert store.put_step_if("run", str(index), started, None)
        ended = StepState.SUCCESS if index % 4 else StepState.FAILURE
        store.put_step("run", str(index), started.moved_to(ended))

    race(16, end)

    assert progress(store, "run") == (12, 4, 16)


def test_a_resume_racing_steps_that_end_neither_deadlocks_nor_miscounts(
    relational_store: RunStore,
) -> None:
    """A resume takes the run's row and then steps', as a counted step write does."""
    store = relational_store
    store.create("run", PLAN, RunSummary("Shipping", "", 8))
    store.mark_running("run")
    started = StepRecord(StepState.STARTED, attempts=1)
    for index in range(8):
        assert store.put_step_if("run", str(index), started, None)
    store.finish("run", RunState.FAILURE, step="0", error="boom", settled=True)
    reset = {str(index): StepRecord(StepState.PENDING) for index in range(0, 8, 2)}

    def act(index: int) -> bool:
        if index == 8:
            return store.resume("run", 0, reset, ())
        store.put_step("run", str(index), started.moved_to(StepState.SUCCESS))
        return True

    assert all(race(9, act))

    record = store.record("run")
    assert record is not None
    assert (record.state, record.resumes, record.done) == (RunState.RUNNING, 1, 8)
