"""Running one step on a worker: arguments, Context, around_task, outcomes and hooks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tasktronaut import (
    Builder,
    CancelProcessError,
    Context,
    NonRetryableProcessError,
    ProcessDefinition,
    TasktronautError,
    UnknownDefinitionError,
)
from tasktronaut.definition import resolve_step
from tasktronaut.registry import reference_of, resolve_definition
from tasktronaut.runtime import Outcome, StepCall, call_hook, run_step

events: list[tuple[Any, ...]] = []


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    events.clear()
    yield
    events.clear()


class _Worker(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.named)

    def named(self, name: str, count: int = 1) -> None:
        events.append(("named", name, count))

    def everything(self, **kwargs: Any) -> None:
        events.append(("everything", kwargs))

    def with_context(self, name: str, context: Context) -> None:
        events.append(("with_context", name, context))

    def fails(self) -> None:
        raise OSError("disk full")

    def gives_up(self) -> None:
        raise NonRetryableProcessError("bad input")

    def cancels(self) -> None:
        raise CancelProcessError("stop everything")

    def on_started(self, identifier: str) -> None:
        events.append(("on_started", identifier))

    def on_completed(self, identifier: str) -> None:
        raise RuntimeError("completion hook broke")

    def on_failed(self, identifier: str, step: str, e: Exception) -> None:
        events.append(("on_failed", identifier, step, e))
        raise RuntimeError("failure hook broke")

    def on_cancelled(self, identifier: str) -> None:
        events.append(("on_cancelled", identifier))
        raise RuntimeError("cancel hook broke")

    _private_helper = named


class _Wrapped(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.work)

    @contextmanager
    def around_task(
        self, identifier: str, step: str, description: str | None, context: Context
    ) -> Iterator[None]:
        events.append(("enter", identifier, step, description, context.path))
        try:
            yield
        finally:
            events.append(("exit", step))

    def work(self, fail: bool = False) -> None:
        events.append(("work",))
        if fail:
            raise ValueError("work failed")


class _BrokenWrapper(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.work)

    @contextmanager
    def around_task(
        self, identifier: str, step: str, description: str | None, context: Context
    ) -> Iterator[None]:
        raise PermissionError("no lock")
        yield  # pragma: no cover

    def work(self) -> None:
        events.append(("work",))


def call(
    method: str,
    arguments: dict[str, Any] | None = None,
    definition: type[ProcessDefinition] = _Worker,
    attempt: int = 1,
) -> StepCall:
    """A StepCall for ``definition.method`` in run ``run-1`` at path ``2.1``."""
    return StepCall(
        process_id="run-1",
        definition=definition,
        method=method,
        path="2.1",
        description="A step",
        arguments=arguments or {},
        attempt=attempt,
    )


def test_run_step_passes_only_the_arguments_the_method_accepts() -> None:
    """Arguments the signature does not name are left out; defaults are kept."""
    result = run_step(call("named", {"name": "ada", "unrelated": 1}))

    assert result.outcome is Outcome.SUCCEEDED
    assert result.error is None
    assert events == [("named", "ada", 1)]


def test_run_step_passes_every_argument_to_a_method_taking_kwargs() -> None:
    """A ``**kwargs`` method receives every argument in scope."""
    run_step(call("everything", {"name": "ada", "count": 2}))

    assert events == [("everything", {"name": "ada", "count": 2})]


def test_run_step_gives_a_context_to_a_method_with_a_context_parameter() -> None:
    """The Context names the run, the step, its description, arguments, attempt and path."""
    result = run_step(call("with_context", {"name": "ada", "other": 3}, attempt=2))

    assert result.outcome is Outcome.SUCCEEDED
    ((_, name, context),) = events
    assert name == "ada"
    assert isinstance(context, Context)
    assert context.process_id == "run-1"
    assert context.step == "with_context"
    assert context.description == "A step"
    assert dict(context.kwargs) == {"name": "ada", "other": 3}
    assert context.attempt == 2
    assert context.path == "2.1"
    assert type(context.definition) is _Worker


def test_context_kwargs_are_read_only() -> None:
    """A step cannot change the arguments through its Context."""
    run_step(call("with_context", {"name": "ada"}))
    context = events[0][2]

    with pytest.raises(TypeError):
        context.kwargs["name"] = "eve"


def test_run_step_runs_the_step_inside_around_task() -> None:
    """around_task is entered before the step and left after it, with the step's details."""
    result = run_step(call("work", definition=_Wrapped))

    assert result.outcome is Outcome.SUCCEEDED
    assert events == [("enter", "run-1", "work", "A step", "2.1"), ("work",), ("exit", "work")]


def test_around_task_is_left_when_the_step_raises() -> None:
    """A failing step still leaves around_task, and the error is the step's."""
    result = run_step(call("work", {"fail": True}, definition=_Wrapped))

    assert result.outcome is Outcome.RETRYABLE
    assert isinstance(result.error, ValueError)
    assert events == [("enter", "run-1", "work", "A step", "2.1"), ("work",), ("exit", "work")]


def test_an_error_in_around_task_fails_the_step_without_running_it() -> None:
    """If around_task raises, the step does not run and the attempt counts as failed."""
    result = run_step(call("work", definition=_BrokenWrapper))

    assert result.outcome is Outcome.RETRYABLE
    assert isinstance(result.error, PermissionError)
    assert events == []


