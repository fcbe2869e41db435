"""The edges of building: async methods, reserved argument names, build()'s own keywords.

Each is refused when the class is defined or the process is built, with an
error naming the process and what is wrong, rather than misbehaving on a worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from examples.user_guide import ConditionalProcess, MyProcess
from tasktronaut import (
    Builder,
    Context,
    DefinitionError,
    InvalidArgumentsError,
    InvalidStepError,
    ProcessDefinition,
    TasktronautError,
)


class AsyncStep(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.fetch)

    async def fetch(self) -> None: ...


class AsyncEach(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.items):
            item.task(self.use)

    async def items(self) -> list[dict[str, int]]:
        return [{"n": 1}]

    def use(self, n: int) -> None: ...


class AsyncGeneratorEach(AsyncEach):
    async def items(self) -> AsyncIterator[dict[str, int]]:  # type: ignore[override]
        yield {"n": 1}


class AsyncTransform(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.transform(self.shape) as shaped:
            shaped.task(self.use)

    async def shape(self) -> dict[str, int]:
        return {"n": 1}

    def use(self, n: int) -> None: ...


@pytest.mark.parametrize(
    ("definition", "method"),
    [
        (AsyncStep, "fetch"),
        (AsyncEach, "items"),
        (AsyncGeneratorEach, "items"),
        (AsyncTransform, "shape"),
    ],
    ids=["task", "each", "each-async-generator", "transform"],
)
def test_async_steps_and_build_functions_are_refused_at_build(
    definition: type[ProcessDefinition], method: str
) -> None:
    """Before, an async step was reported SUCCESS though its body never ran."""
    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    message = str(raised.value)
    assert isinstance(raised.value, TypeError)
    assert definition.__qualname__ in message
    assert method in message
    assert "async def" in message


@pytest.mark.parametrize(
    "hook",
    ["on_started", "on_completed", "on_failed", "on_cancelled", "define_process"],
)
def test_async_hooks_are_refused_when_the_class_is_defined(hook: str) -> None:
    """A coroutine hook would never run: the class statement itself raises, naming it."""

    async def coroutine(self: Any, *args: Any) -> None: ...

    with pytest.raises(DefinitionError, match=rf"AsyncHooks\.{hook} is an async def"):
        type("AsyncHooks", (ProcessDefinition,), {hook: coroutine})


def test_an_async_around_task_is_refused_when_the_class_is_defined() -> None:
    """``@asynccontextmanager`` cannot wrap a step run synchronously."""
    with pytest.raises(DefinitionError, match=r"AsyncAround\.around_task is an async def"):

        class AsyncAround(ProcessDefinition):
            @contextlib.asynccontextmanager
            async def around_task(self, *args: Any) -> AsyncIterator[None]:  # type: ignore[override]
                yield


class KwargsStep(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.use)

    def use(self, **arguments: Any) -> None: ...


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("context", "a step's context parameter receives its Context"),
        ("self", "are methods, and self is their instance"),
    ],
)
def test_reserved_names_are_refused_as_build_arguments(name: str, why: str) -> None:
    """Before, ``context`` was dropped and ``self`` failed on the worker."""
    with pytest.raises(InvalidArgumentsError) as raised:
        KwargsStep.build(**{name: 1})

    assert raised.value.process == "KwargsStep"
    assert raised.value.problems[name].startswith(f"argument name {name!r} is reserved")
    assert why in raised.value.problems[name]


@pytest.mark.parametrize("name", ["context", "self", "identifier", "options"])
def test_reserved_names_are_refused_as_expected_arguments(name: str) -> None:
    """``identifier`` and ``options`` used to read as "missing": build() takes them itself."""

    class Expects(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            builder.expected_arguments(**{name: str})

    with pytest.raises(InvalidArgumentsError) as raised:
        Expects.build()

    assert "Expects" in str(raised.value)
    assert raised.value.problems[name].startswith(f"argument name {name!r} is reserved")


class Overlays(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        for item in builder.each(self.items):
            item.task(self.use)

    def items(self, name: str) -> list[dict[str, int]]:
        return [{name: 1}]

    def use(self, **arguments: Any) -> None: ...


class TransformOverlay(Overlays):
    def define_process(self, builder: Builder) -> None:
        with builder.transform(self.items) as shaped:
            shaped.task(self.use)

    def items(self, name: str) -> dict[str, int]:  # type: ignore[override]
        return {name: 1}


@pytest.mark.parametrize("definition", [Overlays, TransformOverlay], ids=["each", "transform"])
@pytest.mark.parametrize("name", ["context", "self"])
def test_reserved_names_are_refused_from_each_items_and_transforms(
    definition: type[ProcessDefinition], name: str
) -> None:
    with pytest.raises(InvalidStepError, match=rf"Overlay.*argument name '{name}' is reserved"):
        definition.build(name=name)


def test_a_context_parameter_still_receives_the_context() -> None:
    """Refusing the name as an argument leaves the documented parameter alone."""

    class TakesContext(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            builder.task(self.use)

        def use(self, context: Context) -> None: ...

    assert TakesContext.build(value=1).root.children


def test_identifier_and_options_are_keyword_only() -> None:
    """Before, ``build("acme")`` silently made "acme" the run id."""
    with pytest.raises(TypeError):
        MyProcess.build("acme")  # type: ignore[misc]


def test_an_option_define_process_never_reads_is_refused_naming_the_known_ones() -> None:
    """A misspelt option silently left its step out."""
    with pytest.raises(InvalidArgumentsError) as raised:
        ConditionalProcess.build(options={"enable_valdation": True})

    assert isinstance(raised.value, TasktronautError)
    assert raised.value.process == "ConditionalProcess"
    problem = raised.value.problems["enable_valdation"]
    assert "unknown option" in problem
    assert "enable_logging, enable_validation" in problem


def test_options_read_by_a_sub_process_are_known() -> None:
    class Outer(ProcessDefinition):
        def define_process(self, builder: Builder) -> None:
            builder.sub_process(ConditionalProcess)

    process = Outer.build(options={"enable_validation": "yes"})

    assert process.options == {"enable_validation": "yes"}
