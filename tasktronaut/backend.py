"""What the core asks of an execution backend.

The core never imports one: ``Process.enqueue(backend)`` hands the frozen tree
to any object with an ``enqueue`` method, such as
``tasktronaut_celery.CeleryBackend``, and returns whatever run handle it gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from .process import Process

RunT_co = TypeVar("RunT_co", covariant=True)


class Backend(Protocol[RunT_co]):
    """Runs built processes; ``enqueue`` starts one and returns a handle on its run."""

    def enqueue(self, process: Process) -> RunT_co:
        """Start ``process`` and return a handle on the run."""
        ...
