"""The pytest fixtures and option of ``-p tasktronaut_celery.testing``.

One embedded backend per test session (per xdist worker), started on first
use: a real Celery worker on threads, the real runner, real concurrency.
Each test that takes ``tasktronaut_backend`` gets it with no runs in it; at
the test's end the runs still under way are cancelled and every run is
forgotten, so no test sees another's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from ..backend import CeleryBackend, backend_for
from ..embedded import EmbeddedBackend
from ..errors import RunError
from .snapshots import UPDATE_OPTION, GraphSnapshot
from .steps import StepHarness, harnessing

SETTLE_TIMEOUT = 10.0
"""How long a test's end waits for each run it cancels to settle."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--tasktronaut-update-snapshots``: write the graph snapshots anew."""
    parser.getgroup("tasktronaut").addoption(
        UPDATE_OPTION,
        action="store_true",
        help="write the graph snapshots of tasktronaut_snapshot anew instead of comparing",
    )


@pytest.fixture(scope="session")
def tasktronaut_session_backend() -> Iterator[EmbeddedBackend]:
    """The embedded backend the session's tests share (take ``tasktronaut_backend``)."""
    with EmbeddedBackend(concurrency=4) as backend:
        yield backend


@pytest.fixture
def tasktronaut_steps() -> Iterator[StepHarness]:
    """What each step received during the test, and the faults the test injects into steps."""
    with harnessing(StepHarness()) as harness:
        yield harness


@pytest.fixture
def tasktronaut_backend(
    tasktronaut_session_backend: EmbeddedBackend, tasktronaut_steps: StepHarness
) -> Iterator[EmbeddedBackend]:
    """An embedded backend with no runs: the test's runs are forgotten at its end."""
    yield tasktronaut_session_backend
    forget_runs(tasktronaut_session_backend)


@pytest.fixture
def tasktronaut_celery_backend(
    request: pytest.FixtureRequest, tasktronaut_steps: StepHarness
) -> CeleryBackend:
    """The backend of ``celery.contrib.pytest``'s ``celery_app``, its ``celery_worker`` running.

    Take it instead of ``celery_worker``: the backend registers its tasks on
    the app before the worker starts (a worker started earlier is told of
    them). Faults and records of ``tasktronaut_steps`` apply, the worker
    being in this process.
    """
    app = request.getfixturevalue("celery_app")
    backend = backend_for(app) or CeleryBackend(app)
    worker = request.getfixturevalue("celery_worker")
    worker.consumer.update_strategies()
    return backend


@pytest.fixture
def tasktronaut_snapshot(request: pytest.FixtureRequest) -> GraphSnapshot:
    """Checks a process's (or a run's) graph against a file in ``snapshots/`` beside the test."""
    return GraphSnapshot(
        request.path.parent / "snapshots",
        request.node.name,
        bool(request.config.getoption(UPDATE_OPTION)),
    )


def forget_runs(backend: CeleryBackend, settle_timeout: float = SETTLE_TIMEOUT) -> None:
    """Cancel the runs under way, wait for them to settle, and forget every run."""
    for run in backend.runs(limit=1_000_000):
        if run.record.settled_at is None:
            run.cancel()
            with contextlib.suppress(RunError, TimeoutError):
                run.wait(timeout=settle_timeout)
    backend.prune(datetime.now(timezone.utc) + timedelta(seconds=1))
