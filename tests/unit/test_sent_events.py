"""The wrapper that names Tasktronaut's ``task-sent`` events keeps the app's own sender."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from celery import Celery

from tasktronaut_celery import CeleryBackend


def test_a_sender_set_on_the_app_is_wrapped_once_and_still_sends() -> None:
    """An instrumentation's sender stays in charge, and a second backend does not nest it."""
    app = Celery("sent-events", broker="memory://", backend="cache+memory://")
    sent: list[tuple[str, dict[str, Any] | None]] = []

    def instrumented(producer: Any, name: str, message: Any, *args: Any, **options: Any) -> None:
        sent.append((name, message.sent_event))

    app.amqp.send_task_message = instrumented
    CeleryBackend(app)
    wrapper = app.amqp.send_task_message
    CeleryBackend(app)
    assert app.amqp.send_task_message is wrapper

    step = SimpleNamespace(headers={"shadow": "Report.render"}, sent_event={"name": "x"})
    other = SimpleNamespace(headers={}, sent_event={"name": "proj.add"})
    app.amqp.send_task_message(None, "tasktronaut.step", step)
    app.amqp.send_task_message(None, "proj.add", other)

    assert sent == [
        ("tasktronaut.step", {"name": "Report.render"}),
        ("proj.add", {"name": "proj.add"}),
    ]
