"""Listing runs: what is kept of a run for listings, the filters they take, the CLI's table."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .store import RunRecord, RunState, RunSummary

if TYPE_CHECKING:
    from tasktronaut import Process, ProcessDefinition

    from .plan import Plan

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"(\d+)([smhdw])")
_ERROR_WIDTH = 60
_STATE_WORDS = {"failed": RunState.FAILURE, "succeeded": RunState.SUCCESS}

SUMMARY_LENGTH = 500
"""The most characters of a run's arguments kept for listings."""


def run_summary(process: Process, plan: Plan) -> RunSummary:
    """What listings show of the run of ``process``: its arguments as shown, sensitive ones masked."""
    shown = ", ".join(
        f"{name}={plan.redactor.shown(name, value)}"
        for name, value in process.root.arguments.items()
    )
    if len(shown) > SUMMARY_LENGTH:
        shown = shown[: SUMMARY_LENGTH - 1] + "…"
    return RunSummary(process.root.name, shown, len(plan.steps))


def definition_name(definition: type[ProcessDefinition] | str | None) -> str | None:
    """The name runs of ``definition`` are listed under."""
    return (
        definition
        if definition is None or isinstance(definition, str)
        else definition.__qualname__
    )


def run_state(state: RunState | str | None) -> RunState | None:
    """``state`` as a :class:`RunState`: a name in any case, or ``failed`` and ``succeeded``."""
    if state is None or isinstance(state, RunState):
        return state
    word = state.lower()
    if word in _STATE_WORDS:
        return _STATE_WORDS[word]
    try:
        return RunState(word.upper())
    except ValueError:
        names = ", ".join(member.value.lower() for member in RunState)
        raise ValueError(f"unknown run state {state!r}: one of {names}") from None


def moment(when: datetime | timedelta | None) -> datetime | None:
    """An aware time: ``when`` itself (naive times are taken as UTC), or that long ago."""
    if when is None:
        return None
    if isinstance(when, timedelta):
        return datetime.now(timezone.utc) - when
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


COLUMNS = ("id", "definition", "state", "progress", "started (UTC)", "duration", "failing step")


def parse_age(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h``, ``7d``, ``2w`` or a sum of them (``1h30m``) as a duration."""
    compact = text.strip().lower().replace(" ", "")
    if not compact or _AGE.sub("", compact):
        raise ValueError(
            f"cannot read {text!r} as an age: use a number and a unit s, m, h, d or w "
            "(e.g. 90s, 15m, 1h, 7d, 1h30m)"
        )
    return sum(
        (timedelta(**{_UNITS[unit]: int(number)}) for number, unit in _AGE.findall(compact)),
        timedelta(),
    )


def duration(record: RunRecord, now: datetime | None = None) -> str:
    """How long the run has taken since a worker took it up: so far, if it is under way."""
    if record.started_at is None:
        return ""
    end = record.finished_at or (
        None if record.state.finished else (now or datetime.now(timezone.utc))
    )
    if end is None:
        return ""
    seconds = max(0.0, (end - record.started_at).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


def progress(record: RunRecord) -> str:
    """``7/10``, with the failed steps when there are any (``6/10, 1 failed``)."""
    shown = f"{record.done}/{record.total}"
    return f"{shown}, {record.failed} failed" if record.failed else shown


def failing_step(record: RunRecord) -> str:
    """Where and why a failed or cancelled run ended, the error cut to fit a line."""
    if record.error is None:
        return ""
    error = record.error.splitlines()[0] if record.error.strip() else record.error
    if len(error) > _ERROR_WIDTH:
        error = error[: _ERROR_WIDTH - 1] + "…"
    return error if record.step is None else f"{record.step}: {error}"


def row(run_id: str, record: RunRecord) -> tuple[str, ...]:
    """One run's cells, in the order of :data:`COLUMNS`."""
    started = "" if record.started_at is None else f"{record.started_at:%Y-%m-%d %H:%M:%S}"
    return (
        run_id,
        record.definition,
        record.state.value,
        progress(record),
        started,
        duration(record),
        failing_step(record),
    )


def table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """``rows`` under :data:`COLUMNS`, each column as wide as its widest cell."""
    lines = [COLUMNS, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(COLUMNS))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
