"""CeleryBackend accepts only apps whose result backend can hold runs, and registers its tasks.

The Redis store it makes, on a real Redis, is checked in ``tests/stores``.
"""

from __future__ import annotations

import pytest
from celery import Celery

from examples import user_guide
from tasktronaut import ProcessDefinition, TasktronautError
from tasktronaut_celery import CeleryBackend, UnsupportedAppError
from tasktronaut_celery.dispatch import Dispatch
from tasktronaut_celery.plan import plan_process
from tasktronaut_celery.stores.memory import MemoryRunStore
from tests.services import STORES

REDIS_URL = STORES  # read for its scheme only: no test here connects to it
TASKS = {
    "tasktronaut.start",
    "tasktronaut.step",
    "tasktronaut.join",
    "tasktronaut.begin",
    "tasktronaut.settle",
}


@pytest.mark.parametrize(
    "result_backend",
    [
        None,
        "disabled",
        "rpc://",
        "amqp://",
        "mongodb://localhost",
        "cache+memcached://127.0.0.1:11211/",
    ],
)
def test_app_without_a_usable_result_backend_is_refused(result_backend: str | None) -> None:
    """The error is an UnsupportedAppError telling the user to set result_backend to Redis."""
    app = Celery("refused", broker="memory://", backend=result_backend)

    with pytest.raises(UnsupportedAppError) as raised:
        CeleryBackend(app)

    message = str(raised.value)
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, TasktronautError)
    assert "result_backend" in message
    assert "redis://" in message
    assert "'refused'" in message


def test_result_backend_set_in_configuration_is_checked() -> None:
    """A backend configured through app.conf is refused just like one passed to Celery()."""
    app = Celery("configured", broker="memory://")
    app.conf.result_backend = "rpc://"

    with pytest.raises(UnsupportedAppError, match="rpc://"):
        CeleryBackend(app)


def test_refused_app_gets_no_tasks() -> None:
    """Nothing is registered on an app that is refused."""
    app = Celery("refused", broker="memory://", backend="rpc://")

    with pytest.raises(UnsupportedAppError):
        CeleryBackend(app)

    assert TASKS.isdisjoint(app.tasks)


def test_memory_result_backend_is_accepted() -> None:
    """An app with the cache+memory:// result backend gets the in-process store."""
    app = Celery("t", broker="memory://", backend="cache+memory://")

    backend = CeleryBackend(app)

    assert isinstance(backend.store, MemoryRunStore)
    assert backend.store is backend.store
    assert repr(backend) == "<CeleryBackend app='t'>"


def test_tasks_are_registered_on_the_app() -> None:
    """Creating the backend registers the start, step, join and cancel tasks on its app."""
    app = Celery("t", broker="memory://", backend="cache+memory://")

    CeleryBackend(app)

    assert set(app.tasks) >= TASKS
    for name in TASKS:
        registered = app.tasks[name]
        assert registered.name == name
        assert registered.acks_late is True
        assert registered.reject_on_worker_lost is True
        assert registered.ignore_result is False  # each message says whether to keep it


def test_tasks_are_not_shared_with_other_apps() -> None:
    """A Celery app created after the backend does not get the Tasktronaut tasks."""
    app = Celery("first", broker="memory://", backend="cache+memory://")
    CeleryBackend(app)
    assert set(app.tasks) >= TASKS

    other = Celery("second", broker="memory://", backend="cache+memory://")

    assert TASKS.isdisjoint(other.tasks)


def test_two_apps_get_their_own_tasks() -> None:
    """Each app with a backend has its own task objects, bound to that app."""
    first = Celery("first", broker="memory://", backend="cache+memory://")
    second = Celery("second", broker="memory://", backend="cache+memory://")
    CeleryBackend(first)
    CeleryBackend(second)

    for name in TASKS:
        assert first.tasks[name] is not second.tasks[name]
        assert first.tasks[name].app is first
        assert second.tasks[name].app is second


@pytest.mark.parametrize(
    ("canvas_limit", "sequential", "concurrent"),
    [
        ("auto", Dispatch.CANVAS, Dispatch.WORKER),
        (32, Dispatch.CANVAS, Dispatch.CANVAS),
        (0, Dispatch.WORKER, Dispatch.WORKER),
    ],
)
def test_by_default_concurrent_sections_are_joined_by_the_workers(
    canvas_limit: int | str, sequential: Dispatch, concurrent: Dispatch
) -> None:
    """On Redis "auto" sends small chains as canvas but no chord; a limit applies to all."""
    app = Celery("t", broker="memory://", backend=REDIS_URL)
    backend = CeleryBackend(app, canvas_limit=canvas_limit)  # type: ignore[arg-type]

    def dispatch(definition: type[ProcessDefinition]) -> Dispatch:
        return plan_process(
            definition.build(), backend.canvas_limit, backend.canvas_chords
        ).dispatch

    assert dispatch(user_guide.MyProcess) is sequential
    assert dispatch(user_guide.ConcurrentProcess) is concurrent
