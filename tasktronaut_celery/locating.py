"""Finding the backend of a project from a reference to its Celery app, as ``celery -A`` does.

Shared by the ``tasktronaut`` command (``--app``) and the Django admin (the
project's app). A project's own ``backend = CeleryBackend(app, ...)``, beside
its app, is the one used, with its settings; an app with no backend gets one
with default settings.
"""

from __future__ import annotations

import importlib
from typing import Any

from celery import Celery
from celery.app.utils import find_app

from .backend import CeleryBackend, backend_for
from .errors import AppNotFoundError


def locate_backend(reference: str) -> CeleryBackend:
    """The backend for ``reference``: ``module:attribute``, a module, or a dotted attribute.

    Raises :class:`AppNotFoundError` saying what was looked for and why it
    was not found.
    """
    target = _attribute(reference) if ":" in reference else _module_target(reference)
    if isinstance(target, CeleryBackend):
        return target
    if isinstance(target, Celery):
        return backend_for(target) or CeleryBackend(target)
    raise AppNotFoundError(
        f"{reference!r} is {target!r}, neither a Celery app nor a CeleryBackend"
    )


def _attribute(reference: str) -> Any:
    """The object ``module:attribute`` names."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise AppNotFoundError(
            f"cannot import module {module_name!r} for the Celery app {reference!r}: {error}"
        ) from error
    if not hasattr(module, attribute):
        raise AppNotFoundError(f"module {module_name!r} has no {attribute!r} for the Celery app")
    return getattr(module, attribute)


def _module_target(reference: str) -> Any:
    """What a module reference names: its ``backend``, or its app as ``celery -A`` finds it.

    Celery looks for the module's ``app`` or ``celery`` attribute, then its
    ``celery`` submodule (``proj`` finds ``proj.celery:app``), then any
    Celery app in it; a dotted ``proj.celery.app`` names the attribute.
    """
    try:
        module = importlib.import_module(reference)
    except ModuleNotFoundError as error:
        if error.name != reference or "." not in reference:
            raise AppNotFoundError(
                f"cannot import module {reference!r} for the Celery app: {error}"
            ) from error
        module = None  # proj.celery.app: an attribute, which Celery's find_app resolves
    except Exception as error:
        raise AppNotFoundError(
            f"cannot import module {reference!r} for the Celery app: {error}"
        ) from error
    backend = getattr(module, "backend", None)
    if isinstance(backend, CeleryBackend):
        return backend
    try:
        return find_app(reference)
    except Exception as error:
        raise AppNotFoundError(
            f"cannot find a Celery app in {reference!r} the way `celery -A` does (its 'app' or "
            f"'celery' attribute, a {reference}.celery module, or a Celery app in it): "
            f"{type(error).__name__}: {error}"
        ) from error
