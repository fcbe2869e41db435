"""The README's demo: a small process you can watch run on the embedded default.

    tasktronaut run examples.demo:PublishReport title="Quarterly numbers" sections=4

Each step sleeps a little so that the live progress has something to show; the
sections are rendered concurrently, then the report is assembled and published.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from tasktronaut import Builder, Context, ProcessDefinition, task

logger = logging.getLogger(__name__)

WORK_SECONDS = 0.3


class PublishReport(ProcessDefinition):
    """Fetch data, render every section side by side, assemble and publish."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(title=str, sections=int)
        builder.task(self.fetch_data)
        with builder.concurrent("Render the sections") as render:
            for section in render.each(self.numbered_sections):
                section.task(self.render_section)
        builder.task(self.assemble)
        if builder.option("publish", True):
            builder.task(self.publish)

    def numbered_sections(self, sections: int) -> Iterator[tuple[dict[str, int], str]]:
        for number in range(1, sections + 1):
            yield {"number": number}, f"Render section {number}"

    @task(description="Fetch the numbers")
    def fetch_data(self, title: str) -> None:
        time.sleep(WORK_SECONDS)

    def render_section(self, number: int, context: Context) -> None:
        time.sleep(WORK_SECONDS)
        logger.info("rendered section %s (attempt %s)", number, context.attempt)

    @task(description="Assemble the report")
    def assemble(self, title: str, sections: int) -> None:
        time.sleep(WORK_SECONDS)

    @task(description="Publish it")
    def publish(self, title: str) -> None:
        time.sleep(WORK_SECONDS)
        logger.info("published %r", title)
