"""Runs kept in a relational database: the algorithm, once, over a few row primitives.

Four tables hold a run: ``runs`` (one row a run: its record, summary,
progress and plan), ``claims`` (one row a claimed hook marker), ``steps`` (one
row a step: its :meth:`StepRecord.encode` text) and ``arrivals`` (one row a
chord member that has finished); a fifth, ``slots``, holds the slot list of each
concurrency key (one row a key). Once-only changes are single statements the
database makes atomic: an insert that hits a unique key, or an update guarded
by the current state. A step's end is counted in the run's progress in the
transaction that writes it, the step's row compared-and-set on the record read
before, so a record written twice counts once. A transaction that writes a
run's row and its other rows takes the run's row first, so two never deadlock.
:class:`RelationalRunStore` holds that algorithm; a subclass says only how to
read and write rows, with SQLAlchemy (``stores/sql.py``) or the Django ORM
(``contrib/django/store.py``), as huey's ``BaseSqlStorage`` serves SQLite and
PostgreSQL.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from typing_extensions import override

from ..plan import EncodedPlan
from ..store import (
    NO_SUMMARY,
    RunRecord,
    RunState,
    RunStore,
    RunSummary,
    StepRecord,
    StepState,
    counted,
    now,
    to_moment,
    to_seconds,
)

Table = Literal["runs", "claims", "steps", "arrivals", "slots"]
TABLES: tuple[Table, ...] = ("runs", "claims", "steps", "arrivals")
"""The tables that hold a run, each row under its ``run_id``."""


@dataclass(frozen=True, slots=True)
class Range:
    """A condition of :data:`Where`: the column is at least ``low`` and below ``high``.

    A bound left ``None`` does not apply.
    """

    low: float | None = None
    high: float | None = None


Where = Mapping[str, Any]
"""Which rows: column -> value they must hold, a tuple of values one of which they hold,
or a :class:`Range` they fall in."""

UNFINISHED_STATES = tuple(state.value for state in RunState if not state.finished)
FINISHED_STATES = tuple(state.value for state in RunState if state.finished)
RESUMABLE_STATES = (RunState.FAILURE.value, RunState.CANCELLED.value)

DEFINITION_LENGTH = 200
"""The longest definition name the ``runs`` table keeps; longer ones are cut to it."""

PRUNE_BATCH = 500
"""The most runs :meth:`RelationalRunStore.prune` deletes in one transaction."""

RECORD_COLUMNS = (
    "state",
    "created_at",
    "finished_at",
    "step",
    "error",
    "settled_at",
    "started_at",
    "definition",
    "arguments",
    "done",
    "failed",
    "total",
    "resumes",
)
"""The columns of a run's row :func:`run_record` reads, in its order."""

_COUNTED = (StepState.SUCCESS, StepState.FAILURE)
"""The states a step's record is counted in its run's progress for."""


def run_record(row: Sequence[Any]) -> RunRecord:
    """The record of the run whose :data:`RECORD_COLUMNS` are ``row``."""
    state, created_at, finished_at, step, error, settled_at, started_at, *summary = row
    definition, arguments, done, failed, total, resumes = summary
    return RunRecord(
        RunState(state),
        to_moment(created_at),
        to_moment(finished_at),
        step,
        error,
        to_moment(settled_at),
        to_moment(started_at),
        definition,
        arguments,
        done,
        failed,
        total,
        resumes,
    )


