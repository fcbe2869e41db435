"""Errors of the Celery backend.

They hang under Tasktronaut's root error::

    TasktronautError
    ├── UnsupportedAppError (ValueError)      the app's result backend cannot hold runs
    ├── ArgumentNotSerializableError (TypeError)
    │                                         a step argument does not fit the serializer
    ├── DuplicateRunError (ValueError)        a run with that identifier exists already
    ├── BrokerUnavailableError (kombu's OperationalError)
    │                                         the broker or the result backend did not
    │                                         answer at enqueue
    ├── RunNotFoundError (LookupError)        no run with that identifier is stored
    ├── CorruptPlanError (ValueError)         a stored plan or message cannot be read
    ├── StepLostError (RuntimeError)          a step's worker was lost on every delivery
    └── RunError                              a run did not succeed (raised by ``wait``)
        ├── ProcessFailed                     a step failed; names the step and error
        └── ProcessCancelled                  the run was cancelled

and ``UnsafeSerializerWarning`` (a ``UserWarning``) is issued for an app that
accepts pickle.
"""

from __future__ import annotations

import contextlib

from kombu.exceptions import OperationalError

from tasktronaut.errors import TasktronautError

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OperationalError, OSError)
"""What a broker or result backend that is down or silent raises (redis-py's are no OSError)."""
with contextlib.suppress(ImportError):
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    CONNECTION_ERRORS += (_RedisConnectionError, _RedisTimeoutError)


class UnsupportedAppError(TasktronautError, ValueError):
    """The Celery app is configured in a way that cannot run processes."""


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


class BrokerUnavailableError(TasktronautError, OperationalError):
    """The broker or the result backend did not answer at enqueue.

    Either the result backend could not store the run (then nothing was sent),
    or the broker did not take its start message (then the stored run was
    deleted again, unless the result backend was lost too). The message names
    the service, where it is, and what was kept.
    """


class RunNotFoundError(TasktronautError, LookupError):
    """No run is stored under this identifier (never enqueued, or expired)."""


class CorruptPlanError(TasktronautError, ValueError):
    """A stored plan or an incoming message cannot be read."""


class StepLostError(TasktronautError, RuntimeError):
    """The worker running a step was lost (killed, out of memory) on every delivery allowed."""


class UnsafeSerializerWarning(UserWarning):
    """The app accepts pickle: whoever can write to its broker can run code on its workers."""


class RunError(TasktronautError):
    """A run ended without succeeding."""

    def __init__(self, run_id: str, message: str) -> None:
        self.run_id = run_id
        super().__init__(message)


class ProcessFailed(RunError):
    """A step failed for good: ``step`` is its path, ``step_name`` its name, ``error`` the cause."""

    def __init__(self, run_id: str, step: str | None, step_name: str | None, error: str) -> None:
        self.step = step
        self.step_name = step_name
        self.error = error
        where = f"step {step} ({step_name})" if step is not None else "the run"
        super().__init__(run_id, f"run {run_id} failed at {where}: {error}")


class ProcessCancelled(RunError):
    """The run was cancelled, by ``run.cancel()`` or a step raising ``CancelProcessError``."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.reason = reason
        super().__init__(run_id, f"run {run_id} was cancelled: {reason}")
