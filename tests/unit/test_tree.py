"""The built tree: frozen, navigable, comparable, with descriptions and options resolved."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from examples.user_guide import (
    ComplexProcess,
    ConditionalProcess,
    MainProcess,
    MixedProcess,
    MyProcess,
)
from tasktronaut import (
    BlockNode,
    Builder,
    ExecutionMode,
    InvalidArgumentsError,
    InvalidStepError,
    ProcessDefinition,
    ProcessNode,
    TaskNode,
    TaskOptions,
    TasktronautError,
    task,
)


def test_node_fields_cannot_be_assigned() -> None:
    """Every node type and the process itself are frozen dataclasses."""
    process = MixedProcess.build(identifier="frozen")
    step, block = process.find("0"), process.find("1")
    assert isinstance(step, TaskNode)
    assert isinstance(block, BlockNode)

    with pytest.raises(dataclasses.FrozenInstanceError):
        step.method = "cleanup"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.mode = ExecutionMode.CONCURRENT  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        process.root.children = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        process.identifier = "other"  # type: ignore[misc]
    assert step.method == "setup"
    assert block.mode is ExecutionMode.SEQUENTIAL


def test_arguments_and_options_are_read_only_mappings() -> None:
    """Neither a step's arguments nor the build options can be changed after the build."""
    process = ComplexProcess.build(items=["a"])
    options = ConditionalProcess.build(options={"enable_validation": True}).options
    step = process.find("1.0")
    assert isinstance(step, TaskNode)

    with pytest.raises(TypeError):
        step.arguments["batch"] = []  # type: ignore[index]
    with pytest.raises(TypeError):
        process.root.arguments["items"] = []  # type: ignore[index]
    with pytest.raises(TypeError):
        options["enable_validation"] = False  # type: ignore[index]
    assert step.arguments["batch"] == ["a"]


def test_changing_the_build_arguments_afterwards_does_not_change_the_tree() -> None:
    """The tree holds its own copy of the top-level arguments."""
    arguments: dict[str, Any] = {"items": ["a"]}
    process = ComplexProcess.build(**arguments)
    arguments["items"] = ["b"]

    assert process.root.arguments["items"] == ["a"]


def test_find_returns_the_node_at_a_path() -> None:
    """find("") is the root and dotted paths lead to nested nodes."""
    process = MixedProcess.build()

    assert process.find("") is process.root
    assert process.find("1") is process.root.children[1]
    node = process.find("2.1")
    assert isinstance(node, TaskNode)
    assert (node.path, node.method) == ("2.1", "parallel_task_b")


@pytest.mark.parametrize("path", ["4", "1.2", "0.0", "x", "1.", "-1", "1..0"])
def test_find_raises_key_error_for_a_path_that_leads_nowhere(path: str) -> None:
    """Out-of-range indexes, paths into a step and malformed paths raise KeyError."""
    process = MixedProcess.build()

    with pytest.raises(KeyError):
        process.find(path)


def test_every_node_is_found_at_its_own_path() -> None:
    """A node's path always leads back to that node."""
    process = ComplexProcess.build(items=[str(n) for n in range(12)])

    for node in process.walk():
        assert process.find(node.path) is node


def test_len_counts_the_steps_only() -> None:
    """len(process) counts steps, not blocks or sub-process nodes."""
    assert len(MyProcess.build()) == 3
    assert len(MixedProcess.build()) == 6
    assert len(MainProcess.build()) == 4
    assert len(ComplexProcess.build(items=["x"] * 31)) == 10


def test_walk_visits_nodes_depth_first_in_definition_order() -> None:
    """walk() yields each node before its children, children in order."""
    process = MainProcess.build()

    assert [node.path for node in process.walk()] == ["", "0", "1", "1.0", "1.1", "2"]
    assert [type(node) for node in process.walk()] == [
        ProcessNode,
        TaskNode,
        ProcessNode,
        TaskNode,
        TaskNode,
        TaskNode,
    ]


