"""The ``Context`` a step receives when its method has a ``context`` parameter."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .definition import ProcessDefinition


@dataclass(frozen=True, slots=True)
class Context:
    """Where a step stands in its run.

    ``kwargs`` holds every argument in scope for the step (not only those its
    signature takes) and is read-only. ``attempt`` is 1 on the first try and
    grows with each retry. ``path`` is the step's position in the process tree,
    e.g. ``"2.1.0"``, the same on every run of the same process. Its ``repr``
    leaves out ``description``, which may quote a sensitive value, and masks
    the sensitive ``kwargs`` by name.
    """

    process_id: str
    step: str
    description: str | None = field(repr=False)  # may quote a sensitive value
    kwargs: Mapping[str, Any]
    attempt: int
    definition: ProcessDefinition
    path: str
