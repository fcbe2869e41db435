"""Celery's ``app.autodiscover_tasks()`` imports this module in every worker.

A worker runs only the process definitions it has imported: it never imports
code because a message names it. Importing ``processes`` here registers
:class:`FulfilOrder` in every ``celery -A proj worker``, whatever else the
worker happens to import (Django's system checks load the URLconf, and with
it the views, but ``CELERY_SKIP_CHECKS`` turns them off). Plain Celery
``@shared_task`` functions would live here too.
"""

from . import processes  # noqa: F401
