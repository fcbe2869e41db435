"""The immutable process tree that building a process returns.

Three node types: a :class:`TaskNode` is one step (a method of a definition
with its arguments), a :class:`BlockNode` groups children sequentially or
concurrently, a :class:`ProcessNode` is a (sub-)process with its own children.
``each`` and ``transform`` leave no node of their own: they only put arguments
in scope for the nodes they add.

A node's ``repr`` leaves out its description, which may be built from a
sensitive argument's value, and masks the sensitive arguments by name.

Every node has a ``path``: the indexes leading to it from the root, joined
with dots (``"2.1.0"``); the root process has the empty path
(see :mod:`tasktronaut.paths`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .options import TaskOptions

if TYPE_CHECKING:
    from .definition import ProcessDefinition


class ExecutionMode(enum.Enum):
    """How the children of a block or process run."""

    SEQUENTIAL = "sequential"
    """One after another, each starting when the previous one has succeeded."""

    CONCURRENT = "concurrent"
    """All at once; whatever follows starts when every one has succeeded."""


@dataclass(frozen=True, slots=True)
class TaskNode:
    """One step: ``definition.method(**arguments)`` run once per run."""

    path: str
    definition: type[ProcessDefinition]
    method: str
    description: str | None = field(repr=False)  # may quote a sensitive value
    arguments: Mapping[str, Any]
    options: TaskOptions

    @property
    def name(self) -> str:
        """The step's display name, ``Definition.method``."""
        return f"{self.definition.__qualname__}.{self.method}"


@dataclass(frozen=True, slots=True)
class BlockNode:
    """Children run in ``mode``, from ``builder.sequential()`` or ``builder.concurrent()``."""

    path: str
    mode: ExecutionMode
    description: str | None = field(repr=False)  # may quote a sensitive value
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class ProcessNode:
    """A process, or a sub-process inlined where ``builder.sub_process`` was called.

    ``mode`` is the definition's ``process_execution_mode``; ``arguments`` are
    those in scope when it was built.
    """

    path: str
    definition: type[ProcessDefinition]
    mode: ExecutionMode
    description: str | None = field(repr=False)  # may quote a sensitive value
    arguments: Mapping[str, Any]
    children: tuple[Node, ...]

    @property
    def name(self) -> str:
        """The definition's class name."""
        return self.definition.__qualname__


Node = TaskNode | BlockNode | ProcessNode


def walk(node: Node) -> Iterator[Node]:
    """``node`` and all its descendants, depth first, in definition order."""
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        yield current
        if not isinstance(current, TaskNode):
            stack.extend(reversed(current.children))


def steps(node: Node) -> Iterator[TaskNode]:
    """The steps under ``node``, in definition order."""
    return (each for each in walk(node) if isinstance(each, TaskNode))
