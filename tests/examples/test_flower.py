"""Flower, started as the Flask example's README says, shows each step under its own name."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from celery import states

from tasktronaut_celery.protocol import settle_task_id
from tests.support import flower as run_flower
from tests.support import wait_until

from .conftest import BROKER, FLASK_APP, FLASK_WORKER, RESULTS, wait_for_end

if TYPE_CHECKING:
    from flask import Flask

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def flower(flask_worker: None) -> Iterator[Callable[[str], Any]]:
    """``celery -A make_celery flower``, as the Flask example's README starts it."""
    env = {**os.environ, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": RESULTS}
    with run_flower("make_celery", FLASK_APP, env, FLASK_WORKER) as get:
        yield get


def test_flower_lists_every_step_under_its_name(
    flask_app: Flask, flower: Callable[[str], Any]
) -> None:
    """Every step task of a run shows in Flower's task list as Definition.method, SUCCESS."""
    client = flask_app.test_client()
    run_id = client.post("/articles/11/publish").get_json()["run_id"]
    progress = wait_for_end(lambda: client.get(f"/runs/{run_id}").get_json())
    assert progress["state"] == "SUCCESS", progress
    expected = {f"{run_id}:{step['path']}": step["name"] for step in progress["steps"]}

    def steps_ended_in_flower() -> dict[str, tuple[str, str]] | None:
        tasks = flower("/api/tasks")
        seen = {
            uuid: (tasks[uuid]["name"], tasks[uuid]["state"]) for uuid in expected if uuid in tasks
        }
        ended = seen.keys() == expected.keys() and all(
            state in states.READY_STATES for _, state in seen.values()
        )
        return seen if ended else None

    steps = wait_until(steps_ended_in_flower, 30, "Flower showing every step ended")

    assert steps == {uuid: (name, "SUCCESS") for uuid, name in expected.items()}
    assert "PublishArticle.render_html" in {name for name, _ in steps.values()}


def test_flower_shows_a_client_cancel_as_cancel(
    flask_app: Flask, flower: Callable[[str], Any]
) -> None:
    """The task a client's cancel sends shows in Flower as ``PublishArticle:cancel``."""
    backend = flask_app.extensions["tasktronaut"]
    client = flask_app.test_client()

    def cancelled_run() -> str | None:  # a run that ends before the cancel is tried again
        run_id: str = client.post("/articles/12/publish").get_json()["run_id"]
        return run_id if backend.cancel(run_id) else None

    run_id = wait_until(cancelled_run, 30, "a run cancelled before it ended")
    settle_id = settle_task_id(run_id)

    def settled_in_flower() -> tuple[str, str] | None:
        task = flower("/api/tasks").get(settle_id)
        if task is None or task["state"] not in states.READY_STATES:
            return None
        return task["name"], task["state"]

    shown = wait_until(settled_in_flower, 30, "Flower showing the cancel ended")

    assert shown == ("PublishArticle:cancel", "SUCCESS")
