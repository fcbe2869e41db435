"""From a run's flow to Celery signatures, and from signatures to a readable shape.

Every signature is immutable (``.si``), so results never leak into arguments,
carries only the run id and a path, has a deterministic task id unique within
the run, and a ``shadow`` name such as ``MainProcess.load_data`` so Flower and
worker logs show what runs (the ``task-sent`` events of these messages carry
it too). Step options (queue, priority, time limits) become the signature's
execution options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import chain, chord, group
from celery.canvas import Signature

from .compiler import Action, Begin, Chain, Flow, Join, Step
from .protocol import (
    BEGIN_TASK,
    JOIN_TASK,
    RUNNER_TASKS,
    SETTLE_TASK,
    START_TASK,
    STEP_TASK,
    begin_task_id,
    join_task_id,
    settle_task_id,
    start_task_id,
    step_task_id,
)
from .step_options import signature_options
from .stores import chords_need_member_results

if TYPE_CHECKING:
    from celery import Celery

    from .plan import Plan


def to_signature(
    app: Celery, plan: Plan, flow: Flow, control_queue: str | None = None, resume: int = 0
) -> Signature:
    """The Celery canvas for ``flow`` (part of) ``plan``; joins go to ``control_queue``.

    ``resume`` is the resume of the run the messages belong to (``0``: its first go).
    """
    if isinstance(flow, (Step, Join, Begin)):
        return action_signature(app, plan, flow, control_queue, resume)
    items = flow.items if isinstance(flow, Chain) else (*flow.header, flow.body)
    signatures = [to_signature(app, plan, item, control_queue, resume) for item in items]
    if isinstance(flow, Chain):
        return chain(*signatures, app=app)
    *members, body = signatures
    if chords_need_member_results(app):
        members = [_storing_results(member) for member in members]
    return chord(group(members, app=app), body, app=app)


def _storing_results(signature: Signature) -> Signature:
    """``signature`` with every task in it storing its result.

    Tasktronaut's tasks keep no Celery result, except inside a chord header
    on result backends that join a chord by reading its members' results
    (the database ones by polling them). On Redis, which counts members on
    its own, members keep none either: a member whose worker dies after it
    returned is then delivered again rather than taken for done, and counted.
    """
    for task in getattr(signature, "tasks", None) or (signature,):
        if task is signature:
            task.set(ignore_result=False)
        else:
            _storing_results(task)
    if isinstance(signature, chord):
        _storing_results(signature.body)
    return signature


def action_signature(
    app: Celery, plan: Plan, action: Action, control_queue: str | None = None, resume: int = 0
) -> Signature:
    """The signature of one step, join or begin of ``plan``, sent by resume ``resume``."""
    if isinstance(action, Step):
        return step_signature(app, plan, action.path, resume)
    if isinstance(action, Join):
        return join_signature(app, plan, action.path, control_queue, resume)
    return begin_signature(app, plan, action.path, control_queue, resume)


def step_signature(app: Celery, plan: Plan, path: str, resume: int = 0) -> Signature:
    """The signature of the step at ``path``."""
    step = plan.steps[path]
    return _signature(
        app,
        STEP_TASK,
        {"run": plan.run_id, "step": path},
        task_id=step_task_id(plan.run_id, path, resume),
        shadow=plan.step_name(path),
        **signature_options(step.options),
    )


def join_signature(
    app: Celery, plan: Plan, path: str, control_queue: str | None = None, resume: int = 0
) -> Signature:
    """The signature of the join at ``path``."""
    owner = plan.processes[plan.lineage(path)[0]]
    return _signature(
        app,
        JOIN_TASK,
        {"run": plan.run_id, "join": path},
        task_id=join_task_id(plan.run_id, path, resume),
        shadow=f"{owner.name}:join",
        **_queue(control_queue),
    )


def begin_signature(
    app: Celery, plan: Plan, path: str, control_queue: str | None = None, resume: int = 0
) -> Signature:
    """The signature of the begin of the sub-process at ``path``."""
    return _signature(
        app,
        BEGIN_TASK,
        {"run": plan.run_id, "begin": path},
        task_id=begin_task_id(plan.run_id, path, resume),
        shadow=f"{plan.processes[path].name}:begin",
        **_queue(control_queue),
    )


def start_signature(app: Celery, plan: Plan, control_queue: str | None = None) -> Signature:
    """The one message a client sends to start a run."""
    return _signature(
        app,
        START_TASK,
        {"run": plan.run_id},
        task_id=start_task_id(plan.run_id),
        shadow=f"{plan.root.name}:start",
        **_queue(control_queue),
    )


def settle_signature(
    app: Celery,
    run_id: str,
    root_name: str,
    control_queue: str | None = None,
    *,
    cancel: bool = False,
) -> Signature:
    """The message that has a worker fire the hooks an ended run still owes.

    Sent for a client's cancel (``cancel``) it shows as ``Definition:cancel``
    in Flower and worker logs, otherwise as ``Definition:settle``.
    """
    return _signature(
        app,
        SETTLE_TASK,
        {"run": run_id},
        task_id=settle_task_id(run_id),
        shadow=f"{root_name}:{'cancel' if cancel else 'settle'}",
        **_queue(control_queue),
    )


def _queue(queue: str | None) -> dict[str, str]:
    return {"queue": queue} if queue else {}


def _signature(app: Celery, name: str, kwargs: dict[str, str], **options: Any) -> Signature:
    options.setdefault("ignore_result", True)
    return Signature(name, kwargs=kwargs, options=options, immutable=True, app=app)


def name_sent_events_by_shadow(app: Celery) -> None:
    """Have the ``task-sent`` events of Tasktronaut's messages name the task by its shadow.

    With ``task_send_sent_event`` on, Celery names a sent event after the
    registered task (``tasktronaut.step``), while the worker's events carry the
    shadow (``Definition.method``). Monitors such as Flower take every field
    of an event that arrives late, so a ``task-sent`` event arriving after the
    worker's would rename the step. This wraps the app's message sender
    (Celery's own, built when first used, as Celery builds it) so that the
    sent event of each Tasktronaut message carries its shadow name; other
    tasks' messages are sent unchanged.
    """
    amqp = app.amqp
    existing = vars(amqp).get("send_task_message")  # set by the user or an instrumentation
    if getattr(existing, "names_sent_events_by_shadow", False):
        return  # a backend created on this app before has wrapped it already
    send: Callable[..., Any] | None = existing

    def send_task_message(
        producer: Any, name: str, message: Any, *args: Any, **options: Any
    ) -> Any:
        nonlocal send
        if send is None:  # Celery's own, built when first used, from the app's settings then
            send = amqp._create_task_sender()
        shadow = message.headers.get("shadow")
        if name in RUNNER_TASKS and shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return send(producer, name, message, *args, **options)

    send_task_message.names_sent_events_by_shadow = True  # type: ignore[attr-defined]
    amqp.send_task_message = send_task_message


def shape(signature: Signature) -> str:
    """A one-line picture of a canvas, e.g. ``chain(A.a, chord([A.b, A.c], A.d))``."""
    if isinstance(signature, chord):
        members = ", ".join(shape(member) for member in signature.tasks)
        return f"chord([{members}], {shape(signature.body)})"
    if isinstance(signature, (chain, group)):
        name = "chain" if isinstance(signature, chain) else "group"
        return f"{name}({', '.join(shape(task) for task in signature.tasks)})"
    return str(signature.options.get("shadow") or signature.task)
