"""Helpers and fixtures for the example projects: services, subprocesses, the Flask app.

Each example runs as its README says: a ``celery worker`` subprocess (prefork,
two children, events on) started in the example's directory, with its broker
in Redis database 13 (and, for Flask, results in database 14). The services
must answer: on CI (``CI`` set) a missing one fails the run; on a laptop
without them these tests are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.databases import postgres_url
from tests.services import POSTGRES_URL, redis_db
from tests.support import celery_worker, free_port, require, require_modules, running, wait_until

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


def json_request(url: str, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """The status and JSON body of an HTTP request, whatever the status."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def manage(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGUMENTS`` in the example's directory."""
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=DJANGO_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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


@pytest.fixture(scope="module")
def project_env() -> dict[str, str]:
    """The example's environment: its settings, this session's PostgreSQL, Redis db 13."""
    require_modules("django", "django_celery_results", "psycopg2")
    require(BROKER, "Redis")
    require(POSTGRES_URL, "PostgreSQL")
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "proj.settings",
        "DATABASE_URL": postgres_url().replace("postgresql+psycopg2://", "postgresql://", 1),
        "CELERY_BROKER_URL": BROKER,
    }


@pytest.fixture(scope="module")
def django_site(project_env: dict[str, str]) -> Iterator[str]:
    """The base URL of ``manage.py runserver``, with migrations applied and a worker running."""
    flush(BROKER)
    env = project_env
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--verbosity", "0"], cwd=DJANGO_PROJECT, env=env, check=True
    )
    port = free_port()
    server = [*manage, "runserver", f"127.0.0.1:{port}", "--noreload"]
    # Without Django's system checks (which import the URLconf, hence the views
    # and processes), the worker knows FulfilOrder only through orders/tasks.py.
    worker_env = {**env, "CELERY_SKIP_CHECKS": "1"}
    with (
        celery_worker("proj", "django-example@localhost", DJANGO_PROJECT, worker_env, BROKER),
        running(server, DJANGO_PROJECT, env) as runserver,
    ):
        url = f"http://127.0.0.1:{port}"

        def serving() -> bool:
            assert runserver.poll() is None, "runserver exited while starting"
            try:
                urllib.request.urlopen(f"{url}/runs/probe/", timeout=1).close()
            except urllib.error.HTTPError:
                return True  # it answered (404: there is no such run)
            except OSError:
                return False
            return True

        wait_until(serving, 60, "runserver answering")
        yield url
