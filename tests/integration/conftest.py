"""Fixtures: real Redis and RabbitMQ, Celery apps on them, and workers running the apps.

The services must answer: on CI (``CI`` set) a missing one fails the run; on a
laptop without them the integration tests are skipped. Each test module gets
one in-process worker per broker (a thread pool, so concurrent steps really
overlap); the ``celery worker`` subprocess tests start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS, EVENTS, RESULTS
from tests.support import empty_queues, require

from .recorder import Recorder, install, uninstall
from .worker_app import make_app

WORKER_QUEUES = ["celery", "special"]


@pytest.fixture(scope="session", autouse=True)
def _fresh_databases() -> None:
    """Empty Redis databases and RabbitMQ queues: nothing of an earlier session reaches a worker."""
    require(RESULTS, "Redis")
    for url in (RESULTS, EVENTS, BROKERS["redis"]):
        redis.Redis.from_url(url).flushdb()
    require(BROKERS["rabbitmq"], "RabbitMQ")
    with Connection(BROKERS["rabbitmq"]) as connection:
        empty_queues(connection, WORKER_QUEUES)


@pytest.fixture(scope="package", autouse=True)
def recorder() -> Iterator[Recorder]:
    """What workers recorded, per run; in-process workers record only during these tests."""
    yield install(EVENTS)
    uninstall()


@pytest.fixture(scope="module", params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest) -> str:
    """Each broker the module runs on: Redis, then RabbitMQ (results always in Redis)."""
    name: str = request.param
    require(BROKERS[name], name)
    return name


@pytest.fixture(scope="module")
def celery_app(broker: str) -> Celery:
    app = make_app(BROKERS[broker], name=f"tasktronaut-tests-{broker}")
    with app.connection_for_write() as connection:
        empty_queues(connection, WORKER_QUEUES)
    return app


@pytest.fixture(scope="module", params=["canvas", "worker"])
def backend(celery_app: Celery, request: pytest.FixtureRequest) -> CeleryBackend:
    """The module's app as canvas, then the same app with runs dispatched by workers."""
    return CeleryBackend(celery_app, canvas_limit=None if request.param == "canvas" else 0)


@pytest.fixture(scope="module")
def worker(celery_app: Celery, backend: CeleryBackend) -> Iterator[None]:
    """An in-process worker with four threads consuming the default and 'special' queues."""
    with start_worker(
        celery_app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        shutdown_timeout=30,
        loglevel="WARNING",
        queues=WORKER_QUEUES,
    ):
        yield


@pytest.fixture(scope="module")
def user_worker() -> Iterator[None]:
    """An in-process worker of ``worker_app``'s app: the app a user's ``--app`` names."""
    from . import worker_app

    with start_worker(
        worker_app.app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=WORKER_QUEUES,
    ):
        yield
