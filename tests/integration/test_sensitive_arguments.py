"""A sensitive argument on a real ``celery worker``: the step gets it, nothing shows it.

The worker runs as ``celery -A tests.integration.worker_app worker -E`` with its
log in a file; a Celery event receiver collects the task events (args,
kwargs, exception, traceback), and a real Flower shows what it made of them.
Steps record the value they received in Redis, so the tests can tell that the
real value arrived.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tasktronaut_celery import CeleryBackend, ProcessFailed, Run, RunState
from tests.services import BROKERS, EVENTS
from tests.support import celery_worker, flower, wait_until

from . import processes
from .worker_app import make_app

REPOSITORY = Path(__file__).resolve().parents[2]
WORKER_NAME = "tasktronaut-sensitive@localhost"
MESSAGE_KEYS = {"run", "step", "join", "begin"}


@pytest.fixture(scope="module")
def app() -> Celery:
    return make_app(BROKERS["redis"], name="tasktronaut-sensitive-client")


@pytest.fixture(scope="module")
def client(app: Celery) -> CeleryBackend:
    return CeleryBackend(app)


@pytest.fixture(scope="module")
def worker_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file the worker logs to: Celery's own log and Tasktronaut's."""
    return tmp_path_factory.mktemp("sensitive-worker") / "worker.log"


@pytest.fixture(scope="module")
def worker_process(client: CeleryBackend, worker_log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A tests.integration.worker_app worker -E --logfile ...``, answering pings."""
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS["redis"],
        "TASKTRONAUT_TEST_WORKER": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    app_module = "tests.integration.worker_app"
    logfile = ("--logfile", str(worker_log))
    with celery_worker(app_module, WORKER_NAME, REPOSITORY, env, BROKERS["redis"], *logfile) as w:
        yield w


@pytest.fixture(scope="module")
def flower_api(worker_process: subprocess.Popen[bytes]) -> Iterator[Callable[[str], Any]]:
    """A real Flower on the worker's broker (``celery -A tests.integration.worker_app flower``)."""
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS["redis"],
        "PYTHONPATH": str(REPOSITORY),
    }
    with flower("tests.integration.worker_app", REPOSITORY, env, WORKER_NAME) as get:
        yield get


def _in_flower(flower_api: Callable[[str], Any], task_id: str, *states: str) -> dict[str, Any]:
    """The task as Flower shows it, once Flower has it in one of ``states``."""

    def shown() -> dict[str, Any] | None:
        task: dict[str, Any] | None = flower_api("/api/tasks").get(task_id)
        return task if task is not None and task["state"] in states else None

    return wait_until(shown, 60, f"Flower showing {task_id} {' or '.join(states)}")


