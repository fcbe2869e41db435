"""One embedded backend for the whole module: an in-process Celery app and worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasktronaut_celery import EmbeddedBackend


@pytest.fixture(scope="module", params=["canvas", "worker"])
def embedded(request: pytest.FixtureRequest) -> Iterator[EmbeddedBackend]:
    """Runs sent as Celery canvas, then the same runs dispatched by the worker."""
    canvas_limit = None if request.param == "canvas" else 0
    with EmbeddedBackend(concurrency=4, canvas_limit=canvas_limit) as backend:
        yield backend
