"""Hand-made broker messages for the runner tasks execute nothing and are rejected in the log.

A real ``celery -A tests.integration.worker_app worker`` subprocess (prefork)
on Redis and on RabbitMQ receives messages nobody's client would send: fields
that name a definition, a method that is not a step (private, dunder, the
definition's own methods), paths and runs that do not exist, fields missing,
extra or not strings, positional arguments, and bodies Celery itself cannot
read. They are sent with a plain Celery app (``send_task``) or published raw
with kombu, never through Tasktronaut's client.

Each must leave a clear error in the worker's log file and run nothing: the
worker also imports this module (``--include``), whose :class:`Canary`
records any call of its methods that are not steps, and the recorder sees
every step and hook. Meanwhile a real :class:`Canary` run waits at its gate;
once the hostile messages are through it completes, each step once.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Exchange, Producer, Queue

from tasktronaut import Builder, Context, ProcessDefinition
from tasktronaut_celery import CeleryBackend, ProcessFailed, Run, RunState, StepState
from tests.services import BROKERS, EVENTS
from tests.support import celery_worker, empty_queues, wait_until

from .order import check_run
from .processes import gate_key, wait_for_gate
from .recorder import Recorder
from .worker_app import make_app

pytestmark = pytest.mark.reliability

REPOSITORY = Path(__file__).resolve().parents[2]
QUEUE = "celery"
REJECTED = "tasktronaut: rejected message:"
CANARY_KEY = "test-hostile-canary"
LOG_TIMEOUT = 20


@functools.cache
def _events() -> redis.Redis:
    return redis.Redis.from_url(EVENTS)


def _called(method: str) -> None:
    """Record that a method no message may reach was called, if this is a test worker."""
    if os.environ.get("TASKTRONAUT_TEST_WORKER"):
        _events().rpush(CANARY_KEY, f"{method} in pid {os.getpid()}")


def canary_calls() -> list[str]:
    """Every call of a :class:`Canary` method that is not a step, made in a worker."""
    return [raw.decode() for raw in _events().lrange(CANARY_KEY, 0, -1)]


class Canary(ProcessDefinition):
    """A gated process whose methods that are not steps report being called on a worker."""

    def define_process(self, builder: Builder) -> None:
        _called("define_process")  # a worker never builds a process: the plan says what runs
        builder.task(self.wait_at_gate)
        with builder.concurrent() as later:
            later.task(self.then_a)
            later.task(self.then_b)
        builder.task(self.last)

    def wait_at_gate(self, context: Context) -> None:
        wait_for_gate(context.process_id)

    def then_a(self) -> None:
        pass

    def then_b(self) -> None:
        pass

    def last(self) -> None:
        pass

    def not_a_step(self) -> None:
        _called("not_a_step")

    def _private(self) -> None:
        _called("_private")

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        _called("__call__")


def open_gate(run_id: str) -> None:
    """Let the gated step of ``run_id`` finish."""
    _events().rpush(gate_key(run_id), "open")


class WorkerLog:
    """The worker's log file, read by tests waiting for what the worker says."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        if not self.path.exists():
            return []
        return self.path.read_text(errors="replace").splitlines()

    def matching(self, *fragments: str) -> list[str]:
        """The lines holding every one of ``fragments``."""
        return [line for line in self.lines() if all(f in line for f in fragments)]

    def wait_for(self, *fragments: str) -> str:
        """The first line holding every one of ``fragments``, once the worker wrote it."""
        found = wait_until(
            lambda: self.matching(*fragments), LOG_TIMEOUT, f"a worker log line with {fragments}"
        )
        return found[0]

    def wait_for_another(self, fragment: str, before: int) -> None:
        """Wait until more than ``before`` lines hold ``fragment``.

        For what Celery logs without the message's task id on the same line.
        """
        wait_until(
            lambda: len(self.matching(fragment)) > before,
            LOG_TIMEOUT,
            f"another worker log line with {fragment!r}",
        )


REAL = "<the real run>"
FAKE = "<a run that does not exist>"
TASK_ID = "<the message's task id>"


