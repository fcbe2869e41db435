"""Processes on a schedule: Celery beat entries whose every tick starts one run.

An entry names the task ``tasktronaut.scheduled`` with the definition's reference,
the arguments and the options, checked when the entry is made (so a bad entry
fails when beat starts, not at 3 a.m.). Beat sends a message per tick; a
worker builds the process and enqueues it under the identifier
``<entry>@<tick>``: the entry's identifier and the tick's time, to the
schedule's resolution (its period for a fixed interval, the minute for a
crontab or solar schedule). A tick delivered twice (two beat processes by
mistake, a restart) then makes the same identifier, and the second is
refused as a duplicate: one run per tick.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from celery.beat import BeatLazyFunc

from tasktronaut import ProcessDefinition
from tasktronaut.builder import build_process
from tasktronaut.registry import reference_of, resolve_definition

from .errors import ConcurrencyLimitError, DuplicateRunError
from .protocol import SCHEDULE_TASK

if TYPE_CHECKING:
    from .backend import CeleryBackend

logger = logging.getLogger("tasktronaut.celery")

MINUTE = 60.0
"""The resolution of a tick of a crontab or solar schedule (and of an entry made by hand)."""


def beat_entry(
    definition: type[ProcessDefinition],
    schedule: Any,
    identifier: str | None,
    options: Mapping[str, bool],
    arguments: Mapping[str, Any],
) -> dict[str, Any]:
    """The ``beat_schedule`` value that starts a run of ``definition`` at each tick of ``schedule``.

    ``identifier`` names the entry's runs (``<identifier>@<tick>``); by
    default the definition's name and a digest of its arguments and options.
    The caller has checked that the process builds with them.
    """
    flags = dict(options)
    every = _resolution(schedule)
    entry = identifier or _default_identifier(definition, arguments, flags)
    return {
        "task": SCHEDULE_TASK,
        "schedule": schedule,
        "kwargs": {
            "definition": reference_of(definition),
            "arguments": dict(arguments),
            "options": flags,
            "entry": entry,
            "every": every,
            "tick": BeatLazyFunc(time.time),  # when beat sends it
        },
    }


def start_scheduled(
    backend: CeleryBackend,
    definition: str,
    arguments: Mapping[str, Any] | None = None,
    options: Mapping[str, bool] | None = None,
    entry: str | None = None,
    every: float = MINUTE,
    tick: float | None = None,
) -> str:
    """Start the run of one tick of an entry, unless that tick's run exists; its identifier.

    ``tick`` is when beat sent the message (seconds since the epoch); an entry
    made by hand (django-celery-beat's admin) has none, and the worker's clock
    stands in. The message's fields are those of :func:`beat_entry`. A tick
    refused by the definition's concurrency limit (policy ``"reject"``) is
    logged, not raised: the task has nobody to raise it to.
    """
    resolved = resolve_definition(definition)
    moment = _bucket(time.time() if tick is None else tick, every)
    name = entry or resolved.__qualname__
    identifier = f"{name}@{moment:%Y%m%dT%H%M%SZ}"
    process = build_process(
        resolved,
        identifier=identifier,
        options=dict(options or {}),
        arguments=dict(arguments or {}),
    )
    try:
        backend.enqueue(process)
    except DuplicateRunError:
        logger.info("%s: the run of this tick was started already", identifier)
    except ConcurrencyLimitError as refused:  # policy "reject": nobody to raise it to
        logger.warning("%s: not started this tick: %s", identifier, refused)
    return identifier


def _resolution(schedule: Any) -> float:
    """How far apart ticks of ``schedule`` are at the least, in seconds, for their identifiers."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    run_every = getattr(schedule, "run_every", None)  # celery.schedules.schedule
    if isinstance(run_every, timedelta) and type(schedule).__name__ == "schedule":
        return run_every.total_seconds()
    return MINUTE


def _bucket(seconds: float, every: float) -> datetime:
    """The start of the tick ``seconds`` falls in, ticks being ``every`` seconds apart."""
    step = max(every, 1.0)
    return datetime.fromtimestamp(math.floor(seconds / step) * step, timezone.utc)


def _default_identifier(
    definition: type[ProcessDefinition], arguments: Mapping[str, Any], options: Mapping[str, bool]
) -> str:
    """The definition's name and a digest of what it is started with."""
    given = json.dumps([dict(arguments), dict(options)], sort_keys=True, default=str)
    return f"{definition.__qualname__}-{hashlib.sha256(given.encode()).hexdigest()[:8]}"
