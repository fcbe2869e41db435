"""The module ``celery -A make_celery worker`` (and ``flower``) loads.

Creating the Flask app creates its Celery app and, with it, Tasktronaut's
runner tasks; importing ``newsroom`` (through its views) imports the process
definitions, which a worker must have imported to run their steps.
"""

from newsroom import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
