"""Random process trees for property tests: descriptions, their definitions, what they promise.

A tree *description* is plain frozen data (blocks, tasks, ``each``, ``transform``,
sub-processes, and for the broken ones faults, some caught by ``define_process``).
:func:`define` turns it into ``ProcessDefinition`` subclasses, and :func:`expect`
says, without Tasktronaut, what building it must give: the steps with their
paths, names and arguments, or the error that names the culprit.

Definitions are named after a digest of their description (``Tree_<digest>``, a
sub-process ``<parent>_<position>``), so the same description always makes the
same names and two descriptions never share one; they register under
``tests.trees:<name>`` like any class, which is how an in-process worker resolves
them. A step method is named after its position in the description
(``step_2_0``): the recorder then tells which step ran by the name it reports.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tasktronaut import (
    Builder,
    BuildError,
    BuilderStateError,
    ExecutionMode,
    InvalidStepError,
    ProcessDefinition,
    TasktronautError,
    paths,
)

NAMES = ("a", "b", "c")
"""The argument names random trees put in scope."""
ABSENT = "absent"
"""An argument name that is never in scope."""

Position = tuple[int, ...]


@dataclass(frozen=True)
class Task:
    """A step whose method requires the arguments ``requires``."""

    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Block:
    """``with builder.sequential()`` or ``builder.concurrent()`` around ``children``."""

    mode: ExecutionMode
    children: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Each:
    """``builder.each`` over ``items``, adding ``children`` once per item."""

    items: tuple[dict[str, int], ...]
    children: tuple[Item, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Transform:
    """``builder.transform`` overlaying ``values`` for ``children``."""

    values: dict[str, int]
    children: tuple[Item, ...] = ()
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sub:
    """``builder.sub_process`` of a definition of its own, described by ``tree``."""

    tree: Tree


class FaultKind(enum.Enum):
    """A mistake ``define_process`` can make."""

    MISSING_ARGUMENT = "a task requiring an argument not in scope"
    LAMBDA_TASK = "a lambda as a task"
    BAD_DESCRIPTION = "a description that is not a string"
    EACH_NOT_ITERABLE = "an each function returning a number"
    EACH_BAD_ITEM = "an each function yielding a string as an item"
    EACH_MISSING_ARGUMENT = "an each function requiring an argument not in scope"
    TRANSFORM_NOT_A_DICT = "a transform function returning a list"
    SUB_PROCESS_INSTANCE = "a definition instance as a sub-process"
    SUB_PROCESS_NOT_A_DEFINITION = "a class that is no definition as a sub-process"
    OUTER_BUILDER_IN_BLOCK = "the outer builder used inside a with block"
    CLOSED_BUILDER = "a block's builder used after the block closed"
    INCLUDES_ITSELF = "a definition including itself as a sub-process"


@dataclass(frozen=True)
class Fault:
    """A mistake of kind ``kind`` at this place of ``define_process``."""

    kind: FaultKind


@dataclass(frozen=True)
class Caught:
    """``item`` added inside ``try: ... except TasktronautError: pass``."""

    item: Item


Item = Task | Block | Each | Transform | Sub | Fault | Caught


@dataclass(frozen=True)
class Tree:
    """A definition: its ``process_execution_mode`` and what ``define_process`` adds."""

    mode: ExecutionMode
    children: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Case:
    """A tree and the arguments it is built with."""

    tree: Tree
    arguments: dict[str, Any] = field(default_factory=dict)


# --- Faults: what each one does, and what it must raise -------------------------------------


@dataclass(frozen=True)
class _FaultSpec:
    error: type[TasktronautError]
    culprit: str
    """What the message must say; ``{s}`` is replaced by the fault's position suffix."""
    commit: Callable[[ProcessDefinition, Builder, str], object]
    step_requires: tuple[str, ...] | None = None
    """The arguments of the step method the fault uses, if it uses one."""
    leaves_block: bool = False
    """Whether a block it opened stays in the tree when the error is caught."""


