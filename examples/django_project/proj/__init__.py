"""The ``proj`` Django project.

Importing the Celery app here makes sure it is loaded whenever Django starts,
so ``@shared_task`` and Tasktronaut's ``backend`` use it.
"""

from .celery import app as celery_app

__all__ = ["celery_app"]
