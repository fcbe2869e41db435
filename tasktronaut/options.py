"""Per-step execution options: retries, routing and time limits.

They are plain data in the core. A backend maps them onto its own mechanism
(Celery: ``Task.retry`` and ``apply_async`` options). Options set closer to a step
win: the definition's ``task_options``, then ``@task(...)``, then ``builder.task(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict

from .errors import InvalidTaskOptionsError


class TaskOptionsKwargs(TypedDict, total=False):
    """The keyword form of :class:`TaskOptions`, accepted by ``@task`` and ``builder.task``."""

    max_retries: int
    default_retry_delay: float
    retry_backoff: bool | float
    retry_backoff_max: float
    retry_jitter: bool
    queue: str
    priority: int
    time_limit: float
    soft_time_limit: float


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """How a step is scheduled and retried; ``None`` means "not set here".

    Like Celery, a step is not retried unless ``max_retries`` is set.
    ``retry_backoff`` is ``True`` (exponential from 1 s) or a number of seconds
    to start from; ``default_retry_delay`` is the delay when there is no backoff.
    """

    max_retries: int | None = None
    default_retry_delay: float | None = None
    retry_backoff: bool | float | None = None
    retry_backoff_max: float | None = None
    retry_jitter: bool | None = None
    queue: str | None = None
    priority: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_retries", "priority"):
            _check_number(name, getattr(self, name), integral=True)
        for name in ("default_retry_delay", "retry_backoff_max", "time_limit", "soft_time_limit"):
            _check_number(name, getattr(self, name), integral=False)
        if self.retry_backoff is not None and not isinstance(self.retry_backoff, bool):
            _check_number("retry_backoff", self.retry_backoff, integral=False)
        if self.retry_jitter is not None and not isinstance(self.retry_jitter, bool):
            raise InvalidTaskOptionsError(
                f"retry_jitter must be True or False, not {self.retry_jitter!r}"
            )
        if self.queue is not None and (not isinstance(self.queue, str) or not self.queue):
            raise InvalidTaskOptionsError(f"queue must be a non-empty string, not {self.queue!r}")
        if isinstance(self.priority, int) and self.priority > 255:
            raise InvalidTaskOptionsError(
                f"priority must be between 0 and 255, not {self.priority}"
            )

    @classmethod
    def from_kwargs(cls, owner: str, options: dict[str, Any]) -> TaskOptions:
        """Build options from keyword arguments, naming ``owner`` if a name is unknown."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidTaskOptionsError(
                f"{owner}: unknown task option(s) {', '.join(unknown)}; "
                f"known options are {', '.join(sorted(known))}"
            )
        try:
            return cls(**options)
        except InvalidTaskOptionsError as error:
            raise InvalidTaskOptionsError(f"{owner}: {error}") from None

    def overridden_by(self, other: TaskOptions) -> TaskOptions:
        """These options with every option that ``other`` sets taking its value."""
        changes = {f.name: getattr(other, f.name) for f in fields(other)}
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        """The options that are set, by name."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


def _check_number(name: str, value: object, *, integral: bool) -> None:
    if value is None:
        return
    kinds: tuple[type[int] | type[float], ...] = (int,) if integral else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
        what = "a whole number" if integral else "a number"
        raise InvalidTaskOptionsError(f"{name} must be {what} >= 0, not {value!r}")
