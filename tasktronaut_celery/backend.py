"""``CeleryBackend``: runs processes on the user's own Celery app and workers."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from celery import Celery
from celery.app.defaults import DEFAULTS

from tasktronaut import Process, ProcessDefinition, paths
from tasktronaut.backend import NO_REDACTION
from tasktronaut.builder import build_process

from . import listing, scheduling
from .canvas import settle_signature
from .claims import Claim
from .dispatch import opening_signature, resend
from .errors import (
    CONNECTION_ERRORS,
    BrokerUnavailableError,
    DuplicateRunError,
    PlanChangedError,
    RetryRefusedError,
    RunNotFoundError,
    UnsafeSerializerWarning,
    describe_error,
)
from .limits import free_slot, take_slot, take_slot_again
from .plan import EncodedPlan, Plan, decode_plan, encode_plan, plan_process
from .rebuilding import build_anew, tree_changes
from .resumption import plan_resumption
from .run import Run
from .runner import DEFAULT_MAX_DELIVERIES, Runner
from .store import RunRecord, RunState, RunSummary, StepState
from .stores import check_app, joins_chords_natively, keeps_results_in_redis, store_for
from .worker import serve, serving

if TYPE_CHECKING:
    from .store import RunStore

CANCELLED_BY_CLIENT = "cancelled by a client"
DEFAULT_CANVAS_LIMIT = 32

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


_REDIS_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")


def bound_redis_timeouts(app: Celery) -> None:
    """Give ``app``'s Redis connections the timeouts its configuration leaves unset.

    Celery bounds connecting to an AMQP broker by ``broker_connection_timeout``
    (4 s by default), but kombu's Redis transport gives redis-py no timeout, so
    a publish to a Redis broker that accepts connections and never answers
    blocks forever, and Celery's Redis result backend waits 120 s for a reply.
    The broker's ``socket_timeout`` and ``socket_connect_timeout`` transport
    options and the result backend's ``redis_socket_timeout`` and
    ``redis_socket_connect_timeout`` become ``broker_connection_timeout``
    unless the configuration sets them (a result backend setting still at
    Celery's default counts as unset). Connections made before keep theirs.
    """
    conf = app.conf
    timeout = conf.broker_connection_timeout
    with app.connection_for_write() as connection:
        redis_broker = connection.get_transport_cls().driver_type == "redis"
    if redis_broker:
        options = conf.broker_transport_options or {}
        missing = {name: timeout for name in _REDIS_TIMEOUTS if name not in options}
        if missing:
            _set(conf, "broker_transport_options", {**options, **missing})
    if keeps_results_in_redis(app):
        for name in _REDIS_TIMEOUTS:
            if conf.get(f"redis_{name}") == DEFAULTS[f"redis_{name}"]:
                _set(conf, f"redis_{name}", timeout)


def _set(conf: Any, name: str, value: Any) -> None:
    """Set ``name`` where Celery reads it first: under the configuration's namespace, if any.

    Celery 5.3 reads a namespaced setting (Django's ``CELERY_...``) before a
    plain one, even one set later on ``app.conf``.
    """
    prefix = conf.prefix or ""
    key = prefix + name
    conf[key.upper() if prefix.isupper() else key] = value


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
        bound_redis_timeouts(app)
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
        serve(app, self)

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
        """Store the run's plan and send the single message that opens it.

        Arguments are serialized with the app's serializer first: if one cannot
        be, the error names the step and argument and nothing is stored or sent.
        If the result backend cannot store the run, nothing is sent; if the
        broker does not take the message (within the app's connection timeout
        and publish retry policy), the stored run is deleted again. Either
        raises :class:`BrokerUnavailableError`, naming the service.

        A process under a concurrency limit takes a slot of its key first;
        without one, its definition's ``concurrency_policy`` has it wait
        PENDING (nothing is sent until a slot frees), refuses it
        (:class:`ConcurrencyLimitError`, nothing kept) or ends it CANCELLED
        as skipped: see :doc:`/schedules`.
        """
        plan, encoded, summary = self._prepare(process)
        self._store_and_send(plan, encoded, summary)
        return Run(plan.run_id, self.store, lambda: plan, self.cancel, self.retry)

    def enqueue_on_commit(self, process: Process, *, using: str | None = None) -> Run:
        """Enqueue ``process`` once the Django transaction under way commits; nothing on rollback.

        The usual view creates an order and starts its process in one
        transaction: the run must not start before the order exists, nor at
        all if the transaction rolls back. The arguments are checked and
        serialized now (an error is raised here, as by :meth:`enqueue`); the
        run is stored and sent by ``transaction.on_commit`` on the database
        ``using`` (Django's default one if ``None``), at once outside a
        transaction. The handle comes back at once with the run's id; the run
        exists from the commit on (before it, :attr:`Run.record` raises
        :class:`RunNotFoundError`). A storing or sending error, or the
        refusal of a run under a concurrency limit, is raised from the
        commit, which has happened.
        """
        from django.db import transaction

        plan, encoded, summary = self._prepare(process)
        if self.store.record(plan.run_id) is not None:
            raise DuplicateRunError(plan.run_id)
        send = functools.partial(self._store_and_send, plan, encoded, summary)
        transaction.on_commit(send, using=using)
        return Run(plan.run_id, self.store, lambda: plan, self.cancel, self.retry)

    def _prepare(self, process: Process) -> tuple[Plan, EncodedPlan, RunSummary]:
        """The run's plan, encoded with the app's serializer, and its summary for listings."""
        plan = plan_process(process, self.canvas_limit, chords=self.canvas_chords)
        encoded = encode_plan(plan, self.app.conf.task_serializer)
        return plan, encoded, listing.run_summary(process, plan)

    def _store_and_send(self, plan: Plan, encoded: EncodedPlan, summary: RunSummary) -> None:
        """Store the run, then send the message that opens it; nothing is left half-sent."""
        run = f"{plan.root.name} run {plan.run_id}"
        try:
            created = self.store.create(plan.run_id, encoded, summary)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailableError(
                f"{run}: the result backend at {self.app.backend.as_uri()} did not answer "
                f"({describe_error(error, NO_REDACTION)}); nothing was stored or sent: "
                "enqueue it again once it answers"
            ) from error
        if not created:
            raise DuplicateRunError(plan.run_id)
        try:
            send_now = take_slot(self.app, self.store, plan, self.control_queue)
        except CONNECTION_ERRORS as error:
            raise BrokerUnavailableError(
                f"{run}: the result backend at {self.app.backend.as_uri()} did not answer "
                f"when its concurrency slot was taken ({describe_error(error, NO_REDACTION)}); "
                f"{self._forget(plan)}"
            ) from error
        if not send_now:
            return  # it waits for a slot, or was skipped
        try:
            opening_signature(self.app, plan, self.control_queue).apply_async()
        except BaseException as error:
            kept = self._forget(plan)
            if isinstance(error, CONNECTION_ERRORS):
                broker = self.app.connection_for_write().as_uri()
                raise BrokerUnavailableError(
                    f"{run}: the broker at {broker} did not take the message that opens the run "
                    f"({describe_error(error, NO_REDACTION)}); {kept}"
                ) from error
            raise

    def _forget(self, plan: Plan) -> str:
        """Delete a run that could not be sent; what is left of it, for the error message."""
        try:
            self.store.delete(plan.run_id)
            free_slot(self.app, self.store, plan, self.control_queue)
        except CONNECTION_ERRORS as error:
            return (
                f"its stored record could not be deleted ({describe_error(error, NO_REDACTION)}) "
                "and stays PENDING until it expires (result_expires): enqueue it again with "
                "another identifier once both answer"
            )
        return "nothing of the run was kept: enqueue it again once the broker answers"

    def run(self, run_id: str) -> Run:
        """A handle on an existing run, e.g. in a web request polling its progress."""
        if self.store.record(run_id) is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        return self._handle(run_id)

    def runs(
        self,
        *,
        definition: type[ProcessDefinition] | str | None = None,
        state: RunState | str | None = None,
        since: datetime | timedelta | None = None,
        until: datetime | timedelta | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Handles on the runs kept in the result backend, newest first, at most ``limit``.

        Only runs of ``definition`` (the top-level definition, a class or its
        name), in ``state`` (a :class:`RunState` or its name, in any case),
        created at or after ``since`` and before ``until`` (each a time, or
        how long ago). Each store answers from an index (Redis sorted sets, indexed
        columns), never by reading every run.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        found = self.store.runs(
            definition=listing.definition_name(definition),
            state=listing.run_state(state),
            since=listing.moment(since),
            until=listing.moment(until),
            limit=limit,
        )
        return [self._handle(run_id, record) for run_id, record in found]

    def prune(self, older_than: timedelta | datetime, state: RunState | str | None = None) -> int:
        """Forget the ended runs created more than ``older_than`` ago (or before that time).

        Only those in ``state`` if given (an ended state); runs under way are
        kept whatever their age. Returns how many runs were forgotten. Redis
        runs expire by themselves (``result_expires``); database runs are kept
        until pruned.
        """
        ended = listing.run_state(state)
        if ended is not None and not ended.finished:
            raise ValueError(f"only ended runs are pruned; {ended.value} runs are under way")
        before = listing.moment(older_than)
        assert before is not None
        return self.store.prune(before, ended)

    def _handle(self, run_id: str, listed: RunRecord | None = None) -> Run:
        plan = functools.partial(self._load_plan, run_id)
        return Run(run_id, self.store, plan, self.cancel, self.retry, listed)

    def retry(self, run_id: str, force: bool = False) -> Run:
        """Resume the failed or cancelled run ``run_id`` from where it stopped: see :meth:`Run.retry`.

        The run store reopens the run in one atomic change (so of two clients
        retrying it, one does), then the messages that resume it are sent; if
        the broker does not take them, the run is ended again as it was.
        """
        record = self.store.record(run_id)
        if record is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        refused = f"run {run_id} cannot be retried"
        if not record.state.finished or record.state is RunState.SUCCESS:
            raise RetryRefusedError(
                f"{refused}: it is {record.state.value}; only a run that ended FAILURE or "
                "CANCELLED is resumed"
            )
        if record.settled_at is None:
            raise RetryRefusedError(
                f"{refused} yet: the hooks of its end are still firing; retry once it has settled"
            )
        encoded = self.store.plan(run_id)
        if encoded is None:
            raise RetryRefusedError(f"{refused}: its plan has expired (result_expires)")
        plan = self._decode_plan(encoded)
        steps = self.store.steps(run_id)
        under_way = sorted(path for path, step in steps.items() if step.state in _UNDER_WAY)
        if under_way and not force:
            raise RetryRefusedError(
                f"{refused} yet: step {under_way[0]} ({plan.step_name(under_way[0])}) is still "
                f"{steps[under_way[0]].state.value} on a worker; retry once it has ended, or "
                "retry(force=True) if its worker was lost (it then runs again)"
            )
        changes = [] if force else tree_changes(plan)
        if changes:
            raise PlanChangedError(
                f"{refused}: {plan.root.name} builds another tree today than the run was planned "
                f"with ({'; '.join(changes)}); retry(force=True) resumes it with its stored plan"
            )
        resumption = plan_resumption(plan, record, steps, self.store.claimed(run_id))
        if resumption is None:
            raise RetryRefusedError(f"{refused}: nothing of it remains to be done")
        take_slot_again(self.app, self.store, plan, self.control_queue, refused)
        if not self.store.resume(run_id, record.resumes, resumption.reset, resumption.drop):
            free_slot(self.app, self.store, plan, self.control_queue)
            raise RetryRefusedError(
                f"{refused}: it changed meanwhile (retried by another client?)"
            )
        try:
            resend(self.app, plan, resumption.flow, self.control_queue, record.resumes + 1)
        except BaseException as error:
            self.store.finish(run_id, record.state, record.step, record.error, settled=True)
            free_slot(self.app, self.store, plan, self.control_queue)
            if isinstance(error, CONNECTION_ERRORS):
                broker = self.app.connection_for_write().as_uri()
                raise BrokerUnavailableError(
                    f"{refused} now: the broker at {broker} did not take the messages that "
                    f"resume it ({describe_error(error, NO_REDACTION)}); it is "
                    f"{record.state.value} again"
                ) from error
            raise
        return self._handle(run_id)

    def beat_entry(
        self,
        definition: type[ProcessDefinition],
        schedule: Any,
        *,
        identifier: str | None = None,
        options: Mapping[str, bool] | None = None,
        **arguments: Any,
    ) -> dict[str, Any]:
        """A value for ``app.conf.beat_schedule`` that starts a run at each tick of ``schedule``.

        ``schedule`` is what Celery beat takes: seconds, a ``timedelta``, a
        ``crontab`` or a ``solar``. The process is built once now, with its
        ``options`` and ``arguments``, and its arguments serialized: a bad
        entry raises here, when beat loads its schedule, naming the argument.
        Each tick runs on a worker, which starts the run
        ``<identifier>@<tick time>`` (``identifier`` by default the
        definition's name and a digest of its arguments): a tick delivered
        twice starts one run. See :doc:`/schedules`.
        """
        flags = dict(options or {})
        probe = build_process(
            definition, identifier="beat-entry-check", options=flags, arguments=arguments
        )
        self._prepare(probe)
        return scheduling.beat_entry(definition, schedule, identifier, flags, arguments)

    def start_scheduled(self, **fields: Any) -> str:
        """Start the run of one tick of a beat entry (the message's ``fields``); its identifier."""
        return scheduling.start_scheduled(self, **fields)

    def run_again(self, run_id: str) -> Run:
        """Enqueue a new run of ``run_id``'s definition with the same arguments and options.

        Unlike :meth:`retry`, every step runs, under a new identifier, in the
        tree the definition builds today; the run it copies may be in any
        state. Raises :class:`RunNotFoundError` if the run (or its plan) has
        expired, and :class:`RetryRefusedError` if the run was enqueued by an
        earlier version (which kept no arguments) or its definition no
        longer builds with them.
        """
        encoded = self.store.plan(run_id)
        if encoded is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        return self.enqueue(build_anew(self._decode_plan(encoded)))

    def cancel(self, run_id: str) -> bool:
        """Cancel a run; ``False`` if it had already ended. Hooks fire on a worker.

        A run whose last step has succeeded and whose top-level process is
        completing (its ``on_completed`` is under way) is not cancelled either:
        it ends SUCCESS. Cancelling again a cancelled run whose hooks have not
        fired (the message asking a worker to fire them was lost) sends that
        message again.

        The plan is read before the run is marked cancelled, so a plan that
        cannot be read (:class:`CorruptPlanError`) leaves the run as it was
        rather than cancelled with nobody told to fire its hooks.
        """
        encoded = self.store.plan(run_id)
        if encoded is None:
            return False
        root = self._decode_plan(encoded).root.name
        cancelled = self.store.finish(
            run_id,
            RunState.CANCELLED,
            error=CANCELLED_BY_CLIENT,
            unless_claimed=Claim.ended(paths.ROOT).marker,
        )
        if not cancelled:
            record = self.store.record(run_id)
            if record is None or record.state is not RunState.CANCELLED or record.settled_at:
                return False
        settle_signature(self.app, run_id, root, self.control_queue, cancel=True).apply_async()
        return cancelled

    def _load_plan(self, run_id: str) -> Plan:
        encoded = self.store.plan(run_id)
        if encoded is None:
            raise RunNotFoundError(f"run {run_id!r} does not exist (never enqueued, or expired)")
        return self._decode_plan(encoded)

    def _decode_plan(self, encoded: EncodedPlan) -> Plan:
        """The plan as clients read it: without argument types, which only workers need."""
        return decode_plan(encoded, self.app.conf.accept_content, typed_values=False)


_UNDER_WAY = frozenset({StepState.STARTED, StepState.RETRY})
"""Step states in which a worker may still be running (or about to retry) the step."""


def backend_for(app: Celery) -> CeleryBackend | None:
    """The backend serving ``app`` (the newest created on it), with the settings it was given."""
    served = serving(app)
    return served if isinstance(served, CeleryBackend) else None
