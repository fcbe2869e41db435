"""Who sends each action of a run once the actions before it have succeeded.

Two strategies, one interface (:class:`Dispatcher`): ``start()`` sends what
opens the run, ``after(action)`` what follows an action that has succeeded
(recording a step's success first, with its arrival at a join where it has
one: one trip to the run store).

* :class:`CanvasDispatch` sends the run as Celery canvas: chains and chords,
  each message carrying the rest of its chain; Celery sends what follows.
  Exactly hand-written canvas, best for small processes.
* :class:`WorkerDispatch` has the worker that finishes an action send what
  follows it, counting chord members in the run store, so every message
  carries one step whatever the size of the process.

:func:`choose` decides which one a run gets when it is planned (the plan
stores the choice); :func:`dispatcher` gives a worker the strategy of a plan.
:func:`opening_signature` is the one message a client sends to open a run.
"""

from __future__ import annotations

import enum
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .canvas import action_signature, start_signature, to_signature
from .compiler import Action, Begin, Chain, CompiledProcess, Flow, Join, Step

if TYPE_CHECKING:
    from celery import Celery
    from celery.canvas import Signature

    from .plan import Plan
    from .store import RunStore, StepRecord


class Dispatch(str, enum.Enum):
    """Who starts each action of a run once the actions before it have succeeded."""

    CANVAS = "canvas"
    """Celery: the run's chains and chords are sent as canvas, each message carrying the
    rest of its chain. Best for small processes: it is exactly hand-written canvas."""

    WORKER = "worker"
    """The worker that finishes an action sends what follows it; joins are counted in the
    run store. Every message carries one step, whatever the size of the process."""


def choose(compiled: CompiledProcess, canvas_limit: int | None, chords: bool) -> Dispatch:
    """How a compiled process is dispatched.

    Processes of at most ``canvas_limit`` actions (steps, joins, begins) run
    as Celery canvas, larger ones are dispatched by the workers; ``None``
    means canvas whatever the size. Without ``chords``, a process with a
    concurrent section is dispatched by the workers whatever its size.
    """
    small = canvas_limit is None or compiled.size <= canvas_limit
    return Dispatch.CANVAS if small and (chords or not compiled.has_chord) else Dispatch.WORKER


class Dispatcher(Protocol):
    """Sends the actions of one run."""

    celery_sends_rest: bool
    """Whether Celery sends what follows a step when its task returns (canvas)."""

    def start(self) -> None:
        """Send what opens the run."""
        ...

    def after(
        self,
        action: Action,
        again: bool = False,
        succeeded: StepRecord | None = None,
        resume: int = 0,
    ) -> ExitStack | None:
        """Send what follows ``action``, which has succeeded.

        ``again`` is for a message delivered once more after its action had
        succeeded (its worker may have died before sending), or sent again by
        a resume. ``succeeded`` is the step's SUCCESS record: it goes to the
        store before anything that follows is sent, which may be received
        before it is stored. ``resume`` is the resume of the run that
        ``action``'s message belongs to; what follows belongs to it too.

        Returns what is still under way where Celery sends what follows when
        the task returns: the caller closes it once the task has returned.
        """
        ...


def opening_signature(app: Celery, plan: Plan, control_queue: str | None) -> Signature:
    """The one message a client sends to open a run: what the strategy would start it with.

    A run that opens with one action (a step, or the begin or join of a
    sub-process) is sent just that, as Celery canvas with the rest of its
    chain or as a single message, and its first action fires the top-level
    process's ``on_started`` before anything else of it runs. A run that opens
    with a concurrent section is sent the ``tasktronaut.start`` message
    instead: a worker fires that hook before the section's first steps start
    side by side, then sends them.
    """
    opening = entries(plan.flow)
    if len(opening) > 1:
        return start_signature(app, plan, control_queue)
    if plan.dispatch is Dispatch.CANVAS:
        return to_signature(app, plan, plan.flow, control_queue)
    return action_signature(app, plan, opening[0], control_queue)


def resend(app: Celery, plan: Plan, flow: Flow, control_queue: str | None, resume: int) -> None:
    """Send what resume ``resume`` of the run starts with: ``flow``, the rest of the run's flow.

    As Celery canvas, or the first actions of ``flow`` when the workers
    dispatch: what follows them is found in the run's whole flow, and the
    members of a concurrent section that had finished have arrived already.
    """
    if plan.dispatch is Dispatch.CANVAS:
        to_signature(app, plan, flow, control_queue, resume).apply_async()
    else:
        send(app, plan, entries(flow), control_queue, resume)


def dispatcher(plan: Plan, app: Celery, store: RunStore, control_queue: str | None) -> Dispatcher:
    """The strategy the plan was given, sending to ``app``; joins go to ``control_queue``."""
    if plan.dispatch is Dispatch.CANVAS:
        return CanvasDispatch(plan, app, store, control_queue)
    return WorkerDispatch(plan, app, store, control_queue)


