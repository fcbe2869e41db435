"""``Process``: the frozen result of building a definition, ready to inspect or run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from . import nodes, render, svg
from .concurrency import ConcurrencyLimit
from .sensitive import Redactor, sensitive_arguments_of

if TYPE_CHECKING:
    from .backend import Backend
    from .definition import ProcessDefinition

RunT = TypeVar("RunT")
NodeT = TypeVar("NodeT", bound=nodes.Node)


@dataclass(frozen=True, slots=True)
class Process:
    """A built process: its run identifier, the options it was built with and its tree.

    ``concurrency`` is the limit its runs execute under, if its definition
    declares one (:attr:`ProcessDefinition.concurrency_limit
    <tasktronaut.ProcessDefinition.concurrency_limit>`). Two builds of the
    same definition with the same arguments and options compare equal except
    for their identifiers.
    """

    identifier: str
    root: nodes.ProcessNode
    options: Mapping[str, Any]
    concurrency: ConcurrencyLimit | None = None

    @property
    def definition(self) -> type[ProcessDefinition]:
        """The definition this process was built from."""
        return self.root.definition

    @property
    def sensitive_arguments(self) -> frozenset[str]:
        """The argument names marked sensitive by any definition of the process's tree."""
        return frozenset().union(
            *(
                sensitive_arguments_of(node.definition)
                for node in self.walk()
                if isinstance(node, nodes.ProcessNode)
            )
        )

    def _shown_root(self) -> nodes.ProcessNode:
        """The tree as pictures show it: sensitive values hidden in its descriptions."""
        scopes = {
            id(node.arguments): node.arguments
            for node in self.walk()
            if not isinstance(node, nodes.BlockNode)
        }
        redactor = Redactor.of(self.sensitive_arguments, scopes.values())
        return _hide_descriptions(self.root, redactor) if redactor.texts else self.root

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
        """The tree as indented text, one node per line with its path; secrets hidden."""
        return render.as_text(self._shown_root())

    def to_mermaid(self, states: Mapping[str, str] | None = None) -> str:
        """The process as a Mermaid flowchart, for docs and pull requests; secrets hidden.

        ``states`` (step path to a state name such as ``"SUCCESS"``) colours
        the steps, as in a picture of a run.
        """
        return render.as_mermaid(self._shown_root(), states)

    def to_svg(self, states: Mapping[str, str] | None = None) -> str:
        """The process as an SVG picture (a layered drawing, no script); ``states`` as for Mermaid."""
        return svg.as_svg(self._shown_root(), states)

    def to_dot(self, states: Mapping[str, str] | None = None) -> str:
        """The process as a Graphviz DOT digraph; secrets hidden; ``states`` as for Mermaid."""
        return render.as_dot(self._shown_root(), states)

    def enqueue(self, backend: Backend[RunT]) -> RunT:
        """Start this process on ``backend`` and return the backend's run handle."""
        return backend.enqueue(self)


def _hide_descriptions(node: NodeT, redactor: Redactor) -> NodeT:
    description = None if node.description is None else redactor.text(node.description)
    if isinstance(node, nodes.TaskNode):
        return replace(node, description=description)
    children = tuple(_hide_descriptions(child, redactor) for child in node.children)
    return replace(node, description=description, children=children)
