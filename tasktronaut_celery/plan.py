"""The plan of a run: everything a worker needs, stored once with the run.

Messages carry only a run id and a path; the worker reads the step's
definition, method, arguments and options from the plan, so sensitive
arguments never travel in a message (the plan, with their real values, is
stored in the app's result backend). A plan is encoded
with the app's own task serializer (JSON by default, which kombu extends to
``date``, ``datetime``, ``Decimal`` and ``UUID``), so arguments arrive with the
same types a message would have given them, and only content types the app
accepts are ever decoded. Models, enums and dataclasses are stored as their
type and value, and dicts a decoder would misread are escaped: see
:mod:`tasktronaut_celery.values`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kombu.serialization import dumps, loads, prepare_accept_content
from kombu.utils.encoding import bytes_to_str

from tasktronaut import Process, TaskOptions, paths
from tasktronaut.backend import Arguments, ProcessNode, Redactor, TaskNode, reference_of, walk

from . import compiler
from .dispatch import Dispatch, choose
from .errors import ArgumentNotSerializableError, CorruptPlanError
from .values import decode_value, encode_value

PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step as the worker sees it."""

    path: str
    process: str
    method: str
    description: str | None = field(repr=False)  # may quote a sensitive value
    arguments: Mapping[str, Any]
    options: TaskOptions
    completes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PlannedProcess:
    """A (sub-)process of the run: its definition reference and display name."""

    path: str
    definition: str
    name: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A run's processes, steps, joins and flow, keyed by path.

    ``sensitive_arguments`` are the names the run's definitions mark
    sensitive; ``redactor`` hides their values in what workers show.
    """

    run_id: str
    processes: Mapping[str, PlannedProcess]
    steps: Mapping[str, PlannedStep]
    joins: Mapping[str, tuple[str, ...]]
    flow: compiler.Flow
    dispatch: Dispatch = Dispatch.CANVAS
    sensitive_arguments: frozenset[str] = frozenset()
    redactor: Redactor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scopes = {id(step.arguments): step.arguments for step in self.steps.values()}
        redactor = Redactor.of(self.sensitive_arguments, scopes.values())
        object.__setattr__(self, "redactor", redactor)  # derived once; the plan is frozen

    @property
    def root(self) -> PlannedProcess:
        """The top-level process."""
        return self.processes[""]

    def step_name(self, path: str) -> str:
        """``Definition.method`` of the step at ``path``."""
        step = self.steps[path]
        return f"{self.processes[step.process].name}.{step.method}"

    def lineage(self, path: str) -> tuple[str, ...]:
        """Paths of the processes that are or contain ``path``, innermost first, root last."""
        found = [path] if path in self.processes else []
        found.extend(p for p in paths.ancestors(path) if p in self.processes)
        return tuple(found)

    def to_data(self) -> dict[str, Any]:
        """The plan as plain data; each layer of arguments is stored once, however shared."""
        layers = _Layers()
        steps = {
            path: [
                step.process,
                step.method,
                step.description,
                layers.index(step.arguments),
                step.options.as_dict(),
                list(step.completes),
            ]
            for path, step in self.steps.items()
        }
        return {
            "version": PLAN_VERSION,
            "run": self.run_id,
            "processes": {p.path: [p.definition, p.name] for p in self.processes.values()},
            "scopes": layers.stored,
            "steps": steps,
            "joins": {path: list(completes) for path, completes in self.joins.items()},
            "flow": compiler.to_data(self.flow),
            "dispatch": self.dispatch.value,
            "sensitive": sorted(self.sensitive_arguments),
        }

    @classmethod
    def from_data(cls, data: Any) -> Plan:
        """The plan :meth:`to_data` produced; :class:`CorruptPlanError` if it is not one."""
        try:
            if data["version"] != PLAN_VERSION:
                raise ValueError(f"plan version {data['version']!r}, expected {PLAN_VERSION}")
            processes = {
                path: PlannedProcess(path, str(reference), str(name))
                for path, (reference, name) in data["processes"].items()
            }
            sensitive = frozenset(data.get("sensitive", ()))  # absent from older plans
            if not all(isinstance(name, str) for name in sensitive):
                raise TypeError("sensitive argument names are not all strings")
            scopes = _Layers.restore(data["scopes"], sensitive)
            steps = {
                path: PlannedStep(
                    path,
                    process,
                    method,
                    description,
                    scopes[scope],
                    TaskOptions(**options),
                    tuple(completes),
                )
                for path, (process, method, description, scope, options, completes) in data[
                    "steps"
                ].items()
            }
            joins = {path: tuple(completes) for path, completes in data["joins"].items()}
            flow = compiler.from_data(data["flow"])
            dispatch = Dispatch(data["dispatch"])
            plan = cls(str(data["run"]), processes, steps, joins, flow, dispatch, sensitive)
        except CorruptPlanError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as error:
            raise CorruptPlanError(f"stored plan is not readable: {error!r}") from None
        plan._check_consistent()
        return plan

    def _check_consistent(self) -> None:
        """Refuse a plan whose flow names steps or joins it does not define."""
        if "" not in self.processes:
            raise CorruptPlanError("stored plan has no root process")
        for action in compiler.actions(self.flow):
            known: Mapping[str, object] = self.processes
            if isinstance(action, compiler.Step):
                known = self.steps
            elif isinstance(action, compiler.Join):
                known = self.joins
            if action.path not in known or action == compiler.Begin(""):
                raise CorruptPlanError(f"stored plan's flow names an unknown {action}")
        for step in self.steps.values():
            if step.process not in self.processes:
                raise CorruptPlanError(f"step {step.path} belongs to an unknown process")


class _Layers:
    """Argument layers numbered in the order stored, each parent before its children.

    Each layer's values are stored as :func:`~tasktronaut_celery.values.encode_value`
    makes them, the layer itself being a dict of them.
    """

    def __init__(self) -> None:
        self.stored: list[list[Any]] = []
        self._numbers: dict[int, int] = {}

    def index(self, arguments: Mapping[str, Any]) -> int:
        number = self._numbers.get(id(arguments))
        if number is None:
            if isinstance(arguments, Arguments):
                parent = arguments.parent
                parent_number = None if parent is None else self.index(parent)
                layer = [parent_number, encode_value(dict(arguments.own))]
            else:
                layer = [None, encode_value(dict(arguments))]
            number = self._numbers[id(arguments)] = len(self.stored)
            self.stored.append(layer)
        return number

    @staticmethod
    def restore(stored: list[list[Any]], sensitive: frozenset[str]) -> list[Arguments]:
        layers: list[Arguments] = []
        for parent, stored_own in stored:
            own = decode_value(stored_own)
            if parent is not None and not 0 <= parent < len(layers):
                raise ValueError(f"argument layer {len(layers)} has no parent {parent}")
            if not isinstance(own, dict):
                raise TypeError(f"argument layer {len(layers)} is not a mapping")
            layers.append(Arguments(own, None if parent is None else layers[parent], sensitive))
        return layers


def plan_process(process: Process, canvas_limit: int | None = None, chords: bool = True) -> Plan:
    """Compile ``process`` and collect what its steps need at run time.

    How the run is dispatched follows from ``canvas_limit`` and ``chords``
    by the rule of :func:`~tasktronaut_celery.dispatch.choose`.
    """
    compiled = compiler.compile_process(process.root)
    processes: dict[str, PlannedProcess] = {}
    steps: dict[str, PlannedStep] = {}
    for node in walk(process.root):
        if isinstance(node, ProcessNode):
            processes[node.path] = PlannedProcess(
                node.path, reference_of(node.definition), node.name
            )
        elif isinstance(node, TaskNode):
            steps[node.path] = PlannedStep(
                path=node.path,
                process=next(p for p in paths.ancestors(node.path) if p in processes),
                method=node.method,
                description=node.description,
                arguments=node.arguments,
                options=node.options,
                completes=compiled.completes.get(compiler.Step(node.path), ()),
            )
    return Plan(
        process.identifier,
        processes,
        steps,
        compiled.joins,
        compiled.flow,
        choose(compiled, canvas_limit, chords),
        process.sensitive_arguments,
    )


@dataclass(frozen=True, slots=True)
class EncodedPlan:
    """A plan serialized with the app's serializer, as stored."""

    content_type: str
    content_encoding: str
    body: bytes = field(repr=False)  # it holds the arguments, sensitive ones too


