"""CeleryBackend keeps runs in the database of the app's Redis result backend."""

from __future__ import annotations

import redis
from celery import Celery

from tasktronaut_celery import CeleryBackend
from tasktronaut_celery.stores.redis import RedisRunStore
from tests.services import STORES


def test_redis_result_backend_is_accepted(redis_client: redis.Redis) -> None:
    """An app with a Redis result backend gets a store kept in that Redis database."""
    app = Celery("t", broker="memory://", backend=STORES)
    app.conf.result_expires = 60

    backend = CeleryBackend(app)

    assert isinstance(backend.store, RedisRunStore)
    assert backend.store.record("missing") is None
    assert redis_client.dbsize() == 0
