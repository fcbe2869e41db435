"""The process definitions known to this Python process, and their step methods.

Every ``ProcessDefinition`` subclass registers itself when its class statement
runs, under the reference ``"module:QualName"``. A worker looks definitions up
here and nowhere else: an unknown reference is an error, never an import, so a
message cannot make a worker load code.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from .errors import UnknownDefinitionError

if TYPE_CHECKING:
    from .definition import ProcessDefinition

_definitions: dict[str, type[ProcessDefinition]] = {}
_references: weakref.WeakKeyDictionary[type[ProcessDefinition], str] = weakref.WeakKeyDictionary()


def reference_of(definition: type[ProcessDefinition]) -> str:
    """The reference a definition is registered under: ``"module:QualName"``.

    It is the name the class had when it was created, even if it was renamed
    since, so a plan names definitions the way workers know them.
    """
    return _references.get(definition) or f"{definition.__module__}:{definition.__qualname__}"


def register(definition: type[ProcessDefinition]) -> None:
    """Make ``definition`` resolvable; a class redefined under the same name replaces it."""
    reference = f"{definition.__module__}:{definition.__qualname__}"
    _references[definition] = reference
    _definitions[reference] = definition


def resolve_definition(reference: str) -> type[ProcessDefinition]:
    """The definition registered under ``reference``."""
    try:
        return _definitions[reference]
    except (KeyError, TypeError):
        raise UnknownDefinitionError(
            f"process definition {reference!r} is not registered in this process; "
            "import the module that defines it where the worker starts "
            "(e.g. from the Celery app module or a module it autodiscovers)"
        ) from None
