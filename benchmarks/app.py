"""The Celery app the benchmark worker runs: ``celery -A benchmarks.app worker``.

Its broker comes from ``BENCH_BROKER``. Every message published in a process
that imports this module (the benchmark client and the worker alike) is
counted and sized in Redis, so the report can give exact message figures,
unless ``BENCH_COUNT_MESSAGES`` is ``off`` (that costs a Redis round trip per
message, which comparisons of per-step overhead should not carry).
"""

from __future__ import annotations

import os

import redis
from celery import Celery, Task
from celery.signals import before_task_publish
from kombu.utils.json import dumps

from examples import user_guide  # noqa: F401 - its MixedProcess runs in benchmarks.overhead
from tasktronaut_celery import CeleryBackend

from . import shapes

STATS_URL = os.environ.get("BENCH_STATS_URL", "redis://127.0.0.1:6379/7")
STATS_KEY = "bench:messages"

RESULTS_URL = os.environ.get("BENCH_RESULTS", "redis://127.0.0.1:6379/6")


def make_app(broker: str) -> Celery:
    """The benchmark app on ``broker``, with its ``bench.work`` task and Tasktronaut backend."""
    app = Celery("bench", broker=broker, backend=RESULTS_URL)
    app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=3600,
    )
    CeleryBackend(app)

    @app.task(name="bench.work", ignore_result=True)
    def work(key: str) -> None:
        """Count one finished task."""
        shapes.count(key)

    @app.task(name="bench.relay", ignore_result=True, bind=True)
    def relay(self: Task, key: str, remaining: int) -> None:
        """Count one finished task, then send its successor: the floor of sequential work."""
        shapes.count(key)
        if remaining > 1:
            self.apply_async(kwargs={"key": key, "remaining": remaining - 1})

    return app


app = make_app(os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/5"))

_stats = redis.Redis.from_url(STATS_URL)
_record = _stats.register_script(
    """
    redis.call('HINCRBY', KEYS[1], 'count', 1)
    redis.call('HINCRBY', KEYS[1], 'bytes', ARGV[1])
    if tonumber(ARGV[1]) > tonumber(redis.call('HGET', KEYS[1], 'largest') or '0') then
        redis.call('HSET', KEYS[1], 'largest', ARGV[1])
    end
    """
)


@before_task_publish.connect
def _measure(body: object, headers: dict[str, object], **_: object) -> None:
    """Count the message and add its size: headers and body as the JSON serializer writes them."""
    if os.environ.get("BENCH_COUNT_MESSAGES") == "off":
        return
    _record(keys=[STATS_KEY], args=[len(dumps([headers, body]))])