def _fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with the placeholders :data:`REAL`, :data:`FAKE`, :data:`TASK_ID` filled in."""
    if isinstance(value, str):
        for placeholder, actual in names.items():
            value = value.replace(placeholder, actual)
        return value
    if isinstance(value, list):
        return [_fill(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, names) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class Hostile:
    """A hand-made message for a runner task, and what the worker log must say about it."""

    id: str
    task: str
    kwargs: dict[str, Any]
    reason: str
    """Part of the rejection line, naming the problem (placeholders filled in)."""
    args: list[Any] = field(default_factory=list)
    task_id: str = TASK_ID


def _fields(task: str, names: str) -> str:
    return f"{task}[{TASK_ID}] must carry exactly the string fields {names}"


STEP, JOIN, BEGIN = "tasktronaut.step", "tasktronaut.join", "tasktronaut.begin"
START, SETTLE = "tasktronaut.start", "tasktronaut.settle"
STEP_FIELDS = _fields(STEP, "run, step")

HOSTILE = [
    # A message never names code: a definition in it is an extra field.
    Hostile("definition-os-system", STEP, {"run": REAL, "step": "0", "definition": "os:system"},
            STEP_FIELDS),
    Hostile("definition-unregistered", STEP,
            {"run": REAL, "step": "0", "definition": "tests.nowhere:Unregistered"}, STEP_FIELDS),
    Hostile("definition-as-path", STEP, {"run": REAL, "step": "os:system"},
            f"run {REAL}: 'os:system' is not a step of this run"),
    Hostile("method-and-definition", STEP,
            {"run": REAL, "step": "0", "method": "not_a_step",
             "definition": "tests.integration.test_hostile_messages:Canary"}, STEP_FIELDS),
    # Methods of the run's own definition that are not steps, named instead of a path.
    *(
        Hostile(f"method-{method.strip('_') or method}", STEP, {"run": REAL, "step": method},
                f"run {REAL}: {method!r} is not a step of this run")
        for method in (
            "_private", "__init__", "__class__", "__call__", "__reduce__", "define_process",
            "not_a_step", "wait_at_gate", "then_a",
        )
    ),
    # Paths that are not steps of the run.
    *(
        Hostile(f"path-{label}", STEP, {"run": REAL, "step": path},
                f"run {REAL}: {path!r} is not a step of this run")
        for label, path in (
            ("99", "99"), ("empty", ""), ("block", "1"), ("negative", "-1"), ("dotted", "0.0"),
            ("traversal", "../0"), ("glob", "*"),
        )
    ),
    # Runs that do not exist.
    Hostile("run-unknown", STEP, {"run": FAKE, "step": "0"}, f"run '{FAKE}' does not exist"),
    Hostile("run-empty", STEP, {"run": "", "step": "0"}, "run '' does not exist"),
    Hostile("run-glob", STEP, {"run": "*", "step": "0"}, "run '*' does not exist"),
    Hostile("run-as-path", STEP, {"run": f"{REAL}:0", "step": "0"},
            f"run '{REAL}:0' does not exist"),
    # Fields missing, extra, or not strings; positional arguments.
    Hostile("fields-none", STEP, {}, STEP_FIELDS),
    Hostile("fields-no-step", STEP, {"run": REAL}, STEP_FIELDS),
    Hostile("fields-no-run", STEP, {"step": "0"}, STEP_FIELDS),
    Hostile("fields-extra", STEP, {"run": REAL, "step": "0", "retries": "99"}, STEP_FIELDS),
    Hostile("field-int", STEP, {"run": REAL, "step": 0}, STEP_FIELDS),
    Hostile("field-list", STEP, {"run": REAL, "step": ["0"]}, STEP_FIELDS),
    Hostile("field-dict", STEP, {"run": {"id": REAL}, "step": "0"}, STEP_FIELDS),
    Hostile("field-none", STEP, {"run": None, "step": "0"}, STEP_FIELDS),
    Hostile("field-bool", STEP, {"run": REAL, "step": True}, STEP_FIELDS),
    Hostile("args-only", STEP, {}, STEP_FIELDS, args=[REAL, "0"]),
    Hostile("args-and-kwargs", STEP, {"run": REAL, "step": "0"}, STEP_FIELDS, args=["0"]),
    # A forged id of the real run's next step does not make a bad message run.
    Hostile("forged-task-id", STEP, {"run": REAL, "step": "then_b"},
            f"run {REAL}: 'then_b' is not a step of this run", task_id=f"{REAL}:1.0"),
    # The control tasks.
    Hostile("join-unknown-path", JOIN, {"run": REAL, "join": "99"},
            f"run {REAL}: '99' is not a join of this run"),
    Hostile("join-step-path", JOIN, {"run": REAL, "join": "0"},
            f"run {REAL}: '0' is not a join of this run"),
    Hostile("join-unknown-run", JOIN, {"run": FAKE, "join": ""}, f"run '{FAKE}' does not exist"),
    Hostile("join-step-field", JOIN, {"run": REAL, "step": "0"},
            _fields(JOIN, "run, join")),
    Hostile("join-int", JOIN, {"run": REAL, "join": 1}, _fields(JOIN, "run, join")),
    Hostile("begin-root", BEGIN, {"run": REAL, "begin": ""},
            f"run {REAL}: '' is not a sub-process of this run"),
    Hostile("begin-step-path", BEGIN, {"run": REAL, "begin": "0"},
            f"run {REAL}: '0' is not a sub-process of this run"),
    Hostile("begin-unknown-run", BEGIN, {"run": FAKE, "begin": "1"},
            f"run '{FAKE}' does not exist"),
    Hostile("begin-list", BEGIN, {"run": [REAL], "begin": "1"}, _fields(BEGIN, "run, begin")),
    Hostile("start-unknown-run", START, {"run": FAKE}, f"run '{FAKE}' does not exist"),
    Hostile("start-extra", START, {"run": REAL, "definition": "os:system"}, _fields(START, "run")),
    Hostile("start-args", START, {}, _fields(START, "run"), args=[REAL]),
    Hostile("settle-unknown-run", SETTLE, {"run": FAKE}, f"run '{FAKE}' does not exist"),
    Hostile("settle-running-run", SETTLE, {"run": REAL}, "has not ended; there is nothing to"),
    Hostile("settle-dict", SETTLE, {"run": {"run": REAL}}, _fields(SETTLE, "run")),
]  # fmt: skip


@dataclass
class Sent:
    """The rejection lines the worker wrote, one per hostile message of the module."""

    lines: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def client(broker: str) -> CeleryBackend:
    """Tasktronaut's client, for the real runs the hostile messages must not disturb."""
    return CeleryBackend(make_app(BROKERS[broker], name=f"tasktronaut-hostile-client-{broker}"))


