"""Every mistake in a definition is raised at class definition or build time, clearly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from examples.user_guide import MyProcess, ValidationProcess
from tasktronaut import (
    BlockNode,
    Builder,
    BuildError,
    BuilderStateError,
    DefinitionError,
    ExecutionMode,
    InvalidArgumentsError,
    InvalidStepError,
    InvalidTaskOptionsError,
    ProcessDefinition,
    TasktronautError,
    task,
)


def define(body: Callable[[Any, Builder], None], **members: Any) -> type[ProcessDefinition]:
    """A definition named ``Culprit`` whose define_process is ``body``.

    Lambdas among ``members`` are named after their key, as a ``def`` would be.
    """
    namespace: dict[str, Any] = {"define_process": body, "step": lambda self: None, **members}
    for name, member in namespace.items():
        if getattr(member, "__name__", None) == "<lambda>":
            member.__name__ = name
            member.__qualname__ = f"Culprit.{name}"
    return type("Culprit", (ProcessDefinition,), namespace)


def plain_function() -> None:
    """Not a method of any definition."""


@pytest.mark.parametrize(
    ("target", "culprit"),
    [
        (lambda self: lambda: None, "lambda"),
        (lambda self: plain_function, "plain function"),
        (lambda self: "step", "'step'"),
        (lambda self: MyProcess().step_one, "MyProcess"),
    ],
    ids=["lambda", "plain-function", "string", "other-definition"],
)
def test_task_refuses_anything_but_a_method_of_the_definition(
    target: Callable[[Any], Any], culprit: str
) -> None:
    """task() given a lambda, a function, a string or another definition's method raises."""
    definition = define(lambda self, builder: builder.task(target(self)))

    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    assert isinstance(raised.value, TasktronautError)
    assert isinstance(raised.value, TypeError)
    assert "Culprit" in str(raised.value)
    assert culprit in str(raised.value)


def test_task_of_another_definition_suggests_sub_process() -> None:
    """A method of another definition points the user at builder.sub_process."""
    definition = define(lambda self, builder: builder.task(ValidationProcess().check_schema))

    with pytest.raises(InvalidStepError, match=r"sub_process\(ValidationProcess\)"):
        definition.build()


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        (int, "<class 'int'>"),
        ("ValidationProcess", "'ValidationProcess'"),
        (ProcessDefinition, "ProcessDefinition"),
        (ValidationProcess(), "pass the class, not an instance"),
    ],
    ids=["other-class", "string", "base-class", "instance"],
)
def test_sub_process_refuses_anything_but_a_definition_class(target: Any, hint: str) -> None:
    """sub_process() takes a ProcessDefinition subclass and names what it got instead."""
    definition = define(lambda self, builder: builder.sub_process(target))

    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, TasktronautError)
    assert "Culprit" in str(raised.value)
    assert hint in str(raised.value)


@pytest.mark.parametrize(
    "item",
    [["a"], "filename", ({"a": 1}, 2), ({"a": 1}, "d", "extra"), {1: "not a name"}, None],
    ids=["list", "string", "non-string-description", "triple", "non-string-key", "none"],
)
def test_each_refuses_items_that_are_not_a_dict_or_a_dict_and_description(item: object) -> None:
    """An each item must be a dict of arguments or a (dict, str) tuple."""

    def define_process(self: Any, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.step)

    definition = define(define_process, items=lambda self: iter([{"ok": 1}, item]))

    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    assert isinstance(raised.value, TypeError)
    assert "Culprit" in str(raised.value)
    assert "each(items) item 1" in str(raised.value)


@pytest.mark.parametrize("result", [{"a": 1}, "text", 3], ids=["dict", "string", "number"])
def test_each_refuses_a_function_that_does_not_return_an_iterable_of_items(result: object) -> None:
    """A dict, a string or a number is not a collection of items."""

    def define_process(self: Any, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.step)

    definition = define(define_process, items=lambda self: result)

    with pytest.raises(InvalidStepError, match=r"Culprit: each\(items\) must return"):
        definition.build()


