"""The Django app configuration."""

from __future__ import annotations

from django.apps import AppConfig


class TasktronautConfig(AppConfig):
    """Tasktronaut's run tables, used when Celery's result backend is ``django-db``."""

    name = "tasktronaut_celery.contrib.django"
    label = "tasktronaut"
    verbose_name = "Tasktronaut"
    default_auto_field = "django.db.models.BigAutoField"
