"""What the worker does with each Tasktronaut message.

``start`` fires the process's ``on_started`` and sends the run's canvas (or,
when workers dispatch the run, its first actions);
``step`` runs one step through the core runtime, records it and settles what
follows (continue, retry, fail the run, cancel it); ``begin`` and ``join``
mark where a sub-process starts and where a concurrent section or a process
ends; ``settle`` fires the hooks an ended run still owes (``on_cancelled``
after a client cancelled, ``on_failed`` after the worker's main process
failed the run), then marks it settled.

Before anything runs, the run's state is read: once a run has failed or been
cancelled, every message still queued is skipped, which also stops its chain.
Then the worker checks, once per plan, that its code can run the whole plan
(``worker_code``); if it cannot, the run fails before anything of it runs here.
When workers dispatch a run, the worker that finishes an action sends what
follows it, counting chord members in the run store.
Each hook is claimed in the run store before it is called, so it fires once
per process per run however many workers race for it. The three end hooks
share one claim per process (:func:`end_marker`), so each process gets exactly
one of ``on_completed``, ``on_failed`` and ``on_cancelled``; a process's last
step claims it only while the run is under way, and a client's cancel loses to
the top-level process's completion once that is claimed.

Deliveries: a step starts by swapping its stored record for a STARTED one
(compare-and-set), so of two messages for the same step only one runs it. A
message the broker delivers again after its worker was lost runs the step
again, up to ``max_deliveries`` times; any other second message is ignored.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from celery.exceptions import Ignore
from celery.utils.time import get_exponential_backoff_interval

from tasktronaut.definition import ProcessDefinition
from tasktronaut.errors import ProcessError
from tasktronaut.registry import resolve_definition
from tasktronaut.runtime import Hook, Outcome, StepCall, call_hook, run_step

from .canvas import action_signature, settle_signature, to_signature
from .errors import (
    CorruptPlanError,
    StepLostError,
    WorkerCodeMismatchError,
    describe_error,
    hook_failure,
    naming_time_limit,
)
from .flow import Action, Begin, Continuation, Join, Step, continuations, entries
from .plan import Dispatch, EncodedPlan, Plan, PlannedStep, decode_plan
from .protocol import RunEnded, reject
from .store import RunRecord, RunState, RunStore, StepRecord, StepState, end_marker, now
from .worker_code import code_mismatch

if TYPE_CHECKING:
    from celery import Celery, Task

logger = logging.getLogger("tasktronaut.celery")

CELERY_DEFAULT_RETRY_DELAY = 180.0
CELERY_DEFAULT_BACKOFF_MAX = 600.0
_PLAN_CACHE_SIZE = 64
DEFAULT_MAX_DELIVERIES = 3

# Transports that tell a message delivered again (after its worker was lost)
# from a new one; on others every delivery of a started step counts as a
# redelivery. The in-memory transport never redelivers.
_FLAGGING_TRANSPORTS = frozenset({"amqp", "redis", "memory"})


class HookFailed(Exception):
    """``on_started`` or ``on_completed`` of the process at ``process`` raised ``error``."""

    def __init__(self, process: str, hook: Hook, error: Exception) -> None:
        super().__init__(process, hook, error)
        self.process = process
        self.hook = hook
        self.error = error


def retry_delay(options: dict[str, Any], retries: int) -> float:
    """Seconds before retry number ``retries + 1``, following Celery's own rules."""
    backoff = options.get("retry_backoff")
    if backoff:
        return float(
            get_exponential_backoff_interval(
                factor=1 if backoff is True else backoff,
                retries=retries,
                maximum=options.get("retry_backoff_max", CELERY_DEFAULT_BACKOFF_MAX),
                full_jitter=options.get("retry_jitter", True),
            )
        )
    return float(options.get("default_retry_delay", CELERY_DEFAULT_RETRY_DELAY))


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
        self._max_deliveries = max_deliveries
        # Each plan with its run's created_at and what of it this worker's code lacks.
        self._plans: OrderedDict[str, tuple[Plan, datetime, str | None]] = OrderedDict()
        self._following: dict[str, dict[Action, Continuation]] = {}
        self._claimed: dict[str, set[str]] = {}  # hook markers known to be claimed, per run
        self._flags_redeliveries = app.connection_for_write().transport.driver_type in (
            _FLAGGING_TRANSPORTS
        )

    def plan(self, run_id: str, record: RunRecord | None) -> Plan:
        """The plan of the run ``record`` describes, read once per worker process.

        Cached per run id, and checked against the run's creation time: an
        identifier enqueued again after its first run expired gets its own
        plan. Rejects runs that do not exist. A plan that cannot be read ends
        its run FAILURE with the reason (settled: no hook can be found without
        it), and the message is rejected.
        """
        cached = self._plans.get(run_id)
        if cached is not None and record is not None and cached[1] == record.created_at:
            return cached[0]
        encoded = self._store.plan(run_id)
        if record is None or encoded is None:
            reject(f"run {run_id!r} does not exist (never enqueued, or expired)")
        try:
            return self._remember(run_id, encoded, record)
        except CorruptPlanError as error:
            self._store.finish(run_id, RunState.FAILURE, error=str(error), settled=True)
            reject(f"run {run_id!r}: {error}")

    def _remember(self, run_id: str, encoded: EncodedPlan, record: RunRecord) -> Plan:
        plan = decode_plan(encoded, self._app.conf.accept_content)
        self._following.pop(run_id, None)
        self._claimed.pop(run_id, None)
        self._plans[run_id] = (plan, record.created_at, code_mismatch(plan))
        if len(self._plans) > _PLAN_CACHE_SIZE:
            evicted, _ = self._plans.popitem(last=False)
            self._following.pop(evicted, None)
            self._claimed.pop(evicted, None)
        return plan

    def start(self, task: Task, run_id: str) -> None:
        """Fire the process's ``on_started``, then send its canvas (or its first actions).

        A start message for a run under way is sent again only if the broker
        redelivers it (its worker died while sending); another is a duplicate.
        """
        record = self._store.record(run_id)
        plan = self.plan(run_id, record)
        redelivered = self._redelivered(task)
        running = self._skip_if_ended(plan, run_id, record, "start", redelivered)
        if running and not redelivered:
            logger.info("run %s has started already; ignoring a duplicate start", run_id)
            raise Ignore()
        self._check_code(plan, run_id, "")
        self._store.mark_running(run_id)
        self._settle_control(plan, run_id, "", lambda: self._start_processes(plan, run_id, ""))
        if plan.dispatch is Dispatch.CANVAS:
            to_signature(self._app, plan, plan.flow, self._control_queue).apply_async()
        else:
            self._send(plan, entries(plan.flow))

    def begin(self, task: Task, run_id: str, path: str) -> None:
        """Fire ``on_started`` of the sub-process at ``path`` before its steps start."""
        record = self._store.record(run_id)
        plan = self.plan(run_id, record)
        if not path or path not in plan.processes:
            reject(f"run {run_id}: {path!r} is not a sub-process of this run")
        self._skip_if_ended(plan, run_id, record, f"begin {path}", self._redelivered(task))
        self._check_code(plan, run_id, path)
        self._settle_control(plan, run_id, path, lambda: self._start_processes(plan, run_id, path))
        self._advance(plan, run_id, Begin(path))

    def join(self, task: Task, run_id: str, path: str) -> None:
        """Record that the block or process at ``path`` has finished."""
        record = self._store.record(run_id)
        plan = self.plan(run_id, record)
        completes = plan.joins.get(path)
        if completes is None:
            reject(f"run {run_id}: {path!r} is not a join of this run")
        self._skip_if_ended(
            plan, run_id, record, f"join {path or 'root'}", self._redelivered(task)
        )
        self._check_code(plan, run_id, path)

        def finish_processes() -> None:
            if path in plan.processes:  # an empty process starts at its join
                self._start_processes(plan, run_id, path)
            self._complete(plan, run_id, completes)

        self._settle_control(plan, run_id, path, finish_processes)
        self._advance(plan, run_id, Join(path))

    def step(self, task: Task, run_id: str, path: str) -> None:
        """Run one attempt of the step at ``path`` and settle what follows."""
        run, previous = self._store.status(run_id, path)
        plan = self.plan(run_id, run)
        step = plan.steps.get(path)
        if step is None:
            reject(f"run {run_id}: {path!r} is not a step of this run")
        redelivered = self._redelivered(task)
        if run is not None and run.state.finished and previous is not None:
            self._end_retry(plan, run_id, path, previous, run)  # its retry arrived too late
        running = self._skip_if_ended(plan, run_id, run, f"step {path}", redelivered)
        self._check_code(plan, run_id, path)
        if previous is not None and previous.state is StepState.SUCCESS:
            logger.info("run %s: step %s already succeeded; not running it again", run_id, path)
            self._pass_on_repeated_success(plan, run_id, path)
            return  # Celery sends the rest of the chain, as the first delivery may not have
        attempt = task.request.retries + 1
        deliveries = 1
        if previous is not None:
            deliveries = self._delivery(plan, run_id, step, previous, attempt, redelivered)
        if not running:
            self._store.mark_running(run_id)
        first_start = previous.started_at if previous is not None else None  # of earlier attempts
        record = StepRecord(
            StepState.STARTED,
            attempts=attempt,
            started_at=first_start or now(),
            deliveries=deliveries,
        )
        if not self._store.put_step_if(run_id, path, record, previous):
            logger.info("run %s: step %s was started by another message; ignoring", run_id, path)
            raise Ignore()
        try:
            definition = self._definition(plan, step.process)
            self._start_processes(plan, run_id, path)
            call = StepCall(
                process_id=run_id,
                definition=definition,
                method=step.method,
                path=path,
                description=step.description,
                arguments=step.arguments,
                attempt=attempt,
                redactor=plan.redactor,
            )
            result = run_step(call)
        except HookFailed as failed:  # the step never ran: it shows SKIPPED, like the rest
            self._store.put_step(run_id, path, StepRecord(StepState.SKIPPED))
            self._fail_hook(plan, run_id, failed)
        except Exception as setup_error:  # an unknown definition
            self._fail_step(plan, run_id, step, record, setup_error)
        if result.outcome is Outcome.SUCCEEDED:
            finished = record.moved_to(StepState.SUCCESS, finished_at=now())
            self._store.put_step(run_id, path, finished)
            self._settle_control(
                plan, run_id, path, lambda: self._complete(plan, run_id, step.completes)
            )
            self._advance(plan, run_id, Step(path))
            return
        assert result.error is not None
        error = naming_time_limit(result.error, task, f"{path} ({plan.step_name(path)})")
        if result.outcome is Outcome.CANCELLED:
            reason = describe_error(error, plan.redactor)
            cancelled = record.moved_to(StepState.CANCELLED, finished_at=now(), error=reason)
            self._store.put_step(run_id, path, cancelled)
            if self._store.finish(run_id, RunState.CANCELLED, step=path, error=reason):
                self._settle_ended(plan, run_id, RunState.CANCELLED)
            raise RunEnded()
        max_retries = step.options.get("max_retries", 0)
        if result.outcome is Outcome.RETRYABLE and task.request.retries < max_retries:
            retrying = record.moved_to(StepState.RETRY, error=describe_error(error, plan.redactor))
            self._store.put_step(run_id, path, retrying)
            countdown = retry_delay(dict(step.options), task.request.retries)
            hidden = plan.redactor.exception(error)  # what Celery logs and sends in events
            raise task.retry(exc=hidden, countdown=countdown, max_retries=max_retries)
        self._fail_step(plan, run_id, step, record, error)

    def _redelivered(self, task: Task) -> bool:
        """Whether the broker delivers this message again (its worker was lost, or cut off)."""
        if not self._flags_redeliveries:
            return True
        return bool((task.request.delivery_info or {}).get("redelivered"))

    def _delivery(
        self,
        plan: Plan,
        run_id: str,
        step: PlannedStep,
        previous: StepRecord,
        attempt: int,
        redelivered: bool,
    ) -> int:
        """Which delivery of its attempt this message is, for a step that has started before.

        A message that the broker delivers again because its worker was lost
        runs the step again, up to ``max_deliveries`` times. Any other message
        for a step that has started (a duplicate sent by a repeated
        predecessor, or a stale attempt's) is ignored, so duplicates do not
        ripple through the run.
        """
        path = step.path
        if previous.attempts < attempt:
            return 1  # a retry's message
        if previous.attempts > attempt or not redelivered:
            logger.info(
                "run %s: step %s attempt %d has started already; ignoring a duplicate message",
                run_id, path, previous.attempts,
            )  # fmt: skip
            raise Ignore()
        if previous.deliveries >= self._max_deliveries:
            lost = StepLostError(
                f"the worker running step {path} was lost {previous.deliveries} times "
                "(killed, out of memory, or cut off from the broker); not running it again"
            )
            self._fail_step(plan, run_id, step, previous, lost)
        logger.warning(
            "run %s: step %s delivered again after its worker was lost (delivery %d of %d)",
            run_id, path, previous.deliveries + 1, self._max_deliveries,
        )  # fmt: skip
        return previous.deliveries + 1

    def _pass_on_repeated_success(self, plan: Plan, run_id: str, path: str) -> None:
        """Send on what follows a succeeded step, as its first delivery may not have.

        Dispatching workers send the successors that have not started. In a
        Celery canvas, Celery sends the rest of a chain, or counts a chord
        member, when the task returns: Redis counts each member once, and a
        duplicate of a step that has started is ignored.
        """
        if plan.dispatch is Dispatch.WORKER:
            self._advance(plan, run_id, Step(path), again=True)
            raise Ignore()

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
            self._settle_ended(self.plan(run_id, record), run_id, record.state)

    def end_from_outside(
        self, run_id: str, path: str | None, state: RunState, reason: str
    ) -> None:
        """End the run at ``path`` for what befell its message outside the runner.

        Celery revoked the message, could not read it, or killed its step at
        the hard time limit: the step never got to say so. This runs in the
        worker's main process, so it only writes to the run store; a settle
        message then has a pool process fire ``on_failed`` or ``on_cancelled``.
        ``path`` is ``None`` for the start message. Runs that do not exist or
        have ended are left alone; a run whose plan cannot be read is ended
        without hooks.
        """
        record = self._store.record(run_id)
        encoded = self._store.plan(run_id)
        if record is None or encoded is None or record.state.finished:
            return
        try:
            plan: Plan | None = self._remember(run_id, encoded, record)
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

    def _settle_ended(self, plan: Plan, run_id: str, state: RunState) -> None:
        """Fire the end hooks that ``state`` calls for and have not fired, then settle the run.

        The run is settled even if a hook raised (hooks' errors are logged).
        """
        try:
            self._end_retries(plan, run_id)
            if state is RunState.CANCELLED:
                self._fire_cancelled(plan, run_id)
            elif state is RunState.FAILURE:
                record = self._store.record(run_id)
                path = (record.step if record else None) or ""
                step = plan.steps.get(path)
                name = step.method if step else f"<{path or 'start'}>"
                error = ProcessError((record.error if record else None) or "the run failed")
                self._fire_failed(plan, run_id, path, name, error)
        finally:
            self._store.settle(run_id)

    def _fire_cancelled(self, plan: Plan, run_id: str) -> None:
        """Fire ``on_cancelled`` once for the root and each started, unended sub-process."""
        claims = self._store.claimed(run_id)
        started = {m.partition(":")[2] for m in claims if m.startswith("started:")}
        ended = {m.partition(":")[2] for m in claims if m.startswith(end_marker(""))}
        under_way = (started - ended) | {""}
        for path in sorted(under_way, key=lambda p: (-p.count("."), -len(p), p)):
            self._fire_once(plan, run_id, "on_cancelled", path, run_id)

    def _fire_failed(
        self, plan: Plan, run_id: str, path: str, step: str, error: Exception
    ) -> None:
        """Fire ``on_failed`` once for each process from ``path`` up to the root."""
        for process in plan.lineage(path):
            try:
                self._fire_once(plan, run_id, "on_failed", process, run_id, step, error)
            except Exception:
                name = plan.processes[process].name
                logger.exception("run %s: on_failed of %s not called", run_id, name)

    def _advance(self, plan: Plan, run_id: str, action: Action, again: bool = False) -> None:
        """When workers dispatch the run, send what follows ``action``.

        ``again`` is for a message delivered once more after its action had
        succeeded (its worker may have died before sending): steps that follow
        and have already started are not sent again, and a chord's body is
        sent again even if claimed (a duplicate of it is ignored).
        """
        if plan.dispatch is not Dispatch.WORKER:
            return  # Celery's chains and chords carry the rest
        then = self._continuations(run_id, plan)[action]
        if then.chord is not None:
            chord = f"{type(then.chord).__name__.lower()}:{then.chord.path}"
            if self._store.arrive(run_id, chord, then.member) < then.size:
                return
            if not self._store.claim(run_id, f"joined:{chord}") and not again:
                return  # another member's worker sent the body
            self._send(plan, (then.chord,))
        elif then.start:
            targets = then.start
            if again:
                started = self._store.steps(run_id)
                targets = tuple(
                    a for a in targets if not (isinstance(a, Step) and a.path in started)
                )
            self._send(plan, targets)

    def _continuations(self, run_id: str, plan: Plan) -> dict[Action, Continuation]:
        following = self._following.get(run_id)
        if following is None:
            following = self._following[run_id] = continuations(plan.flow)
        return following

    def _send(self, plan: Plan, actions: tuple[Action, ...]) -> None:
        """Publish the messages of ``actions`` on one producer connection."""
        with self._app.producer_or_acquire() as producer:
            for action in actions:
                signature = action_signature(self._app, plan, action, self._control_queue)
                signature.apply_async(producer=producer)

    def _skip_if_ended(
        self, plan: Plan, run_id: str, record: RunRecord | None, what: str, redelivered: bool
    ) -> bool:
        """Skip ``what`` if the run has ended; else whether the run is RUNNING already.

        A redelivered message of an ended run that was never settled is the
        message whose worker died while ending it: its hooks are fired here.
        """
        if record is not None and not record.state.finished:
            return record.state is RunState.RUNNING
        state = record.state.value if record else "gone"
        logger.info("run %s is %s; skipping %s", run_id, state, what)
        if record is not None and record.settled_at is None and redelivered:
            self._settle_ended(plan, run_id, record.state)
        raise RunEnded()

    def _check_code(self, plan: Plan, run_id: str, path: str) -> None:
        """Fail the run, before anything of it runs here, if this worker's code cannot run it.

        Checked once per plan per worker process (the verdict is cached with
        the plan), whichever message of the run the worker sees first. The
        processes at ``path`` are told with ``on_failed``; no step is marked.
        """
        mismatch = self._plans[run_id][2]
        if mismatch is None:
            return
        error = WorkerCodeMismatchError(mismatch)
        logger.error("run %s: %s", run_id, mismatch)
        if self._store.finish(
            run_id, RunState.FAILURE, error=describe_error(error, plan.redactor)
        ):
            try:
                self._fire_failed(plan, run_id, path, "<worker code>", error)
            finally:
                self._store.settle(run_id)
        raise error

    def _definition(self, plan: Plan, process: str) -> type[ProcessDefinition]:
        return resolve_definition(plan.processes[process].definition)

    def _start_processes(self, plan: Plan, run_id: str, path: str) -> None:
        for process in reversed(plan.lineage(path)):
            self._fire_once(plan, run_id, "on_started", process, run_id)

    def _complete(self, plan: Plan, run_id: str, completes: tuple[str, ...]) -> None:
        for process in completes:
            self._fire_once(plan, run_id, "on_completed", process, run_id)
            if process == "":
                self._store.finish(run_id, RunState.SUCCESS, settled=True)

    def _fire_once(self, plan: Plan, run_id: str, hook: Hook, process: str, *args: Any) -> None:
        """Call ``hook`` of ``process`` if this call wins its claim in the run store.

        ``on_started`` has its own claim; the end hooks share the process's
        :func:`end_marker`, which ``on_completed`` claims only while the run
        is under way: a step that finishes after a cancel or a failure
        completes nothing. A raising ``on_started`` or ``on_completed`` raises
        :class:`HookFailed`.
        """
        marker = f"started:{process}" if hook == "on_started" else end_marker(process)
        known = self._claimed.setdefault(run_id, set())
        if marker in known:
            return  # this worker process has seen it claimed: no need to ask the store
        completing = hook == "on_completed"
        won = self._store.claim(run_id, marker, unless_ended=completing)
        if won or not completing:
            known.add(marker)  # a completion that lost to the run's end left it unclaimed
        if not won:
            return
        definition = self._definition(plan, process)
        try:
            call_hook(definition, hook, *args, redactor=plan.redactor)
        except Exception as error:
            raise HookFailed(process, hook, error) from error

    def _settle_control(
        self, plan: Plan, run_id: str, path: str, work: Callable[[], None]
    ) -> None:
        """Run a control task's ``work``; if a hook in it raises, the run fails there."""
        try:
            work()
        except HookFailed as failed:
            self._fail_hook(plan, run_id, failed)
        except Exception as error:  # e.g. a definition this worker does not know
            self._fail_run(plan, run_id, path, hook_name(error), error)
            hidden = plan.redactor.exception(error)  # what Celery logs and sends in events
            if hidden is error:
                raise
            raise hidden from None

    def _fail_step(
        self, plan: Plan, run_id: str, step: PlannedStep, record: StepRecord, error: Exception
    ) -> NoReturn:
        failed = record.moved_to(
            StepState.FAILURE, finished_at=now(), error=describe_error(error, plan.redactor)
        )
        self._store.put_step(run_id, step.path, failed)
        self._fail_run(plan, run_id, step.path, step.method, error)
        raise plan.redactor.exception(error)  # what Celery logs and sends in events

    def _fail_hook(self, plan: Plan, run_id: str, failed: HookFailed) -> NoReturn:
        """Fail the run at the process whose ``on_started`` or ``on_completed`` raised.

        The run record names the process's path and says which hook raised;
        ``on_failed`` is told ``<on_started>`` or ``<on_completed>`` as the step.
        """
        where = " > ".join(plan.processes[p].name for p in reversed(plan.lineage(failed.process)))
        description = hook_failure(failed.hook, where, describe_error(failed.error, plan.redactor))
        step = f"<{failed.hook}>"
        self._fail_run(plan, run_id, failed.process, step, failed.error, description)
        raise plan.redactor.exception(failed.error) from None  # what Celery logs and sends

    def _fail_run(
        self,
        plan: Plan,
        run_id: str,
        path: str,
        step: str,
        error: Exception,
        description: str | None = None,
    ) -> None:
        """End the run as FAILURE at ``path`` and fire ``on_failed`` of each process there.

        ``description`` is the error as the run record shows it (by default
        ``error`` described).
        """
        if description is None:
            description = describe_error(error, plan.redactor)
        if not self._store.finish(run_id, RunState.FAILURE, step=path, error=description):
            return
        try:
            self._end_retries(plan, run_id)
            self._fire_failed(plan, run_id, path, step, error)
        finally:
            self._store.settle(run_id)

    def _end_retries(self, plan: Plan, run_id: str) -> None:
        """End the steps waiting for a retry: the run has ended, so their retry never runs.

        Steps running on other workers are left to record their own end.
        """
        record = self._store.record(run_id)
        if record is None:
            return
        for path, step in self._store.steps(run_id).items():
            self._end_retry(plan, run_id, path, step, record)

    def _end_retry(
        self, plan: Plan, run_id: str, path: str, step: StepRecord, run: RunRecord
    ) -> None:
        """Record the step at ``path`` CANCELLED if it waits for a retry the ended ``run`` skips."""
        if step.state is not StepState.RETRY:
            return
        if run.state is RunState.CANCELLED:
            why = "the run was cancelled"
        elif run.step is not None and run.step in plan.steps:
            why = f"the run failed at step {run.step} ({plan.step_name(run.step)})"
        else:
            why = f"the run failed ({run.error})"
        reason = f"not retried: {why}; last attempt: {step.error}"
        ended = step.moved_to(StepState.CANCELLED, finished_at=now(), error=reason)
        self._store.put_step_if(run_id, path, ended, step)


def hook_name(error: Exception) -> str:
    """What ``on_failed`` is told failed when a hook, not a step, raised."""
    return f"<hook: {type(error).__name__}>"
