"""What a worker logs about a step: its name when it has no description, ignored results."""

from __future__ import annotations

import logging

import pytest

from tasktronaut import Builder, ProcessDefinition
from tasktronaut.runtime import Outcome, StepCall, run_step


class Returns(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.compute)
        builder.task(self.nothing)

    def compute(self) -> int:
        return 42

    def nothing(self) -> None:
        return None


def call(method: str, description: str | None = None) -> StepCall:
    return StepCall("run-1", Returns, method, "0", description, {}, 1)


def test_the_default_around_task_names_a_step_without_description(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It said "Executing None" before."""
    with caplog.at_level(logging.INFO, logger="tasktronaut"):
        run_step(call("nothing"))

    assert [r.getMessage() for r in caplog.records] == [
        "Executing nothing of Returns [run-1].",
        "Completed nothing of Returns [run-1].",
    ]


def test_the_default_around_task_shows_a_description_and_the_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="tasktronaut"):
        run_step(call("nothing", "Do nothing"))

    assert caplog.records[0].getMessage() == "Executing 'Do nothing' (nothing) of Returns [run-1]."


def test_a_step_returning_a_value_is_warned_about_once_per_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Results are not passed on, by design: say so once, without showing the value."""
    with caplog.at_level(logging.WARNING, logger="tasktronaut"):
        results = [run_step(call("compute")) for _ in range(3)]
        run_step(call("nothing"))

    assert {result.outcome for result in results} == {Outcome.SUCCEEDED}
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert "Returns.compute returned a value (int)" in message
    assert "not passed on" in message
    assert "42" not in message
