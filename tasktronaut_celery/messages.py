"""The fields of Tasktronaut's messages, checked before anything runs.

A message carries a run id and, for a step, join or begin, a path into the
run's stored plan: nothing in it names code. The definition and method a
step runs come from the plan the client stored, looked up among the
definitions the worker imported. A message with positional arguments, or
with fields missing, extra or not strings, is rejected unrun.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from celery.exceptions import Ignore, Reject

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger("tasktronaut.celery")


def message_fields(
    task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any], *names: str
) -> tuple[str, ...]:
    """The string fields ``names`` of ``task``'s message, or reject the message."""
    if args or set(kwargs) != set(names) or not all(isinstance(kwargs[n], str) for n in names):
        fields = ", ".join(names)
        reject(
            f"{task.name}[{task.request.id}] must carry exactly the string fields {fields}, "
            f"got args={_sketch(args)} kwargs={_sketch(kwargs)}"
        )
    return tuple(kwargs[name] for name in names)


class RunEnded(Ignore):  # type: ignore[misc]
    """Celery's ``Ignore`` for a message not run, or a step not finished, because its run ended.

    Celery sends no event for an ignored task, so monitors such as Flower
    would show it STARTED forever; the worker announces these as revoked
    instead (see ``undelivered.RunnerRequest``). Like ``Ignore``, it stops
    the message's chain and keeps no result.
    """


def reject(reason: str) -> NoReturn:
    """Log why a message is refused, and drop it without running anything."""
    logger.error("tasktronaut: rejected message: %s", reason)
    raise Reject(reason, requeue=False)


def _sketch(value: object, limit: int = 200) -> str:
    """A short repr of what a message carried, for the worker log."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
