"""The check's process: a step, then two side by side; each step leaves a mark that it ran."""

import os
from pathlib import Path

from tasktronaut import Builder, ProcessDefinition


class Pristine(ProcessDefinition):
    """Three steps, the last two in a concurrent block."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(label=str)
        builder.task(self.prepare)
        with builder.concurrent() as both:
            both.task(self.left)
            both.task(self.right)

    def prepare(self, label: str) -> None:
        mark(label, "prepare")

    def left(self, label: str) -> None:
        mark(label, "left")

    def right(self, label: str) -> None:
        mark(label, "right")


def mark(label: str, step: str) -> None:
    """Leave ``<label>.<step>`` in the directory ``PRISTINE_MARKS`` names."""
    (Path(os.environ["PRISTINE_MARKS"]) / f"{label}.{step}").touch()