def test_steps_are_the_task_nodes_of_walk() -> None:
    """steps() is walk() without the containers."""
    process = MixedProcess.build()

    assert list(process.steps()) == [n for n in process.walk() if isinstance(n, TaskNode)]


def test_two_builds_differ_only_in_their_identifier() -> None:
    """Building twice gives equal trees; the random identifiers differ."""
    first = ComplexProcess.build(items=["a", "b"])
    second = ComplexProcess.build(items=["a", "b"])

    assert first.identifier != second.identifier
    assert first != second
    assert first.root == second.root
    assert dataclasses.replace(first, identifier=second.identifier) == second


def test_builds_with_different_arguments_are_not_equal() -> None:
    """Different arguments give different trees."""
    first = ComplexProcess.build(identifier="same", items=["a"])
    second = ComplexProcess.build(identifier="same", items=["b"])

    assert first != second


def test_identifier_is_kept_when_given() -> None:
    """A given identifier names the run."""
    assert MyProcess.build(identifier="order-42:retry@1.a+b").identifier == "order-42:retry@1.a+b"


def test_identifier_defaults_to_a_random_hex_string() -> None:
    """Without an identifier each build gets a fresh 32-digit hex one."""
    identifier = MyProcess.build().identifier

    assert len(identifier) == 32
    assert set(identifier) <= set("0123456789abcdef")
    assert MyProcess.build().identifier != identifier


@pytest.mark.parametrize(
    "identifier", ["", "has space", "slash/ed", "x" * 201, "trailing\n", "new\nline"]
)
def test_identifier_with_a_wrong_value_is_a_value_error(identifier: str) -> None:
    """An empty, too long or oddly spelt identifier is refused naming the process."""
    with pytest.raises(InvalidArgumentsError) as raised:
        MyProcess.build(identifier=identifier)

    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, TasktronautError)
    assert list(raised.value.problems) == ["identifier"]
    assert "MyProcess" in str(raised.value)


def test_identifier_that_is_not_a_string_is_a_type_error() -> None:
    """An identifier must be a string."""
    with pytest.raises(InvalidStepError, match="MyProcess: identifier must be a string, not 42"):
        MyProcess.build(identifier=42)  # type: ignore[arg-type]


def test_bare_task_decorator_returns_the_function_itself() -> None:
    """``@task`` hands back the same function with the same signature."""

    def step(self: Any, a: int, *, b: str = "x") -> int:
        return a

    before = inspect.signature(step)

    assert task(step) is step
    assert inspect.signature(step) == before
    assert step(None, 3) == 3


@pytest.mark.parametrize(
    "decorator",
    [task(), task(description="Described"), task(description="Retried", max_retries=2)],
    ids=["called", "description", "options"],
)
def test_called_task_decorators_return_the_function_itself(decorator: Any) -> None:
    """``@task()`` and ``@task(description=...)`` hand back the same function too."""

    def step(self: Any, a: int, *, b: str = "x") -> int:
        return a

    before = inspect.signature(step)

    assert decorator(step) is step
    assert inspect.signature(step) == before
    assert step.__name__ == "step"


class _Described(ProcessDefinition):
    def items(self) -> Iterator[Any]:
        yield {"n": 1}, "Item one"
        yield {"n": 2}

    def define_process(self, builder: Builder) -> None:
        builder.task(self.decorated, description="Explicit")
        builder.task(self.decorated)
        builder.task(self.plain)
        for iteration in builder.each(self.items, description="Every item"):
            iteration.task(self.plain)
            iteration.task(self.decorated)
        with builder.sequential("Block") as block:
            block.task(self.plain)
            with block.transform(self.widen) as widened:
                widened.task(self.plain)
            with block.transform(self.widen, description="Widened") as widened:
                widened.task(self.plain)
            block.sub_process(_Child)
        builder.sub_process(_Child, description="Child")

    def widen(self) -> dict[str, Any]:
        return {"wide": True}

    @task(description="From the decorator")
    def decorated(self) -> None:
        pass

    def plain(self) -> None:
        pass


