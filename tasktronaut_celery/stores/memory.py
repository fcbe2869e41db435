"""Runs kept in this Python process, for the embedded app (``cache+memory://``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from typing_extensions import override

from ..plan import EncodedPlan
from ..store import (
    NO_SUMMARY,
    RunRecord,
    RunState,
    RunStore,
    RunSummary,
    StepRecord,
    counted,
    now,
    to_moment,
)


@dataclass
class _Run:
    plan: EncodedPlan
    record: RunRecord
    claims: set[str] = field(default_factory=set)
    arrivals: dict[str, set[int]] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)


class MemoryRunStore(RunStore):
    """A thread-safe store in a dict: every client and worker must share this process."""

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._watchers: dict[str, set[threading.Event]] = {}
        self._slots: dict[str, str] = {}

    def _tell_settled(self, run_id: str) -> None:
        """Wake the clients waiting on the run (called holding the lock)."""
        for event in self._watchers.get(run_id, ()):
            event.set()

    @override
    def create(self, run_id: str, plan: EncodedPlan, summary: RunSummary = NO_SUMMARY) -> bool:
        with self._lock:
            if run_id in self._runs:
                return False
            record = RunRecord(
                RunState.PENDING,
                created_at=to_moment(now()),
                definition=summary.definition,
                arguments=summary.arguments,
                total=summary.total,
            )
            self._runs[run_id] = _Run(plan, record)
            return True

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
        with self._lock:
            found = [
                (run_id, run.record)
                for run_id, run in self._runs.items()
                if (definition is None or run.record.definition == definition)
                and (state is None or run.record.state is state)
                and (since is None or run.record.created_at >= since)
                and (until is None or run.record.created_at < until)
            ]
        found.sort(key=lambda item: item[1].created_at, reverse=True)
        return found[:limit]

    @override
    def prune(self, before: datetime, state: RunState | None = None) -> int:
        with self._lock:
            pruned = [
                run_id
                for run_id, run in self._runs.items()
                if run.record.state.finished
                and (state is None or run.record.state is state)
                and run.record.created_at < before
            ]
            for run_id in pruned:
                del self._runs[run_id]
        return len(pruned)

    @override
    def delete(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        run = self._runs.get(run_id)
        return run.plan if run else None

    @override
    def record(self, run_id: str) -> RunRecord | None:
        run = self._runs.get(run_id)
        return run.record if run else None

    @override
    def resume(
        self, run_id: str, resumes: int, reset: Mapping[str, StepRecord], drop: Collection[str]
    ) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.record.resumes != resumes:
                return False
            record = run.record
            if record.state not in (RunState.FAILURE, RunState.CANCELLED) or not record.settled_at:
                return False
            run.record = replace(
                record,
                state=RunState.RUNNING,
                finished_at=None,
                step=None,
                error=None,
                settled_at=None,
                failed=0,
                resumes=resumes + 1,
                started_at=record.started_at or to_moment(now()),
            )
            run.steps.update(reset)
            run.claims.difference_update(drop)
            return True

    @override
    def mark_running(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.record.state is RunState.PENDING:
                run.record = replace(
                    run.record, state=RunState.RUNNING, started_at=to_moment(now())
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
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.record.state.finished or unless_claimed in run.claims:
                return False
            finished_at = to_moment(now())
            run.record = replace(
                run.record,
                state=state,
                finished_at=finished_at,
                step=step,
                error=error,
                settled_at=finished_at if settled else None,
            )
            if settled:
                self._tell_settled(run_id)
            return True

    @override
    def settle(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.record = replace(run.record, settled_at=to_moment(now()))
                self._tell_settled(run_id)

    @override
    @contextmanager
    def watch(self, run_id: str) -> Iterator[Callable[[float], None]]:
        news = threading.Event()

        def pause(seconds: float) -> None:
            news.wait(seconds)
            news.clear()  # what it told is read next: the caller reads the record again

        with self._lock:
            self._watchers.setdefault(run_id, set()).add(news)
        try:
            yield pause
        finally:
            with self._lock:
                watchers = self._watchers[run_id]
                watchers.discard(news)
                if not watchers:
                    del self._watchers[run_id]

    @override
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or marker in run.claims:
                return False
            if unless_ended and run.record.state.finished:
                return False
            run.claims.add(marker)
            return True

    @override
    def claimed(self, run_id: str) -> set[str]:
        with self._lock:
            run = self._runs.get(run_id)
            return set(run.claims) if run else set()

    @override
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return 0
            arrived = run.arrivals.setdefault(chord, set())
            arrived.add(member)
            return len(arrived)

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._write_step(run, path, record)

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.steps.get(path) != expected:
                return False
            self._write_step(run, path, record)
            return True

    @staticmethod
    def _write_step(run: _Run, path: str, record: StepRecord) -> None:
        """Store the step's record and count its end in the run's progress (holding the lock)."""
        done, failed = counted(run.steps.get(path), record)
        run.steps[path] = record
        if done or failed:
            run.record = replace(
                run.record, done=run.record.done + done, failed=run.record.failed + failed
            )

    @override
    def slots(self, key: str) -> str | None:
        with self._lock:
            return self._slots.get(key)

    @override
    def put_slots_if(self, key: str, text: str | None, expected: str | None) -> bool:
        with self._lock:
            if self._slots.get(key) != expected:
                return False
            if text is None:
                self._slots.pop(key, None)
            else:
                self._slots[key] = text
            return True

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        run = self._runs.get(run_id)
        return run.steps.get(path) if run else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        with self._lock:
            run = self._runs.get(run_id)
            return dict(run.steps) if run else {}
