"""Runs kept in a relational database: the algorithm, once, over a few row primitives.

Four tables hold a run: ``runs`` (one row a run: its record and plan),
``claims`` (one row a claimed hook marker), ``steps`` (one row a step: its
:meth:`StepRecord.encode` text) and ``arrivals`` (one row a chord member that
has finished). Once-only changes are single statements the database makes
atomic: an insert that hits a unique key, or an update guarded by the current
state. :class:`RelationalRunStore` holds that algorithm; a subclass says only
how to read and write rows, with SQLAlchemy (``stores/sql.py``) or the Django
ORM (``contrib/django/store.py``), as huey's ``BaseSqlStorage`` serves SQLite
and PostgreSQL.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Literal

from typing_extensions import override

from ..plan import EncodedPlan
from ..store import RunRecord, RunState, RunStore, StepRecord, now, to_moment

Table = Literal["runs", "claims", "steps", "arrivals"]
TABLES: tuple[Table, ...] = ("runs", "claims", "steps", "arrivals")

Where = Mapping[str, Any]
"""Which rows: column -> value they must hold, or a tuple of values one of which they hold."""

UNFINISHED_STATES = tuple(state.value for state in RunState if not state.finished)


def finished_fields(
    state: RunState, step: str | None, error: str | None, settled: bool
) -> dict[str, Any]:
    """The columns of a run's row set when the run ends."""
    finished_at = now()
    fields = {"state": state.value, "finished_at": finished_at, "step": step, "error": error}
    if settled:
        fields["settled_at"] = finished_at
    return fields


class _Undo(Exception):
    """Raised in a transaction to roll it back."""


class RelationalRunStore(RunStore):
    """A store on the four tables; subclasses supply the row primitives below.

    Every primitive outside :meth:`_transaction` commits on its own; inside
    it, it belongs to that transaction (transactions are never nested).
    """

    _conflict: ClassVar[type[Exception]]
    """What :meth:`_insert` raises for a row whose key exists."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """A transaction around the primitives run in it: committed, or rolled back on an error."""

    @abstractmethod
    def _insert(self, table: Table, row: Mapping[str, Any]) -> None:
        """Insert ``row``; raises :attr:`_conflict` if its key exists."""

    @abstractmethod
    def _update(self, table: Table, where: Where, values: Mapping[str, Any]) -> int:
        """Set ``values`` in the rows ``where`` picks; how many rows those were."""

    @abstractmethod
    def _touch(self, table: Table, where: Where, column: str) -> int:
        """Set ``column`` to its own value in the rows ``where`` picks; how many those were.

        Nothing changes, but the database holds those rows until the
        transaction ends, as for any update.
        """

    @abstractmethod
    def _select(self, table: Table, where: Where, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """The ``columns`` of the rows ``where`` picks."""

    @abstractmethod
    def _count(self, table: Table, where: Where) -> int:
        """How many rows ``where`` picks."""

    @abstractmethod
    def _delete(self, table: Table, where: Where) -> None:
        """Delete the rows ``where`` picks."""

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
        return self._insert_once("runs", row)

    @override
    def delete(self, run_id: str) -> None:
        with self._transaction():
            for table in TABLES:
                self._delete(table, {"run_id": run_id})

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        columns = ("plan_type", "plan_encoding", "plan_body")
        rows = self._select("runs", {"run_id": run_id}, columns)
        return EncodedPlan(rows[0][0], rows[0][1], bytes(rows[0][2])) if rows else None

    @override
    def record(self, run_id: str) -> RunRecord | None:
        columns = ("state", "created_at", "finished_at", "step", "error", "settled_at")
        rows = self._select("runs", {"run_id": run_id}, columns)
        if not rows:
            return None
        state, created_at, finished_at, step, error, settled_at = rows[0]
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
        where = {"run_id": run_id, "state": RunState.PENDING.value}
        self._update("runs", where, {"state": RunState.RUNNING.value})

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
        try:
            with self._transaction():
                unfinished = {"run_id": run_id, "state": UNFINISHED_STATES}
                ended = self._update("runs", unfinished, values) == 1
                # Read after the update, which holds the run's row: a claim made
                # meanwhile (see ``claim``) has been committed, and is seen here.
                if (
                    ended
                    and unless_claimed is not None
                    and self._is_claimed(run_id, unless_claimed)
                ):
                    raise _Undo
        except _Undo:
            return False
        return ended

    @override
    def settle(self, run_id: str) -> None:
        self._update("runs", {"run_id": run_id}, {"settled_at": now()})

    @override
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        row = {"run_id": run_id, "marker": marker}
        if not unless_ended:
            return self._insert_once("claims", row)
        try:
            with self._transaction():
                # A no-op update holds the run's row until the claim is committed,
                # so a concurrent ``finish`` either waits for it or ends the run first.
                unfinished = {"run_id": run_id, "state": UNFINISHED_STATES}
                if not self._touch("runs", unfinished, "state"):
                    return False
                self._insert("claims", row)
        except self._conflict:
            return False
        return True

    @override
    def claimed(self, run_id: str) -> set[str]:
        return {marker for (marker,) in self._select("claims", {"run_id": run_id}, ("marker",))}

    @override
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        row = {"run_id": run_id, "chord": chord, "member": member}
        if not self._insert_once("arrivals", row) and not self._run_exists(run_id):
            return 0
        return self._count("arrivals", {"run_id": run_id, "chord": chord})

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        encoded = record.encode()
        row = {"run_id": run_id, "path": path, "record": encoded}
        for _ in range(2):  # update, else insert; a racing insert makes the update win
            if self._update("steps", {"run_id": run_id, "path": path}, {"record": encoded}):
                return
            if self._insert_once("steps", row):
                return

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        encoded = record.encode()
        if expected is None:
            return self._insert_once("steps", {"run_id": run_id, "path": path, "record": encoded})
        where = {"run_id": run_id, "path": path, "record": expected.encode()}
        return bool(self._update("steps", where, {"record": encoded}))

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        rows = self._select("steps", {"run_id": run_id, "path": path}, ("record",))
        return StepRecord.decode(rows[0][0]) if rows else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        rows = self._select("steps", {"run_id": run_id}, ("path", "record"))
        return {path: StepRecord.decode(encoded) for path, encoded in rows}

    def _insert_once(self, table: Table, row: Mapping[str, Any]) -> bool:
        """Insert ``row``; ``False`` if its key exists, or if it belongs to no stored run."""
        if table != "runs" and not self._run_exists(row["run_id"]):
            return False
        try:
            with self._transaction():
                self._insert(table, row)
        except self._conflict:
            return False
        return True

    def _run_exists(self, run_id: str) -> bool:
        return bool(self._select("runs", {"run_id": run_id}, ("run_id",)))

    def _is_claimed(self, run_id: str, marker: str) -> bool:
        return bool(self._select("claims", {"run_id": run_id, "marker": marker}, ("marker",)))
