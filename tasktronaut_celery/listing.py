"""Runs as the ``tasktronaut runs`` table shows them, and ages as its options read them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from .store import RunRecord

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE = re.compile(r"(\d+)([smhdw])")
_ERROR_WIDTH = 60

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
