"""Helpers and fixtures for the example projects: services, subprocesses, the Flask app.

Each example runs as its README says: a ``celery worker`` subprocess (prefork,
two children, events on) started in the example's directory, with its broker
in Redis database 13 (and, for Flask, results in database 14). The services
must answer: on CI (``CI`` set) a missing one fails the run; on a laptop
without them these tests are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.services import redis_db
from tests.support import celery_worker, require, require_modules, wait_until

if TYPE_CHECKING:
    from flask import Flask

T = TypeVar("T")

REPOSITORY = Path(__file__).resolve().parents[2]
DJANGO_PROJECT = REPOSITORY / "examples" / "django_project"
FLASK_APP = REPOSITORY / "examples" / "flask_app"
BROKER = redis_db(13)
RESULTS = redis_db(14)
FLASK_WORKER = "flask-example@localhost"
ENDED = ("SUCCESS", "FAILURE", "CANCELLED")


def flush(*urls: str) -> None:
    """Empty the Redis databases at ``urls``."""
    import redis

    for url in urls:
        redis.Redis.from_url(url).flushdb()


def wait_for_end(progress: Callable[[], dict[str, Any]], timeout: float = 60) -> dict[str, Any]:
    """Poll ``progress`` (a run's progress JSON) until the run has ended; return the last answer."""

    def ended() -> dict[str, Any] | None:
        answer = progress()
        return answer if answer["state"] in ENDED else None

    return wait_until(ended, timeout, "the run ending")


@pytest.fixture(scope="module")
def flask_app() -> Iterator[Flask]:
    """The Flask example's app, created by its own ``create_app`` with Redis dbs 13 and 14.

    The example's directory goes on ``sys.path`` as it is for the worker
    started there, so ``PublishArticle`` has the same reference in both.
    """
    require_modules("flask")
    require(BROKER, "Redis")
    flush(BROKER, RESULTS)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(FLASK_APP))
        from newsroom import create_app

        yield create_app(
            {"TESTING": True, "CELERY": {"broker_url": BROKER, "result_backend": RESULTS}}
        )


@pytest.fixture(scope="module")
def flask_worker(flask_app: Flask) -> Iterator[None]:
    """``celery -A make_celery worker`` running in the Flask example's directory."""
    env = {**os.environ, "CELERY_BROKER_URL": BROKER, "CELERY_RESULT_BACKEND": RESULTS}
    with celery_worker("make_celery", FLASK_WORKER, FLASK_APP, env, BROKER):
        yield
