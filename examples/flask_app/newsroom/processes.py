"""How an article is published, as a Tasktronaut process.

Each step runs as its own Celery task on a worker, inside the Flask app
context (see ``FlaskTask``), so steps can use ``current_app`` and extensions.
"""

from collections.abc import Iterator
from typing import Any

from flask import current_app

from tasktronaut import Builder, ProcessDefinition, task

CHANNELS = ("newsletter", "rss", "social")


class PublishArticle(ProcessDefinition):
    """Check and render the draft at the same time, put it live, then announce it everywhere."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(article_id=int)

        builder.task(self.load_draft)

        with builder.concurrent() as checks:
            checks.task(self.check_links)
            checks.task(self.render_html)

        builder.task(self.go_live)

        with builder.concurrent() as announcing:
            for channel in announcing.each(self.channels):
                channel.task(self.announce)

    def channels(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Runs when the process is built: one ``announce`` step per channel."""
        for channel in CHANNELS:
            yield {"channel": channel}, f"Announce on {channel}"

    @task(description="Load the draft")
    def load_draft(self, article_id: int) -> None:
        current_app.logger.info("article %d: draft loaded", article_id)

    @task(description="Check every link")
    def check_links(self, article_id: int) -> None:
        current_app.logger.info("article %d: links checked", article_id)

    @task(description="Render the HTML")
    def render_html(self, article_id: int) -> None:
        current_app.logger.info("article %d: HTML rendered", article_id)

    @task(description="Put the article live")
    def go_live(self, article_id: int) -> None:
        current_app.logger.info("article %d: live", article_id)

    # Announcing talks to other services: retry a failure, waiting longer each time.
    @task(max_retries=3, retry_backoff=True)
    def announce(self, article_id: int, channel: str) -> None:
        current_app.logger.info("article %d: announced on %s", article_id, channel)
