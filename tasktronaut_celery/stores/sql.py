"""Runs kept in the SQL database of Celery's ``db+...`` result backend (SQLAlchemy).

Four tables beside Celery's own, created on first use as Celery creates its
tables: ``tasktronaut_runs``, ``tasktronaut_claims``, ``tasktronaut_steps`` and
``tasktronaut_arrivals``. The algorithm is :class:`~.relational.RelationalRunStore`'s;
this module says how SQLAlchemy reads and writes their rows.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, ProgrammingError
from typing_extensions import override

from .relational import RelationalRunStore, Table, Where

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


_TABLES: dict[Table, sa.Table] = {
    "runs": runs,
    "claims": claims,
    "steps": steps,
    "arrivals": arrivals,
}


class SqlRunStore(RelationalRunStore):
    """A store on a SQLAlchemy engine for the result backend's database."""

    _conflict = IntegrityError

    def __init__(self, url: str, engine_options: dict[str, Any] | None = None) -> None:
        self._engine = sa.create_engine(url, **(engine_options or {}))
        self._local = threading.local()  # the connection of this thread's transaction
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
    def _touch(self, table: Table, where: Where, column: str) -> int:
        rows = _TABLES[table]
        with self._connection() as connection:
            return connection.execute(
                rows.update().where(*_match(rows, where)).values({column: rows.c[column]})
            ).rowcount

    @override
    def _select(self, table: Table, where: Where, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        rows = _TABLES[table]
        query = sa.select(*(rows.c[column] for column in columns)).where(*_match(rows, where))
        with self._connection() as connection:
            return [tuple(row) for row in connection.execute(query)]

    @override
    def _count(self, table: Table, where: Where) -> int:
        query = sa.select(sa.func.count()).where(*_match(_TABLES[table], where))
        with self._connection() as connection:
            return int(connection.execute(query).scalar_one())

    @override
    def _delete(self, table: Table, where: Where) -> None:
        rows = _TABLES[table]
        with self._connection() as connection:
            connection.execute(rows.delete().where(*_match(rows, where)))

    @contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        """The connection of the thread's transaction, else one that commits on its own."""
        current: sa.Connection | None = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        with self._engine.begin() as connection:
            yield connection


def _match(table: sa.Table, where: Where) -> list[sa.ColumnElement[bool]]:
    """The conditions ``where`` puts on ``table``'s rows."""
    return [
        table.c[column].in_(value) if isinstance(value, tuple) else table.c[column] == value
        for column, value in where.items()
    ]