def _step_of(definition: ProcessDefinition, suffix: str) -> Callable[..., None]:
    method: Callable[..., None] = getattr(definition, _method_name(suffix))
    return method


def _iterate_bad_items(builder: Builder, suffix: str) -> None:
    for _ in builder.each(_function(f"items_{suffix}", (), [{}, "oops"])):
        pass


def _transform_to_list(builder: Builder, suffix: str) -> None:
    with builder.transform(_function(f"transform_{suffix}", (), ["a"])):
        pass


def _use_outer_builder(definition: ProcessDefinition, builder: Builder, suffix: str) -> None:
    with builder.concurrent():
        builder.task(_step_of(definition, suffix))


def _use_closed_builder(definition: ProcessDefinition, builder: Builder, suffix: str) -> None:
    with builder.sequential() as inner:
        pass
    inner.task(_step_of(definition, suffix))


FAULTS: dict[FaultKind, _FaultSpec] = {
    FaultKind.MISSING_ARGUMENT: _FaultSpec(
        InvalidStepError,
        f"task step_{{s}}: missing argument(s) {ABSENT}",
        lambda d, b, s: b.task(_step_of(d, s)),
        step_requires=(ABSENT,),
    ),
    FaultKind.LAMBDA_TASK: _FaultSpec(
        InvalidStepError, "not the lambda", lambda d, b, s: b.task(lambda: None)
    ),
    FaultKind.BAD_DESCRIPTION: _FaultSpec(
        InvalidStepError,
        "description must be a string, not 7",
        lambda d, b, s: b.task(_step_of(d, s), description=7),  # type: ignore[arg-type]
        step_requires=(),
    ),
    FaultKind.EACH_NOT_ITERABLE: _FaultSpec(
        InvalidStepError,
        "each(items_{s}) must return an iterable",
        lambda d, b, s: b.each(_function(f"items_{s}", (), 42)),
    ),
    FaultKind.EACH_BAD_ITEM: _FaultSpec(
        InvalidStepError,
        "each(items_{s}) item 1 must be a dict",
        lambda d, b, s: _iterate_bad_items(b, s),
    ),
    FaultKind.EACH_MISSING_ARGUMENT: _FaultSpec(
        InvalidStepError,
        f"each(items_{{s}}): missing argument(s) {ABSENT}",
        lambda d, b, s: b.each(_function(f"items_{s}", (ABSENT,), [])),
    ),
    FaultKind.TRANSFORM_NOT_A_DICT: _FaultSpec(
        InvalidStepError,
        "transform(transform_{s}) must be a dict",
        lambda d, b, s: _transform_to_list(b, s),
    ),
    FaultKind.SUB_PROCESS_INSTANCE: _FaultSpec(
        InvalidStepError,
        "(pass the class, not an instance)",
        lambda d, b, s: b.sub_process(d),  # type: ignore[arg-type]
    ),
    FaultKind.SUB_PROCESS_NOT_A_DEFINITION: _FaultSpec(
        InvalidStepError,
        "sub_process() takes a ProcessDefinition subclass, not <class 'dict'>",
        lambda d, b, s: b.sub_process(dict),  # type: ignore[arg-type]
    ),
    FaultKind.OUTER_BUILDER_IN_BLOCK: _FaultSpec(
        BuilderStateError,
        "builder.task() called on an outer builder while its `with ....concurrent()` block",
        _use_outer_builder,
        step_requires=(),
        leaves_block=True,
    ),
    FaultKind.CLOSED_BUILDER: _FaultSpec(
        BuilderStateError,
        "builder.task() called on a builder whose block has closed",
        _use_closed_builder,
        step_requires=(),
        leaves_block=True,
    ),
    FaultKind.INCLUDES_ITSELF: _FaultSpec(
        BuildError, "nested more than 50 deep", lambda d, b, s: b.sub_process(type(d))
    ),
}
CATCHABLE_FAULTS = tuple(kind for kind in FaultKind if kind is not FaultKind.INCLUDES_ITSELF)
"""Faults a caught item may make: a caught self-inclusion would nest 50 levels deep."""


