"""The pytest fixtures, option and setting of ``-p tasktronaut_celery.testing``.

One embedded backend per test session (per xdist worker), started on first
use: a real Celery worker on threads, the real runner, real concurrency.
Each test that takes ``tasktronaut_backend`` gets it with no runs in it; at
the test's end the runs still under way are cancelled and every run is
forgotten, so no test sees another's, and the attempts of their steps still
finishing are left out of later tests' records.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator

import pytest

from ..backend import CeleryBackend, backend_for
from ..embedded import EmbeddedBackend
from ..errors import RunError
from .snapshots import UPDATE_OPTION, GraphSnapshot
from .steps import StepHarness, harnessing

SETTLE_TIMEOUT = 30.0
"""How long a test's end waits, in all, for the runs it cancels to settle."""

CONCURRENCY_SETTING = "tasktronaut_concurrency"


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--tasktronaut-update-snapshots``, and the ``tasktronaut_concurrency`` ini setting."""
    parser.getgroup("tasktronaut").addoption(
        UPDATE_OPTION,
        action="store_true",
        help="write the graph snapshots of tasktronaut_snapshot instead of comparing them",
    )
    parser.addini(
        CONCURRENCY_SETTING,
        "worker threads of the embedded backend of tasktronaut_backend (default 4)",
        default="4",
    )


@pytest.fixture(scope="session")
def tasktronaut_session_backend(pytestconfig: pytest.Config) -> Iterator[EmbeddedBackend]:
    """The embedded backend the session's tests share (take ``tasktronaut_backend``)."""
    concurrency = int(pytestconfig.getini(CONCURRENCY_SETTING))
    with EmbeddedBackend(concurrency=concurrency) as backend:
        yield backend


@pytest.fixture(scope="session")
def tasktronaut_forgotten_runs() -> set[str]:
    """The runs earlier tests left: their steps still finishing are not this test's."""
    return set()


@pytest.fixture
def tasktronaut_steps(tasktronaut_forgotten_runs: set[str]) -> Iterator[StepHarness]:
    """What each step received during the test, and the faults the test injects into steps."""
    with harnessing(StepHarness(ignored=tasktronaut_forgotten_runs)) as harness:
        yield harness
    unfired = harness.unfired()
    if unfired:
        warnings.warn(
            pytest.PytestWarning(
                f"faults that never fired (a misspelled name, or a step not run): {unfired}"
            ),
            stacklevel=1,
        )


@pytest.fixture
def tasktronaut_backend(
    tasktronaut_session_backend: EmbeddedBackend,
    tasktronaut_steps: StepHarness,
    tasktronaut_forgotten_runs: set[str],
) -> Iterator[EmbeddedBackend]:
    """An embedded backend with no runs: the test's runs are forgotten at its end."""
    yield tasktronaut_session_backend
    tasktronaut_forgotten_runs.update(forget_runs(tasktronaut_session_backend))


@pytest.fixture
def tasktronaut_app_backend(
    request: pytest.FixtureRequest,
    tasktronaut_steps: StepHarness,
    tasktronaut_forgotten_runs: set[str],
) -> Iterator[CeleryBackend]:
    """The backend of ``celery.contrib.pytest``'s ``celery_app``, its ``celery_worker`` running.

    Take it instead of ``celery_worker``: the backend registers its tasks on
    the app before the worker starts (a worker started earlier is told of
    them). Faults and records of ``tasktronaut_steps`` apply, the worker
    being in this process; the test's runs are forgotten at its end.
    """
    app = request.getfixturevalue("celery_app")
    backend = backend_for(app) or CeleryBackend(app)
    worker = request.getfixturevalue("celery_worker")
    worker.consumer.update_strategies()
    yield backend
    tasktronaut_forgotten_runs.update(forget_runs(backend))


@pytest.fixture
def tasktronaut_snapshot(request: pytest.FixtureRequest) -> GraphSnapshot:
    """Checks a process's (or a run's) graph against ``snapshots/<module>/<test>.mmd``."""
    test = (
        request.node.name if request.cls is None else f"{request.cls.__name__}.{request.node.name}"
    )
    return GraphSnapshot(
        request.path.parent / "snapshots" / request.path.stem,
        test,
        bool(request.config.getoption(UPDATE_OPTION)),
    )


def forget_runs(backend: CeleryBackend, settle_timeout: float = SETTLE_TIMEOUT) -> list[str]:
    """Cancel the runs under way, wait for them to settle, and forget every run; their ids.

    Raises ``RuntimeError`` naming the runs that did not settle within
    ``settle_timeout`` seconds in all (an end hook that hangs, or every
    worker thread held by steps that do not return); those are kept.
    """
    deadline = time.monotonic() + settle_timeout
    runs = backend.runs(limit=1_000_000)
    for run in runs:
        if run.record.settled_at is None:
            run.cancel()
    unsettled = []
    for run in runs:
        try:
            run.wait(timeout=max(0.0, deadline - time.monotonic()))
        except RunError:
            pass  # cancelled, or failed: settled either way
        except TimeoutError:
            unsettled.append(run.id)
    forgotten = [run.id for run in runs if run.id not in unsettled]
    for run_id in forgotten:
        backend.store.delete(run_id)
    if unsettled:
        raise RuntimeError(
            f"runs still under way {settle_timeout:g} s after the test cancelled them (an end "
            f"hook that hangs, or every worker thread held by a step): {', '.join(unsettled)}"
        )
    return forgotten
