"""The Flask example: its app in this process, its ``celery -A make_celery worker`` in another."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .conftest import wait_for_end

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("flask_worker")]

PUBLISH_ARTICLE = [
    ("0", "PublishArticle.load_draft", "Load the draft"),
    ("1.0", "PublishArticle.check_links", "Check every link"),
    ("1.1", "PublishArticle.render_html", "Render the HTML"),
    ("2", "PublishArticle.go_live", "Put the article live"),
    ("3.0", "PublishArticle.announce", "Announce on newsletter"),
    ("3.1", "PublishArticle.announce", "Announce on rss"),
    ("3.2", "PublishArticle.announce", "Announce on social"),
]


@pytest.fixture
def client(flask_app: Flask) -> FlaskClient:
    return flask_app.test_client()


def test_publishing_an_article_runs_every_step(client: FlaskClient) -> None:
    """POST answers 202 with a run id, and the run's progress ends SUCCESS with every step done."""
    response = client.post("/articles/7/publish")

    assert response.status_code == 202
    run_id = response.get_json()["run_id"]

    def fetch_progress() -> dict[str, Any]:
        response = client.get(f"/runs/{run_id}")
        assert response.status_code == 200
        answer: dict[str, Any] = response.get_json()
        return answer

    progress = wait_for_end(fetch_progress)

    assert progress["state"] == "SUCCESS", progress
    steps = [(s["path"], s["name"], s["description"]) for s in progress["steps"]]
    assert steps == PUBLISH_ARTICLE
    assert [(s["state"], s["attempts"]) for s in progress["steps"]] == [("SUCCESS", 1)] * 7
    assert progress["done"] == progress["total"] == 7


def test_an_unknown_run_is_404(client: FlaskClient) -> None:
    """GET for a run id nobody enqueued answers 404 with a JSON error."""
    response = client.get("/runs/no-such-run")

    assert response.status_code == 404
    assert "no-such-run" in response.get_json()["error"]


def test_the_app_keeps_celery_and_tasktronaut_in_its_extensions(flask_app: Flask) -> None:
    """create_app configures Celery from the test config and puts the backend on that app."""
    celery_app = flask_app.extensions["celery"]

    assert celery_app.conf.broker_url.endswith("/13")
    assert celery_app.conf.result_backend.endswith("/14")
    assert flask_app.extensions["tasktronaut"].app is celery_app
