"""Enqueueing: a second run with the same identifier, and a broker or result backend that is down or hangs.

Results live in the real Redis unless a test says otherwise; the unreachable
services are a port nobody listens on and a local socket that accepts
connections but never answers (``unreachable.py``). Nothing of a run that
could not be sent may remain, and nothing may be sent for a run that could
not be stored.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
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

from .services import AMQP_URL, BROKERS, RESULTS
from .unreachable import REFUSED, silent_server

CONNECTION_TIMEOUT = 1.0

# What docs/reliability.rst promises for enqueue with Celery's default settings
# (measured: about 4 s, broker_connection_timeout); generous for a busy 2-core machine.
DEFAULT_BOUND = 30.0


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """``host:port`` that accepts connections and never answers."""
    with silent_server() as address:
        yield address


def app_on(broker: str) -> Celery:
    """An app on ``broker`` with the real Redis results and a short connection timeout."""
    app = Celery(f"enqueue-{uuid.uuid4().hex[:6]}", broker=broker, backend=RESULTS)
    app.conf.update(
        broker_connection_timeout=CONNECTION_TIMEOUT,
        broker_transport_options={"socket_timeout": CONNECTION_TIMEOUT},
    )
    return app


@contextlib.contextmanager
def published(run_id: str) -> Iterator[list[str]]:
    """The ids of the messages of run ``run_id`` that Celery was asked to publish meanwhile."""
    sent: list[str] = []
    lock = threading.Lock()

    def count(headers: dict[str, Any], **_: Any) -> None:
        if str(headers.get("id", "")).startswith(run_id):
            with lock:
                sent.append(headers["id"])

    before_task_publish.connect(count, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(count)


def enqueue_within(backend: CeleryBackend, run_id: str, seconds: float) -> BaseException | None:
    """What enqueueing ``MyProcess`` as ``run_id`` raised; fails if it still blocks after ``seconds``.

    The enqueue runs in a thread, so that a regression fails the test at the
    bound instead of hanging it; the thread ends once the silent server closes.
    """
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            user_guide.MyProcess.build(identifier=run_id).enqueue(backend)
        except BaseException as error:  # the test inspects whatever it was
            outcome.append(error)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, name=f"enqueue {run_id}", daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"enqueue still blocked after {seconds} s"
    return outcome[0]


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
        address = request.getfixturevalue("silent_broker")
        scheme = broker.removeprefix("silent-")
        broker = f"redis://{address}/0" if scheme == "redis" else f"amqp://{address}//"
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
    with published(run_id) as sent:
        first = user_guide.MyProcess.build(identifier=run_id).enqueue(backend)
        with pytest.raises(DuplicateRunError, match=f"backend.run\\('{run_id}'\\)"):
            user_guide.MixedProcess.build(identifier=run_id).enqueue(backend)

    assert sent == [f"{run_id}:start"]
    again = backend.run(run_id)
    assert again.state is first.state is RunState.PENDING  # no worker consumes here
    assert [s.name for s in again.steps()] == [s.name for s in first.steps()]
    assert all(s.name.startswith("MyProcess.") for s in again.steps())
    assert again.cancel()


SILENT = "{silent}"  # replaced by the silent server's host:port


@pytest.mark.parametrize(
    ("broker", "results", "culprit"),
    [
        pytest.param(f"redis://{SILENT}/0", RESULTS, "broker", id="silent-redis-broker"),
        pytest.param(f"amqp://{SILENT}//", RESULTS, "broker", id="silent-amqp-broker"),
        pytest.param(
            f"redis://{SILENT}/0", f"redis://{SILENT}/1", "result backend", id="one-silent-redis"
        ),
        pytest.param(
            f"redis://{REFUSED}/0", f"redis://{REFUSED}/1", "result backend", id="one-dead-redis"
        ),
        pytest.param(
            BROKERS["redis"], f"redis://{SILENT}/1", "result backend", id="silent-results"
        ),
        pytest.param(AMQP_URL, f"redis://{REFUSED}/1", "result backend", id="dead-results"),
    ],
)
def test_with_celery_defaults_enqueue_fails_within_the_bound_and_keeps_nothing(
    broker: str, results: str, culprit: str, silent_broker: str
) -> None:
    """An app with no timeout settings: BrokerUnavailableError within the documented bound.

    It names the service that did not answer. A run whose start message the
    broker did not take is not stored; a run the result backend could not
    store is not sent.
    """
    for url in (broker, results):
        if SILENT not in url and REFUSED not in url:
            require(url, url.partition(":")[0])
    app = Celery(
        f"defaults-{uuid.uuid4().hex[:6]}",
        broker=broker.format(silent=silent_broker),
        backend=results.format(silent=silent_broker),
    )
    backend = CeleryBackend(app)
    run_id = f"defaults-{uuid.uuid4().hex}"

    with published(run_id) as sent:
        error = enqueue_within(backend, run_id, DEFAULT_BOUND)

    assert isinstance(error, BrokerUnavailableError), repr(error)
    assert str(error).startswith(f"MyProcess run {run_id}: the {culprit} at "), str(error)
    if culprit == "broker":
        assert "nothing of the run was kept" in str(error)
        with pytest.raises(RunNotFoundError):
            backend.run(run_id)
    else:
        assert "nothing was stored or sent" in str(error)
        assert sent == []


def test_a_run_that_cannot_be_deleted_again_is_reported(
    silent_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The result backend goes away between storing the run and the broker's refusal.

    The error is still BrokerUnavailableError, and says that the record
    stays and how to enqueue again.
    """
    require(RESULTS, "Redis")
    backend = CeleryBackend(Celery("lost", broker=f"redis://{silent_broker}/0", backend=RESULTS))
    run_id = f"lost-{uuid.uuid4().hex}"

    def lost(_: str) -> None:
        raise redis.ConnectionError("Connection closed by server.")

    monkeypatch.setattr(backend.store, "delete", lost)
    error = enqueue_within(backend, run_id, DEFAULT_BOUND)

    assert isinstance(error, BrokerUnavailableError), repr(error)
    assert str(error).startswith(f"MyProcess run {run_id}: the broker at redis://"), str(error)
    assert str(error).endswith(
        "its stored record could not be deleted (ConnectionError: Connection closed by "
        "server.) and stays PENDING until it expires (result_expires): enqueue it again "
        "with another identifier once both answer"
    )
    assert backend.run(run_id).state is RunState.PENDING
    monkeypatch.undo()
    backend.store.delete(run_id)
