"""``ProcessDefinition``: the class users subclass to describe a process.

A subclass is checked and registered when its class statement runs, so a
misspelt ``execution_mode`` fails on import rather than silently running
sequentially. Its lifecycle hooks are called by a backend, on a worker,
exactly once per process (and per sub-process) per run.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from . import registry
from .calling import is_async
from .concurrency import ConcurrencyPolicy, check_declaration
from .errors import DefinitionError, UnknownDefinitionError
from .nodes import ExecutionMode
from .options import TaskOptions
from .sensitive import redact, sensitive_arguments_of

if TYPE_CHECKING:
    from .builder import Builder
    from .context import Context
    from .process import Process

logger = logging.getLogger("tasktronaut")

_SYNCHRONOUS = (
    "define_process",
    "concurrency_key",
    "on_started",
    "around_task",
    "on_completed",
    "on_failed",
    "on_cancelled",
)
"""Members Tasktronaut calls synchronously: an ``async def`` one would never run."""

_LOOK_ALIKES = {
    "execution_mode": "process_execution_mode",
    "default_task_options": "task_options",
}


class ProcessDefinition:
    """Base class of every process: subclass it and implement :meth:`define_process`.

    ``process_execution_mode`` sets whether the top-level steps run one after
    another (the default) or concurrently; ``task_options`` sets defaults for
    every step of this definition (``@task(...)`` and ``builder.task(...)``
    override them per step); ``sensitive_arguments`` names the arguments whose
    values Tasktronaut never shows. ``concurrency_limit``,
    ``concurrency_key`` and ``concurrency_policy`` keep runs from executing
    side by side (single flight): see :doc:`/schedules`.
    """

    process_execution_mode: ClassVar[ExecutionMode] = ExecutionMode.SEQUENTIAL
    """How the top-level steps run; also the mode of the block it adds as a sub-process."""
    task_options: ClassVar[TaskOptions] = TaskOptions()
    """Defaults for every step of this definition (retries, queue, time limits...)."""
    sensitive_arguments: ClassVar[Collection[str]] = frozenset()
    """Names of arguments (passwords, tokens) whose values are hidden in errors, logs and Flower.

    A name marked by any definition of a process, or of its sub-processes, is
    sensitive for the whole run. Steps still receive the real values.
    """

    concurrency_limit: ClassVar[int | None] = None
    """How many runs of one :meth:`concurrency_key` may execute at once (``None``: any number).

    Only the top-level definition's limit counts: a sub-process runs inside
    its parent's slot.
    """
    concurrency_policy: ClassVar[ConcurrencyPolicy | str] = ConcurrencyPolicy.QUEUE
    """What happens to a run enqueued while its key is at its limit: ``"queue"`` (wait,
    in order of enqueue), ``"reject"`` (enqueue raises) or ``"skip"`` (dropped and logged)."""
    concurrency_expires: ClassVar[timedelta] = timedelta(days=1)
    """How long a run may hold its slot; a run that vanished (its messages lost) frees it then."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _check_definition_class(cls)
        registry.register(cls)

    def define_process(self, builder: Builder) -> None:
        """Add this process's steps to ``builder``; runs once per :meth:`build`."""
        raise NotImplementedError(f"{type(self).__qualname__} must implement define_process()")

    @classmethod
    def build(
        cls,
        *,
        identifier: str | None = None,
        options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Process:
        """Run :meth:`define_process` with ``kwargs`` in scope and return the frozen process.

        ``identifier`` names the run (a random hex id if omitted); ``options``
        are read by ``builder.option``, and one that ``define_process`` never
        reads is refused (a misspelt option would silently leave steps out).
        Both are keyword-only. Every mistake in the definition or the
        arguments is raised here, before anything is sent anywhere.
        """
        from .builder import build_process  # builder imports this module

        return build_process(cls, identifier=identifier, options=options, arguments=kwargs)

    def concurrency_key(self, **arguments: Any) -> str:
        """What runs share a :attr:`concurrency_limit`: by default every run of this definition.

        Called when the process is built, with its arguments; return, say,
        ``f"invoice-{arguments['customer_id']}"`` to limit runs per customer.
        """
        return registry.reference_of(type(self))

    def on_started(self, identifier: str) -> None:
        """Called once when the process (or this sub-process) starts its first step."""
        logger.info("%s started [%s].", type(self).__qualname__, identifier)

    @contextmanager
    def around_task(
        self, identifier: str, step: str, description: str | None, context: Context
    ) -> Iterator[None]:
        """Wraps every step of this definition; an error raised here fails the step."""
        name = type(self).__qualname__
        shown = step if description is None else f"{redact(repr(description))} ({step})"
        logger.info("Executing %s of %s [%s].", shown, name, identifier)
        yield
        logger.info("Completed %s of %s [%s].", shown, name, identifier)

    def on_completed(self, identifier: str) -> None:
        """Called once when every step of the process (or this sub-process) has succeeded."""
        logger.info("%s completed [%s].", type(self).__qualname__, identifier)

    def on_failed(self, identifier: str, step: str, e: Exception) -> None:
        """Called once when ``step`` of the process (or this sub-process) failed for good."""
        logger.error(
            "%s failed executing %s [%s]: %s",
            type(self).__qualname__,
            step,
            identifier,
            redact(repr(e)),
        )

    def on_cancelled(self, identifier: str) -> None:
        """Called once when the run is cancelled while this process is under way."""
        logger.warning("%s cancelled [%s].", type(self).__qualname__, identifier)


def _check_definition_class(cls: type[ProcessDefinition]) -> None:
    for wrong, right in _LOOK_ALIKES.items():
        if wrong in vars(cls):
            raise DefinitionError(
                f"{cls.__qualname__} sets {wrong!r}, which Tasktronaut does not read; "
                f"did you mean {right!r}?"
            )
    for name in _SYNCHRONOUS:
        if is_async(getattr(cls, name)):
            raise DefinitionError(
                f"{cls.__qualname__}.{name} is an async def, and Tasktronaut calls it "
                "synchronously: its body would never run; make it a plain def"
            )
    mode = cls.process_execution_mode
    if not isinstance(mode, ExecutionMode):
        raise DefinitionError(
            f"{cls.__qualname__}.process_execution_mode must be ExecutionMode.SEQUENTIAL "
            f"or ExecutionMode.CONCURRENT, not {mode!r}"
        )
    if not isinstance(cls.task_options, TaskOptions):
        raise DefinitionError(
            f"{cls.__qualname__}.task_options must be a TaskOptions(...), not {cls.task_options!r}"
        )
    sensitive_arguments_of(cls)
    check_declaration(cls)


def step_problem(definition: type[ProcessDefinition], method: object) -> str | None:
    """Why ``method`` cannot be a step of ``definition``, or ``None`` if it can.

    A step is a public instance method of the definition (or of a base class)
    that is not one of ``ProcessDefinition``'s own members.
    """
    if not isinstance(method, str) or not method.isidentifier():
        return f"{method!r} is not a method name"
    if method.startswith("_"):
        return f"{method!r} is private; steps must be public methods"
    if hasattr(ProcessDefinition, method):
        return f"{method!r} belongs to ProcessDefinition itself and cannot be a step"
    if not inspect.isfunction(inspect.getattr_static(definition, method, None)):
        return f"{definition.__qualname__} has no instance method {method!r}"
    return None


def resolve_step(definition: type[ProcessDefinition], method: str) -> Callable[..., Any]:
    """The function behind step ``method`` of ``definition``, checked by :func:`step_problem`."""
    problem = step_problem(definition, method)
    if problem is not None:
        raise UnknownDefinitionError(f"{registry.reference_of(definition)}: {problem}")
    function: Callable[..., Any] = getattr(definition, method)
    return function