# --- Definitions ----------------------------------------------------------------------------


def _suffix(position: Position) -> str:
    return "_".join(map(str, position))


def _method_name(suffix: str) -> str:
    return f"step_{suffix}"


def _keyword_parameters(names: tuple[str, ...]) -> list[inspect.Parameter]:
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in names]


def _function(name: str, requires: tuple[str, ...], result: object) -> Callable[..., Any]:
    """A function named ``name`` that requires ``requires`` and returns ``result``."""

    def function(**arguments: int) -> object:
        return result

    function.__name__ = function.__qualname__ = name
    function.__signature__ = inspect.Signature(_keyword_parameters(requires))  # type: ignore[attr-defined]
    return function


def _step(owner: str, name: str, requires: tuple[str, ...]) -> Callable[..., None]:
    """A step method that fails unless it receives exactly the arguments it requires."""

    def step(self: ProcessDefinition, **arguments: int) -> None:
        if sorted(arguments) != sorted(requires):
            raise AssertionError(f"{name} requires {requires} but received {sorted(arguments)}")

    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    step.__name__ = name
    step.__qualname__ = f"{owner}.{name}"
    step.__signature__ = inspect.Signature([self_parameter, *_keyword_parameters(requires)])  # type: ignore[attr-defined]
    return step


def root_name(tree: Tree) -> str:
    """The name of the definition :func:`define` makes for ``tree``."""
    return f"Tree_{hashlib.sha1(repr(tree).encode()).hexdigest()[:12]}"


def _own_items(items: tuple[Item, ...], position: Position) -> Iterator[tuple[Position, Item]]:
    """The items a definition adds itself (not those of its sub-processes), with positions."""
    for index, item in enumerate(items):
        here = (*position, index)
        yield here, item
        while isinstance(item, Caught):
            item = item.item
            yield here, item
        if isinstance(item, (Block, Each, Transform)):
            yield from _own_items(item.children, here)


def define(tree: Tree, name: str | None = None) -> type[ProcessDefinition]:
    """A ``ProcessDefinition`` subclass whose ``define_process`` does what ``tree`` says."""
    name = name or root_name(tree)
    members: dict[str, object] = {}
    subs: dict[Position, type[ProcessDefinition]] = {}
    for position, item in _own_items(tree.children, ()):
        suffix = _suffix(position)
        requires = item.requires if isinstance(item, Task) else None
        if isinstance(item, Fault):
            requires = FAULTS[item.kind].step_requires
        if requires is not None:
            members[_method_name(suffix)] = _step(name, _method_name(suffix), requires)
        if isinstance(item, Sub):
            subs[position] = define(item.tree, f"{name}_{suffix}")

    def define_process(self: ProcessDefinition, builder: Builder) -> None:
        _add_all(self, builder, tree.children, (), subs)

    members.update(
        __module__=__name__, process_execution_mode=tree.mode, define_process=define_process
    )
    return type(name, (ProcessDefinition,), members)


def _add_all(
    definition: ProcessDefinition,
    builder: Builder,
    items: tuple[Item, ...],
    position: Position,
    subs: Mapping[Position, type[ProcessDefinition]],
) -> None:
    for index, item in enumerate(items):
        _add(definition, builder, item, (*position, index), subs)


