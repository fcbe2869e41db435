"""Run state kept in a SQL database and in django-celery-results, not only in Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from examples import user_guide
from tasktronaut_celery import CeleryBackend, ProcessFailed, RunState, StepState
from tests.databases import configure_django, postgres_url
from tests.services import BROKERS, POSTGRES_URL
from tests.support import require

from . import processes
from .order import check_run
from .recorder import Recorder

BACKENDS = ["sqlalchemy", "django-db"]


@pytest.fixture(scope="module", params=BACKENDS, ids=["sqlalchemy-postgresql", "django-db"])
def database_backend(request: pytest.FixtureRequest) -> Iterator[CeleryBackend]:
    """An app whose results live in PostgreSQL, with a worker running it."""
    require(POSTGRES_URL, "PostgreSQL")
    url = "db+" + postgres_url() if request.param == "sqlalchemy" else "django-db"
    if url == "django-db":
        configure_django()
    app = Celery(f"tasktronaut-{url.partition(':')[0]}", broker=BROKERS["redis"], backend=url)
    app.conf.broker_connection_retry_on_startup = True
    backend = CeleryBackend(app)
    with start_worker(
        app, pool="threads", concurrency=4, perform_ping_check=False, loglevel="WARNING"
    ):
        yield backend


def test_a_user_guide_process_runs_with_database_results(
    database_backend: CeleryBackend, recorder: Recorder
) -> None:
    """ComplexProcess's chords join and its run state is kept in the database."""
    process = user_guide.ComplexProcess.build(items=[f"i{i}" for i in range(25)])

    run = process.enqueue(database_backend).wait(timeout=60)

    check_run(process, recorder.events(run.id))
    assert all(s.state is StepState.SUCCESS for s in database_backend.run(run.id).steps())


def test_a_failure_is_recorded_in_the_database(database_backend: CeleryBackend) -> None:
    """A second handle, attached by id, sees the failure and the failing step."""
    run = processes.FailsOnce.build().enqueue(database_backend)

    with pytest.raises(ProcessFailed, match="ledger"):
        run.wait(timeout=60)

    attached = database_backend.run(run.id)
    assert attached.state is RunState.FAILURE
    assert attached.record.step == "1"