@pytest.mark.parametrize(
    "result",
    [["a", 1], "text", None, ({"a": 1}, 5), ({"a": 1},)],
    ids=["list", "string", "none", "non-string-description", "one-tuple"],
)
def test_transform_refuses_a_result_that_is_not_a_dict(result: object) -> None:
    """A transform returns a dict or a (dict, str) tuple; anything else is named."""

    def define_process(self: Any, builder: Builder) -> None:
        with builder.transform(self.shape) as transformed:
            transformed.task(self.step)

    def shape(self: Any) -> object:
        return result

    definition = define(define_process, shape=shape)

    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    assert isinstance(raised.value, TypeError)
    assert "Culprit: transform(shape) must be a dict" in str(raised.value)


class _Expecting(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(name=str, count=int, limit=float, note=str | None)
        builder.task(self.run)

    def run(self, **kwargs: Any) -> None:
        pass


def test_expected_arguments_reports_every_problem_at_once() -> None:
    """Missing and invalid arguments are all listed in one InvalidArgumentsError."""
    with pytest.raises(InvalidArgumentsError) as raised:
        _Expecting.build(count="many", limit="far")

    error = raised.value
    assert isinstance(error, ValueError)
    assert isinstance(error, BuildError)
    assert error.process == "_Expecting"
    assert sorted(error.problems) == ["count", "limit", "name"]
    assert error.problems["name"] == "missing (expected str)"
    assert error.problems["count"].startswith("expected int, got 'many'")
    assert error.problems["limit"].startswith("expected float, got 'far'")
    message = str(error)
    assert message.startswith("_Expecting: 3 invalid arguments:")
    for name in ("name", "count", "limit"):
        assert f"  - {name}: " in message
    assert "note" not in message


def test_expected_arguments_names_a_single_problem_in_the_singular() -> None:
    """One problem is reported as ``1 invalid argument``."""
    with pytest.raises(InvalidArgumentsError, match=r"^_Expecting: 1 invalid argument:\n"):
        _Expecting.build(name="n", count=1)


def open_block(self: Any, builder: Builder, opener: str) -> AbstractContextManager[Builder]:
    """``builder.sequential()``, ``builder.concurrent()`` or ``builder.transform(self.shape)``."""
    if opener == "transform":
        return builder.transform(self.shape)
    return builder.sequential() if opener == "sequential" else builder.concurrent()


@pytest.mark.parametrize("opener", ["sequential", "concurrent", "transform"])
def test_outer_builder_is_unusable_while_an_inner_block_is_open(opener: str) -> None:
    """Adding to the outer builder inside ``with builder.<block>()`` raises."""

    def define_process(self: Any, builder: Builder) -> None:
        with open_block(self, builder, opener):
            builder.task(self.step)

    definition = define(define_process, shape=lambda self: {})

    with pytest.raises(BuilderStateError) as raised:
        definition.build()

    assert isinstance(raised.value, RuntimeError)
    assert isinstance(raised.value, BuildError)
    assert "Culprit" in str(raised.value)
    assert f"{opener}()` block is open" in str(raised.value)


@pytest.mark.parametrize("opener", ["sequential", "concurrent", "transform"])
def test_inner_builder_is_unusable_after_its_block_closed(opener: str) -> None:
    """The builder a ``with`` block yields cannot add steps once the block has closed."""

    def define_process(self: Any, builder: Builder) -> None:
        with open_block(self, builder, opener) as inner:
            inner.task(self.step)
        inner.task(self.step)

    definition = define(define_process, shape=lambda self: {})

    with pytest.raises(
        BuilderStateError, match=r"Culprit: builder\.task\(\) called on a builder whose"
    ):
        definition.build()


def test_builder_is_unusable_after_the_build() -> None:
    """A builder kept past define_process refuses to add anything."""
    kept: list[tuple[Any, Builder]] = []

    def define_process(self: Any, builder: Builder) -> None:
        kept.append((self, builder))
        builder.task(self.step)

    define(define_process).build()
    instance, builder = kept[0]

    with pytest.raises(
        BuilderStateError, match=r"Culprit: builder\.task\(\) called after the process"
    ):
        builder.task(instance.step)
    with pytest.raises(BuilderStateError, match="after the process was built"):
        builder.option("anything")


def test_process_execution_mode_must_be_an_execution_mode() -> None:
    """A string mode is refused when the class is defined."""
    with pytest.raises(DefinitionError) as raised:

        class StringMode(ProcessDefinition):
            process_execution_mode = "concurrent"  # type: ignore[assignment]

    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, TasktronautError)
    assert "StringMode.process_execution_mode" in str(raised.value)
    assert "'concurrent'" in str(raised.value)