class _Child(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.child_step)

    def child_step(self) -> None:
        pass


def test_descriptions_prefer_explicit_then_decorator_then_enclosing() -> None:
    """Explicit ``description=`` > ``@task`` > each item / each / transform / block / sub-process."""
    process = _Described.build()

    assert [(s.path, s.method, s.description) for s in process.steps()] == [
        ("0", "decorated", "Explicit"),
        ("1", "decorated", "From the decorator"),
        ("2", "plain", None),
        ("3", "plain", "Item one"),
        ("4", "decorated", "From the decorator"),
        ("5", "plain", "Every item"),
        ("6", "decorated", "From the decorator"),
        ("7.0", "plain", "Block"),
        ("7.1", "plain", "Block"),
        ("7.2", "plain", "Widened"),
        ("7.3.0", "child_step", "Block"),
        ("8.0", "child_step", "Child"),
    ]
    assert process.find("7").description == "Block"
    assert process.find("8").description == "Child"


class _Overlay(ProcessDefinition):
    def items(self, base: int) -> Iterator[dict[str, Any]]:
        yield {"base": base + 1, "extra": "first"}
        yield {"other": "second"}

    def define_process(self, builder: Builder) -> None:
        for iteration in builder.each(self.items):
            iteration.task(self.show)
            with iteration.transform(self.double) as doubled:
                doubled.task(self.show)
        builder.task(self.show)

    def double(self, base: int, context: Any) -> dict[str, Any]:
        return {"base": base * 2, "seen_by": context.step}

    def show(self, **kwargs: Any) -> None:
        pass


def test_each_and_transform_overlay_the_arguments_in_scope() -> None:
    """New keys are added, same keys replaced, and the outer scope is left untouched."""
    process = _Overlay.build(base=10, keep="k")

    assert [dict(step.arguments) for step in process.steps()] == [
        {"base": 11, "keep": "k", "extra": "first"},
        {"base": 22, "keep": "k", "extra": "first", "seen_by": "double"},
        {"base": 10, "keep": "k", "other": "second"},
        {"base": 20, "keep": "k", "other": "second", "seen_by": "double"},
        {"base": 10, "keep": "k"},
    ]


class _Optioned(ProcessDefinition):
    task_options = TaskOptions(max_retries=1, queue="default", priority=1)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.plain)
        builder.task(self.decorated)
        builder.task(self.decorated, max_retries=5, soft_time_limit=2.5)

    def plain(self) -> None:
        pass

    @task(max_retries=3, queue="io")
    def decorated(self) -> None:
        pass


def test_options_come_from_definition_then_decorator_then_builder_call() -> None:
    """task_options < ``@task(...)`` < ``builder.task(..., option=...)``, option by option."""
    process = _Optioned.build()

    assert [step.options.as_dict() for step in process.steps()] == [
        {"max_retries": 1, "queue": "default", "priority": 1},
        {"max_retries": 3, "queue": "io", "priority": 1},
        {"max_retries": 5, "queue": "io", "priority": 1, "soft_time_limit": 2.5},
    ]


def test_steps_carry_default_options_when_nothing_sets_them() -> None:
    """A definition without task_options gives steps empty TaskOptions."""
    step = next(MyProcess.build().steps())

    assert step.options == TaskOptions()
    assert step.options.as_dict() == {}


def test_task_node_name_is_the_definition_and_method() -> None:
    """A step's display name is ``Definition.method``; a process node's is its class."""
    process = MainProcess.build()

    assert [step.name for step in process.steps()] == [
        "MainProcess.load_data",
        "ValidationProcess.check_schema",
        "ValidationProcess.check_constraints",
        "MainProcess.save_data",
    ]
    sub = process.find("1")
    assert isinstance(sub, ProcessNode)
    assert sub.name == "ValidationProcess"
