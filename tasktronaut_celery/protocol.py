"""Tasktronaut's messages: task names, task ids, fields, and refusing foreign ones.

A message carries a run id and, for a step, join or begin, a path into the
run's stored plan: nothing in it names code. The definition and method a
step runs come from the plan the client stored, looked up among the
definitions the worker imported. A message with positional arguments, or
with fields missing, extra or not strings, is rejected unrun.

Every message has a task id derived from its run and path, the same on every
delivery, so the worker's main process can tell which run and step a message
belongs to from its headers alone (:func:`parse_task_id`), even when its body
cannot be read. The messages a resume of the run sends say which resume they
belong to (``<run>:<path>@<resume>``, :func:`resume_of`), so a message left
over from before it is told apart and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from celery.exceptions import Ignore, Reject

if TYPE_CHECKING:
    from celery import Task

logger = logging.getLogger("tasktronaut.celery")

STEP_TASK = "tasktronaut.step"
JOIN_TASK = "tasktronaut.join"
BEGIN_TASK = "tasktronaut.begin"
START_TASK = "tasktronaut.start"
SETTLE_TASK = "tasktronaut.settle"
SCHEDULE_TASK = "tasktronaut.scheduled"
"""The task a beat entry names: it starts one run of the entry's process (not a runner task)."""

FIELDS: Mapping[str, tuple[str, ...]] = {
    START_TASK: ("run",),
    STEP_TASK: ("run", "step"),
    BEGIN_TASK: ("run", "begin"),
    JOIN_TASK: ("run", "join"),
    SETTLE_TASK: ("run",),
}
"""The string fields each message carries, in the order the runner takes them."""

RUNNER_TASKS = frozenset(FIELDS)

ROOT = "root"
"""What a join's task id says for the root's empty path."""

# How the task id of each kind of message ends (a step's is ``<run>:<path>``).
_ID_SUFFIXES = {
    JOIN_TASK: ":join",
    BEGIN_TASK: ":begin",
    START_TASK: ":start",
    SETTLE_TASK: ":settle",
}


RESUME_MARK = "@"
"""What separates a path from the resume its message belongs to, in a task id."""


def _resumed(path: str, resume: int) -> str:
    return f"{path}{RESUME_MARK}{resume}" if resume else path


def step_task_id(run_id: str, path: str, resume: int = 0) -> str:
    """The Celery task id of a step: the same on every delivery of the same run and resume."""
    return f"{run_id}:{_resumed(path, resume)}"


def join_task_id(run_id: str, path: str, resume: int = 0) -> str:
    """The Celery task id of a join (``root`` stands for the root's empty path)."""
    return f"{run_id}:{_resumed(path or ROOT, resume)}{_ID_SUFFIXES[JOIN_TASK]}"


def begin_task_id(run_id: str, path: str, resume: int = 0) -> str:
    """The Celery task id of the begin of the sub-process at ``path``."""
    return f"{run_id}:{_resumed(path, resume)}{_ID_SUFFIXES[BEGIN_TASK]}"


def start_task_id(run_id: str) -> str:
    """The Celery task id of a run's start message (sent for runs that open concurrently)."""
    return f"{run_id}{_ID_SUFFIXES[START_TASK]}"


def settle_task_id(run_id: str) -> str:
    """The Celery task id of a run's settle message."""
    return f"{run_id}{_ID_SUFFIXES[SETTLE_TASK]}"


def parse_task_id(task_name: str, task_id: str) -> tuple[str, str | None] | None:
    """The run id and path a Tasktronaut task id names, or ``None`` if it names none.

    The inverse of the ids above; ``None`` as the path for a run's start and
    settle messages. Paths never hold a colon, run ids may.
    """
    if task_name == STEP_TASK:
        run_id, _, path = task_id.rpartition(":")
        path = path.partition(RESUME_MARK)[0]
        return (run_id, path) if run_id and path else None
    suffix = _ID_SUFFIXES.get(task_name)
    if suffix is None or not task_id.endswith(suffix):
        return None
    rest = task_id.removesuffix(suffix)
    if task_name in (START_TASK, SETTLE_TASK):
        return (rest, None) if rest else None
    run_id, _, path = rest.rpartition(":")
    path = path.partition(RESUME_MARK)[0]
    if not run_id or not path:
        return None
    return run_id, "" if task_name == JOIN_TASK and path == ROOT else path


def resume_of(task_name: str, task_id: str) -> int:
    """Which resume of its run a message belongs to: ``0`` for those of its first go."""
    if task_name in (START_TASK, SETTLE_TASK):
        return 0
    rest = task_id.removesuffix(_ID_SUFFIXES.get(task_name, ""))
    _, mark, resume = rest.rpartition(":")[2].rpartition(RESUME_MARK)
    return int(resume) if mark and resume.isdigit() else 0


def message_fields(
    task: Task, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[str, ...]:
    """The string fields of ``task``'s message (see :data:`FIELDS`), or reject the message."""
    names = FIELDS[task.name]
    if args or set(kwargs) != set(names) or not all(isinstance(kwargs[n], str) for n in names):
        fields = ", ".join(names)
        reject(
            f"{task.name}[{task.request.id}] must carry exactly the string fields {fields}, "
            f"got args={_sketch(args)} kwargs={_sketch(kwargs)}"
        )
    return tuple(kwargs[name] for name in names)


def check_body(payload: Any) -> None:
    """Raise ``ValueError`` unless ``payload`` is a protocol-2 body: args, kwargs, embed."""
    if not isinstance(payload, (list, tuple)) or len(payload) != 3:
        raise ValueError(f"a {type(payload).__name__}, not a 3-item list")
    args, kwargs, embed = payload
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
        raise ValueError("args must be a list and kwargs an object")
    if embed is not None and not isinstance(embed, dict):
        raise ValueError("embed must be an object")


class RunEnded(Ignore):  # type: ignore[misc]
    """Celery's ``Ignore`` for a message not run, or a step not finished, because its run ended.

    Celery sends no event for an ignored task, so monitors such as Flower
    would show it STARTED forever; the worker announces these as revoked
    instead (see ``worker.RunnerRequest``). Like ``Ignore``, it stops
    the message's chain and keeps no result.
    """


def reject(reason: str) -> NoReturn:
    """Log why a message is refused, and drop it without running anything."""
    logger.error("tasktronaut: rejected message: %s", reason)
    raise Reject(reason, requeue=False)


def _sketch(value: object, limit: int = 200) -> str:
    """A short repr of what a message carried, for the worker log."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."