def created_range(since: datetime | None, until: datetime | None) -> Range:
    """The ``created_at`` of the runs created at or after ``since`` and before ``until``."""
    return Range(to_seconds(since), to_seconds(until))


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
    def _increment(self, table: Table, where: Where, amounts: Mapping[str, int]) -> int:
        """Add each of ``amounts`` to its column in the rows ``where`` picks; how many those were.

        One statement (``SET done = done + 1``): concurrent increments all count.
        """

    @abstractmethod
    def _touch(self, table: Table, where: Where, column: str) -> int:
        """Set ``column`` to its own value in the rows ``where`` picks; how many those were.

        Nothing changes, but the database holds those rows until the
        transaction ends, as for any update.
        """

    @abstractmethod
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
        """The ``columns`` of the rows ``where`` picks.

        Ordered by the column ``order_by`` (descending if it starts with
        ``-``), at most ``limit`` of them; ``lock`` holds them until the
        transaction ends, as an update would (``SELECT ... FOR UPDATE``).
        """

    @abstractmethod
    def _count(self, table: Table, where: Where) -> int:
        """How many rows ``where`` picks."""

    @abstractmethod
    def _delete(self, table: Table, where: Where) -> int:
        """Delete the rows ``where`` picks; how many those were."""

    @override
    def create(self, run_id: str, plan: EncodedPlan, summary: RunSummary = NO_SUMMARY) -> bool:
        row = {
            "run_id": run_id,
            "state": RunState.PENDING.value,
            # The time a client reads, to the microsecond: listing from it finds the run.
            "created_at": to_seconds(to_moment(now())),
            "definition": summary.definition[:DEFINITION_LENGTH],
            "arguments": summary.arguments,
            "total": summary.total,
            "done": 0,
            "failed": 0,
            "resumes": 0,
            "plan_type": plan.content_type,
            "plan_encoding": plan.content_encoding,
            "plan_body": plan.body,
        }
        return self._insert_once("runs", row)

    @override
    def runs(
        self,
        *,
        definition: str | None = None,
        state: RunState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[tuple[str, RunRecord]]:
        where: dict[str, Any] = {}
        if definition is not None:
            where["definition"] = definition[:DEFINITION_LENGTH]
        if state is not None:
            where["state"] = state.value
        if since is not None or until is not None:
            where["created_at"] = created_range(since, until)
        rows = self._select(
            "runs", where, ("run_id", *RECORD_COLUMNS), order_by="-created_at", limit=limit
        )
        return [(row[0], run_record(row[1:])) for row in rows]

    @override
    def prune(self, before: datetime, state: RunState | None = None) -> int:
        if state is not None and not state.finished:
            return 0
        where = {
            "state": FINISHED_STATES if state is None else state.value,
            "created_at": created_range(None, before),
        }
        pruned = 0
        while True:
            # In batches, each a transaction: the locked runs cannot be resumed
            # meanwhile, and their rows go with them.
            with self._transaction():
                found = self._select("runs", where, ("run_id",), limit=PRUNE_BATCH, lock=True)
                ids = tuple(run_id for (run_id,) in found)
                if ids:
                    for table in TABLES:
                        self._delete(table, {"run_id": ids})
            pruned += len(ids)
            if len(ids) < PRUNE_BATCH:
                return pruned

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
        rows = self._select("runs", {"run_id": run_id}, RECORD_COLUMNS)
        return run_record(rows[0]) if rows else None

    @override
    def resume(
        self, run_id: str, resumes: int, reset: Mapping[str, StepRecord], drop: Collection[str]
    ) -> bool:
        while True:
            columns = ("state", "settled_at", "resumes", "started_at")
            rows = self._select("runs", {"run_id": run_id}, columns)
            if not rows:
                return False
            state, settled_at, stored_resumes, started_at = rows[0]
            if state not in RESUMABLE_STATES or settled_at is None or stored_resumes != resumes:
                return False
            reopened = {
                "state": RunState.RUNNING.value,
                "finished_at": None,
                "step": None,
                "error": None,
                "settled_at": None,
                "failed": 0,
                "resumes": resumes + 1,
                "started_at": now() if started_at is None else started_at,
            }
            try:
                with self._transaction():
                    # Only a resume reopens a run, and it counts itself: a run
                    # still ended and not resumed since it was read is still settled.
                    where = {"run_id": run_id, "state": state, "resumes": resumes}
                    if not self._update("runs", where, reopened):
                        return False
                    for path, record in reset.items():
                        encoded = {"record": record.encode()}
                        if not self._update("steps", {"run_id": run_id, "path": path}, encoded):
                            self._insert("steps", {"run_id": run_id, "path": path, **encoded})
                    if drop:
                        self._delete("claims", {"run_id": run_id, "marker": tuple(drop)})
            except self._conflict:  # a step's first record was written meanwhile: again
                continue
            return True

    @override
    def mark_running(self, run_id: str) -> None:
        where = {"run_id": run_id, "state": RunState.PENDING.value}
        self._update("runs", where, {"state": RunState.RUNNING.value, "started_at": now()})

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
        if record.state not in _COUNTED:  # nothing to count: write it over whatever is there
            self._write_step(run_id, path, record.encode())
            return
        while True:  # compare-and-set on the record read, until no other write came between
            rows = self._select("steps", {"run_id": run_id, "path": path}, ("record",))
            stored = rows[0][0] if rows else None
            previous = StepRecord.decode(stored) if stored is not None else None
            written = self._put_counted(run_id, path, record, stored, counted(previous, record))
            if written is not False:  # written, or no such run
                return

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        stored = expected.encode() if expected is not None else None
        return bool(self._put_counted(run_id, path, record, stored, counted(expected, record)))

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        rows = self._select("steps", {"run_id": run_id, "path": path}, ("record",))
        return StepRecord.decode(rows[0][0]) if rows else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        rows = self._select("steps", {"run_id": run_id}, ("path", "record"))
        return {path: StepRecord.decode(encoded) for path, encoded in rows}

    def _write_step(self, run_id: str, path: str, encoded: str) -> None:
        """Store a step's record text over whatever the step's row holds, counting nothing."""
        row = {"run_id": run_id, "path": path, "record": encoded}
        for _ in range(2):  # update, else insert; a racing insert makes the update win
            if self._update("steps", {"run_id": run_id, "path": path}, {"record": encoded}):
                return
            if self._insert_once("steps", row):
                return

    @override
    def slots(self, key: str) -> str | None:
        rows = self._select("slots", {"concurrency_key": key}, ("holders",))
        return rows[0][0] if rows else None

    @override
    def put_slots_if(self, key: str, text: str | None, expected: str | None) -> bool:
        if expected is not None:
            where = {"concurrency_key": key, "holders": expected}
            if text is None:  # one statement, compared on the text: no write comes between
                return bool(self._delete("slots", where))
            return bool(self._update("slots", where, {"holders": text}))
        if text is None:
            return self.slots(key) is None
        try:
            with self._transaction():
                self._insert("slots", {"concurrency_key": key, "holders": text})
        except self._conflict:
            return False
        return True

    def _put_counted(
        self,
        run_id: str,
        path: str,
        record: StepRecord,
        stored: str | None,
        progress: tuple[int, int],
    ) -> bool | None:
        """Store ``record`` if the step's row holds ``stored`` (``None``: no row), counting it.

        The run's ``done`` and ``failed`` grow by ``progress`` in the same
        transaction, the run's row taken first. ``True`` if stored; ``False``
        if the step's row holds something else (or, counting nothing, if the
        run does not exist); ``None`` if the run to count in does not exist.
        """
        step = {"run_id": run_id, "path": path}
        encoded = record.encode()
        done, failed = progress
        if not done and not failed:  # one statement, as ever
            if stored is None:
                return self._insert_once("steps", {**step, "record": encoded})
            return bool(self._update("steps", {**step, "record": stored}, {"record": encoded}))
        try:
            with self._transaction():
                amounts = {column: by for column, by in (("done", done), ("failed", failed)) if by}
                if not self._increment("runs", {"run_id": run_id}, amounts):
                    return None
                if stored is None:
                    self._insert("steps", {**step, "record": encoded})
                elif not self._update("steps", {**step, "record": stored}, {"record": encoded}):
                    raise _Undo  # another write came first: its count stands, not this one
        except (_Undo, self._conflict):
            return False
        return True

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
