"""Running one step on a worker, whatever the broker.

A backend resolves which step a message asks for, then hands a
:class:`StepCall` to :func:`run_step`, which instantiates the definition, builds
the :class:`~tasktronaut.Context`, passes the arguments the method accepts, runs
it inside ``around_task`` and classifies the outcome. The backend decides what
to do next (retry, stop the run, continue) from that classification, and calls
the lifecycle hooks through :func:`call_hook`. Both make the run's
:class:`~tasktronaut.sensitive.Redactor` the one :func:`~tasktronaut.redact` uses.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .calling import invoke
from .context import Context
from .definition import ProcessDefinition, resolve_step
from .errors import CancelProcessError, NonRetryableProcessError
from .scope import Arguments
from .sensitive import NO_REDACTION, Redactor, redacting

logger = logging.getLogger("tasktronaut")

Hook = Literal["on_started", "on_completed", "on_failed", "on_cancelled"]


class Outcome(enum.Enum):
    """How a step attempt ended."""

    SUCCEEDED = "succeeded"
    RETRYABLE = "retryable"
    """It raised an ordinary exception; the backend retries it if it has retries left."""
    FAILED = "failed"
    """It raised ``NonRetryableProcessError``: the step fails now."""
    CANCELLED = "cancelled"
    """It raised ``CancelProcessError``: the whole run is cancelled."""


@dataclass(frozen=True, slots=True)
class StepCall:
    """Everything needed to run one attempt of one step, and how to hide its run's secrets."""

    process_id: str
    definition: type[ProcessDefinition]
    method: str
    path: str
    description: str | None
    arguments: Mapping[str, Any]
    attempt: int
    redactor: Redactor = NO_REDACTION

    @property
    def name(self) -> str:
        """The step's name: ``Definition.method``."""
        return f"{self.definition.__qualname__}.{self.method}"


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one attempt, with the error that caused it, if any."""

    outcome: Outcome
    error: Exception | None = None


def run_step(call: StepCall) -> StepResult:
    """Run one attempt of a step and classify how it ended.

    Whatever the step (or ``around_task``) raises is classified, not raised;
    only a step that cannot be resolved raises ``UnknownDefinitionError``.
    """
    function = resolve_step(call.definition, call.method)
    instance = call.definition()
    context = Context(
        process_id=call.process_id,
        step=call.method,
        description=call.description,
        kwargs=Arguments(call.arguments, sensitive=call.redactor.names),
        attempt=call.attempt,
        definition=instance,
        path=call.path,
    )
    try:
        with (
            redacting(call.redactor),
            instance.around_task(call.process_id, call.method, call.description, context),
        ):
            result = invoke(function.__get__(instance), call.arguments, lambda: context)
    except Exception as error:
        return failed_with(error)
    if result is not None:
        _warn_result_ignored(call.name, result)
    return StepResult(Outcome.SUCCEEDED)


def failed_with(error: Exception) -> StepResult:
    """How an attempt that raised ``error`` ended: cancelled, failed for good, or retryable."""
    if isinstance(error, CancelProcessError):
        return StepResult(Outcome.CANCELLED, error)
    if isinstance(error, NonRetryableProcessError):
        return StepResult(Outcome.FAILED, error)
    return StepResult(Outcome.RETRYABLE, error)


_warned_results: set[str] = set()


def _warn_result_ignored(step: str, result: object) -> None:
    """Say once per step (per worker process) that what it returned goes nowhere.

    Only the type is shown: the value may hold a secret.
    """
    if step in _warned_results:
        return
    _warned_results.add(step)
    logger.warning(
        "%s returned a value (%s), which is not passed on: steps share nothing but "
        "their arguments; store what later steps need and return None (said once per step).",
        step,
        type(result).__qualname__,
    )


def call_hook(
    definition: type[ProcessDefinition],
    hook: Hook,
    *args: Any,
    redactor: Redactor = NO_REDACTION,
) -> None:
    """Call a lifecycle hook on a fresh instance of ``definition``.

    ``on_started`` and ``on_completed`` raise like the step they belong to;
    an error in ``on_failed`` or ``on_cancelled`` is logged (hiding what
    ``redactor`` hides), since the run has already ended and there is nothing
    left for it to fail.
    """
    instance = definition()
    with redacting(redactor):
        if hook in ("on_started", "on_completed"):
            getattr(instance, hook)(*args)
            return
        try:
            getattr(instance, hook)(*args)
        except Exception as error:
            logger.error(
                "%s.%s raised", definition.__qualname__, hook, exc_info=redactor.exception(error)
            )