@pytest.mark.parametrize(
    ("method", "outcome", "error_type"),
    [
        ("named", Outcome.SUCCEEDED, type(None)),
        ("fails", Outcome.RETRYABLE, OSError),
        ("gives_up", Outcome.FAILED, NonRetryableProcessError),
        ("cancels", Outcome.CANCELLED, CancelProcessError),
    ],
)
def test_run_step_classifies_how_the_attempt_ended(
    method: str, outcome: Outcome, error_type: type[BaseException]
) -> None:
    """Success, an ordinary error, NonRetryableProcessError and CancelProcessError differ."""
    result = run_step(call(method, {"name": "ada"}))

    assert result.outcome is outcome
    assert type(result.error) is error_type


@pytest.mark.parametrize(
    ("method", "problem"),
    [
        ("missing", "_Worker has no instance method 'missing'"),
        ("_private_helper", "'_private_helper' is private"),
        ("__init__", "'__init__' is private"),
        ("on_started", "'on_started' belongs to ProcessDefinition itself"),
        ("define_process", "'define_process' belongs to ProcessDefinition itself"),
        ("build", "'build' belongs to ProcessDefinition itself"),
        ("named.__globals__", "'named.__globals__' is not a method name"),
    ],
)
def test_resolve_step_refuses_anything_but_a_public_step_method(method: str, problem: str) -> None:
    """Unknown, private, dunder and ProcessDefinition's own names are UnknownDefinitionError."""
    with pytest.raises(UnknownDefinitionError) as raised:
        resolve_step(_Worker, method)

    assert isinstance(raised.value, LookupError)
    assert isinstance(raised.value, TasktronautError)
    assert str(raised.value).startswith(f"{reference_of(_Worker)}: {problem}")


def test_resolve_step_returns_the_method_function() -> None:
    """A public method of the definition resolves to its function."""
    assert resolve_step(_Worker, "named") is _Worker.named


def test_resolve_definition_finds_a_defined_class_by_module_and_qualname() -> None:
    """Every definition registers itself as ``module:QualName`` when its class runs."""
    assert reference_of(_Worker) == f"{__name__}:_Worker"
    assert resolve_definition(f"{__name__}:_Worker") is _Worker


@pytest.mark.parametrize(
    "reference",
    [
        f"{__name__}:_Nowhere",
        "tasktronaut.definition:ProcessDefinition",
        "os:system",
        f"{__name__}:_Worker.__init__",
        "",
        None,
        ["unhashable"],
    ],
)
def test_resolve_definition_refuses_unregistered_references(reference: Any) -> None:
    """A reference that no class statement registered is never imported, only refused."""
    with pytest.raises(UnknownDefinitionError, match="is not registered in this process"):
        resolve_definition(reference)


def test_call_hook_calls_the_hook_on_a_fresh_instance() -> None:
    """on_started receives the run identifier."""
    call_hook(_Worker, "on_started", "run-1")

    assert events == [("on_started", "run-1")]


def test_call_hook_lets_errors_from_on_completed_propagate() -> None:
    """on_completed errors are the run's to handle, not swallowed."""
    with pytest.raises(RuntimeError, match="completion hook broke"):
        call_hook(_Worker, "on_completed", "run-1")


def test_call_hook_logs_and_swallows_errors_from_on_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error in on_failed is logged with its traceback, not raised."""
    error = OSError("disk full")

    with caplog.at_level(logging.ERROR, logger="tasktronaut"):
        call_hook(_Worker, "on_failed", "run-1", "fails", error)

    assert events == [("on_failed", "run-1", "fails", error)]
    (record,) = caplog.records
    assert record.getMessage() == "_Worker.on_failed raised"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "failure hook broke"


def test_call_hook_logs_and_swallows_errors_from_on_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error in on_cancelled is logged with its traceback, not raised."""
    with caplog.at_level(logging.ERROR, logger="tasktronaut"):
        call_hook(_Worker, "on_cancelled", "run-1")

    assert events == [("on_cancelled", "run-1")]
    (record,) = caplog.records
    assert record.getMessage() == "_Worker.on_cancelled raised"
    assert str(record.exc_info[1]) == "cancel hook broke"  # type: ignore[index]


def test_default_hooks_log_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    """ProcessDefinition's own hooks only log."""
    with caplog.at_level(logging.INFO, logger="tasktronaut"):
        call_hook(_Wrapped, "on_started", "run-9")
        call_hook(_Wrapped, "on_completed", "run-9")
        call_hook(_Wrapped, "on_failed", "run-9", "work", ValueError("x"))
        call_hook(_Wrapped, "on_cancelled", "run-9")

    assert [record.getMessage() for record in caplog.records] == [
        "_Wrapped started [run-9].",
        "_Wrapped completed [run-9].",
        "_Wrapped failed executing work [run-9]: ValueError('x')",
        "_Wrapped cancelled [run-9].",
    ]


def test_a_definition_renamed_after_creation_keeps_the_reference_workers_know() -> None:
    """Plans name a definition by the name it was registered under, not a later rename."""
    from tasktronaut.registry import reference_of, resolve_definition

    def make() -> type[ProcessDefinition]:
        class Renamed(ProcessDefinition):
            def define_process(self, builder: Builder) -> None:
                pass

        return Renamed

    definition = make()
    registered = reference_of(definition)
    definition.__qualname__ = "SomethingElse"

    assert reference_of(definition) == registered
    assert resolve_definition(registered) is definition
