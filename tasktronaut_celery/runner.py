"""What the worker does with each Tasktronaut message, as one short sequence per kind.

``start`` fires the process's ``on_started`` and sends what opens a run that
opens with a concurrent section (any other run is opened by its first action,
sent by the client);
``step`` runs one step through the core runtime, records it and sends what
follows (or retries it, fails the run, cancels it); ``begin`` and ``join``
mark where a sub-process starts and where a concurrent section or a process
ends; ``settle`` fires the hooks an ended run still owes (``on_cancelled``
after a client cancelled, ``on_failed`` after the worker's main process
failed the run).

Each handler reads the same way: admit the message (:mod:`.deliveries`, a
verdict: run, skip or pass on), check that this worker's code can run the
plan (:mod:`.worker_code`), start the processes (:mod:`.lifecycle`), run the
step, record it, and dispatch what follows (:mod:`.dispatch`). Plans are read
once per worker process and kept with what the worker knows of their run.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from celery.exceptions import Ignore

from tasktronaut import paths
from tasktronaut.backend import Outcome, StepCall, run_step

from .canvas import settle_signature
from .claims import Claim
from .compiler import Begin, Join, Step
from .deliveries import DEFAULT_MAX_DELIVERIES, Admission, Deliveries, Verdict
from .dispatch import Dispatcher, dispatcher
from .errors import CorruptPlanError, describe_error, naming_time_limit
from .lifecycle import HookFailed, Lifecycle
from .limits import free_slot
from .plan import EncodedPlan, Plan, PlannedStep, decode_plan
from .protocol import RunEnded, reject, resume_of
from .step_options import max_retries, retry_countdown
from .store import RunRecord, RunState, RunStore, StepRecord, StepState, now
from .worker_code import code_mismatch

if TYPE_CHECKING:
    from celery import Celery, Task

__all__ = ["DEFAULT_MAX_DELIVERIES", "Runner"]

logger = logging.getLogger("tasktronaut.celery")

_PLAN_CACHE_SIZE = 64

_UNDER_WAY = "tasktronaut_under_way"
"""The attribute of a step's Celery request that holds what finishes once its task returned."""


def returned(request: Any) -> None:
    """Finish what the step of ``request`` left under way: its task has returned.

    Celery has sent the rest of the step's chain (or counted it into its
    chord) by then, and the step's success, sent to the run store before, is
    waited for now. The worker calls this on ``task_postrun``.
    """
    under_way = getattr(request, _UNDER_WAY, None)
    if under_way is not None:
        setattr(request, _UNDER_WAY, None)
        under_way.close()


@dataclass(slots=True)
class _Known:
    """A run's plan as this worker process read it, and what it keeps for the run."""

    plan: Plan
    created_at: datetime  # of the run: an identifier enqueued again gets its own plan
    resumes: int  # of the run when its lifecycle was made: each resume drops claims
    mismatch: str | None  # what of the plan this worker's code lacks
    lifecycle: Lifecycle
    dispatch: Dispatcher = field(repr=False)


