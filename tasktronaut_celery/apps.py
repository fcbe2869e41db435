"""Which ``CeleryBackend`` serves each Celery app's Tasktronaut tasks and worker events.

Tasks are registered on an app once; the backend they use is the newest one
created on that app, looked up here so a test or a reconfigured project can
replace it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

    from .backend import CeleryBackend
    from .runner import Runner

_backends: weakref.WeakKeyDictionary[Celery, CeleryBackend] = weakref.WeakKeyDictionary()


def attach(app: Celery, backend: CeleryBackend) -> bool:
    """Make ``backend`` serve ``app``; ``True`` if no backend served it before."""
    first = app not in _backends
    _backends[app] = backend
    return first


def backend_for(app: Celery) -> CeleryBackend | None:
    """The backend serving ``app`` (the newest created on it), with the settings it was given."""
    return _backends.get(app)


def runner_for(app: Celery) -> Runner | None:
    """The runner of the backend serving ``app``, if Tasktronaut runs on it."""
    backend = backend_for(app)
    return backend.runner if backend is not None else None
