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
from urllib.parse import urlparse

import pytest
import redis
from celery import Celery
from celery.signals import before_task_publish

from examples import user_guide
from tasktronaut import ProcessDefinition
from tasktronaut_celery import (
    BrokerUnavailableError,
    CeleryBackend,
    DuplicateRunError,
    RunNotFoundError,
    RunState,
)
from tests.services import AMQP_URL, BROKERS, RESULTS
from tests.support import require

from .unreachable import REFUSED, SilencingProxy, silent_server

CONNECTION_TIMEOUT = 1.0

# What docs/reliability.rst promises for enqueue with Celery's default settings:
# measured 4.0 s for a silent server, 20.6 s for a broker connection that goes
# silent once in use (publish retried); generous for a busy 2-core machine.
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


def test_enqueueing_an_identifier_twice_sends_one_message() -> None:
    """The second enqueue raises DuplicateRunError and leaves the first run as it was.

    The one message is the run's first step (with the rest of its chain).
    """
    require(RESULTS, "Redis")
    # No worker consumes here: an in-memory broker keeps the message from
    # reaching a later test's worker; the run store is the real Redis.
    backend = CeleryBackend(app_on("memory://"))
    run_id = f"twice-{uuid.uuid4().hex}"
    with published(run_id) as sent:
        first = user_guide.MyProcess.build(identifier=run_id).enqueue(backend)
        with pytest.raises(DuplicateRunError, match=f"backend.run\\('{run_id}'\\)"):
            user_guide.MixedProcess.build(identifier=run_id).enqueue(backend)

    assert sent == [f"{run_id}:0"]
    again = backend.run(run_id)
    assert again.state is first.state is RunState.PENDING  # no worker consumes here
    assert [s.name for s in again.steps()] == [s.name for s in first.steps()]
    assert all(s.name.startswith("MyProcess.") for s in again.steps())
    assert again.cancel()


@pytest.mark.parametrize("canvas_limit", [None, 0], ids=["canvas", "worker-dispatched"])
@pytest.mark.parametrize(
    ("definition", "opening"),
    [(user_guide.MyProcess, ":0"), (user_guide.ConcurrentProcess, ":start")],
    ids=["opens-with-a-step", "opens-concurrently"],
)
def test_enqueue_sends_one_message_that_opens_the_run(
    definition: type[ProcessDefinition], opening: str, canvas_limit: int | None
) -> None:
    """A run opening with a step is sent that step; one opening concurrently, its start message.

    The start message has a worker fire ``on_started`` before the concurrent
    steps start side by side; a first step fires it itself.
    """
    require(RESULTS, "Redis")
    backend = CeleryBackend(app_on("memory://"), canvas_limit=canvas_limit)  # no worker consumes
    run_id = f"opening-{uuid.uuid4().hex}"
    with published(run_id) as sent:
        definition.build(identifier=run_id).enqueue(backend)

    assert sent == [f"{run_id}{opening}"]
    assert backend.cancel(run_id)


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


def test_a_redis_gone_silent_between_storing_and_sending_is_reported() -> None:
    """Broker and results on one Redis that goes quiet once the run is stored.

    The publish times out, and so does deleting the stored run: the error is
    still BrokerUnavailableError, and says that the record stays and how to
    enqueue again.
    """
    require(RESULTS, "Redis")
    server = urlparse(RESULTS)
    proxy = SilencingProxy((server.hostname or "127.0.0.1", server.port or 6379))
    broker = urlparse(BROKERS["redis"]).path
    app = Celery(
        "gone",
        broker=f"redis://{proxy.address}{broker}",
        backend=f"redis://{proxy.address}{server.path}",
    )
    backend = CeleryBackend(app)
    run_id = f"gone-{uuid.uuid4().hex}"

    def silence(headers: dict[str, Any], **_: Any) -> None:
        if str(headers.get("id", "")).startswith(run_id):
            proxy.silence()

    before_task_publish.connect(silence, weak=False)
    try:
        error = enqueue_within(backend, run_id, DEFAULT_BOUND)
    finally:
        before_task_publish.disconnect(silence)
        proxy.close()

    assert isinstance(error, BrokerUnavailableError), repr(error)
    assert str(error).startswith(f"MyProcess run {run_id}: the broker at redis://"), str(error)
    assert "its stored record could not be deleted (TimeoutError: " in str(error), str(error)
    assert str(error).endswith(
        "and stays PENDING until it expires (result_expires): enqueue it again with another "
        "identifier once both answer"
    )
    stored = CeleryBackend(Celery("stored", broker="memory://", backend=RESULTS))
    assert stored.run(run_id).state is RunState.PENDING
    stored.store.delete(run_id)


def test_a_redis_broker_silent_after_connecting_fails_within_the_bound() -> None:
    """A web process's pooled broker connection goes quiet: publish retries, each timing out.

    Celery's default ``task_publish_retry_policy`` tries four times, each
    bounded by the socket timeout CeleryBackend set (``broker_connection_timeout``).
    """
    require(BROKERS["redis"], "Redis")
    broker = urlparse(BROKERS["redis"])
    proxy = SilencingProxy((broker.hostname or "127.0.0.1", broker.port or 6379))
    queue = f"enqueue-silenced-{uuid.uuid4().hex}"
    try:
        app = Celery("silenced", broker=f"redis://{proxy.address}{broker.path}", backend=RESULTS)
        app.conf.task_default_queue = queue  # no worker consumes it
        backend = CeleryBackend(app, control_queue=queue)
        first = user_guide.MyProcess.build().enqueue(backend)
        proxy.silence()
        run_id = f"silenced-{uuid.uuid4().hex}"

        error = enqueue_within(backend, run_id, DEFAULT_BOUND)

        assert isinstance(error, BrokerUnavailableError), repr(error)
        assert "nothing of the run was kept" in str(error)
        with pytest.raises(RunNotFoundError):
            backend.run(run_id)
        backend.store.delete(first.id)  # never started: its message is deleted below
    finally:
        proxy.close()
        redis.Redis.from_url(BROKERS["redis"]).delete(queue)
