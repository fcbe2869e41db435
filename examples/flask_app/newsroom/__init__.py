"""A Flask app whose articles are published by a Tasktronaut process on Celery workers.

The Celery setup follows Flask's "Background Tasks with Celery" pattern: the
app factory configures Celery from the Flask config and keeps the Celery app
in ``app.extensions["celery"]``; Tasktronaut's backend sits next to it in
``app.extensions["tasktronaut"]``.
"""

import os
from typing import Any

from celery import Celery, Task
from flask import Flask

from tasktronaut_celery import CeleryBackend


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The Flask app, configured from the environment unless ``test_config`` overrides it."""
    app = Flask(__name__)
    app.config.from_mapping(
        CELERY={
            "broker_url": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
            # Tasktronaut keeps each run's state in the result backend.
            "result_backend": os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/1"),
            "broker_connection_retry_on_startup": True,
            # Task events let Flower show every step under its own name.
            "worker_send_task_events": True,
        },
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    celery_init_app(app)

    from . import views

    app.register_blueprint(views.bp)
    return app


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app and the Tasktronaut backend on it, and attach both to ``app``."""

    class FlaskTask(Task):
        """Runs every task, Tasktronaut's steps included, inside the Flask app context."""

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    app.extensions["tasktronaut"] = CeleryBackend(celery_app)
    return celery_app
