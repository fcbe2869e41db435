"""``Run``: a handle on one run, from the client that started it or any other."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import ProcessCancelled, ProcessFailed, RunNotFoundError, failed_hook
from .plan import Plan
from .rebuilding import rebuild
from .step_options import max_retries
from .store import Progress, RunRecord, RunState, StepRecord, StepState, to_moment

if TYPE_CHECKING:
    from .store import RunStore


@dataclass(frozen=True, slots=True)
class StepStatus:
    """One step of a run as a client sees it.

    Times are timezone-aware datetimes in UTC: ``started_at`` is when the
    step's first attempt started, ``finished_at`` when its last attempt ended.
    """

    path: str
    name: str
    description: str | None
    state: StepState
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    deliveries: int = 1
    """How often the last attempt reached a worker (more than 1: a worker was lost)."""
    max_retries: int = 0
    """How often the step may be retried (its ``max_retries`` option): at most
    ``max_retries + 1`` attempts."""
    resumes: int = 0
    """How many resumes of the run (:meth:`Run.retry`) ran the step again."""

    @property
    def duration(self) -> float | None:
        """Seconds from the start of the first attempt to the end of the last, once ended.

        It spans every attempt, with the waits between them.
        """
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Run:
    """A run of a process: its state, its steps, and ways to wait for it or cancel it.

    Everything is read from the app's result backend, so a handle made in
    another process (``backend.run(run_id)``) gives the same answers.
    """

    def __init__(
        self,
        run_id: str,
        store: RunStore,
        plan: Callable[[], Plan],
        cancel: Callable[[str], bool],
        retry: Callable[[str, bool], Run],
        listed: RunRecord | None = None,
    ) -> None:
        self.id = run_id
        """The run identifier: the process's ``identifier``, the prefix of its step task ids."""
        self.listed = listed
        """The run's record as :meth:`CeleryBackend.runs` found it (``None`` on other handles).

        A list of runs shows it without reading each run again; :attr:`record`
        reads the run's record as it is now."""
        self._store = store
        self._plan = plan
        self._cancel = cancel
        self._retry = retry

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.state.value}>"

    @property
    def record(self) -> RunRecord:
        """The run's current record: state, times, and the failing step and error."""
        record = self._store.record(self.id)
        if record is None:
            raise RunNotFoundError(f"run {self.id!r} does not exist (never enqueued, or expired)")
        return record

    @property
    def state(self) -> RunState:
        """``PENDING``, ``RUNNING``, ``SUCCESS``, ``FAILURE`` or ``CANCELLED``."""
        return self.record.state

    @property
    def progress(self) -> Progress:
        """Steps that succeeded (``done``) and failed so far, of the run's ``total``.

        Kept by the store as steps end, for views and progress bars:
        ``done / total`` is the fraction of the run that has succeeded.
        """
        return self.record.progress

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> Run:
        """Return once the run has succeeded; raise if it failed, was cancelled, or timed out.

        Raises :class:`ProcessFailed` (naming the step and its error),
        :class:`ProcessCancelled`, or ``TimeoutError`` after ``timeout`` seconds.
        It returns or raises only once the run has settled: the hooks its end
        calls for (``on_completed``, ``on_failed``, ``on_cancelled``) have fired.
        Reads the run's record whenever the run store tells that it settled
        (Redis and the embedded store do), and in any case at growing pauses,
        from 5 ms up to ``interval`` seconds.
        """
        record = self.record
        if not (record.state.finished and record.settled_at is not None):
            record = self._await_settled(timeout, interval)
        if record.state is RunState.FAILURE:
            error = record.error or "unknown error"
            name = self._step_name(record.step)
            in_hook = record.step is not None and record.step in self._plan().processes
            hook = failed_hook(error) if in_hook else None  # no plan to read if it is unreadable
            if hook is not None:
                name = f"{name}.{hook}"
            raise ProcessFailed(self.id, record.step, name, error, hook=hook)
        if record.state is RunState.CANCELLED:
            raise ProcessCancelled(self.id, record.error or "cancelled")
        return self

    def _await_settled(self, timeout: float | None, interval: float) -> RunRecord:
        """The run's record once it has settled, watching the store for news of it.

        The store is watched before the record is read again, so a settling
        announced in between is not missed; a run found settled at once (a
        finished run asked again) never subscribes.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        with self._store.watch(self.id) as wait_for_news:
            while True:
                record = self.record
                if record.state.finished and record.settled_at is not None:
                    return record
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"run {self.id} still {record.state.value} after {timeout} s"
                    )
                remaining = interval if deadline is None else max(0.0, deadline - time.monotonic())
                wait_for_news(min(pause, remaining))
                pause = min(pause * 2, interval)

    def cancel(self) -> bool:
        """Cancel the run: steps not yet started never start; ``False`` if it had ended."""
        return self._cancel(self.id)

    def to_mermaid(self) -> str:
        """The run's process as a Mermaid flowchart, each step coloured by its state.

        The tree is built again from the run's arguments, as the client
        enqueued it: :class:`~tasktronaut_celery.PlanChangedError` if the
        definition cannot build it any more, or builds another tree.
        """
        return rebuild(self._plan()).to_mermaid(self._step_states())

    def to_dot(self) -> str:
        """The run's process as a Graphviz DOT digraph, each step coloured by its state."""
        return rebuild(self._plan()).to_dot(self._step_states())

    def to_svg(self) -> str:
        """The run's process as an SVG picture, each step coloured by its state."""
        return rebuild(self._plan()).to_svg(self._step_states())

    def _step_states(self) -> dict[str, str]:
        return {status.path: status.state.value for status in self.steps()}

    def retry(self, *, force: bool = False) -> Run:
        """Resume a failed or cancelled run under its id, from where it stopped; returns the run.

        Steps that succeeded are not run again; the step that failed, the
        steps skipped and the unfinished members of concurrent sections run.
        ``on_started`` does not fire again (unless it was the hook that failed
        the run); the resume's outcome fires ``on_completed`` or ``on_failed``
        of each process that had not completed. Refused with
        :class:`RetryRefusedError` for a run that is PENDING, RUNNING or
        SUCCESS, whose end hooks are still firing, or whose plan has expired,
        and with :class:`PlanChangedError` if its definition no longer builds
        the tree the run was planned with, unless ``force`` (the run then goes
        on with its stored plan).
        """
        self._retry(self.id, force)
        return self  # the same run, reopened

    def steps(self) -> list[StepStatus]:
        """Every step in definition order, with its state and attempts."""
        plan = self._plan()
        records = self._store.steps(self.id)
        finished = self.state.finished
        return [_status(plan, path, records.get(path), finished) for path in plan.steps]

    def _step_name(self, path: str | None) -> str | None:
        if path is None:
            return None
        plan = self._plan()
        if path in plan.steps:
            return plan.step_name(path)
        return plan.processes[path].name if path in plan.processes else None


def _status(plan: Plan, path: str, record: StepRecord | None, finished: bool) -> StepStatus:
    step = plan.steps[path]
    if record is None or (finished and not record.started):  # never started: the run ended
        resumes = record.resumes if record else 0
        record = StepRecord(StepState.SKIPPED if finished else StepState.PENDING, resumes=resumes)
    return StepStatus(
        path=path,
        name=plan.step_name(path),
        description=None if step.description is None else plan.redactor.text(step.description),
        state=record.state,
        attempts=record.attempts,
        deliveries=record.deliveries,
        max_retries=max_retries(step.options),
        started_at=to_moment(record.started_at),
        finished_at=to_moment(record.finished_at),
        error=record.error,
        resumes=record.resumes,
    )
