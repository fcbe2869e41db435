"""``Process``: the frozen result of building a definition, ready to inspect or run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from . import nodes, render

if TYPE_CHECKING:
    from .backend import Backend
    from .definition import ProcessDefinition

RunT = TypeVar("RunT")


@dataclass(frozen=True, slots=True)
class Process:
    """A built process: its run identifier, the options it was built with and its tree.

    Two builds of the same definition with the same arguments and options
    compare equal except for their identifiers.
    """

    identifier: str
    root: nodes.ProcessNode
    options: Mapping[str, Any]

    @property
    def definition(self) -> type[ProcessDefinition]:
        """The definition this process was built from."""
        return self.root.definition

    def walk(self) -> Iterator[nodes.Node]:
        """Every node of the tree, depth first, in definition order."""
        return nodes.walk(self.root)

    def steps(self) -> Iterator[nodes.TaskNode]:
        """Every step, in definition order."""
        return nodes.steps(self.root)

    def find(self, path: str) -> nodes.Node:
        """The node at ``path`` (``""`` is the root); ``KeyError`` if there is none."""
        node: nodes.Node = self.root
        for index in path.split(".") if path else ():
            if isinstance(node, nodes.TaskNode) or not index.isdigit():
                raise KeyError(path)
            try:
                node = node.children[int(index)]
            except IndexError:
                raise KeyError(path) from None
        return node

    def __len__(self) -> int:
        """The number of steps."""
        return sum(1 for _ in self.steps())

    def render(self) -> str:
        """The tree as indented text, one node per line with its path."""
        return render.as_text(self.root)

    def to_mermaid(self) -> str:
        """The process as a Mermaid flowchart, for docs and pull requests."""
        return render.as_mermaid(self.root)

    def to_dot(self) -> str:
        """The process as a Graphviz DOT digraph."""
        return render.as_dot(self.root)

    def enqueue(self, backend: Backend[RunT]) -> RunT:
        """Start this process on ``backend`` and return the backend's run handle."""
        return backend.enqueue(self)
