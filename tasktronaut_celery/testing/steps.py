"""What the steps of a test's runs received, and the faults a test injects into them.

:class:`StepHarness` stands between the runner and each step in this process
(the embedded backend's worker threads, or any in-process worker): it records
every attempt as a :class:`StepAttempt`, and makes the attempts a fault names
raise, classified exactly as if the step's own code had raised. Retries go
out at once, so a test never waits out a retry delay.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tasktronaut import CancelProcessError, ProcessDefinition
from tasktronaut.runtime import StepCall, StepResult, failed_with

_RUNNER_STEP = "tasktronaut_celery.runner.run_step"
"""Where the runner finds the function that runs a step: the harness goes there."""
_RUNNER_COUNTDOWN = "tasktronaut_celery.runner.retry_countdown"
"""Where the runner finds how long a retry waits: no time, in tests."""

StepRef = Callable[..., Any] | str
"""A step: its method (``Shipment.charge``) or its name (``"Shipment.charge"``)."""


@dataclass(frozen=True)
class StepAttempt:
    """One attempt of a step, as the step received it (what its Context held)."""

    run_id: str
    step: str
    """``Definition.method``, the definition being the run's (a subclass's, if inherited)."""
    path: str
    description: str | None
    arguments: dict[str, Any]
    """Every argument in scope for the step (the Context's ``kwargs``), unmasked."""
    attempt: int


@dataclass(frozen=True)
class _Step:
    """Which steps a reference matches: a method matches it on its class and subclasses."""

    name: str
    owner: type[ProcessDefinition] | None
    method: str

    def matches(self, call: StepCall) -> bool:
        if self.owner is not None:
            return call.method == self.method and issubclass(call.definition, self.owner)
        return call.name == self.name


def _step(step: StepRef) -> _Step:
    """The steps ``step`` names, its owner class found from the method's qualified name."""
    if isinstance(step, str):
        return _Step(step, None, step.rpartition(".")[2])
    qualified: str = getattr(step, "__qualname__", "")
    owner_name, _, method = qualified.rpartition(".")
    owner: Any = sys.modules.get(getattr(step, "__module__", ""), None)
    for part in owner_name.split(".") if owner_name else ():
        owner = getattr(owner, part, None)
    if not (isinstance(owner, type) and issubclass(owner, ProcessDefinition)):
        raise TypeError(
            f"{step!r} is not a method of a ProcessDefinition: give Definition.method, "
            'or its name as a string ("Definition.method")'
        )
    return _Step(qualified, owner, method)


def _made(error: Exception | type[Exception]) -> Callable[[], Exception]:
    """A maker of the exception a fault raises, new for each attempt; checked now."""
    if isinstance(error, type):
        try:
            error()
        except Exception as reason:
            raise ValueError(
                f"cannot make {error.__qualname__}() with no arguments ({reason}): "
                "give an instance, e.g. error=ApiError(503)"
            ) from None
        return error
    return lambda: copy.copy(error)


@dataclass
class _Fault:
    step: _Step
    error: Callable[[], Exception]
    times: int | None  # attempts left to fail; None: every attempt
    path: str | None
    fired: int = 0

    def fires(self, call: StepCall) -> bool:
        if not self.step.matches(call) or (self.path is not None and call.path != self.path):
            return False
        if self.times is not None:
            if self.times == 0:
                return False
            self.times -= 1
        self.fired += 1
        return True


class StepHarness:
    """The steps run during one test: their attempts, and the faults injected into them.

    Attempts of runs in ``ignored`` (those of earlier tests, still finishing)
    are neither recorded nor faulted.
    """

    def __init__(self, ignored: Collection[str] = ()) -> None:
        self._ignored = ignored
        self._recorded: list[tuple[StepAttempt, StepCall]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<StepHarness: {len(self._recorded)} attempts, {len(self._faults)} faults>"

    def fail(
        self,
        step: StepRef,
        times: int | None = 1,
        error: Exception | type[Exception] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Make the next ``times`` attempts of ``step`` raise ``error``, then run it as written.

        ``times=None`` fails every attempt. ``error`` is an exception (a copy
        raised each time) or a class made with no arguments; by default a
        ``RuntimeError`` naming the step, which Tasktronaut retries as its
        ``max_retries`` allow. ``path`` limits the fault to one step of the
        tree (one member of an ``each``). A method given matches the step in
        runs of its class and of its subclasses.
        """
        matched = _step(step)
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for every attempt), not {times}")
        if error is None:
            made = _made(RuntimeError(f"injected failure of {matched.name}"))
        else:
            made = _made(error)
        self._add(_Fault(matched, made, times, path))

    def cancel(self, step: StepRef, *, path: str | None = None) -> None:
        """Make the next attempt of ``step`` cancel its run (``CancelProcessError``)."""
        matched = _step(step)
        error = CancelProcessError(f"{matched.name} cancelled the run")
        self._add(_Fault(matched, _made(error), 1, path))

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def calls(
        self, step: StepRef | None = None, *, run_id: str | None = None
    ) -> list[StepAttempt]:
        """Every attempt made, in the order they began; of ``step`` or ``run_id`` only if given."""
        matched = None if step is None else _step(step)
        with self._lock:
            return [
                attempt
                for attempt, call in self._recorded
                if (matched is None or matched.matches(call))
                and (run_id is None or attempt.run_id == run_id)
            ]

    def unfired(self) -> list[str]:
        """The steps of faults that never fired: a misspelled name, or a step never run."""
        with self._lock:
            return [fault.step.name for fault in self._faults if fault.fired == 0]

    def run(self, call: StepCall, run_step: Callable[[StepCall], StepResult]) -> StepResult:
        """Record the attempt ``call``, then fail it as a fault says or run it with ``run_step``."""
        if call.process_id in self._ignored:
            return run_step(call)
        attempt = StepAttempt(
            call.process_id,
            call.name,
            call.path,
            call.description,
            dict(call.arguments),
            call.attempt,
        )
        with self._lock:
            self._recorded.append((attempt, call))
            fault = next((fault for fault in self._faults if fault.fires(call)), None)
        if fault is not None:
            return failed_with(fault.error())
        return run_step(call)


@contextmanager
def harnessing(harness: StepHarness) -> Iterator[StepHarness]:
    """Put ``harness`` between the runner and every step this process runs, while inside.

    Retries are sent at once meanwhile: a test does not wait out a step's
    ``default_retry_delay`` or backoff (its attempts are the same).
    """
    from tasktronaut.runtime import run_step

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_RUNNER_STEP, lambda call: harness.run(call, run_step))
        patch.setattr(_RUNNER_COUNTDOWN, lambda options, retries: 0.0)
        yield harness
