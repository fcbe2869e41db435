"""Run state: what every client and worker can ask about a run.

A run's record (state, failing step, error), its steps' records and its plan
live in the Celery app's result backend, keyed by run id, so a web request can
re-attach to a run any worker is executing. The store offers the few atomic
operations the semantics need: a run ends once (the first terminal state
wins), and each lifecycle hook is *claimed* once per process per run.
"""

from __future__ import annotations

import enum
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, NamedTuple, overload

from .claims import Claim
from .plan import EncodedPlan


class RunState(str, enum.Enum):
    """Where a run stands."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """Whether the run has ended and nothing more of it will start."""
        return self in (RunState.SUCCESS, RunState.FAILURE, RunState.CANCELLED)


class StepState(str, enum.Enum):
    """Where a step stands. ``SKIPPED`` steps never started because the run ended."""

    PENDING = "PENDING"
    STARTED = "STARTED"
    RETRY = "RETRY"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run's state; ``step`` and ``error`` say why it failed or was cancelled.

    A run is *settled* once it has finished and the hooks its end calls for
    (``on_failed``, ``on_cancelled``) have fired. Times are timezone-aware
    datetimes in UTC: ``created_at`` when the run was enqueued, ``started_at``
    when a worker took it up, ``finished_at`` when it ended, ``settled_at``
    when it settled. ``definition``, ``arguments`` and ``total`` are the
    run's :class:`RunSummary`; ``done`` and ``failed`` count its steps as
    they end. ``resumes`` counts the times the run was resumed
    (:meth:`Run.retry <tasktronaut_celery.Run.retry>`).
    """

    state: RunState
    created_at: datetime
    finished_at: datetime | None = None
    step: str | None = None
    error: str | None = None
    settled_at: datetime | None = None
    started_at: datetime | None = None
    definition: str = ""
    arguments: str = ""
    done: int = 0
    failed: int = 0
    total: int = 0
    resumes: int = 0

    @property
    def progress(self) -> Progress:
        """How many of the run's steps have succeeded and failed, of how many."""
        return Progress(self.done, self.failed, self.total)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data, times in seconds since the epoch."""
        return {
            **asdict(self),
            "state": self.state.value,
            **{name: to_seconds(getattr(self, name)) for name in RUN_TIMES},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord:
        """The record :meth:`to_json` produced."""
        return cls(
            **{
                **data,
                "state": RunState(data["state"]),
                **{name: to_moment(data.get(name)) for name in RUN_TIMES},
            }
        )


RUN_TIMES = ("created_at", "finished_at", "settled_at", "started_at")
"""The fields of a :class:`RunRecord` that hold a time."""


class Progress(NamedTuple):
    """How far a run has come: steps that succeeded (``done``) and failed, of ``total``."""

    done: int
    failed: int
    total: int


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What listings show of a run beside its state, fixed when it is enqueued.

    ``definition`` is the top-level definition's name, ``arguments`` its
    arguments as shown (sensitive ones masked), ``total`` the run's steps.
    """

    definition: str = ""
    arguments: str = ""
    total: int = 0


