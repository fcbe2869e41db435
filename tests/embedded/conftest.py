"""One embedded backend for the whole module: an in-process Celery app and worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasktronaut_celery import EmbeddedBackend


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedBackend]:
    with EmbeddedBackend(concurrency=4) as backend:
        yield backend
