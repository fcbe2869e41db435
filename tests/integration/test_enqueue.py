"""Enqueueing: a second run with the same identifier, and a broker that is down or hangs.

Results live in the real Redis; the brokers are a port nobody listens on and
a local socket that accepts connections but never answers. Nothing of a run
that could not be sent may remain.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.signals import before_task_publish

from examples import user_guide
from tasktronaut_celery import (
    BrokerUnavailableError,
    CeleryBackend,
    DuplicateRunError,
    RunNotFoundError,
    RunState,
)
from tests.support import require

from .services import RESULTS

CONNECTION_TIMEOUT = 1.0


@pytest.fixture
def silent_broker() -> Iterator[tuple[str, int]]:
    """A TCP port that accepts connections (the kernel does) and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()
    listener.close()


def app_on(broker: str) -> Celery:
    """An app on ``broker`` with the real Redis results and a short connection timeout."""
    app = Celery(f"enqueue-{uuid.uuid4().hex[:6]}", broker=broker, backend=RESULTS)
    app.conf.update(
        broker_connection_timeout=CONNECTION_TIMEOUT,
        broker_transport_options={"socket_timeout": CONNECTION_TIMEOUT},
    )
    return app


def publish_limit(app: Celery) -> float:
    """The most the app's settings let one publish take: every retry, each timing out."""
    policy = app.conf.task_publish_retry_policy
    attempts = policy["max_retries"] + 1
    return attempts * (CONNECTION_TIMEOUT + policy["interval_max"]) + 5.0


@pytest.mark.parametrize(
    "broker",
    ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//", "silent-redis", "silent-amqp"],
)
def test_a_broker_that_is_down_or_silent_fails_enqueue_and_keeps_nothing(
    broker: str, request: pytest.FixtureRequest
) -> None:
    """A clear error within the app's timeouts, naming the process; the run is not stored."""
    require(RESULTS, "Redis")
    if broker.startswith("silent-"):
        host, port = request.getfixturevalue("silent_broker")
        scheme = broker.removeprefix("silent-")
        broker = f"redis://{host}:{port}/0" if scheme == "redis" else f"amqp://{host}:{port}//"
    app = app_on(broker)
    backend = CeleryBackend(app)
    run_id = f"down-{uuid.uuid4().hex}"

    started = time.monotonic()
    with pytest.raises(
        BrokerUnavailableError,
        match=r"MyProcess run down-\w+: the broker .* nothing of the run was kept",
    ):
        user_guide.MyProcess.build(identifier=run_id).enqueue(backend)
    elapsed = time.monotonic() - started

    assert elapsed < publish_limit(app), f"enqueue took {elapsed:.1f} s"
    with pytest.raises(RunNotFoundError):
        backend.run(run_id)


def test_enqueueing_an_identifier_twice_sends_one_start_message() -> None:
    """The second enqueue raises DuplicateRunError and leaves the first run as it was."""
    require(RESULTS, "Redis")
    # No worker consumes here: an in-memory broker keeps the start message from
    # reaching a later test's worker; the run store is the real Redis.
    backend = CeleryBackend(app_on("memory://"))
    run_id = f"twice-{uuid.uuid4().hex}"
    sent: list[str] = []
    lock = threading.Lock()

    def count(headers: dict[str, Any], **_: Any) -> None:
        if str(headers.get("id", "")).startswith(run_id):
            with lock:
                sent.append(headers["id"])

    before_task_publish.connect(count, weak=False)
    try:
        first = user_guide.MyProcess.build(identifier=run_id).enqueue(backend)
        with pytest.raises(DuplicateRunError, match=f"backend.run\\('{run_id}'\\)"):
            user_guide.MixedProcess.build(identifier=run_id).enqueue(backend)
    finally:
        before_task_publish.disconnect(count)

    assert sent == [f"{run_id}:start"]
    again = backend.run(run_id)
    assert again.state is first.state is RunState.PENDING  # no worker consumes here
    assert [s.name for s in again.steps()] == [s.name for s in first.steps()]
    assert all(s.name.startswith("MyProcess.") for s in again.steps())
    assert again.cancel()
