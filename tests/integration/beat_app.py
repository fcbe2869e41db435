"""A project whose Celery beat starts a Tasktronaut process every second.

``celery -A tests.integration.beat_app beat`` reads ``beat_schedule`` from
here, as a user's ``proj/celery.py``; the tests' worker runs the same app
in-process. Its queue is its own, so no other test's worker takes a tick.
"""

from __future__ import annotations

from tasktronaut import Builder, ProcessDefinition
from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS

from .worker_app import make_app

QUEUE = "beat-tests"


class Nightly(ProcessDefinition):
    """The report of a region."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(region=str)
        builder.task(self.collect)

    def collect(self, region: str) -> None:
        """Nothing to do."""


app = make_app(BROKERS["redis"], name="tasktronaut-beat")
app.conf.update(task_default_queue=QUEUE, beat_max_loop_interval=1)
backend = CeleryBackend(app)
app.conf.beat_schedule = {
    "nightly": backend.beat_entry(Nightly, 1.0, identifier="nightly-eu", region="eu"),
}