@pytest.mark.parametrize(
    ("look_alike", "meant"),
    [("execution_mode", "process_execution_mode"), ("default_task_options", "task_options")],
)
def test_look_alike_class_attributes_are_refused(look_alike: str, meant: str) -> None:
    """An attribute Tasktronaut would silently ignore fails the class statement."""
    with pytest.raises(DefinitionError) as raised:
        type("LookAlike", (ProcessDefinition,), {look_alike: ExecutionMode.CONCURRENT})

    assert f"LookAlike sets {look_alike!r}" in str(raised.value)
    assert f"did you mean {meant!r}" in str(raised.value)


def test_task_options_must_be_task_options() -> None:
    """A dict of task options on the class is refused when the class is defined."""
    with pytest.raises(DefinitionError, match=r"DictOptions\.task_options must be a TaskOptions"):
        type("DictOptions", (ProcessDefinition,), {"task_options": {"max_retries": 3}})


def test_task_with_a_required_parameter_out_of_scope_is_refused() -> None:
    """A step whose required parameter is not among the arguments fails the build."""

    def needs(self: Any, filename: str, size: int, optional: int = 0) -> None:
        pass

    definition = define(lambda self, builder: builder.task(self.needs), needs=needs)

    with pytest.raises(InvalidStepError) as raised:
        definition.build(size=3, other=1)

    assert str(raised.value) == (
        "Culprit: task needs: missing argument(s) filename (in scope: other, size)"
    )


def test_each_function_with_a_required_parameter_out_of_scope_is_refused() -> None:
    """The each function's signature is checked against the arguments too."""

    def items(self: Any, files: list[str]) -> Iterator[dict[str, Any]]:
        yield from ({"f": f} for f in files)

    def define_process(self: Any, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.step)

    definition = define(define_process, items=items)

    with pytest.raises(
        InvalidStepError, match=r"Culprit: each\(items\): missing argument\(s\) files"
    ):
        definition.build()


@pytest.mark.parametrize(
    ("method", "problem"),
    [
        ("_helper", "'_helper' is private; steps must be public methods"),
        ("__call__", "'__call__' is private; steps must be public methods"),
        ("on_started", "'on_started' belongs to ProcessDefinition itself"),
        ("define_process", "'define_process' belongs to ProcessDefinition itself"),
    ],
)
def test_private_and_base_class_methods_cannot_be_tasks(method: str, problem: str) -> None:
    """Private and dunder methods and ProcessDefinition's own members are refused as steps."""
    definition = define(
        lambda self, builder: builder.task(getattr(self, method)),
        _helper=lambda self: None,
        __call__=lambda self: None,
    )

    with pytest.raises(InvalidStepError) as raised:
        definition.build()

    assert str(raised.value).startswith(f"Culprit: {problem}")


def test_task_decorator_refuses_out_of_range_options() -> None:
    """``@task(max_retries=-1)`` fails when the class body runs, naming the method."""
    with pytest.raises(InvalidTaskOptionsError) as raised:

        class NegativeRetries(ProcessDefinition):
            @task(max_retries=-1)
            def step(self) -> None:
                pass

    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, TasktronautError)
    assert "NegativeRetries.step" in str(raised.value)
    assert "max_retries must be a whole number >= 0, not -1" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": 3}, "unknown task option(s) retries"),
        ({"priority": 300}, "priority must be between 0 and 255, not 300"),
        ({"queue": ""}, "queue must be a non-empty string"),
        ({"time_limit": True}, "time_limit must be a number >= 0, not True"),
    ],
)
def test_builder_task_refuses_bad_options(options: dict[str, Any], message: str) -> None:
    """Unknown or out-of-range options given to builder.task fail the build."""
    definition = define(lambda self, builder: builder.task(self.step, **options))

    with pytest.raises(InvalidTaskOptionsError) as raised:
        definition.build()

    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith("Culprit: task step: ")
    assert message in str(raised.value)


