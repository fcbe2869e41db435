"""End the run when Celery drops one of its messages or kills its step, unseen by the runner.

A worker revokes a message whose task id was revoked, refuses one it cannot
decode or whose content type it does not accept, and kills a step at its
hard time limit. Celery handles these in the worker's main process and never
tells the task, so without this module the run would wait forever for a step
that never ends. Tasktronaut listens where Celery reports them (the
``task_revoked`` signal, the consumer's handlers for unreadable messages, the
request's ``on_timeout``) and cancels or fails the run there, naming the step.
The message's headers (task name and id) say which run and step it was, even
when its body cannot be read.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionWithTraceback
from celery import bootsteps
from celery.exceptions import InvalidTaskError, TimeLimitExceeded
from celery.signals import task_revoked
from celery.worker.request import Request

from .apps import runner_for
from .canvas import RUNNER_TASKS, STEP_TASK, parse_task_id
from .errors import CorruptPlanError
from .messages import RunEnded
from .store import RunState

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger("tasktronaut.celery")


def watch(app: Celery) -> None:
    """Have ``app``'s workers end the runs of Tasktronaut messages they drop."""
    app.steps["consumer"].add(FailRunsOfUnreadableMessages)
    task_revoked.connect(_cancel_revoked_runs, dispatch_uid="tasktronaut-revoked-runs")


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
    runner = runner_for(sender.app)
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
    _guarded(runner.end_from_outside, run_id, path, RunState.CANCELLED, f"{what} was {reason}")


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
            _check_shape(message.payload if body is None else body)
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


def _check_shape(payload: Any) -> None:
    """Raise ``ValueError`` unless ``payload`` is a protocol-2 body: args, kwargs, embed."""
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        raise ValueError(f"a {type(payload).__name__}, not a 3-item list")
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ValueError("args must be a list and kwargs an object")
    if embed is not None and not isinstance(embed, dict):
        raise ValueError("embed must be an object")


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
        runner = runner_for(self.task.app)
        target = parse_task_id(self.task.name, self.id)
        if runner is not None and target is not None:
            killed = TimeLimitExceeded(
                f"the worker killed it at its hard time limit ({timeout} s)"
            )
            _guarded(runner.end_from_outside, *target, RunState.FAILURE, _described(killed))


def _fail_run_of(app: Celery, message: Any, exc: Exception) -> None:
    headers = getattr(message, "headers", None) or {}
    name, task_id = headers.get("task"), headers.get("id")
    if name not in RUNNER_TASKS or not isinstance(task_id, str):
        return
    runner = runner_for(app)
    target = parse_task_id(name, task_id)
    if runner is None or target is None:
        return
    run_id, path = target
    error = CorruptPlanError(
        f"the worker could not read the {name} message {task_id} "
        f"({_described(exc)}); check that the client and the workers "
        "use the same serializer and accept_content"
    )
    _guarded(runner.end_from_outside, run_id, path, RunState.FAILURE, _described(error))


def _described(error: BaseException) -> str:
    """An error as run records show it; these carry ids and paths, never argument values."""
    return f"{type(error).__name__}: {error}"


def _guarded(end_run: Any, *args: Any) -> None:
    """Call ``end_run`` without letting its errors reach Celery's consumer."""
    try:
        end_run(*args)
    except Exception:
        logger.exception("tasktronaut: could not end the run of a dropped message")
