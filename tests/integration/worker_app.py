"""The Celery app the integration tests' workers run, in-process or as ``celery worker``.

As a module (``celery -A tests.integration.worker_app worker``) it reads its
broker from ``TASKTRONAUT_TEST_BROKER``, like a user's ``proj/celery.py`` would
read settings.
"""

from __future__ import annotations

import os

from celery import Celery

from examples import user_guide  # noqa: F401  (the guide's definitions, too)
from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS, EVENTS, RESULTS

from . import crashing, processes, resumable  # noqa: F401  (registers the test definitions)
from .recorder import install

# How long Redis keeps a message a worker took before handing it to another
# worker; the crash tests' workers lower it to see messages of killed workers again.
VISIBILITY_TIMEOUT = int(os.environ.get("TASKTRONAUT_TEST_VISIBILITY_TIMEOUT", "3600"))


def make_app(broker: str, name: str = "tasktronaut-tests") -> Celery:
    """A Celery app on ``broker`` with Redis results, configured like a production one."""
    app = Celery(name, broker=broker, backend=RESULTS)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        task_queues=None,
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
    )
    return app


if os.environ.get("TASKTRONAUT_TEST_WORKER"):  # a `celery worker` subprocess of the tests
    install(EVENTS)
    crashing.die_after_marked_tasks()
app = make_app(os.environ.get("TASKTRONAUT_TEST_BROKER", BROKERS["redis"]))
backend = CeleryBackend(app)
