"""``tasktronaut.__all__`` lists exactly the public names of the package, sorted."""

from __future__ import annotations

import inspect

import tasktronaut


def test_all_is_sorted() -> None:
    """``__all__`` is kept in sorted order."""
    assert tasktronaut.__all__ == sorted(tasktronaut.__all__)


def test_all_has_no_duplicates() -> None:
    """Every name appears once in ``__all__``."""
    assert len(set(tasktronaut.__all__)) == len(tasktronaut.__all__)


def test_every_name_in_all_is_importable() -> None:
    """``from tasktronaut import <name>`` works for each name in ``__all__``."""
    namespace: dict[str, object] = {}
    exec(f"from tasktronaut import {', '.join(tasktronaut.__all__)}", namespace)

    assert all(namespace[name] is getattr(tasktronaut, name) for name in tasktronaut.__all__)


def test_every_public_attribute_is_in_all() -> None:
    """No public, non-module attribute of the package is left out of ``__all__``."""
    public = {
        name
        for name, value in vars(tasktronaut).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }

    assert public == set(tasktronaut.__all__)
