"""What the steps of a test's runs received, and the faults a test injects into them.

:class:`StepHarness` stands between the runner and each step in this process
(the embedded backend's worker threads, or any in-process worker): it records
every attempt as a :class:`StepCall`, and makes the attempts a fault names
raise, classified exactly as if the step's own code had raised. Retries go
out at once, so a test never waits out a retry delay.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from tasktronaut import CancelProcessError
from tasktronaut.runtime import StepCall as RunnerCall
from tasktronaut.runtime import StepResult, failed_with

_RUNNER_STEP = "tasktronaut_celery.runner.run_step"
"""Where the runner finds the function that runs a step: the harness goes there."""
_RUNNER_COUNTDOWN = "tasktronaut_celery.runner.retry_countdown"
"""Where the runner finds how long a retry waits: no time, in tests."""

StepRef = Callable[..., Any] | str
"""A step: its method (``Shipment.charge``) or its name (``"Shipment.charge"``)."""


def step_name(step: StepRef) -> str:
    """``Definition.method`` for a method of a definition, or the name given."""
    if isinstance(step, str):
        return step
    qualified: str = getattr(step, "__qualname__", "")
    if "." not in qualified:
        raise TypeError(f"{step!r} is not a method of a ProcessDefinition (Definition.method)")
    return qualified


@dataclass(frozen=True)
class StepCall:
    """One attempt of a step, as the step received it."""

    run_id: str
    step: str
    """``Definition.method``."""
    path: str
    description: str | None
    arguments: dict[str, Any]
    """Every argument in scope for the step (the Context's ``kwargs``), unmasked."""
    attempt: int


@dataclass
class _Fault:
    step: str
    error: Callable[[], Exception]
    times: int | None  # attempts left to fail; None: every attempt
    path: str | None

    def fires(self, call: RunnerCall) -> bool:
        if f"{call.definition.__qualname__}.{call.method}" != self.step:
            return False
        if self.path is not None and call.path != self.path:
            return False
        if self.times is None:
            return True
        if self.times == 0:
            return False
        self.times -= 1
        return True


@dataclass
class StepHarness:
    """The steps run during one test: their calls, and the faults injected into them."""

    _calls: list[StepCall] = field(default_factory=list)
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self,
        step: StepRef,
        times: int | None = 1,
        error: Exception | type[Exception] | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Make the next ``times`` attempts of ``step`` raise ``error``, then run it as written.

        ``times=None`` fails every attempt. ``error`` is an exception (raised
        each time) or its class (made anew each time); by default a
        ``RuntimeError`` naming the step, which Tasktronaut retries as its
        ``max_retries`` allow. ``path`` limits the fault to one step of the
        tree (one member of an ``each``).
        """
        name = step_name(step)
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for every attempt), not {times}")
        if error is None:
            self._add(name, lambda: RuntimeError(f"injected failure of {name}"), times, path)
        elif isinstance(error, type):
            self._add(name, error, times, path)
        else:
            self._add(name, lambda: error, times, path)

    def cancel(self, step: StepRef, *, path: str | None = None) -> None:
        """Make the next attempt of ``step`` cancel its run (``CancelProcessError``)."""
        name = step_name(step)
        self._add(name, lambda: CancelProcessError(f"{name} cancelled the run"), 1, path)

    def _add(
        self, name: str, error: Callable[[], Exception], times: int | None, path: str | None
    ) -> None:
        with self._lock:
            self._faults.append(_Fault(name, error, times, path))

    def calls(self, step: StepRef | None = None, *, run_id: str | None = None) -> list[StepCall]:
        """Every attempt made, in the order they began; of ``step`` or ``run_id`` only if given."""
        name = None if step is None else step_name(step)
        with self._lock:
            return [
                call
                for call in self._calls
                if (name is None or call.step == name)
                and (run_id is None or call.run_id == run_id)
            ]

    def run(self, call: RunnerCall, run_step: Callable[[RunnerCall], StepResult]) -> StepResult:
        """Record the attempt ``call``, then fail it as a fault says or run it with ``run_step``."""
        name = f"{call.definition.__qualname__}.{call.method}"
        with self._lock:
            self._calls.append(
                StepCall(
                    call.process_id,
                    name,
                    call.path,
                    call.description,
                    dict(call.arguments),
                    call.attempt,
                )
            )
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
