"""Errors of the Celery backend.

They hang under Tasktronaut's root error::

    TasktronautError
    ├── UnsupportedAppError (ValueError)      the app's result backend cannot hold runs
    ├── AppNotFoundError (LookupError)        an app reference names no Celery app
    ├── ArgumentNotSerializableError (TypeError)
    │                                         a step argument does not fit the serializer
    ├── DuplicateRunError (ValueError)        a run with that identifier exists already
    ├── ConcurrencyLimitError (RuntimeError)  the run's concurrency key is at its limit
    ├── BrokerUnavailableError (kombu's OperationalError)
    │                                         the broker or the result backend did not
    │                                         answer at enqueue
    ├── RunNotFoundError (LookupError)        no run with that identifier is stored
    ├── RetryRefusedError (ValueError)        a run cannot be retried (now)
    │   └── PlanChangedError                  its definition builds another tree today
    ├── CorruptPlanError (ValueError)         a stored plan or message cannot be read
    ├── StepLostError (RuntimeError)          a step's worker was lost on every delivery
    ├── WorkerCodeMismatchError (tasktronaut's UnknownDefinitionError)
    │                                         a worker's code cannot run the run's plan
    └── RunError                              a run did not succeed (raised by ``wait``)
        ├── ProcessFailed                     a step failed; names the step and error
        └── ProcessCancelled                  the run was cancelled

and ``UnsafeSerializerWarning`` (a ``UserWarning``) is issued for an app that
accepts pickle. ``SoftTimeLimitExceeded`` subclasses Celery's, naming the step and its limit.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from celery import exceptions as celery_exceptions
from kombu.exceptions import OperationalError

from tasktronaut.errors import TasktronautError, UnknownDefinitionError

if TYPE_CHECKING:
    from celery import Task

    from tasktronaut.sensitive import Redactor

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OperationalError, OSError)
"""What a broker or result backend that is down or silent raises (redis-py's are no OSError)."""
with contextlib.suppress(ImportError):
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    CONNECTION_ERRORS += (_RedisConnectionError, _RedisTimeoutError)


class UnsupportedAppError(TasktronautError, ValueError):
    """The Celery app is configured in a way that cannot run processes."""


class AppNotFoundError(TasktronautError, LookupError):
    """A reference to a Celery app (``--app``, a Django project's app) names none."""


class ArgumentNotSerializableError(TasktronautError, TypeError):
    """A step's argument cannot be encoded by the app's serializer; nothing was sent."""


class DuplicateRunError(TasktronautError, ValueError):
    """A run with this identifier was already enqueued; the existing run is untouched."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"a run with identifier {run_id!r} already exists; attach to it with "
            f"backend.run({run_id!r}) instead of enqueueing it again"
        )


class ConcurrencyLimitError(TasktronautError, RuntimeError):
    """A run was refused: its concurrency key is at its limit (policy ``"reject"``).

    ``holders`` are the runs holding the key's slots; nothing of the refused
    run was kept or sent.
    """

    def __init__(self, run: str, key: str, limit: int, holders: tuple[str, ...]) -> None:
        self.key = key
        self.limit = limit
        self.holders = holders
        noun = "run" if len(holders) == 1 else "runs"
        held = f"{noun} {', '.join(holders)}" if holders else "runs that ended meanwhile"
        super().__init__(
            f"{run} refused: concurrency key {key!r} is at its limit of {limit} "
            f"(held by {held}); nothing was stored or sent"
        )


class BrokerUnavailableError(TasktronautError, OperationalError):
    """The broker or the result backend did not answer at enqueue.

    Either the result backend could not store the run (then nothing was sent),
    or the broker did not take the message that opens it (then the stored run was
    deleted again, unless the result backend was lost too). The message names
    the service, where it is, and what was kept.
    """


class RunNotFoundError(TasktronautError, LookupError):
    """No run is stored under this identifier (never enqueued, or expired)."""


class RetryRefusedError(TasktronautError, ValueError):
    """A run cannot be resumed, or run again.

    It has not failed or been cancelled, has not settled, or has expired; or
    its definition no longer builds with its arguments.
    """


class PlanChangedError(RetryRefusedError):
    """The run's definition builds another tree today than the one the run was planned with."""


class CorruptPlanError(TasktronautError, ValueError):
    """A stored plan or an incoming message cannot be read."""


class StepLostError(TasktronautError, RuntimeError):
    """The worker running a step was lost (killed, out of memory) on every delivery allowed."""


class WorkerCodeMismatchError(UnknownDefinitionError):
    """A worker's code differs from the client's: a definition or step method of the plan is missing.

    The worker checks the whole plan before it runs anything of a run, and
    fails the run rather than run part of it.
    """


class SoftTimeLimitExceeded(celery_exceptions.SoftTimeLimitExceeded):  # type: ignore[misc]
    """Celery's ``SoftTimeLimitExceeded``, saying which step ran past which limit.

    What run records, ``on_failed`` and Celery's logs get instead of Celery's
    bare ``SoftTimeLimitExceeded()``; ``except SoftTimeLimitExceeded`` with
    Celery's class still catches it.
    """

    def __str__(self) -> str:
        return Exception.__str__(self)


def naming_time_limit(error: Exception, task: Task, step: str) -> Exception:
    """``error``, unless it is Celery's bare soft time limit: then one naming ``step`` and the limit.

    The limit is the one the worker enforced: the message's (the step's
    ``soft_time_limit`` option), else the task's or the app's default.
    """
    if not isinstance(error, celery_exceptions.SoftTimeLimitExceeded) or isinstance(
        error, SoftTimeLimitExceeded
    ):
        return error
    limit = (task.request.timelimit or (None, None))[1]
    limit = limit or task.soft_time_limit or task.app.conf.task_soft_time_limit
    of = f" of {limit:g} s" if limit else ""
    named = SoftTimeLimitExceeded(f"step {step} exceeded its soft time limit{of}")
    named.__cause__ = error
    named.__traceback__ = error.__traceback__
    return named


def describe_error(error: BaseException, redactor: Redactor) -> str:
    """An error as shown in run records: ``TypeName: message``, sensitive values hidden."""
    return redactor.text(f"{type(error).__name__}: {error}")


class UnsafeSerializerWarning(UserWarning):
    """The app accepts pickle: whoever can write to its broker can run code on its workers."""


class RunError(TasktronautError):
    """A run ended without succeeding."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class ProcessFailed(RunError):
    """A step (or a process's hook) failed for good; ``error`` says why.

    ``step`` is the failing step's path and ``step_name`` its
    ``Definition.method``. When ``on_started`` or ``on_completed`` raised
    instead, ``hook`` names that hook, ``step`` is the path of its process
    (``""`` for the top-level one) and ``step_name`` is ``Definition.hook``;
    ``hook`` is ``None`` when a step failed.
    """

    def __init__(
        self,
        run_id: str,
        step: str | None,
        step_name: str | None,
        error: str,
        hook: str | None = None,
    ) -> None:
        self.step = step
        self.step_name = step_name
        self.error = error
        self.hook = hook
        if hook is not None:
            message = f"run {run_id} failed: {error}"
        else:
            where = f"step {step} ({step_name})" if step is not None else "the run"
            message = f"run {run_id} failed at {where}: {error}"
        super().__init__(run_id, message)


_RUN_FAILING_HOOKS = ("on_started", "on_completed")


def hook_failure(hook: str, process: str, error: str) -> str:
    """A run record's error when a hook raised: ``on_completed of Outer > Inner raised ...``."""
    return f"{hook} of {process} raised {error}"


def failed_hook(error: str) -> str | None:
    """The hook that a run record's error (see :func:`hook_failure`) says raised, if any."""
    hook = error.partition(" of ")[0]
    return hook if hook in _RUN_FAILING_HOOKS and " raised " in error else None


class ProcessCancelled(RunError):
    """The run was cancelled, by ``run.cancel()`` or a step raising ``CancelProcessError``."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(run_id, f"run {run_id} was cancelled: {reason}")
