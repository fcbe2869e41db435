"""Beat entries: checked when made, and each tick starts one run however often it is sent.

The ticks are sent here as beat sends them (the entry's task and kwargs, its
lazy tick time evaluated); ``tests/integration/test_beat.py`` runs real
``celery beat`` processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.beat import BeatLazyFunc
from celery.schedules import crontab, schedule

from tasktronaut import Builder, InvalidArgumentsError, ProcessDefinition
from tasktronaut_celery import ArgumentNotSerializableError, EmbeddedBackend, RunState


class Report(ProcessDefinition):
    """A nightly report for one region."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(region=str, days=int)
        builder.task(self.collect)
        if builder.option("email"):
            builder.task(self.send)

    def collect(self, region: str, days: int) -> None:
        """Nothing to do."""

    def send(self, region: str) -> None:
        """Nothing to do."""


class Archive(ProcessDefinition):
    """Archives whatever it is given."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(payload=object)
        builder.task(self.store)

    def store(self, payload: object) -> None:
        """Nothing to do."""


def tick(backend: EmbeddedBackend, entry: dict, at: float | None = None) -> str:
    """Send the entry's message as beat does (at time ``at``); the identifier of the tick's run."""
    kwargs = {
        name: (value() if isinstance(value, BeatLazyFunc) else value)
        for name, value in entry["kwargs"].items()
    }
    if at is not None:
        kwargs["tick"] = at
    return str(
        backend.app.tasks[entry["task"]]
        .delay(**kwargs)
        .get(timeout=10, disable_sync_subtasks=False)
    )


def test_each_tick_starts_a_run_with_the_entrys_arguments(embedded: EmbeddedBackend) -> None:
    entry = embedded.beat_entry(
        Report, 30.0, identifier="eu-report", options={"email": True}, region="eu", days=7
    )

    first = tick(embedded, entry, at=1_800_000_000.0)
    second = tick(embedded, entry, at=1_800_000_031.0)

    assert (first, second) == ("eu-report@20270115T080000Z", "eu-report@20270115T080030Z")
    run = embedded.run(first).wait(timeout=10)
    assert run.state is RunState.SUCCESS
    assert run.record.arguments == "region='eu', days=7"
    assert [step.name for step in run.steps()] == ["Report.collect", "Report.send"]


def test_a_tick_sent_twice_starts_one_run(embedded: EmbeddedBackend) -> None:
    entry = embedded.beat_entry(Report, timedelta(minutes=5), region="us", days=1)

    identifiers = {
        tick(embedded, entry, at=1_800_000_000.0 + offset) for offset in (0.2, 3.0, 299.0)
    }

    (identifier,) = identifiers
    assert identifier.startswith("Report-")
    assert [run.id for run in embedded.runs(definition=Report) if run.id == identifier] == [
        identifier
    ]


@pytest.mark.parametrize(
    ("schedule_", "every"),
    [
        (10, 10.0),
        (timedelta(hours=1), 3600.0),
        (schedule(timedelta(seconds=5)), 5.0),
        (crontab(), 60.0),
    ],
    ids=["seconds", "timedelta", "schedule", "crontab"],
)
def test_a_tick_is_known_to_the_schedules_resolution(
    embedded: EmbeddedBackend, schedule_: object, every: float
) -> None:
    entry = embedded.beat_entry(Report, schedule_, region="eu", days=1)

    assert entry["schedule"] is schedule_
    assert entry["kwargs"]["every"] == every


def test_bad_arguments_fail_when_the_entry_is_made(embedded: EmbeddedBackend) -> None:
    with pytest.raises(InvalidArgumentsError, match="days"):
        embedded.beat_entry(Report, 60, region="eu", days="a week")
    with pytest.raises(ArgumentNotSerializableError, match="payload"):
        embedded.beat_entry(Archive, 60, payload=object())


def test_an_entry_made_by_hand_names_the_definition_only(embedded: EmbeddedBackend) -> None:
    """As django-celery-beat's admin makes one: the task, and JSON kwargs."""
    kwargs = {
        "definition": "tests.embedded.test_schedules:Report",
        "arguments": {"region": "ap", "days": 2},
    }

    identifier = str(
        embedded.app.tasks["tasktronaut.scheduled"]
        .delay(**kwargs)
        .get(timeout=10, disable_sync_subtasks=False)
    )

    assert identifier.startswith("Report@")
    assert embedded.run(identifier).wait(timeout=10).state is RunState.SUCCESS