@pytest.fixture(scope="module")
def sender(broker: str) -> Iterator[Celery]:
    """A plain Celery app, knowing nothing of Tasktronaut, that sends the hostile messages."""
    app = Celery("hostile-sender", broker=BROKERS[broker])
    yield app
    app.close()


@pytest.fixture(scope="module")
def log(broker: str, tmp_path_factory: pytest.TempPathFactory) -> WorkerLog:
    return WorkerLog(tmp_path_factory.mktemp(f"hostile-{broker}") / "worker.log")


@pytest.fixture(scope="module")
def worker(broker: str, sender: Celery, log: WorkerLog) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with four children that also imports this module (the canary)."""
    with sender.connection_for_write() as connection:
        empty_queues(connection, [QUEUE])
    _events().delete(CANARY_KEY)
    env = {
        **os.environ,
        "TASKTRONAUT_TEST_BROKER": BROKERS[broker],
        "TASKTRONAUT_TEST_WORKER": "1",
        "PYTHONPATH": str(REPOSITORY),
    }
    options = ("--concurrency", "4", "--logfile", str(log.path), "--include", __name__)
    name = f"tasktronaut-hostile-{broker}@localhost"
    with celery_worker(
        "tests.integration.worker_app", name, REPOSITORY, env, BROKERS[broker], *options
    ) as process:
        yield process


def gated_run(client: CeleryBackend) -> Run:
    """A :class:`Canary` run whose first step has started and waits at its gate."""
    run = Canary.build().enqueue(client)

    def waiting() -> bool:
        return run.steps()[0].state is StepState.STARTED

    wait_until(waiting, 30, "the gated step starting")
    return run


@pytest.fixture(scope="module")
def real_run(
    client: CeleryBackend, worker: subprocess.Popen[bytes], recorder: Recorder
) -> Iterator[Run]:
    """The real run the hostile messages name, RUNNING at its gate while they arrive."""
    run = gated_run(client)
    try:
        yield run
    finally:
        open_gate(run.id)  # whatever happened, let the worker's child go


@pytest.fixture(scope="module")
def sent(broker: str) -> Sent:
    """The rejections of the hostile messages sent on ``broker``."""
    return Sent()


def assert_nothing_ran(run: Run, fake: str | None, recorder: Recorder) -> None:
    """Nothing a hostile message named ran: no canary call, no step or hook of ``fake``.

    The real ``run`` still waits at its gate, with only its start behind it.
    """
    assert canary_calls() == []
    if fake is not None:
        assert recorder.events(fake) == []
    assert recorder.steps(run.id) == []  # the gated step is still waiting
    assert [(h["hook"], h["process"]) for h in recorder.hooks(run.id)] == [
        ("on_started", "Canary")
    ]
    assert run.state is RunState.RUNNING
    assert [(s.path, s.state) for s in run.steps()] == [
        ("0", StepState.STARTED),
        ("1.0", StepState.PENDING),
        ("1.1", StepState.PENDING),
        ("2", StepState.PENDING),
    ]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda hostile: hostile.id)
def test_a_hand_made_runner_message_is_rejected_and_runs_nothing(
    hostile: Hostile,
    sender: Celery,
    real_run: Run,
    log: WorkerLog,
    recorder: Recorder,
    sent: Sent,
) -> None:
    """The worker logs why it rejects the message; no step, hook or method runs."""
    names = {REAL: real_run.id, FAKE: f"no-such-run-{uuid.uuid4().hex}"}
    names[TASK_ID] = _fill(hostile.task_id, {**names, TASK_ID: f"hostile-{uuid.uuid4().hex}"})
    args, kwargs = _fill(hostile.args, names), _fill(hostile.kwargs, names)

    sender.send_task(hostile.task, args=args, kwargs=kwargs, task_id=names[TASK_ID])
    line = log.wait_for(REJECTED, _fill(hostile.reason, names))

    sent.lines.append(line)
    assert_nothing_ran(real_run, names[FAKE], recorder)


def publish_raw(sender: Celery, task: str, task_id: str, body: bytes, content_type: str) -> None:
    """Publish ``body`` as a protocol-2 message for ``task``, bypassing Celery's serializer."""
    headers = sender.amqp.as_task_v2(task_id, task, args=(), kwargs={}).headers
    exchange = Exchange(QUEUE, type="direct")
    with sender.connection_for_write() as connection:
        producer = Producer(connection.default_channel)
        producer.publish(
            body,
            exchange=exchange,
            routing_key=QUEUE,
            declare=[Queue(QUEUE, exchange, routing_key=QUEUE)],
            headers=headers,
            content_type=content_type,
            content_encoding="utf-8" if content_type != PICKLE else "binary",
        )


