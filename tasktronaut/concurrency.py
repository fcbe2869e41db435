"""Single flight: how many runs of one key a backend lets execute at once.

A definition declares it (:attr:`ProcessDefinition.concurrency_limit
<tasktronaut.ProcessDefinition.concurrency_limit>` and its companions); each
build of a definition that has a limit carries a :class:`ConcurrencyLimit`,
with the key its ``concurrency_key`` gave for the build's arguments. Keeping
to it is the backend's job: the core only checks the declaration when the
class is defined and the key when the process is built.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import BuildError, DefinitionError

if TYPE_CHECKING:
    from .definition import ProcessDefinition

KEY_LENGTH = 200
"""The longest concurrency key: stores keep it in an indexed column."""


class ConcurrencyPolicy(str, enum.Enum):
    """What happens to a run enqueued while its key has no free slot."""

    QUEUE = "queue"
    """It waits PENDING and starts when a slot frees, in order of enqueue."""
    REJECT = "reject"
    """Enqueueing it raises an error naming the runs that hold the slots."""
    SKIP = "skip"
    """It is dropped and logged (for schedules: the tick is skipped)."""


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most ``limit`` runs of ``key`` execute at once; ``policy`` says what a run beyond does.

    ``expires`` is how long a run may hold its slot: a run that vanished
    (its messages lost with a broker) gives it up then, and so would a run
    that runs longer.
    """

    key: str
    limit: int
    policy: ConcurrencyPolicy
    expires: timedelta


def check_declaration(definition: type[ProcessDefinition]) -> None:
    """Refuse a definition class whose single-flight attributes cannot be kept."""
    name = definition.__qualname__
    limit = definition.concurrency_limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DefinitionError(
            f"{name}.concurrency_limit must be a whole number of at least 1 (or None for "
            f"no limit), not {limit!r}"
        )
    try:
        ConcurrencyPolicy(definition.concurrency_policy)
    except ValueError:
        choices = ", ".join(repr(policy.value) for policy in ConcurrencyPolicy)
        raise DefinitionError(
            f"{name}.concurrency_policy must be one of {choices}, "
            f"not {definition.concurrency_policy!r}"
        ) from None
    expires = definition.concurrency_expires
    if not isinstance(expires, timedelta) or expires <= timedelta(0):
        raise DefinitionError(
            f"{name}.concurrency_expires must be a positive timedelta, not {expires!r}"
        )


def limit_of(
    definition: type[ProcessDefinition], arguments: dict[str, Any]
) -> ConcurrencyLimit | None:
    """The limit a process of ``definition`` built with ``arguments`` runs under, if any.

    The key is checked here, at build time: a key that is not a non-empty
    string of at most :data:`KEY_LENGTH` characters names the process.
    """
    limit = definition.concurrency_limit
    if limit is None:
        return None
    key = definition().concurrency_key(**arguments)
    if not isinstance(key, str) or not 0 < len(key) <= KEY_LENGTH:
        raise BuildError(
            f"{definition.__qualname__}.concurrency_key() must return a string of "
            f"1-{KEY_LENGTH} characters, not {key!r}"
        )
    return ConcurrencyLimit(
        key,
        limit,
        ConcurrencyPolicy(definition.concurrency_policy),
        definition.concurrency_expires,
    )