NO_SUMMARY = RunSummary()
"""The summary of a run created without one: listed with no definition or arguments."""


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What happened to one step: its state, attempts so far, timing and last error.

    ``deliveries`` counts how often the current attempt's message reached a
    worker: more than one means a worker was lost while running it (killed, out
    of memory, its connection to the broker gone) and the broker delivered the
    message again. ``resumes`` counts the resumes of the run that ran the step
    again; a resume leaves each step it will run PENDING until it starts.
    """

    state: StepState
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    deliveries: int = 1
    resumes: int = 0

    def encode(self) -> str:
        """The record as every store keeps it: JSON, the same text for equal records.

        Stores compare-and-set a step on this text (:meth:`RunStore.put_step_if`),
        so it is a stored format: exactly the text earlier versions wrote (fields
        in declaration order, ``json.dumps``'s default separators). So during an
        upgrade a new worker still matches the records old workers wrote for the
        runs in flight, and does not drop their retries and redeliveries as
        "started by another message". Changing this text, a new field included,
        would need stores that also match the old text until those runs end:
        so ``resumes`` is written only once a resume ran the step.
        """
        data = {**asdict(self), "state": self.state.value}
        if not self.resumes:
            del data["resumes"]
        return json.dumps(data)

    @classmethod
    def decode(cls, text: str | bytes) -> StepRecord:
        """The record :meth:`encode` gave (any JSON spelling of it: order and spacing are free)."""
        data = json.loads(text)
        return cls(**{**data, "state": StepState(data["state"])})

    @property
    def started(self) -> bool:
        """Whether the step has started: a resume leaves the steps it will run PENDING."""
        return self.state is not StepState.PENDING

    def moved_to(self, state: StepState, **changes: Any) -> StepRecord:
        """A copy of the record in ``state``, with ``changes`` applied."""
        return replace(self, state=state, **changes)


@dataclass(frozen=True, slots=True)
class StepStart:
    """What :meth:`RunStore.start_step` did: it ``started`` the step, or found these records.

    ``run`` and ``step`` are given only when it did not start the step.
    """

    started: bool
    run: RunRecord | None = None
    step: StepRecord | None = None


@dataclass(frozen=True, slots=True)
class FirstLook:
    """What :meth:`RunStore.first_look` read; ``None`` for what does not exist or was not asked."""

    run: RunRecord | None
    plan: EncodedPlan | None
    step: StepRecord | None = None


@dataclass(frozen=True, slots=True)
class Arrival:
    """A chord member counted in: whether every member is in, and whether this call claimed the body.

    Of the calls that see the chord ``complete``, exactly one has ``claimed`` it.
    """

    complete: bool
    claimed: bool


class RunStore(ABC):
    """Where runs are kept; one implementation per kind of result backend.

    A step takes two trips to the store on its way through a worker:
    :meth:`start_step`, then :meth:`put_step` or :meth:`arrive_and_claim`.
    The defaults here compose them of the other operations; a store that can
    do each in one atomic request (Redis, with a script) overrides them.

    Every write of a step's record keeps the run's progress: a record that
    moves a step into SUCCESS counts it in the run's ``done``, one that moves
    it into FAILURE in ``failed`` (writing the same state again counts nothing).
    Runs can be listed newest first (:meth:`runs`) and pruned (:meth:`prune`)
    without reading every run.
    """

    @abstractmethod
    def create(self, run_id: str, plan: EncodedPlan, summary: RunSummary = NO_SUMMARY) -> bool:
        """Store a new PENDING run with its plan; ``False`` if the run id exists already."""

    @abstractmethod
    def runs(
        self,
        *,
        definition: str | None = None,
        state: RunState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[tuple[str, RunRecord]]:
        """Up to ``limit`` runs and their records, newest first.

        Only runs of the top-level ``definition`` (its name), in ``state``,
        created at or after ``since`` and before ``until``.
        """

    @abstractmethod
    def prune(self, before: datetime, state: RunState | None = None) -> int:
        """Forget the ended runs created before ``before`` (only those in ``state``); how many.

        Runs that have not ended are kept, whatever their age.
        """

    @abstractmethod
    def delete(self, run_id: str) -> None:
        """Forget a run entirely (used when enqueueing it failed)."""

    @abstractmethod
    def plan(self, run_id: str) -> EncodedPlan | None:
        """The run's stored plan, if the run exists."""

    @abstractmethod
    def record(self, run_id: str) -> RunRecord | None:
        """The run's record, if the run exists."""

    def status(self, run_id: str, path: str) -> tuple[RunRecord | None, StepRecord | None]:
        """The run's record and the record of its step at ``path``, read together."""
        return self.record(run_id), self.step(run_id, path)

    def first_look(self, run_id: str, path: str | None = None) -> FirstLook:
        """The run's record, its plan and the record of its step at ``path``, read together.

        What a worker process reads of a run it meets for the first time, in
        one trip where the store can (Redis reads them in one pipeline).
        """
        run, step = (self.record(run_id), None) if path is None else self.status(run_id, path)
        return FirstLook(run, self.plan(run_id), step)

    def start_step(
        self, run_id: str, path: str, record: StepRecord, created_at: datetime
    ) -> StepStart:
        """Store the STARTED ``record`` of a step's first message, if nothing stands in the way.

        This is the usual case of admitting a step, in one trip: the run
        created at ``created_at`` (the one whose plan the caller holds) is
        under way and the step at ``path`` has no record yet. Then ``record``
        is stored, the run moves to RUNNING, and the step is ``started``.
        Otherwise nothing is stored and the records found are returned, for
        the caller to admit the message the long way (a retry, a redelivery,
        a duplicate, an ended run, or a run id enqueued again).
        """
        run, step = self.status(run_id, path)
        if run is None or step is not None or run.state.finished or run.created_at != created_at:
            return StepStart(False, run, step)
        if run.state is RunState.PENDING:
            self.mark_running(run_id)
        if not self.put_step_if(run_id, path, record, None):
            return StepStart(False, run, None)  # the caller's own start then loses: ignored
        return StepStart(True)

    @abstractmethod
    def resume(
        self, run_id: str, resumes: int, reset: Mapping[str, StepRecord], drop: Collection[str]
    ) -> bool:
        """Reopen a run that ended FAILURE or CANCELLED and has settled; ``True`` if reopened.

        ``resumes`` is how many times the run had been resumed when the caller
        read what ``reset`` and ``drop`` are made of: the run is reopened only
        if that is still so. In one atomic change: the run is RUNNING again
        with one more resume (and a start time, if it never had one), its end
        forgotten (finished and settled times, failing step, error, the
        ``failed`` count), the ``reset`` records stored over the steps'
        (PENDING: the steps run again) and the claims ``drop`` deleted.
        ``False``, changing nothing, for a run that does not exist, has not
        ended, succeeded, has not settled, or was resumed meanwhile (by
        another client).
        """

    @abstractmethod
    def mark_running(self, run_id: str) -> None:
        """Move a PENDING run to RUNNING, noting when it started; any other state is left alone."""

    @abstractmethod
    def finish(
        self,
        run_id: str,
        state: RunState,
        step: str | None = None,
        error: str | None = None,
        settled: bool = False,
        unless_claimed: str | None = None,
    ) -> bool:
        """End the run in ``state`` unless it has ended already; ``True`` if this call ended it.

        ``settled`` says that nothing remains to be done for the run's end.
        ``unless_claimed`` is a marker that, once claimed, keeps the run from
        being ended here: a client's cancel loses to the top-level process's
        completion once that has claimed its end
        (:meth:`Claim.ended <tasktronaut_celery.claims.Claim.ended>` of the root).
        """

    @abstractmethod
    def settle(self, run_id: str) -> None:
        """Record that the hooks of the run's end have fired."""

    @abstractmethod
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        """``True`` the first time ``marker`` is claimed for this run, ``False`` ever after.

        ``unless_ended`` claims it only while the run has not ended, in the
        same atomic step: a process's last step claims the process's end so,
        and loses to a cancel or failure that ended the run first.
        """

    @abstractmethod
    def claimed(self, run_id: str) -> set[str]:
        """Every marker claimed so far for this run."""

    @abstractmethod
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        """Count ``member`` in to ``chord``; how many distinct members have arrived.

        Arriving twice (a redelivered message) counts once. ``0`` if the run
        does not exist.
        """

    def arrive_and_claim(
        self,
        run_id: str,
        chord: str,
        member: int,
        size: int,
        succeeded: tuple[str, StepRecord] | None = None,
    ) -> Arrival:
        """Count ``member`` in to ``chord`` of ``size`` members; once all are in, claim its body.

        ``succeeded``, the path and SUCCESS record of the step that arrives, is
        stored first, in the same request where the store can. The claim is
        :meth:`Claim.joined <tasktronaut_celery.claims.Claim.joined>` of
        ``chord``: of the members that find every member in, one sends the body.
        """
        if succeeded is not None:
            self.put_step(run_id, *succeeded)
        complete = self.arrive(run_id, chord, member) >= size
        return Arrival(complete, complete and self.claim(run_id, Claim.joined(chord).marker))

    @contextmanager
    def watch(self, run_id: str) -> Iterator[Callable[[float], None]]:
        """A pause for a client waiting on the run: ``pause(seconds)`` returns early on news.

        It returns once the run may have settled, or after ``seconds``; the
        caller reads the record again either way. By default it sleeps:
        a store that can tell subscribers (Redis publishes, the memory store
        signals) wakes them as the run settles.
        """
        yield time.sleep

    @abstractmethod
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        """Store the record of the step at ``path``."""

    @contextmanager
    def putting_step(self, run_id: str, path: str, record: StepRecord) -> Iterator[None]:
        """Store the record of the step at ``path`` while the body of the ``with`` runs.

        For a worker that sends what follows a step as it records the step's
        success: a store that can write without waiting (Redis sends its
        request, then reads the answer after the body) saves the body a round
        trip. The request leaves before the body runs (where it cannot, the
        record is stored first), and the block is left only once it is stored;
        what the body sends may be received first. A write that fails raises
        as the block is left, after what the body sent. (Redis: a server that
        lost its scripts since, by a restart or a flush, has the record
        written again after the body.) By default the record is stored before
        the body runs.
        """
        self.put_step(run_id, path, record)
        yield

    @abstractmethod
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        """Store ``record`` only if the step's stored record is still ``expected``.

        ``None`` expects no record. ``True`` if stored: of two workers that read
        the same record and start the same step, one wins. ``False`` also for
        a run that does not exist.
        """

    @abstractmethod
    def slots(self, key: str) -> str | None:
        """The slot list of concurrency ``key`` as stored (see :mod:`~tasktronaut_celery.slots`)."""

    @abstractmethod
    def put_slots_if(self, key: str, text: str | None, expected: str | None) -> bool:
        """Store ``text`` as ``key``'s slot list only if it still is ``expected``; ``True`` if so.

        ``None`` expects no list; a ``text`` of ``None`` deletes the list (a
        key nobody holds or waits for keeps nothing). Of two clients that read the same list and
        change it, one wins; the other reads it again. What the text means is
        :mod:`~tasktronaut_celery.slots`'s business: the store keeps it whole.
        """

    @abstractmethod
    def step(self, run_id: str, path: str) -> StepRecord | None:
        """The record of the step at ``path``, if it has started."""

    @abstractmethod
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        """The records of every step that has started, by path."""


def counted(previous: StepRecord | None, record: StepRecord) -> tuple[int, int]:
    """What writing ``record`` over ``previous`` adds to a run's ``done`` and ``failed``."""
    before = previous.state if previous is not None else None
    if record.state is before:
        return 0, 0
    return int(record.state is StepState.SUCCESS), int(record.state is StepState.FAILURE)


def now() -> float:
    """Wall-clock time as stored in records (seconds since the epoch)."""
    return time.time()


@overload
def to_moment(seconds: float) -> datetime: ...
@overload
def to_moment(seconds: None) -> None: ...
def to_moment(seconds: float | None) -> datetime | None:
    """A stored time (seconds since the epoch) as clients see it: an aware datetime in UTC."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


@overload
def to_seconds(moment: datetime) -> float: ...
@overload
def to_seconds(moment: None) -> None: ...
def to_seconds(moment: datetime | None) -> float | None:
    """The stored form of a time :func:`to_moment` gave (seconds since the epoch)."""
    return None if moment is None else moment.timestamp()
