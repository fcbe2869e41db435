"""Flower, started as the Flask example's README says, shows each step under its own name."""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from celery import states

from tests.support import running, wait_until

from .conftest import (
    BROKER,
    FLASK_APP,
    FLASK_WORKER,
    RESULTS,
    free_port,
    require_modules,
    wait_for_end,
)

if TYPE_CHECKING:
    from flask import Flask

pytestmark = pytest.mark.integration

# Flower's HTTP API answers only with authentication (or FLOWER_UNAUTHENTICATED_API).
CREDENTIALS = "tasktronaut:example"


@pytest.fixture(scope="module")
def flower(flask_worker: None) -> Iterator[Callable[[str], Any]]:
    """GET from a ``celery -A make_celery flower`` subprocess that receives the worker's events."""
    require_modules("flower")
    port = free_port()
    env = {**os.environ, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": RESULTS}
    command = [
        sys.executable, "-m", "celery", "-A", "make_celery", "flower",
        f"--port={port}", "--address=127.0.0.1", f"--basic-auth={CREDENTIALS}",
    ]  # fmt: skip
    authorization = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()

    def get(path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": authorization}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    with running(command, FLASK_APP, env) as process:

        def sees_the_worker() -> bool:
            assert process.poll() is None, "flower exited while starting"
            try:
                workers = get("/workers?json=1")["data"]
            except OSError:  # not listening yet
                return False
            return any(worker["hostname"] == FLASK_WORKER for worker in workers)

        # The worker's heartbeat reaching Flower shows Flower is consuming its events.
        wait_until(sees_the_worker, 60, "Flower receiving the worker's events")
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
