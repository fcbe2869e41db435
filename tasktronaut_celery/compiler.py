"""The compiler: a process tree becomes a flow of steps, joins, chains and chords.

A flow is plain data mirroring the Celery canvas it will become, so it can be
stored with a run, rebuilt on a worker and checked in tests without a broker.
The rules it follows (each avoids a measured hazard of plain canvas):

* a sequential block becomes a chain, flattened into its parent's chain;
* a concurrent block with two or more members becomes the header of a chord
  whose body is whatever follows it, so the next step starts only once every
  member has succeeded; a group never stands alone, inside another group, or
  with one member (a one-member block is its member, an empty one vanishes);
* a concurrent block inside a concurrent block merges into it;
* where nothing follows a chord header (the end of a process, a branch ending
  concurrently, or two concurrent blocks in a row) a *join* is added: a tiny
  task that marks the point where all members are done;
* every process ends at exactly one action, a step or its own join, which
  records that the process completed (and fires ``on_completed``);
* a sub-process that opens with a concurrent section starts with a *begin*, a
  tiny task that fires its ``on_started`` before any of its steps can start
  (the run's start message does this for a top-level process that opens so).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from tasktronaut.backend import ExecutionMode, Node, ProcessNode, TaskNode


@dataclass(frozen=True, slots=True)
class Step:
    """Run the step at ``path``."""

    path: str


@dataclass(frozen=True, slots=True)
class Join:
    """Mark the end of the block or process at ``path``."""

    path: str


@dataclass(frozen=True, slots=True)
class Begin:
    """Mark the start of the sub-process at ``path``."""

    path: str


Action = Step | Join | Begin


@dataclass(frozen=True, slots=True)
class Chain:
    """Run ``items`` one after another."""

    items: tuple[Flow, ...]


@dataclass(frozen=True, slots=True)
class Chord:
    """Run ``header`` members concurrently, then ``body`` once all have succeeded."""

    header: tuple[Flow, ...]
    body: Action


Flow = Step | Join | Begin | Chain | Chord


@dataclass(frozen=True, slots=True)
class CompiledProcess:
    """What compiling a process gives: its flow and what a plan needs to know of it.

    ``completes`` gives, per action, the processes it completes (innermost
    first); ``joins`` the same for every join, by path, including joins that
    complete nothing. ``size`` counts the flow's actions (steps, joins,
    begins); ``has_chord`` says whether any concurrent section needs joining.
    """

    flow: Flow
    completes: Mapping[Action, tuple[str, ...]]
    joins: Mapping[str, tuple[str, ...]]
    size: int
    has_chord: bool


@dataclass(frozen=True, slots=True)
class _Parallel:
    """Concurrent members waiting for what follows them to become a chord."""

    path: str
    members: tuple[Flow, ...]


_Item = Step | Join | Begin | _Parallel


@dataclass
class _Compiler:
    completes: dict[Action, list[str]] = field(default_factory=dict)

    def sequence(self, node: Node) -> list[_Item]:
        """The actions of ``node`` in order, with concurrent sections still pending."""
        if isinstance(node, TaskNode):
            return [Step(node.path)]
        if node.mode is ExecutionMode.SEQUENTIAL:
            items = [item for child in node.children for item in self.sequence(child)]
        else:
            items = self.concurrent(node.path, node.children)
        if isinstance(node, ProcessNode):
            if node.path and items and isinstance(items[0], _Parallel):
                items.insert(0, Begin(node.path))
            if not items or isinstance(items[-1], _Parallel):
                items.append(Join(node.path))
            tail = items[-1]
            assert not isinstance(tail, _Parallel)
            self.completes.setdefault(tail, []).append(node.path)
        return items

    def concurrent(self, path: str, children: tuple[Node, ...]) -> list[_Item]:
        members: list[Flow] = []
        only_member: list[_Item] = []
        for child in children:
            items = self.sequence(child)
            if not items:
                continue
            if len(items) == 1 and isinstance(items[0], _Parallel):
                members.extend(items[0].members)  # a concurrent block merges into this one
                continue
            only_member = items
            ends_open = isinstance(items[-1], _Parallel)
            members.append(self.fold([*items, Join(child.path)] if ends_open else items))
        if len(members) == 1 and only_member:
            return only_member
        return [_Parallel(path, tuple(members))] if members else []

    def fold(self, items: list[_Item]) -> Flow:
        """Turn pending concurrent sections into chords with what follows them."""
        flows: list[Flow] = []
        index = 0
        while index < len(items):
            item = items[index]
            if isinstance(item, _Parallel):
                following = items[index + 1] if index + 1 < len(items) else None
                if isinstance(following, (Step, Join, Begin)):
                    flows.append(Chord(item.members, following))
                    index += 2
                    continue
                flows.append(Chord(item.members, Join(item.path)))
            else:
                flows.append(item)
            index += 1
        return flows[0] if len(flows) == 1 else Chain(tuple(flows))


def compile_process(root: ProcessNode) -> CompiledProcess:
    """Compile a process tree into its flow, with what a plan needs to know of it."""
    compiler = _Compiler()
    flow = compiler.fold(compiler.sequence(root))
    completes = {action: tuple(paths) for action, paths in compiler.completes.items()}
    every = list(actions(flow))
    joins = {a.path: completes.get(a, ()) for a in every if isinstance(a, Join)}
    return CompiledProcess(flow, completes, joins, len(every), _has_chord(flow))


def actions(flow: Flow) -> Iterator[Action]:
    """Every step, join and begin of ``flow``, in canvas order."""
    if isinstance(flow, (Step, Join, Begin)):
        yield flow
    elif isinstance(flow, Chain):
        for item in flow.items:
            yield from actions(item)
    else:
        for member in flow.header:
            yield from actions(member)
        yield flow.body


def _has_chord(flow: Flow) -> bool:
    """Whether ``flow`` holds a chord: a concurrent section that Celery would join."""
    if isinstance(flow, Chord):
        return True
    return isinstance(flow, Chain) and any(_has_chord(item) for item in flow.items)


_KINDS: dict[str, type[Action]] = {"step": Step, "join": Join, "begin": Begin}


def to_data(flow: Flow) -> list[object]:
    """``flow`` as nested lists of strings, for storing with a run."""
    if isinstance(flow, (Step, Join, Begin)):
        return [type(flow).__name__.lower(), flow.path]
    if isinstance(flow, Chain):
        return ["chain", [to_data(item) for item in flow.items]]
    return ["chord", [to_data(member) for member in flow.header], to_data(flow.body)]


def from_data(data: object) -> Flow:
    """The flow :func:`to_data` stored; ``ValueError`` if the data is not one."""
    if not isinstance(data, list) or not data:
        raise ValueError(f"not a flow: {data!r:.100}")
    kind, *rest = data
    if kind in _KINDS and len(rest) == 1 and isinstance(rest[0], str):
        return _KINDS[kind](rest[0])
    if kind == "chain" and len(rest) == 1 and isinstance(rest[0], list):
        return Chain(tuple(from_data(item) for item in rest[0]))
    if kind == "chord" and len(rest) == 2 and isinstance(rest[0], list):
        body = from_data(rest[1])
        if isinstance(body, (Step, Join, Begin)):
            return Chord(tuple(from_data(member) for member in rest[0]), body)
    raise ValueError(f"not a flow: {data!r:.100}")
