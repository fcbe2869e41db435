"""The client's version of ``DeployedPipeline``: a step ``publish`` was added since the old one.

This directory goes first on the client's ``sys.path``; ``../old`` on the
stale worker's, so both know the class as ``deployed_pipeline:DeployedPipeline``.
"""

from __future__ import annotations

from tasktronaut import Builder, ProcessDefinition

LEGACY_QUEUE = "legacy"


class DeployedPipeline(ProcessDefinition):
    """Three steps; with the option ``all_on_legacy`` every one goes to the stale worker's queue.

    Without it, only the first step goes to the default queue (an up-to-date
    worker), the others to the stale worker's.
    """

    def define_process(self, builder: Builder) -> None:
        all_on_legacy = builder.option("all_on_legacy")
        builder.task(self.extract, queue=LEGACY_QUEUE if all_on_legacy else "celery")
        builder.task(self.load, queue=LEGACY_QUEUE)
        builder.task(self.publish, queue=LEGACY_QUEUE)

    def extract(self) -> None:
        """Nothing: the recorder notes that it ran."""

    def load(self) -> None:
        """Nothing: the recorder notes that it ran."""

    def publish(self) -> None:
        """The step the old version does not have."""
