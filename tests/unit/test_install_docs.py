"""The install commands in the docs and READMEs install this project, not PyPI's tasktronaut.

PyPI's ``tasktronaut`` is the unrelated RQ-based 0.3, which pip picks over a
``.dev`` release with only a warning: every ``pip install`` the docs show must
name a checkout (a path to the repository root, from where the page says to
run it), with extras that exist.
"""

from __future__ import annotations

import re
import shlex
from importlib.metadata import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.rst"), *(ROOT / "examples").rglob("README.md")]
)
OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url"}
COMMAND_ENDS = {"&&", "||", ";", "|"}


def install_targets(text: str) -> list[str]:
    """What each ``pip install`` command in ``text`` installs: requirements and paths."""
    targets: list[str] = []
    for command in re.findall(r"pip install ([^`\n]*)", text):
        skip = False
        for token in shlex.split(command, comments=True):
            if token in COMMAND_ENDS:
                break
            if skip or token.startswith("-"):
                skip = token in OPTIONS_WITH_VALUE
                continue
            targets.append(token)
    return targets


def split_extras(target: str) -> tuple[str, set[str]]:
    """``"../..[redis,django]"`` as ``("../..", {"redis", "django"})``."""
    match = re.fullmatch(r"(.*?)(?:\[([^\]]*)\])?", target)
    assert match is not None
    return match[1], {extra.strip() for extra in (match[2] or "").split(",") if extra.strip()}


def is_path(target: str) -> bool:
    """Whether pip reads ``target`` as a local path rather than a name from the index."""
    return target.startswith((".", "/", "~")) or "/" in split_extras(target)[0]


def distribution(target: str) -> str:
    """The normalized name of the distribution a requirement such as ``Foo_Bar[x]>=1`` names."""
    match = re.match(r"[A-Za-z0-9._-]+", target)
    return re.sub(r"[-_.]+", "-", match[0]).lower() if match else target


def working_directory(page: Path) -> Path:
    """Where a page's commands run: an example's own directory, else the repository root."""
    return page.parent if page.parent.parent == ROOT / "examples" else ROOT


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_installs_tasktronaut_from_the_index(page: Path) -> None:
    """No command installs the name ``tasktronaut`` from the index (that is the RQ-based 0.3)."""
    from_index = [
        target
        for target in install_targets(page.read_text(encoding="utf-8"))
        if not is_path(target) and distribution(target) == "tasktronaut"
    ]

    assert from_index == []


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_installed_path_is_this_project_with_existing_extras(page: Path) -> None:
    """Each path given to ``pip install`` is the repository root, from where the page runs it."""
    extras = set(metadata("tasktronaut").get_all("Provides-Extra") or [])
    for target in filter(is_path, install_targets(page.read_text(encoding="utf-8"))):
        path, wanted = split_extras(target)
        assert (working_directory(page) / path).resolve() == ROOT, target
        assert wanted <= extras, target


def test_the_pages_show_install_commands() -> None:
    """The scan reads the pages that show how to install, so an empty scan cannot pass."""
    shown = {page.name for page in PAGES if install_targets(page.read_text(encoding="utf-8"))}

    assert {"README.md", "getting-started.rst"} <= shown