def _add(
    definition: ProcessDefinition,
    builder: Builder,
    item: Item,
    position: Position,
    subs: Mapping[Position, type[ProcessDefinition]],
) -> None:
    """Do with ``builder`` what ``item`` describes."""
    suffix = _suffix(position)
    if isinstance(item, Task):
        builder.task(getattr(definition, _method_name(suffix)))
    elif isinstance(item, Block):
        opened = (
            builder.sequential if item.mode is ExecutionMode.SEQUENTIAL else builder.concurrent
        )
        with opened() as inner:
            _add_all(definition, inner, item.children, position, subs)
    elif isinstance(item, Each):
        items = _function(f"items_{suffix}", item.requires, list(item.items))
        for each in builder.each(items):
            _add_all(definition, each, item.children, position, subs)
    elif isinstance(item, Transform):
        values = _function(f"transform_{suffix}", item.requires, item.values)
        with builder.transform(values) as inner:
            _add_all(definition, inner, item.children, position, subs)
    elif isinstance(item, Sub):
        builder.sub_process(subs[position])
    elif isinstance(item, Caught):
        with suppress(TasktronautError):
            _add(definition, builder, item.item, position, subs)
    else:
        FAULTS[item.kind].commit(definition, builder, suffix)


# --- Strategies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How large random trees get, and whether they may be broken.

    ``depth`` bounds nesting, sub-processes included; at most 3 keeps a
    definition that includes itself among the four its error message names.
    """

    depth: int = 3
    children: int = 3
    items: int = 3
    faults: bool = False


VALUES = st.integers(0, 9)


def cases(shape: Shape) -> st.SearchStrategy[Case]:
    """Random trees of ``shape`` with the arguments they are built with."""
    arguments = st.dictionaries(st.sampled_from(NAMES), VALUES)
    return arguments.flatmap(
        lambda given: st.builds(Case, _trees(frozenset(given), shape.depth, shape), st.just(given))
    )


@functools.cache
def _trees(scope: frozenset[str], depth: int, shape: Shape) -> st.SearchStrategy[Tree]:
    return st.builds(
        Tree, st.sampled_from(ExecutionMode), _items(scope, depth, shape, catching=False)
    )


@functools.cache
def _items(
    scope: frozenset[str], depth: int, shape: Shape, catching: bool
) -> st.SearchStrategy[tuple[Item, ...]]:
    return st.lists(_item(scope, depth, shape, catching), max_size=shape.children).map(tuple)


@functools.cache
def _requirements(scope: frozenset[str]) -> st.SearchStrategy[tuple[str, ...]]:
    """Up to two of the argument names in ``scope``."""
    if not scope:
        return st.just(())
    return st.lists(st.sampled_from(sorted(scope)), unique=True, max_size=2).map(tuple)


@functools.cache
def _item(
    scope: frozenset[str], depth: int, shape: Shape, catching: bool
) -> st.SearchStrategy[Item]:
    """One item whose requirements are in ``scope``, nesting at most ``depth`` further.

    Half the items are leaves (tasks, faults), so trees stay small; strategies are
    cached because Hypothesis validates each new strategy object on first use.
    """
    leaves: list[st.SearchStrategy[Item]] = [st.builds(Task, _requirements(scope))]
    if shape.faults:
        kinds = CATCHABLE_FAULTS if catching else tuple(FaultKind)
        leaves.append(st.builds(Fault, st.sampled_from(kinds)))
    if depth == 0:
        return st.one_of(leaves)
    deeper = depth - 1
    nested: list[st.SearchStrategy[Item]] = [
        st.builds(Block, st.sampled_from(ExecutionMode), _items(scope, deeper, shape, catching)),
        _eaches(scope, deeper, shape, catching),
        _transforms(scope, deeper, shape, catching),
        st.builds(Sub, _trees(scope, deeper, shape)),
    ]
    if shape.faults:
        nested.append(st.builds(Caught, _item(scope, deeper, shape, catching=True)))
    return st.one_of(st.one_of(leaves), st.one_of(nested))


@functools.cache
def _overlays(keys: frozenset[str]) -> st.SearchStrategy[dict[str, int]]:
    return st.fixed_dictionaries(dict.fromkeys(sorted(keys), VALUES))


_KEYS = st.frozensets(st.sampled_from(NAMES), max_size=2)


@st.composite
def _eaches(
    draw: st.DrawFn, scope: frozenset[str], depth: int, shape: Shape, catching: bool
) -> Each:
    keys = draw(_KEYS)
    items = draw(st.lists(_overlays(keys), max_size=shape.items))
    children = draw(_items(scope | keys, depth, shape, catching))
    return Each(tuple(items), children, draw(_requirements(scope)))


@st.composite
def _transforms(
    draw: st.DrawFn, scope: frozenset[str], depth: int, shape: Shape, catching: bool
) -> Transform:
    values = draw(_overlays(draw(_KEYS)))
    children = draw(_items(scope | set(values), depth, shape, catching))
    return Transform(values, children, draw(_requirements(scope)))


# --- What building must give ----------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedStep:
    """A step the built process must have."""

    path: str
    name: str
    arguments: dict[str, int]


@dataclass(frozen=True)
class ExpectedError:
    """The error building must raise: its type, and the process and culprit it names."""

    error: type[TasktronautError]
    process: str
    culprit: str


@dataclass
class Expectation:
    """What building a case must give: steps and processes, or an error."""

    steps: list[ExpectedStep] = field(default_factory=list)
    processes: list[tuple[str, str]] = field(default_factory=list)
    """The path and name of every process node, the root first."""
    error: ExpectedError | None = None


class _Raised(Exception):
    def __init__(self, expected: ExpectedError) -> None:
        self.expected = expected


@dataclass
class _Slots:
    """The child paths handed out in one block or process so far."""

    path: str
    count: int = 0

    def reserve(self) -> str:
        self.count += 1
        return paths.child(self.path, self.count - 1)


def expect(case: Case) -> Expectation:
    """What ``define(case.tree).build(**case.arguments)`` must give, worked out independently.

    Each item and transform overlays its values on the arguments in scope; ``each``
    and ``transform`` add to the enclosing block; a block's slot is taken when it
    opens (so it stays, with what it holds, if an error inside it is caught); a
    sub-process that fails leaves no trace.
    """
    expectation = Expectation()
    try:
        _expect_process(expectation, case.tree, root_name(case.tree), "", case.arguments)
    except _Raised as raised:
        return Expectation(error=raised.expected)
    return expectation


def _expect_process(
    expectation: Expectation, tree: Tree, name: str, path: str, scope: dict[str, int]
) -> None:
    steps, processes = len(expectation.steps), len(expectation.processes)
    expectation.processes.append((path, name))
    try:
        _expect_all(expectation, tree.children, (), _Slots(path), scope, name)
    except _Raised:
        del expectation.steps[steps:], expectation.processes[processes:]
        raise


def _expect_all(
    expectation: Expectation,
    items: tuple[Item, ...],
    position: Position,
    slots: _Slots,
    scope: dict[str, int],
    name: str,
) -> None:
    for index, item in enumerate(items):
        _expect(expectation, item, (*position, index), slots, scope, name)


def _expect(
    expectation: Expectation,
    item: Item,
    position: Position,
    slots: _Slots,
    scope: dict[str, int],
    name: str,
) -> None:
    suffix = _suffix(position)
    if isinstance(item, Task):
        step = ExpectedStep(slots.reserve(), f"{name}.{_method_name(suffix)}", scope)
        expectation.steps.append(step)
    elif isinstance(item, Block):
        _expect_all(expectation, item.children, position, _Slots(slots.reserve()), scope, name)
    elif isinstance(item, Each):
        for values in item.items:
            _expect_all(expectation, item.children, position, slots, {**scope, **values}, name)
    elif isinstance(item, Transform):
        _expect_all(expectation, item.children, position, slots, {**scope, **item.values}, name)
    elif isinstance(item, Sub):
        path = slots.reserve()
        try:
            _expect_process(expectation, item.tree, f"{name}_{suffix}", path, scope)
        except _Raised:
            slots.count -= 1
            raise
    elif isinstance(item, Caught):
        with suppress(_Raised):
            _expect(expectation, item.item, position, slots, scope, name)
    else:
        spec = FAULTS[item.kind]
        if spec.leaves_block:
            slots.reserve()
        raise _Raised(ExpectedError(spec.error, name, spec.culprit.format(s=suffix)))