def encode_plan(plan: Plan, serializer: str) -> EncodedPlan:
    """Serialize ``plan``; if an argument cannot be, name the step and the argument."""
    try:
        content_type, content_encoding, body = dumps(plan.to_data(), serializer=serializer)
    except Exception as error:
        raise _unserializable(plan, serializer, error) from None
    if isinstance(body, str):
        body = body.encode(content_encoding if content_encoding != "binary" else "utf-8")
    return EncodedPlan(content_type, content_encoding, body)


def decode_plan(encoded: EncodedPlan, accept: Iterable[str] | None) -> Plan:
    """The plan in ``encoded``, refusing content types the app does not accept.

    ``accept`` is the app's ``accept_content`` (serializer names or content types).
    """
    accepted = prepare_accept_content(accept) if accept is not None else None
    body: Any = encoded.body
    if encoded.content_encoding != "binary":
        body = bytes_to_str(body)
    try:
        data = loads(body, encoded.content_type, encoded.content_encoding, accept=accepted)
    except Exception as error:
        raise CorruptPlanError(f"stored plan cannot be decoded: {error!r}") from None
    return Plan.from_data(data)


def _unserializable(plan: Plan, serializer: str, error: Exception) -> ArgumentNotSerializableError:
    for path, step in plan.steps.items():
        for name, value in step.arguments.items():
            try:
                dumps(encode_value(value), serializer=serializer)
            except Exception as problem:
                return ArgumentNotSerializableError(
                    plan.redactor.text(
                        f"{plan.root.name}: step {path} ({plan.step_name(path)}): argument "
                        f"{name!r} ({type(value).__qualname__}) cannot be serialized with the "
                        f"app's {serializer!r} serializer: {problem}; nothing was sent"
                    )
                )
    return ArgumentNotSerializableError(
        plan.redactor.text(
            f"{plan.root.name}: the plan cannot be serialized with {serializer!r}: {error}; "
            "nothing was sent"
        )
    )
