"""``CeleryBackend``: runs processes on the user's own Celery app and workers."""

from __future__ import annotations

import functools
import threading
import warnings
from typing import TYPE_CHECKING, Any, Literal

from celery import Celery
from kombu.exceptions import OperationalError

from tasktronaut.process import Process
from tasktronaut.sensitive import NO_REDACTION

from .apps import attach, runner_for
from .canvas import (
    BEGIN_TASK,
    JOIN_TASK,
    SETTLE_TASK,
    START_TASK,
    STEP_TASK,
    name_sent_events_by_shadow,
    settle_signature,
    start_signature,
)
from .errors import (
    BrokerUnavailableError,
    DuplicateRunError,
    RunNotFoundError,
    UnsafeSerializerWarning,
)
from .messages import message_fields
from .plan import Plan, decode_plan, encode_plan, plan_process
from .run import Run
from .runner import DEFAULT_MAX_DELIVERIES, Runner, describe_error
from .store import RunState, end_marker
from .stores import check_app, joins_chords_natively, store_for
from .undelivered import RunnerRequest, watch

if TYPE_CHECKING:
    from celery import Task

    from .store import RunStore

CANCELLED_BY_CLIENT = "cancelled by a client"
DEFAULT_CANVAS_LIMIT = 32

# Every Tasktronaut task acknowledges its message only once it has run, so a
# message whose worker died is delivered again (at least once per step). Run and
# step state live in the run store: each message says ``ignore_result`` unless a
# chord needs the result (Celery before 5.4 reads only the task's own setting, so
# that setting must keep results).
_TASK_OPTIONS: dict[str, Any] = {
    "bind": True,
    "shared": False,
    "acks_late": True,
    "reject_on_worker_lost": True,
}


_PICKLE = frozenset({"pickle", "application/x-python-serialize"})


def warn_if_pickle_accepted(app: Celery) -> None:
    """Warn when ``app``'s workers or clients would unpickle what they receive.

    A worker that accepts pickle runs whatever code a message or a stored plan
    carries, so anyone who can write to the broker or the result backend can
    run code on it. JSON (Celery's default), msgpack and YAML (safe loader)
    are safe.
    """
    conf = app.conf
    settings = {
        "accept_content": conf.accept_content,
        "result_accept_content": conf.result_accept_content,
        "task_serializer": [conf.task_serializer],
        "result_serializer": [conf.result_serializer],
    }
    unsafe = sorted(name for name, values in settings.items() if _PICKLE & set(values or ()))
    if unsafe:
        warnings.warn(
            f"Celery app {app.main!r} uses pickle ({', '.join(unsafe)}): anyone who can "
            "write to its broker or result backend can run code on its workers. Use "
            "'json' (the default) or 'msgpack' for Tasktronaut's messages and plans.",
            UnsafeSerializerWarning,
            stacklevel=3,
        )


