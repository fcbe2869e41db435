"""What the worker does with each Tasktronaut message.

``start`` turns a stored plan into canvas and sends it; ``step`` runs one step
through the core runtime, records it and decides what follows (continue,
retry, fail the run, cancel it); ``join`` marks the end of a concurrent section
or of a process; ``cancel`` fires ``on_cancelled`` after a client cancelled.

Before a step starts, the run's state is read: once a run has failed or been
cancelled, every step still queued is skipped, which also stops its chain.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NoReturn

from celery.exceptions import Ignore, Reject
from celery.utils.time import get_exponential_backoff_interval

from tasktronaut.definition import ProcessDefinition
from tasktronaut.errors import UnknownDefinitionError
from tasktronaut.registry import resolve_definition
from tasktronaut.runtime import Hook, Outcome, StepCall, call_hook, run_step

from .canvas import to_signature
from .errors import CorruptPlanError
from .plan import Plan, PlannedStep, decode_plan
from .store import RunState, RunStore, StepRecord, StepState, now

if TYPE_CHECKING:
    from celery import Celery, Task

logger = logging.getLogger("tasktronaut.celery")

CELERY_DEFAULT_RETRY_DELAY = 180.0
CELERY_DEFAULT_BACKOFF_MAX = 600.0
_PLAN_CACHE_SIZE = 64


def describe_error(error: BaseException) -> str:
    """An error as shown in run records: ``TypeName: message``."""
    return f"{type(error).__name__}: {error}"


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

    def __init__(self, app: Celery, store: RunStore) -> None:
        self._app = app
        self._store = store
        self._plans: OrderedDict[str, Plan] = OrderedDict()

    def plan(self, run_id: str) -> Plan:
        """The plan of ``run_id``, read once per worker process; rejects unknown runs."""
        plan = self._plans.get(run_id)
        if plan is None:
            encoded = self._store.plan(run_id) if isinstance(run_id, str) else None
            if encoded is None:
                self._reject(f"run {run_id!r} does not exist (never enqueued, or expired)")
            try:
                plan = decode_plan(encoded, self._app.conf.accept_content)
            except CorruptPlanError as error:
                self._reject(f"run {run_id!r}: {error}")
            self._plans[run_id] = plan
            if len(self._plans) > _PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    def start(self, run_id: str) -> None:
        """Send the run's canvas, unless the run has already ended."""
        plan = self.plan(run_id)
        record = self._store.record(run_id)
        if record is None or record.state.finished:
            return
        to_signature(self._app, plan, plan.flow).apply_async()

    def step(self, task: Task, run_id: str, path: str) -> None:
        """Run one attempt of the step at ``path`` and settle what follows."""
        plan = self.plan(run_id)
        step = plan.steps.get(path) if isinstance(path, str) else None
        if step is None:
            self._reject(f"run {run_id}: {path!r} is not a step of this run")
        if self._skip_if_finished(run_id, path):
            return
        previous = self._store.step(run_id, path)
        if previous is not None and previous.state is StepState.SUCCESS:
            logger.info("run %s: step %s already succeeded; not running it again", run_id, path)
            return
        attempt = task.request.retries + 1
        self._store.mark_running(run_id)
        record = StepRecord(StepState.STARTED, attempts=attempt, started_at=now())
        self._store.put_step(run_id, path, record)
        try:
            definition = self._definition(plan, step.process)
            self._start_processes(plan, run_id, path)
            result = run_step(
                StepCall(
                    process_id=run_id,
                    definition=definition,
                    method=step.method,
                    path=path,
                    description=step.description,
                    arguments=step.arguments,
                    attempt=attempt,
                )
            )
        except Exception as setup_error:  # an unknown definition, or a hook that raised
            self._fail_step(plan, run_id, step, record, setup_error)
        if result.outcome is Outcome.SUCCEEDED:
            self._store.put_step(
                run_id, path, record.moved_to(StepState.SUCCESS, finished_at=now())
            )
            self._complete(plan, run_id, step.completes)
            return
        error = result.error
        assert error is not None
        if result.outcome is Outcome.CANCELLED:
            self._store.put_step(
                run_id,
                path,
                record.moved_to(
                    StepState.CANCELLED, finished_at=now(), error=describe_error(error)
                ),
            )
            self.cancel(run_id, reason=describe_error(error), step=path)
            raise Ignore()
        max_retries = step.options.get("max_retries", 0)
        if result.outcome is Outcome.RETRYABLE and task.request.retries < max_retries:
            self._store.put_step(
                run_id, path, record.moved_to(StepState.RETRY, error=describe_error(error))
            )
            countdown = retry_delay(dict(step.options), task.request.retries)
            raise task.retry(exc=error, countdown=countdown, max_retries=max_retries)
        self._fail_step(plan, run_id, step, record, error)

    def join(self, run_id: str, path: str) -> None:
        """Record that the block or process at ``path`` has finished."""
        plan = self.plan(run_id)
        completes = plan.joins.get(path) if isinstance(path, str) else None
        if completes is None:
            self._reject(f"run {run_id}: {path!r} is not a join of this run")
        if self._skip_if_finished(run_id, None):
            return
        try:
            if path in plan.processes:  # an empty process starts at its join
                self._start_processes(plan, run_id, path + ".0" if path else "0")
            self._complete(plan, run_id, completes)
        except Exception as error:
            if self._store.finish(
                run_id, RunState.FAILURE, step=path, error=describe_error(error)
            ):
                logger.exception("run %s failed at join %s", run_id, path)
            raise

    def cancel(self, run_id: str, reason: str, step: str | None = None) -> bool:
        """End the run as CANCELLED and fire ``on_cancelled``; ``False`` if it had ended."""
        if not self._store.finish(run_id, RunState.CANCELLED, step=step, error=reason):
            return False
        self.fire_cancelled(run_id)
        return True

    def fire_cancelled(self, run_id: str) -> None:
        """Fire ``on_cancelled`` once for the root and each started, unfinished sub-process."""
        plan = self.plan(run_id)
        claims = self._store.claimed(run_id)
        started = {m.partition(":")[2] for m in claims if m.startswith("started:")}
        completed = {m.partition(":")[2] for m in claims if m.startswith("completed:")}
        under_way = (started - completed) | {""}
        for path in sorted(under_way, key=lambda p: (-p.count("."), -len(p), p)):
            self._fire_once(plan, run_id, "on_cancelled", path, run_id)

    def _skip_if_finished(self, run_id: str, path: str | None) -> bool:
        record = self._store.record(run_id)
        if record is not None and not record.state.finished:
            return False
        state = record.state.value if record else "gone"
        logger.info("run %s is %s; skipping %s", run_id, state, f"step {path}" if path else "join")
        if path is not None and self._store.step(run_id, path) is None:
            self._store.put_step(run_id, path, StepRecord(StepState.SKIPPED))
        raise Ignore()

    def _definition(self, plan: Plan, process: str) -> type[ProcessDefinition]:
        return resolve_definition(plan.processes[process].definition)

    def _start_processes(self, plan: Plan, run_id: str, path: str) -> None:
        for process in reversed(plan.ancestors(path)):
            self._fire_once(plan, run_id, "on_started", process, run_id)

    def _complete(self, plan: Plan, run_id: str, completes: tuple[str, ...]) -> None:
        for process in completes:
            self._fire_once(plan, run_id, "on_completed", process, run_id)
            if process == "":
                self._store.finish(run_id, RunState.SUCCESS)

    def _fire_once(self, plan: Plan, run_id: str, hook: Hook, process: str, *args: Any) -> None:
        marker = f"{hook.removeprefix('on_')}:{process}"
        if self._store.claim(run_id, marker):
            call_hook(self._definition(plan, process), hook, *args)

    def _fail_step(
        self, plan: Plan, run_id: str, step: PlannedStep, record: StepRecord, error: BaseException
    ) -> NoReturn:
        description = describe_error(error)
        self._store.put_step(
            run_id,
            step.path,
            record.moved_to(StepState.FAILURE, finished_at=now(), error=description),
        )
        if self._store.finish(run_id, RunState.FAILURE, step=step.path, error=description):
            exception = error if isinstance(error, Exception) else RuntimeError(description)
            for process in plan.ancestors(step.path):
                try:
                    self._fire_once(
                        plan, run_id, "on_failed", process, run_id, step.method, exception
                    )
                except UnknownDefinitionError:
                    logger.error("run %s: cannot call on_failed of %s", run_id, process)
        raise error

    def _reject(self, reason: str) -> NoReturn:
        logger.error("tasktronaut: rejected message: %s", reason)
        raise Reject(reason, requeue=False)