PICKLE = "application/x-python-serialize"
MALFORMED = "(the body must be [args, kwargs, embed])"


class _Exploit:
    """Unpickling this runs a shell command: what a worker accepting pickle would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _unreadable_bodies(marker: Path) -> dict[str, tuple[bytes, str, str]]:
    """Bodies Celery refuses before a task runs: (body, content type, what Celery logs)."""
    exploit = pickle.dumps(((), {"run": "x", "step": "0"}, _Exploit(marker)))
    return {
        "not-json": (b"\x00{not json at all", "application/json", "Can't decode message body"),
        "pickle": (exploit, PICKLE, "Received invalid task message"),
        "not-a-list": (b'{"run": "x", "step": "0"}', "application/json", MALFORMED),
        "two-items": (b'[[], {"run": "x", "step": "0"}]', "application/json", MALFORMED),
        "a-number": (b"42", "application/json", MALFORMED),
        "swapped": (b'[{"run": "x", "step": "0"}, [], {}]', "application/json", MALFORMED),
        "embed-not-a-dict": (b'[[], {"run": "x", "step": "0"}, 5]', "application/json", MALFORMED),
        "unknown-type": (b"run=x&step=0", "application/x-www-form-urlencoded",
                         "Received invalid task message"),
    }  # fmt: skip


@pytest.mark.parametrize("kind", sorted(_unreadable_bodies(Path("unused"))))
def test_a_message_celery_cannot_read_runs_nothing(
    kind: str,
    sender: Celery,
    real_run: Run,
    log: WorkerLog,
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    """Celery logs the message it drops; nothing is unpickled, no step or hook runs."""
    marker = tmp_path / "unpickled"
    body, content_type, complaint = _unreadable_bodies(marker)[kind]
    task_id = f"hostile-{kind}-{uuid.uuid4().hex}"

    before = len(log.matching(complaint))

    publish_raw(sender, STEP, task_id, body, content_type)
    log.wait_for_another(complaint, before)

    assert not marker.exists(), "the worker unpickled a message"
    assert_nothing_ran(real_run, task_id, recorder)


@pytest.mark.parametrize("kind", ["not-json", "pickle", "not-a-list"])
def test_an_unreadable_message_of_a_real_run_fails_that_run(
    kind: str,
    client: CeleryBackend,
    sender: Celery,
    real_run: Run,
    log: WorkerLog,
    recorder: Recorder,
    tmp_path: Path,
) -> None:
    """Its task id names the run and step: the run fails there instead of waiting forever."""
    run = gated_run(client)
    body, content_type, complaint = _unreadable_bodies(tmp_path / "unpickled")[kind]
    task_id = f"{run.id}:1.0"
    before = len(log.matching(complaint))
    try:
        publish_raw(sender, STEP, task_id, body, content_type)
        with pytest.raises(ProcessFailed, match="could not read") as failure:
            run.wait(timeout=30)
    finally:
        open_gate(run.id)

    assert failure.value.step == "1.0"
    assert f"tasktronaut.step message {task_id}" in failure.value.error
    assert "CorruptPlanError" in failure.value.error
    log.wait_for_another(complaint, before)
    assert not (tmp_path / "unpickled").exists(), "the worker unpickled a message"
    wait_until(lambda: recorder.steps(run.id), 30, "the opened gated step ending")
    assert [e["path"] for e in recorder.steps(run.id)] == ["0"]  # nothing after it ran
    assert [(s.path, s.state) for s in run.steps()][1:] == [
        ("1.0", StepState.FAILURE),
        ("1.1", StepState.SKIPPED),
        ("2", StepState.SKIPPED),
    ]
    assert [h["hook"] for h in recorder.hooks(run.id)] == ["on_started", "on_failed"]
    assert_nothing_ran(real_run, None, recorder)


def test_the_real_run_then_completes_as_if_nothing_happened(
    real_run: Run, log: WorkerLog, recorder: Recorder, sent: Sent
) -> None:
    """Opened after every hostile message, the gated run succeeds, each step and hook once.

    Each rejected message was dropped, not requeued: its line is in the log once.
    """
    open_gate(real_run.id)
    real_run.wait(timeout=30)

    check_run(Canary.build(identifier=real_run.id), recorder.events(real_run.id))
    assert [s.state for s in real_run.steps()] == [StepState.SUCCESS] * 4
    assert canary_calls() == []
    assert sent.lines, "no hostile message was sent before"
    for line in sent.lines:
        rejection = REJECTED + line.partition(REJECTED)[2]
        assert len(log.matching(rejection)) == 1, f"logged more than once: {rejection}"
