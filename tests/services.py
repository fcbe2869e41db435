"""Where every test tier finds Redis, RabbitMQ and PostgreSQL, and whether they answer."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

REDIS_URL = os.environ.get("TASKTRONAUT_REDIS_URL", "redis://127.0.0.1:6379")
AMQP_URL = os.environ.get("TASKTRONAUT_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_URL = os.environ.get(
    "TASKTRONAUT_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


BROKER_DB = 10
RESULT_DB = 11
EVENTS_DB = 12
# The run store tests' own (they empty it), one per pytest-xdist worker: 15, 9 and 8
# (13 and 14 are the example projects', 5 to 7 the benchmarks').
_XDIST_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
STORES_DB = (15, 9, 8)[_XDIST_WORKER % 3]


def redis_db(number: int) -> str:
    """The URL of Redis database ``number`` on the test server."""
    return f"{REDIS_URL.rstrip('/')}/{number}"


BROKERS = {
    "redis": redis_db(BROKER_DB),
    "rabbitmq": AMQP_URL,
}
RESULTS = redis_db(RESULT_DB)
EVENTS = redis_db(EVENTS_DB)
STORES = redis_db(STORES_DB)


def answers(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at the host and port of ``url``."""
    parsed = urlparse(url)
    default_port = {"amqp": 5672, "postgresql": 5432}.get(parsed.scheme.split("+")[0], 6379)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or default_port), timeout):
            return True
    except OSError:
        return False
