"""Finding runs: ``backend.runs()`` with its filters, ``run.progress``, ``backend.prune()``."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone

import pytest

from tasktronaut import Builder, ProcessDefinition
from tasktronaut_celery import (
    EmbeddedBackend,
    ProcessFailed,
    Progress,
    RunNotFoundError,
    RunState,
)


class Shipment(ProcessDefinition):
    """Three steps; the last fails for order 13."""

    sensitive_arguments = ("card",)

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(order=int, card=str)
        builder.task(self.reserve)
        builder.task(self.charge)
        builder.task(self.ship)

    def reserve(self, order: int, card: str) -> None:
        pass

    def charge(self, order: int, card: str) -> None:
        pass

    def ship(self, order: int, card: str) -> None:
        if order == 13:
            raise RuntimeError(f"no carrier for order {order}")


class Invoice(ProcessDefinition):
    """One step."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.send)

    def send(self) -> None:
        pass


def ship(backend: EmbeddedBackend, order: int) -> str:
    run = Shipment.build(order=order, card="4111-1111-1111-1111").enqueue(backend)
    with contextlib.suppress(ProcessFailed):
        run.wait(timeout=30)
    return run.id


def test_runs_are_listed_newest_first_with_their_progress(embedded: EmbeddedBackend) -> None:
    since = datetime.now(timezone.utc)
    first, failed, last = ship(embedded, 1), ship(embedded, 13), ship(embedded, 2)

    listed = embedded.runs(definition=Shipment, since=since)

    assert [run.id for run in listed] == [last, failed, first]
    assert [run.progress for run in listed] == [(3, 0, 3), (2, 1, 3), (3, 0, 3)]
    assert listed[1].progress == Progress(done=2, failed=1, total=3)
    record = listed[1].record
    assert listed[1].listed == record  # what the listing read: the run has ended
    assert (record.definition, record.state, record.step) == ("Shipment", RunState.FAILURE, "2")
    assert record.arguments == "order=13, card=***"
    assert record.started_at is not None
    assert record.created_at <= record.started_at <= (record.finished_at or since)


def test_runs_are_filtered_by_state_definition_age_and_limit(embedded: EmbeddedBackend) -> None:
    since = datetime.now(timezone.utc)
    shipped, failed = ship(embedded, 3), ship(embedded, 13)
    invoice = Invoice.build().enqueue(embedded).wait(timeout=30).id

    def listed(**filters: object) -> list[str]:
        return [run.id for run in embedded.runs(since=since, **filters)]  # type: ignore[arg-type]

    assert listed() == [invoice, failed, shipped]
    assert listed(state="failure") == [failed]
    assert listed(state=RunState.SUCCESS) == [invoice, shipped]
    assert listed(state="SUCCESS", definition="Shipment") == [shipped]
    assert listed(definition=Invoice) == [invoice]
    assert listed(limit=1) == [invoice]
    assert [run.id for run in embedded.runs(since=timedelta(minutes=5), limit=3)] == listed()
    assert embedded.runs(since=timedelta(minutes=5), until=since, definition=Invoice) == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda b: b.runs(state="finished"),
            "unknown run state 'finished': one of pending, running",
        ),
        (lambda b: b.runs(limit=0), "limit must be at least 1, not 0"),
        (lambda b: b.prune(timedelta(days=1), state="running"), "only ended runs are pruned"),
    ],
)
def test_bad_filters_are_refused_naming_what_is_allowed(
    embedded: EmbeddedBackend, call: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(embedded)  # type: ignore[operator]


def test_prune_forgets_ended_runs_older_than_the_age(embedded: EmbeddedBackend) -> None:
    since = datetime.now(timezone.utc)
    shipped, failed = ship(embedded, 4), ship(embedded, 13)

    assert embedded.prune(timedelta(days=1)) == 0
    assert embedded.prune(timedelta(0), state="failure") >= 1
    assert [run.id for run in embedded.runs(since=since)] == [shipped]
    assert embedded.prune(datetime.now(timezone.utc)) >= 1
    assert embedded.runs(since=since) == []
    with pytest.raises(Exception, match=failed):
        embedded.run(failed)


def test_run_again_starts_a_new_run_with_the_same_arguments(embedded: EmbeddedBackend) -> None:
    failed = embedded.run(ship(embedded, 13))

    again = embedded.run_again(failed.id)

    assert again.id != failed.id
    with pytest.raises(ProcessFailed, match="no carrier for order 13"):
        again.wait(timeout=30)
    assert again.record.arguments == failed.record.arguments == "order=13, card=***"
    assert [step.state.value for step in again.steps()] == ["SUCCESS", "SUCCESS", "FAILURE"]
    assert failed.state is RunState.FAILURE  # untouched


def test_run_again_of_an_unknown_run_is_refused(embedded: EmbeddedBackend) -> None:
    with pytest.raises(RunNotFoundError, match="'no-such-run' does not exist"):
        embedded.run_again("no-such-run")
