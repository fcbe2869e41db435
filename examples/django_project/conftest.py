"""The project's tests run their processes with Tasktronaut's pytest plugin."""

pytest_plugins = ["tasktronaut_celery.testing"]
