"""Tasktronaut on the worker: its tasks, their request class, and the hooks for dropped messages.

:func:`serve` registers one task per kind of message (:data:`protocol.FIELDS
<tasktronaut_celery.protocol.FIELDS>`), each handing the message's fields to
the runner of the backend serving the app. That backend is kept on the app
itself (the newest one created on it wins), so a test or a reconfigured
project can replace it, and Celery's hooks, which see only the app, find it
there.

A worker revokes a message whose task id was revoked, refuses one it cannot
decode or whose content type it does not accept, and kills a step at its
hard time limit. Celery handles these in the worker's main process and never
tells the task, so without these hooks the run would wait forever for a step
that never ends. Tasktronaut listens where Celery reports them (the
``task_revoked`` signal, the consumer's handlers for unreadable messages, the
request's ``on_timeout``) and cancels or fails the run there, naming the step.
The message's headers (task name and id) say which run and step it was, even
when its body cannot be read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from billiard.einfo import ExceptionWithTraceback
from celery import bootsteps
from celery.exceptions import InvalidTaskError, TimeLimitExceeded
from celery.signals import task_postrun, task_revoked
from celery.worker.request import Request

from tasktronaut.backend import NO_REDACTION

from .canvas import name_sent_events_by_shadow
from .errors import CorruptPlanError, describe_error
from .protocol import (
    BEGIN_TASK,
    JOIN_TASK,
    RUNNER_TASKS,
    SCHEDULE_TASK,
    SETTLE_TASK,
    START_TASK,
    STEP_TASK,
    RunEnded,
    check_body,
    message_fields,
    parse_task_id,
    resume_of,
)
from .runner import Runner, returned
from .store import RunState

if TYPE_CHECKING:
    from celery import Celery, Task

logger = logging.getLogger("tasktronaut.celery")

_SERVED_BY = "tasktronaut_backend"
"""The attribute of a Celery app that holds the backend serving it."""

# Every Tasktronaut task acknowledges its message only once it has run, so a
# message whose worker died is delivered again (at least once per step). Run and
# step state live in the run store: each message says ``ignore_result`` unless a
# chord needs the result (Celery before 5.4 reads only the task's own setting, so
# that setting must keep results).
_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "shared": False,
    "acks_late": True,
    "reject_on_worker_lost": True,
}

_HANDLERS: dict[str, Callable[..., None]] = {
    START_TASK: Runner.start,
    STEP_TASK: Runner.step,
    BEGIN_TASK: Runner.begin,
    JOIN_TASK: Runner.join,
    SETTLE_TASK: Runner.settle,
}


class Serving(Protocol):
    """What serves an app's Tasktronaut tasks: a backend with its runner."""

    @property
    def runner(self) -> Runner:
        """What the app's workers do with Tasktronaut messages."""
        ...

    def start_scheduled(self, **fields: Any) -> str:
        """Start the run of one tick of a beat entry; its identifier."""
        ...


def serve(app: Celery, backend: Serving) -> None:
    """Have ``backend`` serve ``app``'s Tasktronaut tasks, registering them on first use."""
    first = serving(app) is None
    setattr(app, _SERVED_BY, backend)
    if not first:
        return
    app.steps["consumer"].add(FailRunsOfUnreadableMessages)
    task_revoked.connect(_cancel_revoked_runs, dispatch_uid="tasktronaut-revoked-runs")
    task_postrun.connect(_step_returned, dispatch_uid="tasktronaut-returned-steps")
    name_sent_events_by_shadow(app)

    class RunnerTask(app.Task):  # type: ignore[misc]
        """Tasktronaut's tasks: the worker tells their runs when it kills a step."""

        Request = RunnerRequest

    for name, handler in _HANDLERS.items():
        app.task(name=name, base=RunnerTask, **_TASK_OPTIONS)(_task_function(name, handler))
    app.task(name=SCHEDULE_TASK, bind=True, shared=False)(_start_scheduled)


def _start_scheduled(task: Task, **fields: Any) -> str:
    """A beat tick: start its run (once, however often the tick is delivered)."""
    backend = serving(task.app)
    assert backend is not None, "a scheduled task of an app no backend serves"
    return backend.start_scheduled(**fields)


def serving(app: Celery) -> Serving | None:
    """The backend serving ``app`` (the newest created on it), if any."""
    served: Serving | None = getattr(app, _SERVED_BY, None)
    return served


def _runner_of(app: Celery) -> Runner | None:
    backend = serving(app)
    return backend.runner if backend is not None else None


def _task_function(name: str, handler: Callable[..., None]) -> Callable[..., None]:
    """The function of the task ``name``: check the message's fields, then ``handler`` them."""

    def run(task: Task, *args: Any, **fields: Any) -> None:
        values = message_fields(task, args, fields)
        runner = _runner_of(task.app)
        assert runner is not None, "a runner task of an app no backend serves"
        handler(runner, task, *values)

    run.__name__ = run.__qualname__ = name.rpartition(".")[2]
    run.__doc__ = handler.__doc__
    return run


def _step_returned(sender: Any = None, **_: Any) -> None:
    """Wait for what a step left under way; Celery has sent the rest of its canvas."""
    if getattr(sender, "name", None) == STEP_TASK:
        returned(sender.request)


