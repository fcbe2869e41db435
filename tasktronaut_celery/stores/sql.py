"""Runs kept in the SQL database of Celery's ``db+...`` result backend (SQLAlchemy).

Four tables beside Celery's own, created on first use as Celery creates its
tables: ``tasktronaut_runs``, ``tasktronaut_claims``, ``tasktronaut_steps`` and
``tasktronaut_arrivals``.
Once-only changes are single statements the database makes atomic: an insert
that hits the primary key, or an update guarded by the current state.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, ProgrammingError
from typing_extensions import override

from ..plan import EncodedPlan
from ..store import (
    UNFINISHED_STATES,
    RunRecord,
    RunState,
    RunStore,
    StepRecord,
    finished_fields,
    now,
    to_moment,
)

metadata = sa.MetaData()

runs = sa.Table(
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

claims = sa.Table(
    "tasktronaut_claims",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("marker", sa.String(1000), primary_key=True),
)

steps = sa.Table(
    "tasktronaut_steps",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("path", sa.String(1000), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
)


arrivals = sa.Table(
    "tasktronaut_arrivals",
    metadata,
    sa.Column("run_id", sa.String(200), primary_key=True),
    sa.Column("chord", sa.String(1000), primary_key=True),
    sa.Column("member", sa.Integer, primary_key=True),
)


class SqlRunStore(RunStore):
    """A store on a SQLAlchemy engine for the result backend's database."""

    def __init__(self, url: str, engine_options: dict[str, Any] | None = None) -> None:
        self._engine = sa.create_engine(url, **(engine_options or {}))
        # A pooled connection must not cross a fork into a prefork worker child.
        os.register_at_fork(after_in_child=lambda: self._engine.dispose(close=False))
        try:
            metadata.create_all(self._engine, checkfirst=True)
        except (IntegrityError, ProgrammingError):  # another process created them meanwhile
            metadata.create_all(self._engine, checkfirst=True)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    @override
    def create(self, run_id: str, plan: EncodedPlan) -> bool:
        row = {
            "run_id": run_id,
            "state": RunState.PENDING.value,
            "created_at": now(),
            "plan_type": plan.content_type,
            "plan_encoding": plan.content_encoding,
            "plan_body": plan.body,
        }
        return self._insert(runs, row)

    @override
    def delete(self, run_id: str) -> None:
        with self._engine.begin() as connection:
            for table in (runs, claims, steps, arrivals):
                connection.execute(table.delete().where(table.c.run_id == run_id))

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        query = sa.select(runs.c.plan_type, runs.c.plan_encoding, runs.c.plan_body)
        with self._engine.connect() as connection:
            row = connection.execute(query.where(runs.c.run_id == run_id)).first()
        return EncodedPlan(row[0], row[1], bytes(row[2])) if row else None

    @override
    def record(self, run_id: str) -> RunRecord | None:
        query = sa.select(
            runs.c.state,
            runs.c.created_at,
            runs.c.finished_at,
            runs.c.step,
            runs.c.error,
            runs.c.settled_at,
        )
        with self._engine.connect() as connection:
            row = connection.execute(query.where(runs.c.run_id == run_id)).first()
        if row is None:
            return None
        state, created_at, finished_at, step, error, settled_at = row
        return RunRecord(
            RunState(state),
            to_moment(created_at),
            to_moment(finished_at),
            step,
            error,
            to_moment(settled_at),
        )

    @override
    def mark_running(self, run_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.state == RunState.PENDING.value)
                .values(state=RunState.RUNNING.value)
            )

    @override
    def finish(
        self,
        run_id: str,
        state: RunState,
        step: str | None = None,
        error: str | None = None,
        settled: bool = False,
        unless_claimed: str | None = None,
    ) -> bool:
        values = finished_fields(state, step, error, settled)
        with self._engine.connect() as connection, connection.begin() as transaction:
            update = (
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.state.in_(UNFINISHED_STATES))
                .values(**values)
            )
            ended = connection.execute(update).rowcount == 1
            # Read after the update, which holds the run's row: a claim made
            # meanwhile (see ``claim``) has been committed, and is seen here.
            if (
                ended
                and unless_claimed is not None
                and self._is_claimed(connection, run_id, unless_claimed)
            ):
                transaction.rollback()
                return False
        return ended

    @override
    def settle(self, run_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                runs.update().where(runs.c.run_id == run_id).values(settled_at=now())
            )

    @override
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        if not unless_ended:
            return self._insert(claims, {"run_id": run_id, "marker": marker})
        try:
            with self._engine.begin() as connection:
                # A no-op update holds the run's row until the claim is committed,
                # so a concurrent ``finish`` either waits for it or ends the run first.
                unfinished = connection.execute(
                    runs.update()
                    .where(runs.c.run_id == run_id, runs.c.state.in_(UNFINISHED_STATES))
                    .values(state=runs.c.state)
                ).rowcount
                if not unfinished:
                    return False
                connection.execute(claims.insert().values(run_id=run_id, marker=marker))
        except IntegrityError:
            return False
        return True

    @staticmethod
    def _is_claimed(connection: sa.Connection, run_id: str, marker: str) -> bool:
        query = sa.select(claims.c.marker).where(
            claims.c.run_id == run_id, claims.c.marker == marker
        )
        return connection.execute(query).first() is not None

    def _run_exists(self, run_id: str) -> bool:
        with self._engine.connect() as connection:
            query = sa.select(runs.c.run_id).where(runs.c.run_id == run_id)
            return connection.execute(query).first() is not None

    @override
    def claimed(self, run_id: str) -> set[str]:
        with self._engine.connect() as connection:
            rows = connection.execute(sa.select(claims.c.marker).where(claims.c.run_id == run_id))
            return {row[0] for row in rows}

    @override
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        row = {"run_id": run_id, "chord": chord, "member": member}
        if not self._insert(arrivals, row) and not self._run_exists(run_id):
            return 0
        query = sa.select(sa.func.count()).where(
            arrivals.c.run_id == run_id, arrivals.c.chord == chord
        )
        with self._engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        encoded = json.dumps(record.to_json())
        where = (steps.c.run_id == run_id, steps.c.path == path)
        for _ in range(2):  # update, else insert; a racing insert makes the update win
            with self._engine.begin() as connection:
                if connection.execute(
                    steps.update().where(*where).values(record=encoded)
                ).rowcount:
                    return
            if self._insert(steps, {"run_id": run_id, "path": path, "record": encoded}):
                return

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        encoded = json.dumps(record.to_json())
        if expected is None:
            return self._insert(steps, {"run_id": run_id, "path": path, "record": encoded})
        was = json.dumps(expected.to_json())
        where = (steps.c.run_id == run_id, steps.c.path == path, steps.c.record == was)
        with self._engine.begin() as connection:
            return bool(
                connection.execute(steps.update().where(*where).values(record=encoded)).rowcount
            )

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        query = sa.select(steps.c.record).where(steps.c.run_id == run_id, steps.c.path == path)
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return StepRecord.from_json(json.loads(row[0])) if row else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        query = sa.select(steps.c.path, steps.c.record).where(steps.c.run_id == run_id)
        with self._engine.connect() as connection:
            return {
                path: StepRecord.from_json(json.loads(raw))
                for path, raw in connection.execute(query)
            }

    def _insert(self, table: sa.Table, row: dict[str, Any]) -> bool:
        """Insert ``row``; ``False`` if its key exists, or if it belongs to no stored run."""
        if table is not runs and not self._run_exists(row["run_id"]):
            return False
        try:
            with self._engine.begin() as connection:
                connection.execute(table.insert().values(**row))
        except IntegrityError:
            return False
        return True
