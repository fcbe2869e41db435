"""A Celery app whose broker and result backend nobody listens on (port 1 refuses)."""

from __future__ import annotations

from celery import Celery

app = Celery("unreachable", broker="redis://127.0.0.1:1/0", backend="redis://127.0.0.1:1/1")
app.conf.broker_connection_timeout = 1
app.conf.redis_socket_connect_timeout = 1
