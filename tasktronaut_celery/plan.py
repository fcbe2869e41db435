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
:mod:`tasktronaut_celery.values`. Enqueue reads every layer of arguments back
before anything is stored, so a value that would reach its step as anything but
what the build made is refused there, not found out on a worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kombu.serialization import dumps, loads, prepare_accept_content
from kombu.utils.encoding import bytes_to_str

from tasktronaut import Process, TaskOptions, paths
from tasktronaut.backend import (
    Arguments,
    ConcurrencyLimit,
    ConcurrencyPolicy,
    ProcessNode,
    Redactor,
    TaskNode,
    reference_of,
    walk,
)

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
class BuildInputs:
    """The top-level definition's arguments and options: what its tree was built from.

    Kept so that a resume can check that the definition still builds the
    same tree (plans stored before they were kept have none).
    """

    arguments: Mapping[str, Any]
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Plan:
    """A run's processes, steps, joins and flow, keyed by path.

    ``sensitive_arguments`` are the names the run's definitions mark
    sensitive; ``redactor`` hides their values in what workers show.
    ``concurrency`` is the limit the run executes under, whose slot its end frees.
    """

    run_id: str
    processes: Mapping[str, PlannedProcess]
    steps: Mapping[str, PlannedStep]
    joins: Mapping[str, tuple[str, ...]]
    flow: compiler.Flow
    dispatch: Dispatch = Dispatch.CANVAS
    sensitive_arguments: frozenset[str] = frozenset()
    built_from: BuildInputs | None = field(default=None, repr=False)  # holds the arguments
    concurrency: ConcurrencyLimit | None = None
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
        return self._data(_Layers())

    def _data(self, layers: _Layers) -> dict[str, Any]:
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
        built_from = self.built_from
        build = None
        if built_from is not None:
            build = [layers.index(built_from.arguments), dict(built_from.options)]
        return {
            "version": PLAN_VERSION,
            "run": self.run_id,
            "build": build,
            "processes": {p.path: [p.definition, p.name] for p in self.processes.values()},
            "scopes": layers.stored,
            "steps": steps,
            "joins": {path: list(completes) for path, completes in self.joins.items()},
            "flow": compiler.to_data(self.flow),
            "dispatch": self.dispatch.value,
            "sensitive": sorted(self.sensitive_arguments),
            "concurrency": _concurrency_data(self.concurrency),
        }

    @classmethod
    def from_data(cls, data: Any, typed_values: bool = True) -> Plan:
        """The plan :meth:`to_data` produced; :class:`CorruptPlanError` if it is not one.

        Without ``typed_values``, argument values of a model, enum or dataclass
        stay their JSON dumps: see :func:`decode_plan`.
        """
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
            scopes = _Layers.restore(data["scopes"], sensitive, typed_values)
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
            build = data.get("build")  # absent from older plans
            built_from = None
            if build is not None:
                arguments, options = build
                built_from = BuildInputs(scopes[arguments], dict(options))
            concurrency = _concurrency_from(data.get("concurrency"))  # absent from older plans
            plan = cls(
                str(data["run"]),
                processes,
                steps,
                joins,
                flow,
                dispatch,
                sensitive,
                built_from,
                concurrency,
            )
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


def _concurrency_data(limit: ConcurrencyLimit | None) -> list[Any] | None:
    """The limit as the plan stores it: key, limit, policy and expiry in seconds."""
    if limit is None:
        return None
    return [limit.key, limit.limit, limit.policy.value, limit.expires.total_seconds()]


def _concurrency_from(data: list[Any] | None) -> ConcurrencyLimit | None:
    """The limit :func:`_concurrency_data` stored (``None`` in a plan of an unlimited run)."""
    if data is None:
        return None
    key, limit, policy, expires = data
    return ConcurrencyLimit(
        str(key), int(limit), ConcurrencyPolicy(policy), timedelta(seconds=expires)
    )


class _Layers:
    """Argument layers numbered in the order stored, each parent before its children.

    Each layer's values are stored as :func:`~tasktronaut_celery.values.encode_value`
    makes them, the layer itself being a dict of them; ``built`` holds the values
    themselves, layer by layer, for :func:`encode_plan` to compare.
    """

    def __init__(self) -> None:
        self.stored: list[list[Any]] = []
        self.built: list[Mapping[str, Any]] = []
        self._numbers: dict[int, int] = {}

    def index(self, arguments: Mapping[str, Any]) -> int:
        number = self._numbers.get(id(arguments))
        if number is None:
            parent_number = None
            own = arguments
            if isinstance(arguments, Arguments):
                parent = arguments.parent
                parent_number = None if parent is None else self.index(parent)
                own = arguments.own
            number = self._numbers[id(arguments)] = len(self.stored)
            self.stored.append([parent_number, encode_value(dict(own))])
            self.built.append(own)
        return number

    @staticmethod
    def restore(
        stored: list[list[Any]], sensitive: frozenset[str], typed: bool
    ) -> list[Arguments]:
        layers: list[Arguments] = []
        for parent, stored_own in stored:
            own = decode_value(stored_own, typed)
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
        BuildInputs(process.root.arguments, process.options),
        process.concurrency,
    )


