"""CeleryBackend fills in the Redis timeouts an app leaves unset, so that enqueue ends.

Nothing here connects: the settings are read back from the app and from the
connection parameters Celery and kombu derive from them.
"""

from __future__ import annotations

from celery import Celery

from tasktronaut_celery import CeleryBackend

REDIS = "redis://127.0.0.1:1/0"


def backend_timeouts(app: Celery) -> tuple[object, object]:
    """The read and connect timeouts the app's Redis result backend connects with."""
    params = app.backend.connparams
    return params["socket_timeout"], params["socket_connect_timeout"]


def test_unset_timeouts_become_broker_connection_timeout() -> None:
    """Celery's defaults: no Redis broker timeout, 120 s result backend reads; then 4 s."""
    app = Celery("defaults", broker=REDIS, backend=REDIS)

    CeleryBackend(app)

    with app.connection_for_write() as connection:
        assert connection.transport_options == {"socket_timeout": 4, "socket_connect_timeout": 4}
    assert backend_timeouts(app) == (4, 4)


def test_timeouts_follow_broker_connection_timeout() -> None:
    app = Celery("shorter", broker=REDIS, backend=REDIS)
    app.conf.broker_connection_timeout = 1.5

    CeleryBackend(app)

    assert app.conf.broker_transport_options == {
        "socket_timeout": 1.5,
        "socket_connect_timeout": 1.5,
    }
    assert backend_timeouts(app) == (1.5, 1.5)


def test_timeouts_the_app_sets_are_kept() -> None:
    """``None`` (wait forever) included; other transport options stay as they were."""
    app = Celery("explicit", broker=REDIS, backend=REDIS)
    app.conf.update(
        broker_transport_options={"visibility_timeout": 7200, "socket_timeout": None},
        redis_socket_timeout=30,
    )

    CeleryBackend(app)

    assert app.conf.broker_transport_options == {
        "visibility_timeout": 7200,
        "socket_timeout": None,
        "socket_connect_timeout": 4,
    }
    assert backend_timeouts(app) == (30, 4)


class DjangoStyleSettings:
    """Settings with ``CELERY_``-prefixed names, as Django projects configure Celery."""

    CELERY_BROKER_URL = REDIS
    CELERY_RESULT_BACKEND = REDIS
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}  # noqa: RUF012
    CELERY_REDIS_SOCKET_TIMEOUT = 30


def test_namespaced_settings_are_completed_not_shadowed() -> None:
    """Celery 5.3 reads ``CELERY_BROKER_TRANSPORT_OPTIONS`` before a plain setting set later."""
    app = Celery("django-style")
    app.config_from_object(DjangoStyleSettings, namespace="CELERY")

    CeleryBackend(app)

    assert app.conf.broker_transport_options == {
        "visibility_timeout": 7200,
        "socket_timeout": 4,
        "socket_connect_timeout": 4,
    }
    assert backend_timeouts(app) == (30, 4)


def test_other_brokers_and_result_backends_are_left_alone() -> None:
    """AMQP bounds connecting with broker_connection_timeout itself; the memory cache needs none."""
    app = Celery("amqp", broker="amqp://127.0.0.1:1//", backend="cache+memory://")

    CeleryBackend(app)

    assert app.conf.broker_transport_options == {}
    assert app.conf.redis_socket_timeout == 120
    assert app.conf.redis_socket_connect_timeout is None
