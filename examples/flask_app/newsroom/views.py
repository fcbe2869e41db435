"""JSON endpoints: start publishing an article, and follow a run's progress."""

from typing import Any

from flask import Blueprint, current_app

from tasktronaut_celery import CeleryBackend, RunNotFoundError, StepState

from .processes import PublishArticle

bp = Blueprint("articles", __name__)


def tasktronaut() -> CeleryBackend:
    """The app's Tasktronaut backend, created by ``celery_init_app``."""
    backend: CeleryBackend = current_app.extensions["tasktronaut"]
    return backend


@bp.post("/articles/<int:article_id>/publish")
def publish(article_id: int) -> tuple[dict[str, Any], int]:
    """Enqueue :class:`PublishArticle` and answer at once with the run id to poll."""
    run = PublishArticle.build(article_id=article_id).enqueue(tasktronaut())
    return {"run_id": run.id}, 202


@bp.get("/runs/<run_id>")
def run_progress(run_id: str) -> tuple[dict[str, Any], int]:
    """The run's state and each step's, from any web process (state lives in Redis)."""
    try:
        run = tasktronaut().run(run_id)
    except RunNotFoundError:
        return {"error": f"no run {run_id!r}"}, 404
    state = run.state  # read before the steps, so SUCCESS here means every step shows it
    steps = run.steps()
    return {
        "state": state.value,
        "steps": [
            {
                "path": step.path,
                "name": step.name,
                "description": step.description,
                "state": step.state.value,
                "attempts": step.attempts,
            }
            for step in steps
        ],
        "done": sum(step.state is StepState.SUCCESS for step in steps),
        "total": len(steps),
    }, 200