class CeleryBackend:
    """Runs Tasktronaut processes on ``app``; create one next to the app, in its module.

    Creating it registers the runner tasks on the app, so the same line serves
    the web process that enqueues and the ``celery -A proj worker`` that runs
    steps. It refuses an app whose result backend cannot hold run state.

    ``control_queue`` is where Tasktronaut's own small tasks go (the start
    message, joins of concurrent sections, cancel hooks); by default the app's
    default queue. Steps go where their ``queue`` option says.

    Processes of at most ``canvas_limit`` actions run as plain Celery canvas,
    exactly what you would write by hand; larger ones are dispatched by the
    workers one action at a time, so that no message grows with the process
    (a chain carries its whole remainder in every message). ``None`` sends
    every process as canvas, ``0`` none. By default (``"auto"``) processes of
    at most 32 actions *without concurrent sections* run as canvas on Redis,
    and every process is dispatched by the workers on database backends,
    whose chords are joined by polling. Concurrent sections are joined by the
    workers by default because a Celery chord cannot recover when the worker
    sending its body dies: Celery's claim on the body expires with nobody left
    to send it, and the run would wait forever.

    A step whose worker is lost mid-run (killed, out of memory) is delivered
    again by the broker and runs again, up to ``max_deliveries`` times per
    attempt; after that the run fails with :class:`StepLostError`, so a step
    that kills its worker every time cannot keep a run going forever.
    """

    def __init__(
        self,
        app: Celery,
        *,
        control_queue: str | None = None,
        canvas_limit: int | Literal["auto"] | None = "auto",
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> None:
        check_app(app)
        warn_if_pickle_accepted(app)
        if max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, not {max_deliveries!r}")
        self.canvas_chords = canvas_limit != "auto"
        """Whether processes with concurrent sections may run as canvas (chords)."""
        if canvas_limit == "auto":
            canvas_limit = DEFAULT_CANVAS_LIMIT if joins_chords_natively(app) else 0
        self.app = app
        """The Celery app the runs go to and the runner tasks are registered on."""
        self.control_queue = control_queue
        """The queue of the start message, joins, begins and cancel hooks (``None``: default)."""
        self.canvas_limit = canvas_limit
        """The largest process, in actions, sent as Celery canvas."""
        self.max_deliveries = max_deliveries
        """How often one attempt of a step may run; the next delivery fails its run."""
        self._lock = threading.RLock()
        self._store: RunStore | None = None
        self._runner: Runner | None = None
        self._register_tasks()

    def __repr__(self) -> str:
        return f"<CeleryBackend app={self.app.main!r}>"

    @property
    def store(self) -> RunStore:
        """Where this app's runs are kept (its result backend), connected on first use."""
        if self._store is None:
            with self._lock:  # a thread-pool worker's first steps ask at the same time
                if self._store is None:
                    self._store = store_for(self.app)
        return self._store

    @property
    def runner(self) -> Runner:
        """What this app's workers do with Tasktronaut messages."""
        if self._runner is None:
            with self._lock:
                if self._runner is None:
                    self._runner = Runner(
                        self.app, self.store, self.control_queue, self.max_deliveries
                    )
        return self._runner

    def enqueue(self, process: Process) -> Run:
        """Store the run's plan and send the single message that starts it.

        Arguments are serialized with the app's serializer first: if one cannot
        be, the error names the step and argument and nothing is stored or sent.
        If the broker does not take the message (within the app's connection
        timeout and publish retry policy), the stored run is deleted again and
        :class:`BrokerUnavailableError` says so.
        """
        plan = plan_process(process, self.canvas_limit, chords=self.canvas_chords)
        encoded = encode_plan(plan, self.app.conf.task_serializer)
        if not self.store.create(plan.run_id, encoded):
            raise DuplicateRunError(plan.run_id)
        try:
            start_signature(self.app, plan, self.control_queue).apply_async()
        except BaseException as error:
            self.store.delete(plan.run_id)
            if isinstance(error, (OperationalError, OSError)):
                broker = self.app.connection_for_write().as_uri()
                raise BrokerUnavailableError(
                    f"{plan.root.name} run {plan.run_id}: the broker at {broker} did not take "
                    f"the start message ({describe_error(error, NO_REDACTION)}); nothing of "
                    "the run was kept: enqueue it again once the broker answers"
                ) from error
            raise
        return Run(plan.run_id, self.store, lambda: plan, self.cancel)

    def run(self, run_id: str) -> Run:
        """A handle on an existing run, e.g. in a web request polling its progress."""
        if self.store.record(run_id) is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        return Run(run_id, self.store, functools.partial(self._load_plan, run_id), self.cancel)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run; ``False`` if it had already ended. Hooks fire on a worker.

        A run whose last step has succeeded and whose top-level process is
        completing (its ``on_completed`` is under way) is not cancelled either:
        it ends SUCCESS. Cancelling again a cancelled run whose hooks have not
        fired (the message asking a worker to fire them was lost) sends that
        message again.
        """
        cancelled = self.store.finish(
            run_id, RunState.CANCELLED, error=CANCELLED_BY_CLIENT, unless_claimed=end_marker("")
        )
        if not cancelled:
            record = self.store.record(run_id)
            if record is None or record.state is not RunState.CANCELLED or record.settled_at:
                return False
        root = self._load_plan(run_id).root.name
        settle_signature(self.app, run_id, root, self.control_queue, cancel=True).apply_async()
        return cancelled

    def _load_plan(self, run_id: str) -> Plan:
        encoded = self.store.plan(run_id)
        if encoded is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        return decode_plan(encoded, self.app.conf.accept_content)

    def _register_tasks(self) -> None:
        """Register the runner tasks once per app; they serve the app's newest backend."""
        if not attach(self.app, self):
            return
        watch(self.app)
        name_sent_events_by_shadow(self.app)

        def runner(task: Task) -> Runner:
            served = runner_for(task.app)
            assert served is not None, "a runner task of an app no backend serves"
            return served

        class RunnerTask(self.app.Task):  # type: ignore[name-defined,misc]
            """Tasktronaut's tasks: the worker tells their runs when it kills a step."""

            Request = RunnerRequest

        options = {**_TASK_OPTIONS, "base": RunnerTask}

        @self.app.task(name=START_TASK, **options)
        def start(task: Task, *args: Any, **fields: Any) -> None:
            (run,) = message_fields(task, args, fields, "run")
            runner(task).start(task, run)

        @self.app.task(name=STEP_TASK, **options)
        def step(task: Task, *args: Any, **fields: Any) -> None:
            run, path = message_fields(task, args, fields, "run", "step")
            runner(task).step(task, run, path)

        @self.app.task(name=BEGIN_TASK, **options)
        def begin(task: Task, *args: Any, **fields: Any) -> None:
            run, path = message_fields(task, args, fields, "run", "begin")
            runner(task).begin(task, run, path)

        @self.app.task(name=JOIN_TASK, **options)
        def join(task: Task, *args: Any, **fields: Any) -> None:
            run, path = message_fields(task, args, fields, "run", "join")
            runner(task).join(task, run, path)

        @self.app.task(name=SETTLE_TASK, **options)
        def settle(task: Task, *args: Any, **fields: Any) -> None:
            (run,) = message_fields(task, args, fields, "run")
            runner(task).settle(run)
