"""Snapshots of a process's graph: its picture kept beside the tests, compared on each run.

A change to a definition that changes its tree (a step added, moved, made
concurrent) then shows in the test run as a diff of the Mermaid picture, and
in review as a change to the snapshot file.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tasktronaut import Process

from ..run import Run

Format = Literal["mermaid", "dot", "svg"]
_SUFFIXES: dict[Format, str] = {"mermaid": ".mmd", "dot": ".dot", "svg": ".svg"}
UPDATE_OPTION = "--tasktronaut-update-snapshots"


def picture(drawing: Process | Run, form: Format) -> str:
    """The picture of ``drawing`` in ``form``, ending with a newline."""
    text = {"mermaid": drawing.to_mermaid, "dot": drawing.to_dot, "svg": drawing.to_svg}[form]()
    return text if text.endswith("\n") else text + "\n"


@dataclass(frozen=True)
class GraphSnapshot:
    """Compares pictures with the files under ``directory`` named after the test.

    ``directory`` is ``snapshots/<test module>`` beside the test module;
    ``test_name`` is the test's name, after its class's if it has one.
    """

    directory: Path
    test_name: str
    update: bool

    def __call__(
        self, drawing: Process | Run, *, name: str | None = None, form: Format = "mermaid"
    ) -> None:
        """Check the picture of ``drawing`` against its snapshot; write it if new or updating.

        ``name`` tells apart several snapshots of one test (by default the
        test's name). Fails with a diff when the picture changed, and when
        there is no snapshot yet; pytest ``--tasktronaut-update-snapshots``
        writes them.
        """
        stem = re.sub(r"[^\w.-]+", "_", name or self.test_name)
        path = self.directory / f"{stem}{_SUFFIXES[form]}"
        actual = picture(drawing, form)
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        if not path.exists():
            raise AssertionError(
                f"no snapshot {path} yet: pytest {UPDATE_OPTION} writes it (then commit it)"
            )
        expected = path.read_text(encoding="utf-8")
        if expected != actual:
            diff = difflib.unified_diff(
                expected.splitlines(), actual.splitlines(), str(path), "now", lineterm=""
            )
            raise AssertionError(
                f"the graph differs from its snapshot {path} (pytest {UPDATE_OPTION} "
                "accepts it):\n" + "\n".join(diff)
            )