def test_task_decorator_refuses_a_description_that_is_not_a_string() -> None:
    """``@task(description=3)`` fails with a TypeError that is a TasktronautError."""
    with pytest.raises(DefinitionError, match="description must be a string, not 3"):

        @task(description=3)  # type: ignore[call-overload, untyped-decorator]
        def step(self: Any) -> None:
            pass


def test_builder_option_refuses_a_value_that_is_not_a_boolean() -> None:
    """An option value that is not a boolean is reported with the process and option name."""

    def define_process(self: Any, builder: Builder) -> None:
        if builder.option("enable_audit"):
            builder.task(self.step)

    definition = define(define_process)

    with pytest.raises(InvalidArgumentsError) as raised:
        definition.build(options={"enable_audit": "perhaps"})

    assert isinstance(raised.value, ValueError)
    assert raised.value.problems == {"enable_audit": "option must be true or false, got 'perhaps'"}
    assert "Culprit" in str(raised.value)


def test_build_refuses_options_that_are_not_a_mapping() -> None:
    """``options`` must be a mapping; a list of names is a TypeError."""
    with pytest.raises(InvalidStepError, match="MyProcess: options must be a mapping"):
        MyProcess.build(options=["enable_validation"])  # type: ignore[arg-type]


class _Recursive(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.step)
        builder.sub_process(_Recursive)

    def step(self) -> None:
        pass


def test_a_definition_including_itself_fails_on_nesting_depth() -> None:
    """Endless self-inclusion stops with a BuildError about the nesting depth."""
    with pytest.raises(BuildError) as raised:
        _Recursive.build()

    assert type(raised.value) is BuildError
    assert "sub-processes nested more than 50 deep" in str(raised.value)
    assert "_Recursive > _Recursive" in str(raised.value)
    assert "does a definition include itself?" in str(raised.value)


class _WithoutDefineProcess(ProcessDefinition):
    def step(self) -> None:
        pass


def test_a_definition_without_define_process_cannot_be_built() -> None:
    """Building a definition that never implemented define_process is a BuildError."""
    with pytest.raises(
        BuildError, match="_WithoutDefineProcess does not implement define_process"
    ):
        _WithoutDefineProcess.build()


def test_a_sub_process_without_define_process_cannot_be_built() -> None:
    """The same check applies to a definition used as a sub-process."""
    definition = define(lambda self, builder: builder.sub_process(_WithoutDefineProcess))

    with pytest.raises(BuildError, match="_WithoutDefineProcess does not implement"):
        definition.build()


class _BrokenSub(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task("step")  # type: ignore[arg-type]


def test_errors_inside_a_sub_process_name_the_chain_of_processes() -> None:
    """A mistake in a sub-process names the outer process, the sub-process and its path."""

    def define_process(self: Any, builder: Builder) -> None:
        builder.task(self.step)
        builder.sub_process(_BrokenSub)

    definition = define(define_process)

    with pytest.raises(InvalidStepError, match=r"^Culprit > _BrokenSub \(at 1\): task\(\) takes"):
        definition.build()


def test_an_empty_process_builds_to_no_children() -> None:
    """A define_process that adds nothing is valid."""
    process = define(lambda self, builder: None).build()

    assert process.root.children == ()
    assert len(process) == 0


def test_empty_blocks_build_to_block_nodes_without_children() -> None:
    """Sequential and concurrent blocks with nothing in them are kept, empty."""

    def define_process(self: Any, builder: Builder) -> None:
        with builder.sequential():
            pass
        with builder.concurrent():
            pass

    process = define(define_process).build()

    assert process.root.children == (
        BlockNode("0", ExecutionMode.SEQUENTIAL, None, ()),
        BlockNode("1", ExecutionMode.CONCURRENT, None, ()),
    )


def test_each_yielding_nothing_adds_nothing() -> None:
    """An each function that yields no items is valid and adds no steps."""

    def define_process(self: Any, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.step)
        builder.task(self.step)

    process = define(define_process, items=lambda self: iter(())).build()

    assert [(node.path, node.method) for node in process.steps()] == [("0", "step")]