class TaskEvents:
    """Every task event on the broker, as Flower receives them, kept for the tests to read."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self._app.connection() as connection:
            self._receiver = self._app.events.Receiver(connection, handlers={"*": self._on_event})
            self._receiver.capture(limit=None, timeout=None, wakeup=True)

    def _on_event(self, event: dict[str, Any]) -> None:
        self._ready.set()
        if event.get("type", "").startswith("task-"):
            with self._lock:
                self._events.append(event)

    def start(self) -> None:
        """Listen, and return once the first event (a worker heartbeat at least) arrived."""
        self._thread.start()
        assert self._ready.wait(30), "no event (not even a worker heartbeat) reached the receiver"

    def stop(self) -> None:
        self._receiver.should_stop = True
        self._thread.join(10)

    def of(self, run_id: str) -> list[dict[str, Any]]:
        """The task events of the run ``run_id`` received so far."""
        with self._lock:
            return [e for e in self._events if str(e.get("uuid", "")).startswith(run_id)]

    def wait_for(self, run_id: str, kind: str, task_id: str) -> dict[str, Any]:
        """The first ``kind`` event of task ``task_id``, waiting for it to arrive."""

        def arrived() -> dict[str, Any] | None:
            found = [e for e in self.of(run_id) if e["type"] == kind and e["uuid"] == task_id]
            return found[0] if found else None

        return wait_until(arrived, 30, f"a {kind} event for {task_id}")


@pytest.fixture(scope="module")
def events(app: Celery, worker_process: subprocess.Popen[bytes]) -> Iterator[TaskEvents]:
    receiver = TaskEvents(app)
    receiver.start()
    yield receiver
    receiver.stop()


def _received(run_id: str) -> dict[str, str]:
    """What each step attempt (``path#attempt``) recorded receiving."""
    stored = redis.Redis.from_url(EVENTS).hgetall(processes.received_key(run_id))
    return {key.decode(): value.decode() for key, value in stored.items()}


def _assert_messages_carry_only_ids(run_events: list[dict[str, Any]]) -> None:
    """``kwargsrepr`` (an event's ``kwargs``) names the run and a path, and ``args`` is empty."""
    with_arguments = [e for e in run_events if "kwargs" in e]
    assert {e["type"] for e in with_arguments} >= {"task-sent", "task-received"}
    for event in with_arguments:
        assert set(ast.literal_eval(event["kwargs"])) <= MESSAGE_KEYS
        assert ast.literal_eval(event["args"]) in ((), [])


def _assert_shown_nowhere(
    token: str,
    run: Run,
    events: TaskEvents,
    flower_api: Callable[[str], Any],
    *texts: str,
) -> None:
    """``token`` is in none of ``texts``, the run's task events, Flower's tasks or records."""
    run_events = events.of(run.id)
    _assert_messages_carry_only_ids(run_events)
    shown = [
        *texts,
        json.dumps(run_events, default=str),
        json.dumps(flower_api("/api/tasks")),
        repr(run.record),
        *(str(step.error) for step in run.steps()),
    ]
    assert token not in "\n".join(shown)


def test_a_failing_step_s_token_never_reaches_logs_events_or_records(
    client: CeleryBackend,
    events: TaskEvents,
    worker_log: Path,
    flower_api: Callable[[str], Any],
) -> None:
    """The token, sensitive through a sub-process, is masked wherever the failure is shown."""
    token = f"tok-{uuid.uuid4().hex}"
    run = processes.LeaksTokenOnFailure.build(api_token=token).enqueue(client)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)
    failed = events.wait_for(run.id, "task-failed", f"{run.id}:1")

    assert _received(run.id) == {"0.0#1": token, "1#1": token}
    expected = "PermissionError: the partner refused token ***"
    assert failure.value.error == expected
    assert run.record.error == expected
    assert [s.error for s in run.steps()] == [None, expected]
    assert failed["exception"] == f"RedactedError('{expected}')"
    assert f"RedactedError: {expected}" in failed["traceback"]
    log = worker_log.read_text()
    assert f"RedactedError: {expected}" in log
    in_flower = _in_flower(flower_api, f"{run.id}:1", "FAILURE")
    assert in_flower["exception"] == f"RedactedError('{expected}')"
    _assert_shown_nowhere(token, run, events, flower_api, log, str(failure.value))


def test_a_retried_step_s_token_never_reaches_logs_events_or_records(
    client: CeleryBackend,
    events: TaskEvents,
    worker_log: Path,
    flower_api: Callable[[str], Any],
) -> None:
    """Celery's retry (log line and task-retried event) shows the redacted exception."""
    token = f"tok-{uuid.uuid4().hex}"
    run = processes.LeaksTokenOnRetry.build(api_token=token).enqueue(client).wait(timeout=60)
    retried = events.wait_for(run.id, "task-retried", f"{run.id}:0")
    events.wait_for(run.id, "task-succeeded", f"{run.id}:0")

    assert run.state is RunState.SUCCESS
    assert _received(run.id) == {"0#1": token, "0#2": token}
    expected = "ConnectionError: token *** timed out"
    assert retried["exception"] == f"RedactedError('{expected}')"
    log = worker_log.read_text()
    assert f"retry: Retry in 0.0s: RedactedError('{expected}')" in log
    # Either state shows Flower has taken in the retry event, which carries the exception.
    _in_flower(flower_api, f"{run.id}:0", "RETRY", "SUCCESS")
    _assert_shown_nowhere(token, run, events, flower_api, log)
