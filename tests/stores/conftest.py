"""The servers the run stores keep runs in, and a run id no other test uses.

Redis and PostgreSQL must answer: on CI (``CI`` set) a missing one fails the
run; on a laptop without them the tests that need them are skipped (the
memory store's still run).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.databases import postgres_url
from tests.services import POSTGRES_URL, STORES
from tests.support import require


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the tier's Redis database, emptied before and after the test."""
    require(STORES, "Redis")
    client = redis.Redis.from_url(STORES)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def postgres() -> str:
    """The URL of this session's PostgreSQL database."""
    require(POSTGRES_URL, "PostgreSQL")
    return postgres_url()


@pytest.fixture
def run_id() -> str:
    """A run id never used before, so no test sees what another left in a store."""
    return f"run-{uuid.uuid4().hex}"


@pytest.fixture
def other_run_id() -> str:
    """A second fresh run id, for tests that check runs do not touch each other."""
    return f"run-{uuid.uuid4().hex}"