def _cancel_revoked_runs(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    """Cancel the run of a revoked (or expired, or terminated) Tasktronaut message."""
    name = getattr(sender, "name", None)
    if name not in RUNNER_TASKS:
        return
    runner = _runner_of(sender.app)
    target = parse_task_id(name, str(getattr(request, "id", "")))
    if runner is None or target is None:
        return
    run_id, path = target
    if expired:
        reason = "expired before a worker ran it"
    elif terminated:
        reason = f"terminated (signal {signum}) while it ran"
    else:
        reason = "revoked"
    what = f"step {path}" if name == STEP_TASK else f"the {name} message"
    resume = resume_of(name, str(request.id))
    ending = (run_id, path, RunState.CANCELLED, f"{what} was {reason}", resume)
    _guarded(runner.end_from_outside, *ending)


class FailRunsOfUnreadableMessages(bootsteps.StartStopStep):  # type: ignore[misc]
    """A consumer step: a Tasktronaut message the worker cannot read fails its run.

    It wraps the consumer's handlers for undecodable and refused messages;
    they still log the message and remove it from the queue as before. A
    message whose body decodes but is not ``[args, kwargs, embed]`` (or whose
    headers Celery cannot parse) would stop the whole worker with an
    "Unrecoverable error": for the runner tasks it is refused as invalid instead.
    """

    label = "tasktronaut"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, consumer: Any, **kwargs: Any) -> None:
        super().__init__(consumer, **kwargs)
        on_decode_error = consumer.on_decode_error
        on_invalid_task = consumer.on_invalid_task

        def decode_error(message: Any, exc: Exception) -> None:
            _fail_run_of(consumer.app, message, exc)
            on_decode_error(message, exc)

        def invalid_task(body: Any, message: Any, exc: Exception) -> None:
            _fail_run_of(consumer.app, message, exc)
            on_invalid_task(body, message, exc)

        consumer.on_decode_error = decode_error
        consumer.on_invalid_task = invalid_task

    def start(self, consumer: Any) -> None:
        """Guard the runner tasks' strategies, which the consumer rebuilds on each (re)start."""
        for name in RUNNER_TASKS:
            strategy = consumer.strategies.get(name)
            if strategy is not None and not getattr(strategy, "tasktronaut_guarded", False):
                consumer.strategies[name] = _refusing_malformed(consumer, name, strategy)


def _refusing_malformed(consumer: Any, name: str, strategy: Any) -> Any:
    """``strategy``, refusing as invalid a message Celery fails to turn into a request."""

    def guarded(message: Any, body: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            check_body(message.payload if body is None else body)
            return strategy(message, body, *args, **kwargs)
        except (ValueError, TypeError) as exc:  # e.g. a body that is not a 3-item list
            headers = getattr(message, "headers", None) or {}
            invalid = InvalidTaskError(
                f"malformed {name} message {headers.get('id')!r} "
                f"(the body must be [args, kwargs, embed]): {type(exc).__name__}: {exc}"
            )
            consumer.on_invalid_task(body, message, invalid)
            return None

    guarded.tasktronaut_guarded = True  # type: ignore[attr-defined]
    return guarded


class RunnerRequest(Request):  # type: ignore[misc]
    """The request class of Tasktronaut's tasks, in the worker's main process.

    A hard time limit fails the task's run there; a task that ended because
    its run had ended (``RunEnded``) is announced as revoked, so that task
    events, and Flower, show it in a final state.
    """

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """Let Celery handle the task's end, then announce a skipped task as revoked."""
        super().on_failure(exc_info, send_failed_event, return_ok)
        error = exc_info.exception
        if isinstance(error, ExceptionWithTraceback):  # as it comes back from a pool process
            error = error.exc
        if isinstance(error, RunEnded):
            self.send_event("task-revoked", terminated=False, signum=None, expired=False)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Let Celery fail the task, then fail its run when the limit was the hard one."""
        super().on_timeout(soft, timeout)
        if soft:
            return  # the step itself sees SoftTimeLimitExceeded
        runner = _runner_of(self.task.app)
        target = parse_task_id(self.task.name, self.id)
        if runner is not None and target is not None:
            killed = TimeLimitExceeded(
                f"the worker killed it at its hard time limit ({timeout} s)"
            )
            reason = describe_error(killed, NO_REDACTION)
            resume = resume_of(self.task.name, self.id)
            _guarded(runner.end_from_outside, *target, RunState.FAILURE, reason, resume)


def _fail_run_of(app: Celery, message: Any, exc: Exception) -> None:
    headers = getattr(message, "headers", None) or {}
    name, task_id = headers.get("task"), headers.get("id")
    if name not in RUNNER_TASKS or not isinstance(task_id, str):
        return
    runner = _runner_of(app)
    target = parse_task_id(name, task_id)
    if runner is None or target is None:
        return
    run_id, path = target
    # These errors carry ids and paths, never argument values: nothing to redact.
    error = CorruptPlanError(
        f"the worker could not read the {name} message {task_id} "
        f"({describe_error(exc, NO_REDACTION)}); check that the client and the workers "
        "use the same serializer and accept_content"
    )
    reason = describe_error(error, NO_REDACTION)
    resume = resume_of(name, task_id)
    _guarded(runner.end_from_outside, run_id, path, RunState.FAILURE, reason, resume)


def _guarded(end_run: Any, *args: Any) -> None:
    """Call ``end_run`` without letting its errors reach Celery's consumer."""
    try:
        end_run(*args)
    except Exception:
        logger.exception("tasktronaut: could not end the run of a dropped message")
