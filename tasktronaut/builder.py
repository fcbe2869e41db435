"""The ``Builder`` handed to ``define_process``, and the build that drives it.

A builder appends nodes to one open block. ``sequential()``, ``concurrent()``
and ``sub_process()`` open a new block; ``each()`` and ``transform()`` hand out
builders that append to the same block with more arguments in scope. A node's
slot (and so its path) is reserved when it is opened, so paths follow
definition order even while nested blocks are still being filled.
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from typing_extensions import Unpack

from . import paths
from .arguments import validate_arguments, validate_option
from .calling import invoke, reserved_problems, signature_problem
from .concurrency import limit_of
from .context import Context
from .decorators import task_metadata
from .definition import ProcessDefinition, step_problem
from .errors import BuildError, BuilderStateError, InvalidArgumentsError, InvalidStepError
from .nodes import BlockNode, ExecutionMode, Node, ProcessNode, TaskNode
from .options import TaskOptions, TaskOptionsKwargs
from .process import Process
from .scope import Arguments
from .sensitive import Redactor, masked, sensitive_arguments_of

MAX_SUB_PROCESS_DEPTH = 50
_IDENTIFIER = re.compile(r"[\w.:@+-]{1,200}")


@dataclass(eq=False)
class _OpenBlock:
    """A block or process whose children are still being added; ``None`` marks a reserved slot."""

    path: str
    children: list[Node | None] = field(default_factory=list)
    closed: bool = False

    def reserve(self) -> tuple[int, str]:
        self.children.append(None)
        index = len(self.children) - 1
        return index, paths.child(self.path, index)

    def frozen_children(self) -> tuple[Node, ...]:
        return tuple(child for child in self.children if child is not None)


@dataclass(eq=False)
class _BuildState:
    """What every builder of one build shares.

    ``sensitive`` gathers the names marked by each definition as it is built;
    the arguments of the build hold it to mask their ``repr``. ``read`` gathers
    the options ``builder.option`` asked for: any other given is a mistake.
    """

    identifier: str
    options: Mapping[str, Any]
    chain: list[str] = field(default_factory=list)
    finished: bool = False
    sensitive: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)

    def check_options_read(self, process: str) -> None:
        """Refuse the options given to ``build`` that no ``builder.option`` call read."""
        unread = sorted(set(self.options) - self.read, key=str)
        if unread:
            known = ", ".join(sorted(self.read)) or "none"
            problem = (
                f"unknown option: no builder.option() call of this build read it (options"
                f" read: {known}); if it is read only when another option is on, read every"
                " option before branching on any"
            )
            raise InvalidArgumentsError(process, dict.fromkeys(map(str, unread), problem))

    def redactor(self, arguments: Mapping[str, Any]) -> Redactor:
        """Hides the sensitive values among ``arguments`` in build errors."""
        return Redactor.of(self.sensitive, [arguments])

    def process_node(
        self,
        definition: type[ProcessDefinition],
        path: str,
        arguments: Arguments,
        description: str | None,
    ) -> ProcessNode:
        """Run ``definition.define_process`` and freeze what it added."""
        if definition.define_process is ProcessDefinition.define_process:
            raise BuildError(f"{definition.__qualname__} does not implement define_process()")
        if len(self.chain) >= MAX_SUB_PROCESS_DEPTH:
            raise BuildError(
                f"sub-processes nested more than {MAX_SUB_PROCESS_DEPTH} deep "
                f"({' > '.join(self.chain[:4])} > ...); does a definition include itself?"
            )
        self.sensitive.update(sensitive_arguments_of(definition))
        self.chain.append(definition.__qualname__)
        where = " > ".join(self.chain) + (f" (at {path})" if path else "")
        block = _OpenBlock(path)
        builder = Builder(self, definition(), block, arguments, description, where)
        try:
            builder._definition.define_process(builder)
        finally:
            block.closed = True
            self.chain.pop()
        return ProcessNode(
            path=path,
            definition=definition,
            mode=definition.process_execution_mode,
            description=description,
            arguments=builder._arguments,
            children=block.frozen_children(),
        )


def build_process(
    definition: type[ProcessDefinition],
    *,
    identifier: str | None,
    options: Mapping[str, Any] | None,
    arguments: Mapping[str, Any],
) -> Process:
    """Build ``definition`` into a frozen :class:`~tasktronaut.process.Process`."""
    name = definition.__qualname__
    if identifier is None:
        identifier = uuid.uuid4().hex
    elif not isinstance(identifier, str):
        raise InvalidStepError(f"{name}: identifier must be a string, not {identifier!r}")
    elif not _IDENTIFIER.fullmatch(identifier):
        problem = f"must be 1-200 letters, digits or ._:@+- characters, not {identifier!r}"
        raise InvalidArgumentsError(name, {"identifier": problem})
    if options is not None and not isinstance(options, Mapping):
        raise InvalidStepError(f"{name}: options must be a mapping of names to booleans")
    reserved = reserved_problems(arguments)
    if reserved:
        raise InvalidArgumentsError(name, reserved)
    state = _BuildState(identifier, MappingProxyType(dict(options or {})))
    root = state.process_node(
        definition, "", Arguments(arguments, sensitive=state.sensitive), None
    )
    state.finished = True
    state.check_options_read(name)
    concurrency = limit_of(definition, dict(root.arguments))
    return Process(
        identifier=identifier, root=root, options=state.options, concurrency=concurrency
    )


class Builder:
    """Adds steps, blocks, iterations and sub-processes to a process under construction."""

    __slots__ = (
        "_arguments",
        "_block",
        "_closed",
        "_definition",
        "_description",
        "_open_inner",
        "_parent",
        "_state",
        "_where",
    )

    def __init__(
        self,
        state: _BuildState,
        definition: ProcessDefinition,
        block: _OpenBlock,
        arguments: Arguments,
        description: str | None,
        where: str,
    ) -> None:
        self._state = state
        self._definition = definition
        self._block = block
        self._arguments = arguments
        self._description = description
        self._where = where
        self._open_inner: str | None = None
        self._closed = False
        self._parent: Builder | None = None

    @property
    def arguments(self) -> Mapping[str, Any]:
        """The arguments in scope for what this builder adds (read-only)."""
        return self._arguments

    def task(
        self,
        method: Callable[..., Any],
        description: str | None = None,
        **options: Unpack[TaskOptionsKwargs],
    ) -> None:
        """Add a step that runs ``method``, a method of the definition being built.

        ``description`` overrides the one from ``@task``; ``options`` (retries,
        queue, time limits...) override the definition's and ``@task``'s.
        """
        self._check_usable("task")
        name = self._step_name(method)
        _check_description(self._where, description)
        problem = signature_problem(method, self._arguments)
        if problem is not None:
            raise InvalidStepError(f"{self._where}: task {name}: {problem}")
        metadata = task_metadata(method)
        step_options = type(self._definition).task_options
        if metadata is not None:
            step_options = step_options.overridden_by(metadata.options)
            if description is None:
                description = metadata.description
        if options:
            owner = f"{self._where}: task {name}"
            step_options = step_options.overridden_by(
                TaskOptions.from_kwargs(owner, dict(options))
            )
        _, path = self._block.reserve()
        self._block.children[-1] = TaskNode(
            path=path,
            definition=type(self._definition),
            method=name,
            description=self._description if description is None else description,
            arguments=self._arguments,
            options=step_options,
        )

    def sequential(self, description: str | None = None) -> AbstractContextManager[Builder]:
        """A block whose steps run one after another; use the builder it yields."""
        return self._nested_block(ExecutionMode.SEQUENTIAL, description)

    def concurrent(self, description: str | None = None) -> AbstractContextManager[Builder]:
        """A block whose steps run at the same time; use the builder it yields."""
        return self._nested_block(ExecutionMode.CONCURRENT, description)

    def sub_process(
        self, definition: type[ProcessDefinition], description: str | None = None
    ) -> None:
        """Inline the process ``definition`` here, with the arguments and options in scope."""
        self._check_usable("sub_process")
        _check_description(self._where, description)
        if not (
            isinstance(definition, type)
            and issubclass(definition, ProcessDefinition)
            and definition is not ProcessDefinition
        ):
            hint = (
                " (pass the class, not an instance)"
                if isinstance(definition, ProcessDefinition)
                else ""
            )
            raise InvalidStepError(
                f"{self._where}: sub_process() takes a ProcessDefinition subclass, "
                f"not {definition!r}{hint}"
            )
        index, path = self._block.reserve()
        inherited = self._description if description is None else description
        try:
            node = self._state.process_node(definition, path, self._arguments, inherited)
        except Exception:
            # define_process may catch this error and go on: free the slot, or the
            # paths of later siblings would skip it and find() would miss them.
            del self._block.children[index]
            raise
        self._block.children[index] = node

    def expected_arguments(self, /, **types: Any) -> None:
        """Validate the arguments in scope against ``types`` and use the coerced values.

        ``None`` as a type accepts anything; a type that admits ``None`` may be
        omitted. All problems are raised together, naming the process.
        """
        self._check_usable("expected_arguments")
        reserved = reserved_problems(types)
        if reserved:
            raise InvalidArgumentsError(self._where, reserved)
        redactor = self._state.redactor(self._arguments)
        validated = validate_arguments(self._where, self._arguments, types, redactor)
        changed = {
            k: v
            for k, v in validated.items()
            if k not in self._arguments or self._arguments[k] is not v
        }
        self._arguments = self._arguments.overlay(changed)

    def option(self, name: str, default: bool = False) -> bool:
        """The boolean option ``name`` given to ``build(options=...)``, else ``default``."""
        self._check_usable("option")
        self._state.read.add(name)
        return validate_option(self._where, name, self._state.options.get(name, default))

    def each(
        self, func: Callable[..., Iterable[Any]], description: str | None = None
    ) -> Iterator[Builder]:
        """Call ``func`` now and yield one builder per item it yields.

        Items are dicts of arguments, or ``(dict, description)`` tuples; each
        item's arguments overlay those in scope. Steps added through the yielded
        builders go into the enclosing block.
        """
        self._check_usable("each")
        _check_description(self._where, description)
        items = self._call_build_function("each", func)
        if not isinstance(items, Iterable) or isinstance(items, (str, bytes, Mapping)):
            raise InvalidStepError(
                f"{self._where}: each({_function_name(func)}) must return an iterable of dicts "
                f"or (dict, description) tuples, not {type(items).__name__}"
            )
        return self._iterate(func, items, description)

    @contextmanager
    def transform(
        self, func: Callable[..., Any], description: str | None = None
    ) -> Iterator[Builder]:
        """Call ``func`` now; the builder yielded has its result overlaid on the arguments.

        ``func`` returns a dict or a ``(dict, description)`` tuple.
        """
        self._check_usable("transform")
        _check_description(self._where, description)
        result = self._call_build_function("transform", func)
        arguments, result_description = self._unpack(f"transform({_function_name(func)})", result)
        inner = self._derived(arguments, result_description, description)
        with self._suspended("transform"):
            yield inner
        inner._close()

    def _iterate(
        self, func: Callable[..., Any], items: Iterable[Any], description: str | None
    ) -> Iterator[Builder]:
        for index, item in enumerate(items):
            self._check_usable("each")
            what = f"each({_function_name(func)}) item {index}"
            arguments, item_description = self._unpack(what, item)
            yield self._derived(arguments, item_description, description)

    @contextmanager
    def _nested_block(self, mode: ExecutionMode, description: str | None) -> Iterator[Builder]:
        verb = mode.value
        self._check_usable(verb)
        _check_description(self._where, description)
        index, path = self._block.reserve()
        block = _OpenBlock(path)
        inherited = self._description if description is None else description
        inner = Builder(
            self._state, self._definition, block, self._arguments, inherited, self._where
        )
        try:
            with self._suspended(verb):
                yield inner
        finally:
            block.closed = True
            self._block.children[index] = BlockNode(
                path, mode, description, block.frozen_children()
            )

    def _derived(
        self, arguments: Mapping[str, Any], own: str | None, fallback: str | None
    ) -> Builder:
        """A builder on the same block with ``arguments`` overlaid on those in scope."""
        description = (
            own if own is not None else fallback if fallback is not None else self._description
        )
        overlaid = self._arguments.overlay(arguments)
        derived = Builder(
            self._state, self._definition, self._block, overlaid, description, self._where
        )
        derived._parent = self
        return derived

    def _call_build_function(self, verb: str, func: Callable[..., Any]) -> Any:
        if not callable(func):
            raise InvalidStepError(f"{self._where}: {verb}() takes a function, not {func!r}")
        problem = signature_problem(func, self._arguments)
        if problem is not None:
            raise InvalidStepError(f"{self._where}: {verb}({_function_name(func)}): {problem}")

        def context() -> Context:
            return Context(
                process_id=self._state.identifier,
                step=_function_name(func),
                description=self._description,
                kwargs=self._arguments,
                attempt=1,
                definition=self._definition,
                path=self._block.path,
            )

        return invoke(func, self._arguments, context)

    def _unpack(self, what: str, value: Any) -> tuple[Mapping[str, Any], str | None]:
        if isinstance(value, tuple) and len(value) == 2:
            arguments, description = value
            if not (description is None or isinstance(description, str)):
                arguments = None  # reported below as a malformed tuple
        else:
            arguments, description = value, None
        if not isinstance(arguments, Mapping) or not all(isinstance(k, str) for k in arguments):
            redactor = self._state.redactor(self._arguments)
            shown = redactor.text(repr(masked(value, redactor.names)))
            raise InvalidStepError(
                f"{self._where}: {what} must be a dict of arguments or a "
                f"(dict, description) tuple, not {shown:.200}"
            )
        reserved = reserved_problems(arguments)
        if reserved:
            raise InvalidStepError(f"{self._where}: {what}: {'; '.join(reserved.values())}")
        return arguments, description

    def _step_name(self, method: object) -> str:
        """The name of ``method`` if it is a step of the definition being built."""
        definition = type(self._definition)
        owner = definition.__qualname__
        if isinstance(method, str):
            raise InvalidStepError(
                f"{self._where}: task() takes a method such as self.{method}, "
                f"not the string {method!r}"
            )
        if not inspect.ismethod(method):
            kind = "lambda" if getattr(method, "__name__", "") == "<lambda>" else "plain function"
            raise InvalidStepError(
                f"{self._where}: task() takes a method of {owner} (self.<name>), "
                f"not the {kind} {method!r:.100}"
            )
        if method.__self__ is not self._definition:
            other = type(method.__self__).__qualname__
            hint = (
                f"; use builder.sub_process({other})"
                if isinstance(method.__self__, ProcessDefinition)
                else ""
            )
            raise InvalidStepError(
                f"{self._where}: task {method.__name__} is a method of {other}, not of {owner}{hint}"
            )
        name = method.__name__
        problem = step_problem(definition, name)
        if problem is None and getattr(definition, name, None) is not method.__func__:
            problem = f"{name!r} is not the name {owner} knows this method by"
        if problem is not None:
            raise InvalidStepError(f"{self._where}: {problem}")
        return name

    def _check_usable(self, verb: str) -> None:
        if self._state.finished:
            raise BuilderStateError(
                f"{self._where}: builder.{verb}() called after the process was built"
            )
        if self._closed or self._block.closed:
            raise BuilderStateError(
                f"{self._where}: builder.{verb}() called on a builder whose block has closed"
            )
        if self._open_inner is not None:
            raise BuilderStateError(
                f"{self._where}: builder.{verb}() called on an outer builder while its "
                f"`with ....{self._open_inner}()` block is open; use the builder that block yields"
            )

    @contextmanager
    def _suspended(self, inner: str) -> Iterator[None]:
        """Refuse this builder, and those it was derived from, while ``inner`` is open."""
        lineage: list[Builder] = []
        builder: Builder | None = self
        while builder is not None and builder._block is self._block:
            if builder._open_inner is None:
                lineage.append(builder)
            builder = builder._parent
        for each in lineage:
            each._open_inner = inner
        try:
            yield
        finally:
            for each in lineage:
                each._open_inner = None

    def _close(self) -> None:
        self._closed = True


def _check_description(where: str, description: object) -> None:
    if description is not None and not isinstance(description, str):
        raise InvalidStepError(f"{where}: description must be a string, not {description!r}")


def _function_name(func: object) -> str:
    return str(getattr(func, "__name__", repr(func)))