@dataclass(frozen=True, slots=True)
class EncodedPlan:
    """A plan serialized with the app's serializer, as stored."""

    content_type: str
    content_encoding: str
    body: bytes = field(repr=False)  # it holds the arguments, sensitive ones too


def encode_plan(plan: Plan, serializer: str) -> EncodedPlan:
    """Serialize ``plan`` and read its arguments back: they must equal what the build made.

    If an argument cannot be serialized, or would reach its step as another
    value (tuples turning into lists aside), the error names the step and the
    argument. Each layer of arguments is read back once, however many steps
    share it.
    """
    layers = _Layers()
    try:
        encoded = _serialized(plan._data(layers), serializer)
        read = _read(encoded, [encoded.content_type])["scopes"]
    except Exception as error:
        raise _refused(plan, serializer, error) from None
    for (_, stored_own), built in zip(read, layers.built, strict=True):
        if not _arrives_equal(stored_own, built):
            raise _refused(plan, serializer, None)
    return encoded


def decode_plan(
    encoded: EncodedPlan, accept: Iterable[str] | None, *, typed_values: bool = True
) -> Plan:
    """The plan in ``encoded``, refusing content types the app does not accept.

    ``accept`` is the app's ``accept_content`` (serializer names or content types).
    Workers, which pass arguments to steps, rebuild models, enums and
    dataclasses and need their types imported. Clients, which only show or
    cancel a run, read it without ``typed_values``: those arguments stay their
    JSON dumps, and no argument type is needed.
    """
    try:
        data = _read(encoded, accept)
    except Exception as error:
        raise CorruptPlanError(f"stored plan cannot be decoded: {error!r}") from None
    return Plan.from_data(data, typed_values)


def _serialized(data: Any, serializer: str) -> EncodedPlan:
    content_type, content_encoding, body = dumps(data, serializer=serializer)
    if isinstance(body, str):
        body = body.encode(content_encoding if content_encoding != "binary" else "utf-8")
    return EncodedPlan(content_type, content_encoding, body)


def _read(encoded: EncodedPlan, accept: Iterable[str] | None) -> Any:
    accepted = prepare_accept_content(accept) if accept is not None else None
    body: Any = encoded.body
    if encoded.content_encoding != "binary":
        body = bytes_to_str(body)
    return loads(body, encoded.content_type, encoded.content_encoding, accept=accepted)


def _arrives_equal(stored: Any, built: Any) -> bool:
    """Whether ``stored``, as read back, decodes to a value equal to ``built``."""
    try:
        return bool(_as_sent(decode_value(stored)) == _as_sent(built))
    except Exception:
        return False


def _as_sent(value: Any) -> Any:
    """``value`` with its tuples as lists, as most serializers send them."""
    if isinstance(value, dict):
        return {key: _as_sent(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_sent(item) for item in value]
    return value


def _refused(plan: Plan, serializer: str, error: Exception | None) -> ArgumentNotSerializableError:
    """The error naming the first argument that cannot be serialized or arrives different."""
    seen: set[int] = set()
    for path, step in plan.steps.items():
        arguments: Mapping[str, Any] | None = step.arguments
        while arguments is not None and id(arguments) not in seen:
            seen.add(id(arguments))
            own = arguments.own if isinstance(arguments, Arguments) else arguments
            for name, value in own.items():
                problem = _round_trip_problem(plan.redactor, name, value, serializer)
                if problem is not None:
                    return ArgumentNotSerializableError(
                        plan.redactor.text(
                            f"{plan.root.name}: step {path} ({plan.step_name(path)}): argument "
                            f"{name!r} ({type(value).__qualname__}) {problem}; nothing was sent"
                        )
                    )
            arguments = arguments.parent if isinstance(arguments, Arguments) else None
    reason = "it does not decode to the arguments it was built with" if error is None else error
    return ArgumentNotSerializableError(
        plan.redactor.text(
            f"{plan.root.name}: the plan cannot be serialized with {serializer!r}: {reason}; "
            "nothing was sent"
        )
    )


def _round_trip_problem(redactor: Redactor, name: str, value: Any, serializer: str) -> str | None:
    """Why ``value`` of argument ``name`` would not reach its step as itself, if it would not.

    What it would arrive as is shown as :meth:`Redactor.shown` shows it: it may
    be derived from a sensitive value without being equal to it.
    """
    try:
        encoded = _serialized(encode_value(value), serializer)
    except Exception as problem:
        return f"cannot be serialized with the app's {serializer!r} serializer: {problem}"
    survive = f"does not survive the round trip on the app's {serializer!r} serializer"
    try:
        arrived = decode_value(_read(encoded, [encoded.content_type]))
    except Exception as problem:
        shown = type(problem).__name__ if name in redactor.names else problem
        return f"{survive}: it cannot be read back ({shown})"
    if _as_sent(arrived) != _as_sent(value):
        return f"{survive}: it arrives as {redactor.shown(name, arrived)}"
    return None