class CanvasDispatch:
    """The run is sent as one Celery canvas; Celery's chains and chords carry the rest."""

    celery_sends_rest = True

    def __init__(
        self, plan: Plan, app: Celery, store: RunStore, control_queue: str | None
    ) -> None:
        self._plan = plan
        self._app = app
        self._store = store
        self._control_queue = control_queue
        self._members: set[Action] | None = None  # of chords

    def start(self) -> None:
        """Send the run's whole canvas."""
        to_signature(self._app, self._plan, self._plan.flow, self._control_queue).apply_async()

    def after(
        self,
        action: Action,
        again: bool = False,
        succeeded: StepRecord | None = None,
        resume: int = 0,
    ) -> ExitStack | None:
        """Celery sends the rest of a chain, or counts a chord member, when the task returns.

        Redis counts each member once, and a duplicate of a step that has
        started is ignored. A chain's ``succeeded`` leaves for the store now;
        the stack returned, closed after Celery has sent the rest, waits for
        it to be stored (:meth:`RunStore.putting_step`). A chord member's is
        stored at once: Celery counts the member on a connection of the same
        Redis pool, which must not need a second one per worker thread.
        """
        if succeeded is None:
            return None
        assert isinstance(action, Step)
        if self._members is None:
            self._members = {a for a, then in continuations(self._plan.flow).items() if then.chord}
        if action in self._members:
            self._store.put_step(self._plan.run_id, action.path, succeeded)
            return None
        under_way = ExitStack()
        under_way.enter_context(
            self._store.putting_step(self._plan.run_id, action.path, succeeded)
        )
        return under_way


class WorkerDispatch:
    """The worker that finishes an action sends what follows it."""

    celery_sends_rest = False

    def __init__(
        self, plan: Plan, app: Celery, store: RunStore, control_queue: str | None
    ) -> None:
        self._plan = plan
        self._app = app
        self._store = store
        self._control_queue = control_queue
        self._following: dict[Action, Continuation] | None = None

    def start(self) -> None:
        """Send the run's first actions."""
        self._send(entries(self._plan.flow))

    def after(
        self,
        action: Action,
        again: bool = False,
        succeeded: StepRecord | None = None,
        resume: int = 0,
    ) -> None:
        """Send what follows ``action``; a chord's body once every member has arrived.

        A step's ``succeeded`` record is stored in the same trip to the run
        store as its arrival, if it arrives at a chord; else it travels to the
        store while what follows is published (:meth:`RunStore.putting_step`).
        Sent ``again``, steps that follow and have already started are not
        sent again (a step a resume left PENDING has not), and a chord's body
        is sent again even if claimed (a duplicate of it is ignored).
        """
        if self._following is None:
            self._following = continuations(self._plan.flow)
        then = self._following[action]
        run_id = self._plan.run_id
        recorded = None
        if succeeded is not None:
            assert isinstance(action, Step)
            recorded = (action.path, succeeded)
        if then.chord is not None:
            chord = f"{type(then.chord).__name__.lower()}:{then.chord.path}"
            arrival = self._store.arrive_and_claim(run_id, chord, then.member, then.size, recorded)
            if arrival.claimed or (again and arrival.complete):  # else another member sends it
                self._send((then.chord,), resume)
            return
        targets = self._not_started(then.start) if again and then.start else then.start
        stored = self._store.putting_step(run_id, *recorded) if recorded else nullcontext()
        with stored:  # a step's success is on its way to the store while what follows goes out
            if targets:
                self._send(targets, resume)

    def _not_started(self, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        """``actions`` but the steps that have started (a step a resume left PENDING has not)."""
        records = self._store.steps(self._plan.run_id)
        started = {path for path, record in records.items() if record.started}
        return tuple(a for a in actions if not (isinstance(a, Step) and a.path in started))

    def _send(self, actions: tuple[Action, ...], resume: int = 0) -> None:
        """Publish the messages of ``actions`` (of resume ``resume``) on one producer connection."""
        send(self._app, self._plan, actions, self._control_queue, resume)


def send(
    app: Celery,
    plan: Plan,
    actions: tuple[Action, ...],
    control_queue: str | None,
    resume: int = 0,
) -> None:
    """Publish the messages of ``actions`` of ``plan`` on one producer connection."""
    with app.producer_or_acquire() as producer:
        for action in actions:
            signature = action_signature(app, plan, action, control_queue, resume)
            signature.apply_async(producer=producer)


@dataclass(frozen=True, slots=True)
class Continuation:
    """What follows an action once it has succeeded, when the worker drives the flow.

    Either ``start`` these actions, or count this action's chord member in:
    when all ``size`` members of the chord whose body is ``chord`` have arrived,
    start the body. Neither means the flow ends here.
    """

    start: tuple[Action, ...] = ()
    chord: Action | None = None
    member: int = 0
    size: int = 0


def entries(flow: Flow) -> tuple[Action, ...]:
    """The actions that start ``flow``: its first action, or every first action of a chord."""
    if isinstance(flow, (Step, Join, Begin)):
        return (flow,)
    if isinstance(flow, Chain):
        return entries(flow.items[0])
    return tuple(action for member in flow.header for action in entries(member))


def continuations(flow: Flow) -> dict[Action, Continuation]:
    """For every action of ``flow``, what follows it: the flow's chains and chords, unrolled."""
    following: dict[Action, Continuation] = {}

    def link(node: Flow, then: Continuation) -> None:
        if isinstance(node, (Step, Join, Begin)):
            following[node] = then
        elif isinstance(node, Chain):
            for item, after in zip(node.items, node.items[1:], strict=False):
                link(item, Continuation(start=entries(after)))
            link(node.items[-1], then)
        else:
            size = len(node.header)
            for index, member in enumerate(node.header):
                link(member, Continuation(chord=node.body, member=index, size=size))
            link(node.body, then)

    link(flow, Continuation())
    return following
