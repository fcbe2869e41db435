"""``__all__`` of each package lists exactly its public names, sorted."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import tasktronaut
import tasktronaut_celery
import tasktronaut_celery.testing

packages = pytest.mark.parametrize(
    "package",
    [tasktronaut, tasktronaut_celery, tasktronaut_celery.testing],
    ids=lambda package: package.__name__,
)


@packages
def test_all_is_sorted(package: ModuleType) -> None:
    """``__all__`` is kept in sorted order."""
    assert package.__all__ == sorted(package.__all__)


@packages
def test_all_has_no_duplicates(package: ModuleType) -> None:
    """Every name appears once in ``__all__``."""
    assert len(set(package.__all__)) == len(package.__all__)


@packages
def test_every_name_in_all_is_importable(package: ModuleType) -> None:
    """``from <package> import <name>`` works for each name in ``__all__``."""
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import {', '.join(package.__all__)}", namespace)

    assert all(namespace[name] is getattr(package, name) for name in package.__all__)


@packages
def test_every_public_attribute_is_in_all(package: ModuleType) -> None:
    """No public, non-module attribute of the package is left out of ``__all__``.

    ``pytest_plugins`` is pytest's, not the package's: it loads the fixtures.
    """
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "pytest_plugins"
    }

    assert public == set(package.__all__)
