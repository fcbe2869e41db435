"""Runs kept in the SQL database of Celery's ``db+...`` result backend (SQLAlchemy).

Five tables beside Celery's own, created on first use as Celery creates its
tables: ``tasktronaut_runs``, ``tasktronaut_claims``, ``tasktronaut_steps``,
``tasktronaut_arrivals`` and ``tasktronaut_slots``. A database an earlier
version created is brought up to date in place on first use: the tables it
lacks are created, the columns and indexes it lacks added (see
:func:`upgrade`). The algorithm is :class:`~.relational.RelationalRunStore`'s;
this module says how SQLAlchemy reads and writes their rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DatabaseError, IntegrityError, ProgrammingError
from typing_extensions import override

from tasktronaut.concurrency import KEY_LENGTH

from .relational import DEFINITION_LENGTH, Range, RelationalRunStore, Table, Where

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
    # Added by version 0.4: the columns below have defaults in the database, so
    # the rows of runs an earlier version kept, or still creates, read as runs
    # with no summary or progress.
    sa.Column("started_at", sa.Float),
    sa.Column("definition", sa.String(DEFINITION_LENGTH), nullable=False, server_default=""),
    sa.Column("arguments", sa.Text, nullable=False, server_default=""),
    sa.Column("total", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("done", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("failed", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("resumes", sa.Integer, nullable=False, server_default=sa.text("0")),
    # For listings, newest first: all runs, or those in a state, or of a definition.
    sa.Index("ix_tasktronaut_runs_created_at", "created_at"),
    sa.Index("ix_tasktronaut_runs_state_created_at", "state", "created_at"),
    sa.Index("ix_tasktronaut_runs_definition_created_at", "definition", "created_at"),
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


slots = sa.Table(
    "tasktronaut_slots",
    metadata,
    sa.Column("concurrency_key", sa.String(KEY_LENGTH), primary_key=True),
    sa.Column("holders", sa.Text, nullable=False),
)


_TABLES: dict[Table, sa.Table] = {
    "runs": runs,
    "claims": claims,
    "steps": steps,
    "arrivals": arrivals,
    "slots": slots,
}


class SqlRunStore(RelationalRunStore):
    """A store on a SQLAlchemy engine for the result backend's database."""

    _conflict = IntegrityError

    def __init__(self, url: str, engine_options: dict[str, Any] | None = None) -> None:
        self._engine = sa.create_engine(url, **(engine_options or {}))
        self._local = threading.local()  # the connection of this thread's transaction
        # A pooled connection must not cross a fork into a prefork worker child.
        os.register_at_fork(after_in_child=lambda: self._engine.dispose(close=False))
        create_tables(self._engine)

    def close(self) -> None:
        """Close the engine's pooled connections."""
        self._engine.dispose()

    @override
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._engine.begin() as connection:
            self._local.connection = connection
            try:
                yield
            finally:
                self._local.connection = None

    @override
    def _insert(self, table: Table, row: Mapping[str, Any]) -> None:
        with self._connection() as connection:
            connection.execute(_TABLES[table].insert().values(**row))

    @override
    def _update(self, table: Table, where: Where, values: Mapping[str, Any]) -> int:
        rows = _TABLES[table]
        with self._connection() as connection:
            return connection.execute(
                rows.update().where(*_match(rows, where)).values(**values)
            ).rowcount

    @override
    def _increment(self, table: Table, where: Where, amounts: Mapping[str, int]) -> int:
        rows = _TABLES[table]
        values = {column: rows.c[column] + by for column, by in amounts.items()}
        with self._connection() as connection:
            return connection.execute(
                rows.update().where(*_match(rows, where)).values(values)
            ).rowcount

    @override
    def _touch(self, table: Table, where: Where, column: str) -> int:
        rows = _TABLES[table]
        with self._connection() as connection:
            return connection.execute(
                rows.update().where(*_match(rows, where)).values({column: rows.c[column]})
            ).rowcount

    @override
    def _select(
        self,
        table: Table,
        where: Where,
        columns: Sequence[str],
        *,
        order_by: str | None = None,
        limit: int | None = None,
        lock: bool = False,
    ) -> list[tuple[Any, ...]]:
        rows = _TABLES[table]
        query = sa.select(*(rows.c[column] for column in columns)).where(*_match(rows, where))
        if order_by is not None:
            column = rows.c[order_by.lstrip("-")]
            query = query.order_by(column.desc() if order_by.startswith("-") else column)
        if limit is not None:
            query = query.limit(limit)
        if lock:
            query = query.with_for_update()
        with self._connection() as connection:
            return [tuple(row) for row in connection.execute(query)]

    @override
    def _count(self, table: Table, where: Where) -> int:
        query = sa.select(sa.func.count()).where(*_match(_TABLES[table], where))
        with self._connection() as connection:
            return int(connection.execute(query).scalar_one())

    @override
    def _delete(self, table: Table, where: Where) -> int:
        rows = _TABLES[table]
        with self._connection() as connection:
            return connection.execute(rows.delete().where(*_match(rows, where))).rowcount

    @contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        """The connection of the thread's transaction, else one that commits on its own."""
        current: sa.Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._engine.begin() as connection:
            yield connection


_SCHEMA_ATTEMPTS = 5
"""How often a store tries to create or upgrade the tables, other processes doing it too."""


def create_tables(engine: sa.Engine) -> None:
    """Create the tables, or bring those an earlier version created up to date.

    Other processes may be doing the same: what they did meanwhile makes a
    statement here fail, and it is tried again on what the database now holds.
    """
    for attempt in range(_SCHEMA_ATTEMPTS):
        last = attempt == _SCHEMA_ATTEMPTS - 1
        try:
            metadata.create_all(engine, checkfirst=True)
        except (IntegrityError, ProgrammingError):  # another process created them meanwhile
            if last:
                raise
            continue
        try:
            upgrade(engine)
        except DatabaseError:  # another process added a column or index meanwhile
            if last:
                raise
            continue
        return


def upgrade(engine: sa.Engine) -> None:
    """Add the columns and indexes the runs table lacks, in a table an earlier version created.

    The columns come with their defaults, so the rows already there read as
    runs with no summary or progress. A process doing the same meanwhile
    makes this fail on the column or index it added: :func:`create_tables`
    tries again.
    """
    inspector = sa.inspect(engine)
    present = {column["name"] for column in inspector.get_columns(runs.name)}
    indexed = {index["name"] for index in inspector.get_indexes(runs.name)}
    missing = [column for column in runs.columns if column.name not in present]
    unindexed = [index for index in runs.indexes if index.name not in indexed]
    if not missing and not unindexed:
        return
    table = engine.dialect.identifier_preparer.format_table(runs)
    with engine.begin() as connection:
        for column in missing:
            spec = sa.schema.CreateColumn(column).compile(dialect=engine.dialect)
            connection.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {spec}"))
        for index in unindexed:
            connection.execute(sa.schema.CreateIndex(index))


def _match(table: sa.Table, where: Where) -> list[sa.ColumnElement[bool]]:
    """The conditions ``where`` puts on ``table``'s rows."""
    conditions = []
    for name, value in where.items():
        column = table.c[name]
        if isinstance(value, Range):
            if value.low is not None:
                conditions.append(column >= value.low)
            if value.high is not None:
                conditions.append(column < value.high)
        else:
            conditions.append(column.in_(value) if isinstance(value, tuple) else column == value)
    return conditions
