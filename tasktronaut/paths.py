"""Paths: where a node sits in a process tree, as the indexes leading to it joined with dots.

The root process has the empty path; its second child is ``"1"``, and that
child's first child ``"1.0"``. A path is all a message, a stored plan or a run
record needs to name a step, block or sub-process, so every module that climbs
or descends the tree does it with these functions.
"""

from __future__ import annotations

from collections.abc import Iterator

ROOT = ""
"""The path of the top-level process."""


def child(parent: str, index: int) -> str:
    """The path of child ``index`` of the node at ``parent``."""
    return f"{parent}.{index}" if parent else str(index)


def parent(path: str) -> str:
    """The path of the node containing the one at ``path`` (the root for a top-level node)."""
    return path.rpartition(".")[0]


def ancestors(path: str) -> Iterator[str]:
    """The paths of the nodes containing ``path``, innermost first, the root last."""
    while path:
        path = parent(path)
        yield path


def depth(path: str) -> int:
    """How deep ``path`` lies: 0 for the root, 1 for its children, and so on."""
    return path.count(".") + 1 if path else 0


def within(path: str, ancestor: str) -> bool:
    """Whether the node at ``path`` lies inside the one at ``ancestor`` (every node is in the root)."""
    return not ancestor or path.startswith(f"{ancestor}.")
