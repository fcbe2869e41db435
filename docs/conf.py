"""Sphinx configuration for the Tasktronaut documentation."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # autodoc and literalinclude read the source tree

project = "Tasktronaut"
author = "Tasktronaut maintainers"
copyright = "Tasktronaut maintainers"
try:
    release = version("tasktronaut")
except PackageNotFoundError:
    release = "dev"
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "sphinxcontrib.mermaid",
]

exclude_patterns = [
    "_build",
    "requirements.txt",
    "benchmarks-results.rst",
]  # included by benchmarks.rst
templates_path: list[str] = []

# No intersphinx: the build must not need the network.
nitpicky = False

autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_default_options = {"show-inheritance": True}
autodoc_preserve_defaults = True

html_theme = "furo"
html_title = f"Tasktronaut {release}"
pygments_style = "friendly"
pygments_dark_style = "monokai"

# Mermaid diagrams are rendered by the browser (mermaid.js), not at build time.
mermaid_output_format = "raw"

# Builder and Run are handed to you, never constructed by you: hide their
# internal constructor arguments.
_HANDED_OUT = {"tasktronaut.Builder", "tasktronaut_celery.Run"}


def _hide_internal_constructor(
    app: object,
    what: str,
    name: str,
    obj: object,
    options: object,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str, str | None] | None:
    if what != "class" or name not in _HANDED_OUT:
        return None
    env = app.env  # type: ignore[attr-defined]
    document = getattr(env, "current_document", None)  # Sphinx >= 8.2
    annotations = getattr(document, "autodoc_annotations", None)
    if annotations is None:
        annotations = env.temp_data.get("annotations", {})
    annotations.pop(name, None)
    return "", return_annotation


def setup(app: object) -> None:
    """Connect the hook above."""
    app.connect("autodoc-process-signature", _hide_internal_constructor)  # type: ignore[attr-defined]
