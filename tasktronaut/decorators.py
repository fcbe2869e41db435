"""The ``@task`` decorator: a description and step options attached to a method.

The decorator returns the very function it was given, so signatures, type
checking and ``inspect`` see the method unchanged; the metadata rides along
in one attribute that the builder reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from typing_extensions import Unpack

from .errors import DefinitionError
from .options import TaskOptions, TaskOptionsKwargs

F = TypeVar("F", bound=Callable[..., Any])

_METADATA_ATTRIBUTE = "__tasktronaut_task__"


@dataclass(frozen=True, slots=True)
class TaskMetadata:
    """What ``@task(...)`` recorded on a method."""

    description: str | None
    options: TaskOptions


@overload
def task(func: F, /) -> F: ...


@overload
def task(
    *, description: str | None = None, **options: Unpack[TaskOptionsKwargs]
) -> Callable[[F], F]: ...


def task(
    func: F | None = None,
    /,
    *,
    description: str | None = None,
    **options: Unpack[TaskOptionsKwargs],
) -> F | Callable[[F], F]:
    """Mark a method as a task, with an optional description and step options.

    Usable bare (``@task``), called (``@task()``) or with arguments
    (``@task(description="Load rows", max_retries=3, queue="io")``).
    """

    def decorate(function: F) -> F:
        if not callable(function):
            raise DefinitionError(f"@task decorates functions, not {function!r}")
        owner = f"@task on {getattr(function, '__qualname__', function)!r}"
        if description is not None and not isinstance(description, str):
            raise DefinitionError(f"{owner}: description must be a string, not {description!r}")
        metadata = TaskMetadata(description, TaskOptions.from_kwargs(owner, dict(options)))
        setattr(function, _METADATA_ATTRIBUTE, metadata)
        return function

    if func is not None:
        return decorate(func)
    return decorate


def task_metadata(func: Callable[..., Any]) -> TaskMetadata | None:
    """The metadata ``@task`` recorded on ``func`` (bound or not), if any."""
    target = getattr(func, "__func__", func)
    metadata = getattr(target, _METADATA_ATTRIBUTE, None)
    return metadata if isinstance(metadata, TaskMetadata) else None
