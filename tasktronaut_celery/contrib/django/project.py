"""The project's Celery app and Tasktronaut backend, found from its settings.

The app is found the way ``celery -A proj`` finds it, in the package of
``DJANGO_SETTINGS_MODULE`` (``proj.settings`` looks in ``proj``), unless the
``TASKTRONAUT_CELERY_APP`` setting names it (``"proj.celery:app"``, or the
module of the project's ``backend = CeleryBackend(app)``).
"""

from __future__ import annotations

import functools
import os

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ...backend import CeleryBackend
from ...locating import locate_backend


def project_app() -> str:
    """Where the project's Celery app is: the setting, else the settings module's package."""
    configured = getattr(settings, "TASKTRONAUT_CELERY_APP", None)
    if configured:
        return str(configured)
    package = os.environ.get("DJANGO_SETTINGS_MODULE", "").rpartition(".")[0]
    if not package:
        raise ImproperlyConfigured(
            "cannot tell where the project's Celery app is: set TASKTRONAUT_CELERY_APP "
            '(e.g. "proj.celery:app"), or DJANGO_SETTINGS_MODULE to a module of its package'
        )
    return package


def project_backend() -> CeleryBackend:
    """The backend serving the project's app, found once per process.

    Raises :class:`~tasktronaut_celery.AppNotFoundError` naming where it looked,
    or ``ImproperlyConfigured`` if the settings do not say where to look.
    """
    return _located(project_app())


@functools.cache
def _located(reference: str) -> CeleryBackend:
    return locate_backend(reference)
