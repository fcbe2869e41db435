"""The backend contract: what an execution backend implements, and the core it builds on.

The core never imports a backend. ``Process.enqueue(backend)`` hands the
frozen tree to any object with an ``enqueue`` method (:class:`Backend`), such
as ``tasktronaut_celery.CeleryBackend``, and returns whatever run handle it
gives. This module is the one place a backend (Celery today; RQ or Dramatiq
tomorrow) reads to know what it implements and what it may call; it imports
no broker library.

A backend does five things, and the core does the rest:

1. **Plan.** Walk ``process.root`` (:func:`walk`; each :data:`Node` is a
   :class:`ProcessNode`, a block or a :class:`TaskNode`, with its ``path``:
   see :mod:`tasktronaut.paths`) and store, for each step, the definition as
   :func:`reference_of` names it (messages must never import code), the
   method, the :class:`Arguments` and the :class:`~tasktronaut.TaskOptions`.
   Children run one after another or all at once, as their block's or
   process's :class:`ExecutionMode` says.
2. **Run a step.** On a worker, get the definition back with
   :func:`resolve_definition` (:func:`step_problem` says, before anything
   runs, whether this worker's code has the method), build a
   :class:`StepCall` and hand it to :func:`run_step`; its :class:`StepResult`
   has an :class:`Outcome` that tells the backend what to do next: continue,
   retry (``RETRYABLE``, within the step's ``max_retries``), fail the run
   (``FAILED``), or cancel it (``CANCELLED``).
3. **Fire hooks.** Call each :data:`Hook` through :func:`call_hook`, once per
   process per run, even when workers race: ``on_started`` before a process's
   first step, exactly one of ``on_completed``, ``on_failed`` and
   ``on_cancelled`` at its end.
4. **Keep concurrency limits.** A process whose definition declares a
   ``concurrency_limit`` carries a :class:`ConcurrencyLimit`
   (``process.concurrency``): at most ``limit`` runs of its ``key`` execute
   at once, and the :class:`ConcurrencyPolicy` says what happens to a run
   beyond that; a slot is freed when its run ends, however it ends.
5. **Hide secrets.** Pass the run's :class:`Redactor` (built with
   :meth:`Redactor.of` from ``process.sensitive_arguments``) to both calls, and
   use it on whatever the backend shows: run records, logs, errors sent back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

from .concurrency import ConcurrencyLimit, ConcurrencyPolicy
from .definition import ProcessDefinition, step_problem
from .nodes import ExecutionMode, Node, ProcessNode, TaskNode, walk
from .registry import reference_of, resolve_definition
from .runtime import Hook, Outcome, StepCall, StepResult, call_hook, run_step
from .scope import Arguments
from .sensitive import NO_REDACTION, Redactor

if TYPE_CHECKING:
    from .process import Process

__all__ = [
    "NO_REDACTION",
    "Arguments",
    "Backend",
    "ConcurrencyLimit",
    "ConcurrencyPolicy",
    "ExecutionMode",
    "Hook",
    "Node",
    "Outcome",
    "ProcessDefinition",
    "ProcessNode",
    "Redactor",
    "StepCall",
    "StepResult",
    "TaskNode",
    "call_hook",
    "reference_of",
    "resolve_definition",
    "run_step",
    "step_problem",
    "walk",
]

RunT_co = TypeVar("RunT_co", covariant=True)


class Backend(Protocol[RunT_co]):
    """Runs built processes; ``enqueue`` starts one and returns a handle on its run."""

    def enqueue(self, process: Process) -> RunT_co:
        """Start ``process`` and return a handle on the run."""
        ...
