"""``Run.steps()``: what a client sees of each step, times and retries included."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta, timezone

import pytest

from examples.user_guide import MixedProcess
from tasktronaut_celery import EmbeddedBackend, StepState

from .cli_processes import ATTEMPT_SECONDS, RETRY_DELAY, RetriesSlowly


def test_a_retried_step_spans_its_attempts_in_aware_utc_times(embedded: EmbeddedBackend) -> None:
    """started_at is the first attempt's start, so duration covers every attempt and wait."""
    run = RetriesSlowly.build().enqueue(embedded).wait(timeout=30)

    (status,) = run.steps()
    assert status.state is StepState.SUCCESS
    assert (status.attempts, status.max_retries) == (3, 3)
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.started_at.utcoffset() == status.finished_at.utcoffset() == timedelta(0)
    assert status.started_at.tzinfo is timezone.utc
    assert status.duration is not None
    assert status.duration >= 2 * (ATTEMPT_SECONDS + RETRY_DELAY) - 0.05  # clock granularity


def test_the_run_record_has_aware_utc_times_around_its_steps(embedded: EmbeddedBackend) -> None:
    """created_at, finished_at and settled_at compare with the steps' times, in UTC."""
    run = RetriesSlowly.build().enqueue(embedded).wait(timeout=30)

    record = run.record
    (status,) = run.steps()
    assert record.created_at.tzinfo is timezone.utc
    assert status.started_at is not None
    assert status.finished_at is not None
    assert record.finished_at is not None
    assert record.settled_at is not None
    assert record.created_at <= status.started_at
    assert status.finished_at <= record.finished_at <= record.settled_at


def test_waiting_on_a_settled_run_reads_its_record_without_watching(
    embedded: EmbeddedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``status --watch`` and the CLI's summary ask a settled run again: no subscription each time."""
    run = MixedProcess.build().enqueue(embedded).wait(timeout=30)
    watched: list[str] = []
    store = embedded.store
    watch = store.watch

    def counting(run_id: str) -> AbstractContextManager[Callable[[float], None]]:
        watched.append(run_id)
        return watch(run_id)

    monkeypatch.setattr(store, "watch", counting)
    assert run.wait(timeout=0) is run
    assert watched == []
