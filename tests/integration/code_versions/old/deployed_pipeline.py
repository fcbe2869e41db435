"""The stale worker's version of ``DeployedPipeline``: it predates the step ``publish``."""

from __future__ import annotations

from tasktronaut import Builder, ProcessDefinition


class DeployedPipeline(ProcessDefinition):
    """The definition as it was before ``publish`` was added."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.extract)
        builder.task(self.load)

    def extract(self) -> None:
        """Nothing: the recorder notes that it ran."""

    def load(self) -> None:
        """Nothing: the recorder notes that it ran."""
