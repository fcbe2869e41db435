"""Random trees build exactly as described, or fail with a TasktronautError naming the culprit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from hypothesis import Phase, example, given, settings

from tasktronaut import ExecutionMode, Process, ProcessNode, TasktronautError
from tests.trees import (
    Block,
    Case,
    Caught,
    Each,
    ExpectedError,
    ExpectedStep,
    Fault,
    FaultKind,
    Item,
    Shape,
    Sub,
    Task,
    Transform,
    Tree,
    cases,
    define,
    expect,
)

PROPERTIES = settings(max_examples=300, database=None, deadline=None)
SAMPLE = settings(max_examples=500, database=None, derandomize=True, phases=[Phase.generate])
"""The same 500 random trees every time, to see what the strategy draws."""

CAUGHT_BROKEN_SUB_PROCESS = Case(
    Tree(
        ExecutionMode.SEQUENTIAL,
        (
            Caught(Sub(Tree(ExecutionMode.SEQUENTIAL, (Fault(FaultKind.MISSING_ARGUMENT),)))),
            Task(),
        ),
    )
)
"""A sub-process whose build error define_process catches once left a gap in the paths."""


def check_consistent(process: Process, case: Case) -> None:
    """Assert that ``process`` has the steps and processes ``case`` describes, and holds together."""
    expectation = expect(case)
    steps = [ExpectedStep(s.path, s.name, dict(s.arguments)) for s in process.steps()]
    assert steps == expectation.steps
    assert len(process) == len(expectation.steps)
    processes = [(n.path, n.name) for n in process.walk() if isinstance(n, ProcessNode)]
    assert processes == expectation.processes

    nodes = list(process.walk())
    paths = [node.path for node in nodes]
    assert len(set(paths)) == len(paths), f"paths repeat: {paths}"
    assert all(process.find(node.path) is node for node in nodes)
    lines = process.render().splitlines()
    assert len(lines) == len(nodes)
    assert all(f"── {n.path} " in line for n, line in zip(nodes[1:], lines[1:], strict=True))
    rebuilt = process.definition.build(identifier=process.identifier, **case.arguments)
    assert rebuilt == process


def check_names_culprit(error: TasktronautError, expected: ExpectedError) -> None:
    """Assert that ``error`` is of the expected type and names the process and the culprit."""
    assert isinstance(error, expected.error), repr(error)
    message = str(error)
    assert expected.culprit in message
    assert re.search(rf"\b{re.escape(expected.process)}\b", message), (expected.process, message)


@PROPERTIES
@given(cases(Shape()))
def test_a_valid_random_tree_builds_as_described(case: Case) -> None:
    """Steps, paths, arguments and sub-processes are as described; find and render agree."""
    process = define(case.tree).build(**case.arguments)

    check_consistent(process, case)


@PROPERTIES
@given(cases(Shape(faults=True)))
@example(CAUGHT_BROKEN_SUB_PROCESS)
def test_a_random_tree_builds_or_names_its_mistake(case: Case) -> None:
    """The first mistake building reaches raises a TasktronautError naming it; else it builds."""
    expected = expect(case).error
    definition = define(case.tree)

    if expected is None:
        check_consistent(definition.build(**case.arguments), case)
    else:
        with pytest.raises(TasktronautError) as raised:
            definition.build(**case.arguments)
        check_names_culprit(raised.value, expected)


def _descendants(items: tuple[Item, ...]) -> Iterator[Item]:
    for item in items:
        yield item
        if isinstance(item, Caught):
            yield from _descendants((item.item,))
        elif isinstance(item, Sub):
            yield from _descendants(item.tree.children)
        elif isinstance(item, (Block, Each, Transform)):
            yield from _descendants(item.children)


def _kind(item: Item) -> str:
    return item.kind.name if isinstance(item, Fault) else type(item).__name__


def test_random_trees_reach_every_kind_of_item() -> None:
    """The strategy draws every item type and every fault, so the properties above cover them."""
    seen: set[str] = set()

    @SAMPLE
    @given(cases(Shape(faults=True)))
    def collect(case: Case) -> None:
        seen.update(_kind(item) for item in _descendants(case.tree.children))

    collect()

    assert (
        seen
        == {"Task", "Block", "Each", "Transform", "Sub", "Caught"} | FaultKind.__members__.keys()
    )