class Runner:
    """Runs the messages of every run on one app; plans are cached per worker process."""

    def __init__(
        self,
        app: Celery,
        store: RunStore,
        control_queue: str | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        self._app = app
        self._store = store
        self._control_queue = control_queue
        self._deliveries = Deliveries(app, max_deliveries)
        self._known: OrderedDict[str, _Known] = OrderedDict()

    def plan(self, run_id: str, record: RunRecord | None) -> Plan:
        """The plan of the run ``record`` describes, read once per worker process."""
        return self._read(run_id, record)[0].plan

    def _find(self, run_id: str) -> tuple[_Known, RunRecord]:
        """What this worker knows of the run, and its record: read with its plan if not held."""
        if run_id in self._known:
            return self._read(run_id, self._store.record(run_id))
        look = self._store.first_look(run_id)
        return self._read(run_id, look.run, look.plan)

    def _read(
        self, run_id: str, record: RunRecord | None, encoded: EncodedPlan | None = None
    ) -> tuple[_Known, RunRecord]:
        """What this worker knows of the run ``record`` describes, and the record, which exists.

        Cached per run id, and checked against the run's creation time: an
        identifier enqueued again after its first run expired gets its own
        plan (``encoded``, if read already). Rejects runs that do not exist.
        A plan that cannot be read ends its run FAILURE with the reason
        (settled: no hook can be found without it), and the message is
        rejected.
        """
        known = self._cached(run_id)
        if known is not None and record is not None and known.created_at == record.created_at:
            if known.resumes != record.resumes:  # the hooks it saw claimed may be unclaimed now
                known.lifecycle = self._lifecycle(known.plan)
                known.resumes = record.resumes
            return known, record
        if encoded is None:
            encoded = self._store.plan(run_id)
        if record is None or encoded is None:
            reject(f"run {run_id!r} does not exist (never enqueued, or expired)")
        try:
            return self._remember(run_id, encoded, record), record
        except CorruptPlanError as error:
            self._store.finish(run_id, RunState.FAILURE, error=str(error), settled=True)
            reject(f"run {run_id!r}: {error}")

    def _cached(self, run_id: str) -> _Known | None:
        """What this worker process keeps of the run, the most recently used kept longest."""
        known = self._known.get(run_id)
        if known is not None:
            self._known.move_to_end(run_id)
        return known

    def _remember(self, run_id: str, encoded: EncodedPlan, record: RunRecord) -> _Known:
        plan = decode_plan(encoded, self._app.conf.accept_content)
        self._known[run_id] = known = _Known(
            plan,
            record.created_at,
            record.resumes,
            code_mismatch(plan),
            self._lifecycle(plan),
            dispatcher(plan, self._app, self._store, self._control_queue),
        )
        if len(self._known) > _PLAN_CACHE_SIZE:
            self._known.popitem(last=False)
        return known

    def _lifecycle(self, plan: Plan) -> Lifecycle:
        """The run's lifecycle; a run under a concurrency limit frees its slot as it settles."""
        if plan.concurrency is None:
            return Lifecycle(self._store, plan)
        free = functools.partial(free_slot, self._app, self._store, plan, self._control_queue)
        return Lifecycle(self._store, plan, free)

    def start(self, task: Task, run_id: str) -> None:
        """Fire the process's ``on_started``, then send what opens the run."""
        known, record = self._find(run_id)
        admission = self._deliveries.admit_start(
            run_id, record, self._deliveries.redelivered(task)
        )
        if admission.verdict is Verdict.DUPLICATE:
            raise Ignore()  # before the code check: nothing of the run runs here
        self._act(known, admission, "")
        known.lifecycle.guard("", lambda: known.lifecycle.start_processes(""))
        known.dispatch.start()

    def begin(self, task: Task, run_id: str, path: str) -> None:
        """Fire ``on_started`` of the sub-process at ``path`` before its steps start."""
        known, record = self._find(run_id)
        if not path or path not in known.plan.processes:
            reject(f"run {run_id}: {path!r} is not a sub-process of this run")
        redelivered = self._deliveries.redelivered(task)
        resume = resume_of(task.name, task.request.id)
        what = f"begin {path}"
        self._act(known, self._deliveries.admit(run_id, record, what, redelivered, resume), path)
        known.lifecycle.guard(path, lambda: known.lifecycle.start_processes(path))
        known.dispatch.after(Begin(path), resume=resume)

    def join(self, task: Task, run_id: str, path: str) -> None:
        """Record that the block or process at ``path`` has finished.

        Once its processes have completed, the join is recorded as passed
        (``Claim.passed``) before what follows is sent, unless the run ended
        meanwhile (its processes then did not complete): a resume of the run
        does not send a join that passed again. The root's join ends the run,
        and writes nothing after it.
        """
        known, record = self._find(run_id)
        plan, lifecycle = known.plan, known.lifecycle
        completes = plan.joins.get(path)
        if completes is None:
            reject(f"run {run_id}: {path!r} is not a join of this run")
        what = f"join {path or 'root'}"
        redelivered = self._deliveries.redelivered(task)
        resume = resume_of(task.name, task.request.id)
        self._act(known, self._deliveries.admit(run_id, record, what, redelivered, resume), path)

        def finish_processes() -> None:
            if path in plan.processes:  # an empty process starts at its join
                lifecycle.start_processes(path)
            lifecycle.complete(completes)

        lifecycle.guard(path, finish_processes)
        if paths.ROOT in completes:
            return  # the run has ended: its waiter reads the store's last word
        self._store.claim(run_id, Claim.passed(path).marker, unless_ended=True)
        known.dispatch.after(Join(path), resume=resume)

    def step(self, task: Task, run_id: str, path: str) -> None:
        """Run one attempt of the step at ``path``, record it, and send what follows."""
        admitted = self._admit_step(task, run_id, path)
        if admitted is None:
            return  # it succeeded before: Celery sends what follows it
        known, step, record, resume = admitted
        plan, lifecycle = known.plan, known.lifecycle
        try:
            definition = lifecycle.definition(step.process)
            lifecycle.start_processes(path)
            call = StepCall(
                process_id=run_id,
                definition=definition,
                method=step.method,
                path=path,
                description=step.description,
                arguments=step.arguments,
                attempt=record.attempts,
                redactor=plan.redactor,
            )
            result = run_step(call)
        except RunEnded:  # its process could not start: the run ended meanwhile
            self._store.put_step(run_id, path, StepRecord(StepState.SKIPPED))
            raise
        except HookFailed as failed:  # the step never ran: it shows SKIPPED, like the rest
            self._store.put_step(run_id, path, StepRecord(StepState.SKIPPED))
            lifecycle.fail_hook(failed)
        except Exception as setup_error:  # an unknown definition
            self._fail_step(known, step, record, setup_error)
        if result.outcome is not Outcome.SUCCEEDED:
            assert result.error is not None
            self._record_failure(known, task, step, record, result.outcome, result.error)
        self._succeed(task, known, step, record, resume)

    def _admit_step(
        self, task: Task, run_id: str, path: str
    ) -> tuple[_Known, PlannedStep, StepRecord, int] | None:
        """Admit a step's message and record the step STARTED; leave unless it is to run.

        Returns what the step runs with, and the resume of the run its message
        belongs to; ``None`` for the message of a step that succeeded before,
        passed on. The usual message (the first of its step, for a run whose
        plan this worker has read and can run) is admitted and started in one
        trip to the run store. Any other is admitted from the records that
        trip found; a resume leaves a record on each step it runs, so its
        messages take this way.
        """
        attempt = task.request.retries + 1
        resume = resume_of(task.name, task.request.id)
        known = self._cached(run_id)
        encoded = None
        if known is not None and known.mismatch is None and path in known.plan.steps:
            record = StepRecord(StepState.STARTED, attempts=attempt, started_at=now())
            start = self._store.start_step(run_id, path, record, known.created_at)
            if start.started:
                return known, known.plan.steps[path], record, resume
            found, previous = start.run, start.step
        elif known is None:  # the first message of the run here: its plan comes along
            look = self._store.first_look(run_id, path)
            found, previous, encoded = look.run, look.step, look.plan
        else:
            found, previous = self._store.status(run_id, path)
        known, run = self._read(run_id, found, encoded)
        step = known.plan.steps.get(path)
        if step is None:
            reject(f"run {run_id}: {path!r} is not a step of this run")
        redelivered = self._deliveries.redelivered(task)
        admission = self._deliveries.admit_step(
            run_id, path, run, previous, attempt, redelivered, resume
        )
        if admission.verdict is Verdict.ENDED and previous is not None:
            known.lifecycle.end_retry(path, previous, run)  # its retry arrived too late
        self._act(known, admission, path)
        if admission.verdict is Verdict.PASS_ON:
            self._pass_on(known, step, redelivered, resume)
            return None
        if admission.verdict is Verdict.LOST:
            assert previous is not None
            assert admission.lost is not None
            self._fail_step(known, step, previous, admission.lost)
        resumes = 0 if previous is None else previous.resumes + (not previous.started)
        record = StepRecord(
            StepState.STARTED,
            attempts=attempt,
            started_at=(previous.started_at if previous else None) or now(),  # of earlier attempts
            deliveries=admission.deliveries,
            resumes=resumes,
        )
        if not self._store.put_step_if(run_id, path, record, previous):
            logger.info("run %s: step %s was started by another message; ignoring", run_id, path)
            raise Ignore()
        return known, step, record, resume

    def _succeed(
        self, task: Task, known: _Known, step: PlannedStep, record: StepRecord, resume: int
    ) -> None:
        """Record the step SUCCESS and send what follows; the processes it ends complete first.

        A step that ends no process is recorded while what follows is sent
        (or Celery sends it, once the task has returned), or in the same trip
        to the run store as its arrival at the join that follows it. One that
        ends processes is recorded before their ``on_completed`` fire, and
        what follows is sent after them, so nothing after a process starts
        before it has completed.
        """
        succeeded = record.moved_to(StepState.SUCCESS, finished_at=now())
        if not step.completes:
            under_way = known.dispatch.after(Step(step.path), succeeded=succeeded, resume=resume)
            if under_way is not None:
                setattr(task.request, _UNDER_WAY, under_way)  # closed by ``returned``
            return
        lifecycle = known.lifecycle
        self._store.put_step(known.plan.run_id, step.path, succeeded)
        lifecycle.guard(step.path, lambda: lifecycle.complete(step.completes))
        known.dispatch.after(Step(step.path), resume=resume)

    def _pass_on(self, known: _Known, step: PlannedStep, redelivered: bool, resume: int) -> None:
        """Complete and send on what follows a succeeded step, as its first delivery may not have.

        A message delivered again (its worker was lost) completes the processes
        the step ends, as the first delivery may have died before or while
        completing them: hooks already claimed do not fire again, and a run
        whose top-level process had claimed its end ends SUCCESS (else it
        would stay RUNNING, and could not be cancelled either). So does a
        resume's message: the run ended before the step's processes completed.
        A duplicate (not redelivered) leaves that to the message under way.

        Dispatching workers send the successors that have not started, and the
        message is ignored. In a Celery canvas, Celery sends the rest of a
        chain, or counts a chord member, when the task returns: Redis counts
        each member once, and a duplicate of a step that has started is ignored.
        """
        lifecycle = known.lifecycle
        if redelivered or resume:
            lifecycle.guard(step.path, lambda: lifecycle.complete(step.completes))
        known.dispatch.after(Step(step.path), again=True, resume=resume)
        if not known.dispatch.celery_sends_rest:
            raise Ignore()

    def _record_failure(
        self,
        known: _Known,
        task: Task,
        step: PlannedStep,
        record: StepRecord,
        outcome: Outcome,
        error: Exception,
    ) -> NoReturn:
        """Record an attempt that raised, then cancel the run, retry the step or fail it."""
        plan, path = known.plan, step.path
        error = naming_time_limit(error, task, f"{path} ({plan.step_name(path)})")
        if outcome is Outcome.CANCELLED:
            reason = describe_error(error, plan.redactor)
            cancelled = record.moved_to(StepState.CANCELLED, finished_at=now(), error=reason)
            self._store.put_step(plan.run_id, path, cancelled)
            if self._store.finish(plan.run_id, RunState.CANCELLED, step=path, error=reason):
                known.lifecycle.settle(RunState.CANCELLED)
            raise RunEnded()
        retries = max_retries(step.options)
        if outcome is Outcome.RETRYABLE and task.request.retries < retries:
            retrying = record.moved_to(StepState.RETRY, error=describe_error(error, plan.redactor))
            self._store.put_step(plan.run_id, path, retrying)
            countdown = retry_countdown(step.options, task.request.retries)
            hidden = plan.redactor.exception(error)  # what Celery logs and sends in events
            raise task.retry(exc=hidden, countdown=countdown, max_retries=retries)
        self._fail_step(known, step, record, error)

    def settle(self, task: Task, run_id: str) -> None:
        """Fire the hooks an ended run still owes, then mark it settled.

        Sent after a client cancelled a run, or after the worker's main process
        ended one (a revoked, unreadable or killed message). A message for a run
        that has not ended (forged) is rejected.
        """
        record = self._store.record(run_id)
        if record is None:
            reject(f"run {run_id!r} does not exist (never enqueued, or expired)")
        if not record.state.finished:
            reject(f"run {run_id!r} has not ended; there is nothing to settle")
        if record.settled_at is None:
            self._read(run_id, record)[0].lifecycle.settle(record.state)

    def end_from_outside(
        self, run_id: str, path: str | None, state: RunState, reason: str, resume: int = 0
    ) -> None:
        """End the run at ``path`` for what befell its message outside the runner.

        Celery revoked the message, could not read it, or killed its step at
        the hard time limit: the step never got to say so. This runs in the
        worker's main process, so it only writes to the run store; a settle
        message then has a pool process fire ``on_failed`` or ``on_cancelled``.
        ``path`` is ``None`` for the start message. Runs that do not exist or
        have ended are left alone, and so are runs resumed since the message
        was sent (``resume`` says which resume it belongs to); a run whose
        plan cannot be read is ended without hooks.
        """
        look = self._store.first_look(run_id)
        record, encoded = look.run, look.plan
        if record is None or encoded is None or record.state.finished:
            return
        if record.resumes != resume:
            return
        try:
            plan: Plan | None = self._remember(run_id, encoded, record).plan
        except CorruptPlanError:
            plan = None
        if plan is not None and path is not None and path in plan.steps:
            step_state = StepState.CANCELLED if state is RunState.CANCELLED else StepState.FAILURE
            self._end_step(run_id, path, step_state, reason)
        ended = self._store.finish(run_id, state, step=path, error=reason, settled=plan is None)
        if ended and plan is not None:
            root = plan.root.name
            settle_signature(self._app, run_id, root, self._control_queue).apply_async()

    def _end_step(self, run_id: str, path: str, state: StepState, error: str) -> None:
        record = self._store.step(run_id, path) or StepRecord(StepState.PENDING)
        if record.state not in (StepState.SUCCESS, StepState.FAILURE, StepState.CANCELLED):
            ended = record.moved_to(state, finished_at=now(), error=error)
            self._store.put_step(run_id, path, ended)

    def _act(self, known: _Known, admission: Admission, path: str) -> None:
        """Leave unless ``admission`` lets the message go on; check the worker's code; RUNNING.

        A run that has ended skips the message (its end hooks fire here if the
        message is the one whose worker died while ending it, and its
        concurrency slot is let go again, in case that worker died before); a duplicate is
        ignored. The code check comes before anything else of the run runs
        here: it is made once per plan per worker process (the verdict is kept
        with the plan), whichever message of the run the worker sees first.
        A run still PENDING (this is the message that opens it) moves to RUNNING.
        """
        if admission.verdict is Verdict.ENDED:
            if admission.settle is not None:
                known.lifecycle.settle(admission.settle)
            else:
                self._let_go(known)
            raise RunEnded()
        if admission.verdict is Verdict.STALE:
            raise Ignore()
        if known.mismatch is not None:
            known.lifecycle.fail_unrunnable(path, known.mismatch)
        if admission.verdict is Verdict.DUPLICATE:
            raise Ignore()
        if not admission.running:
            self._store.mark_running(known.plan.run_id)

    def _let_go(self, known: _Known) -> None:
        """Let go of the ended run's slot again; the message is skipped whatever happens here."""
        try:
            known.lifecycle.release()
        except Exception:
            logger.exception("run %s: its concurrency slot could not be let go", known.plan.run_id)

    def _fail_step(
        self, known: _Known, step: PlannedStep, record: StepRecord, error: Exception
    ) -> NoReturn:
        """Record the step FAILURE, fail its run there, and raise ``error`` as Celery shows it."""
        redactor = known.plan.redactor
        failed = record.moved_to(
            StepState.FAILURE, finished_at=now(), error=describe_error(error, redactor)
        )
        self._store.put_step(known.plan.run_id, step.path, failed)
        known.lifecycle.fail(step.path, step.method, error)
        raise redactor.exception(error)  # what Celery logs and sends in events
