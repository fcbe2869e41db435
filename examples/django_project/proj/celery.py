"""The project's Celery app, as in Celery's "First steps with Django" guide.

The only Tasktronaut line is the last one: ``CeleryBackend(app)`` registers
Tasktronaut's runner tasks on this app, so the web process (which enqueues)
and ``celery -A proj worker`` (which runs the steps) share it.
"""

import os

from celery import Celery

from tasktronaut_celery import CeleryBackend

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
# Every CELERY_* setting in proj/settings.py configures the app.
app.config_from_object("django.conf:settings", namespace="CELERY")
# Imports tasks.py of every installed app in the worker (orders/tasks.py).
app.autodiscover_tasks()

backend = CeleryBackend(app)
