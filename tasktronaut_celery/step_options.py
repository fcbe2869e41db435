"""A step's :class:`~tasktronaut.TaskOptions` where they become Celery's: the one edge.

The plan keeps each step's options typed; only here are they turned into what
Celery reads: the execution options of the step's signature (queue, priority,
time limits) and the retry policy the runner applies (how many retries, and
the countdown before each, by Celery's own rules and defaults).
"""

from __future__ import annotations

from typing import Any

from celery.utils.time import get_exponential_backoff_interval

from tasktronaut.options import TaskOptions

CELERY_DEFAULT_RETRY_DELAY = 180.0
CELERY_DEFAULT_BACKOFF_MAX = 600.0


def signature_options(options: TaskOptions) -> dict[str, Any]:
    """The execution options of a step's signature: those of ``options`` that are set."""
    scheduling = {
        "queue": options.queue,
        "priority": options.priority,
        "time_limit": options.time_limit,
        "soft_time_limit": options.soft_time_limit,
    }
    return {name: value for name, value in scheduling.items() if value is not None}


def max_retries(options: TaskOptions) -> int:
    """How often a failing step is retried; like Celery, never unless it is set."""
    return options.max_retries or 0


def retry_countdown(options: TaskOptions, retries: int) -> float:
    """Seconds before retry number ``retries + 1``, following Celery's own rules."""
    if options.retry_backoff:
        backoff = options.retry_backoff
        return float(
            get_exponential_backoff_interval(
                factor=1 if backoff is True else backoff,
                retries=retries,
                maximum=_or(options.retry_backoff_max, CELERY_DEFAULT_BACKOFF_MAX),
                full_jitter=_or(options.retry_jitter, True),
            )
        )
    return float(_or(options.default_retry_delay, CELERY_DEFAULT_RETRY_DELAY))


def _or(value: Any, default: Any) -> Any:
    """``value`` if the option is set, else Celery's ``default``."""
    return default if value is None else value
