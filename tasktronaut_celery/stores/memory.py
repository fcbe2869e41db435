"""Runs kept in this Python process, for the embedded app (``cache+memory://``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from typing_extensions import override

from ..plan import EncodedPlan
from ..store import RunRecord, RunState, RunStore, StepRecord, now, to_moment


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

    def _tell_settled(self, run_id: str) -> None:
        """Wake the clients waiting on the run (called holding the lock)."""
        for event in self._watchers.get(run_id, ()):
            event.set()

    @override
    def create(self, run_id: str, plan: EncodedPlan) -> bool:
        with self._lock:
            if run_id in self._runs:
                return False
            self._runs[run_id] = _Run(
                plan, RunRecord(RunState.PENDING, created_at=to_moment(now()))
            )
            return True

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
    def mark_running(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run and run.record.state is RunState.PENDING:
                run.record = replace(run.record, state=RunState.RUNNING)

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
                run.steps[path] = record

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.steps.get(path) != expected:
                return False
            run.steps[path] = record
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
