"""The project's Celery app and Tasktronaut backend; the check picks the broker and result backend."""

import os

from celery import Celery

from tasktronaut_celery import CeleryBackend

app = Celery(
    "proj",
    broker=os.environ["PRISTINE_BROKER"],
    backend=os.environ["PRISTINE_RESULT_BACKEND"],
    include=["proj.processes"],
)
# Its own queue, so that the check shares a broker with nothing else.
app.conf.task_default_queue = "tasktronaut-pristine"

backend = CeleryBackend(app)
