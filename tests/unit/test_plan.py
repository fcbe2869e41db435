"""The stored plan: round trips through data and the app's serializer, and refuses bad input."""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from examples.user_guide import (
    ComplexProcess,
    ConcurrentProcess,
    IterativeProcess,
    MainProcess,
    ProcessWithArguments,
)
from tasktronaut import Builder, Process, ProcessDefinition, TaskOptions, TasktronautError
from tasktronaut.registry import reference_of
from tasktronaut_celery import ArgumentNotSerializableError, CorruptPlanError
from tasktronaut_celery.compiler import Step
from tasktronaut_celery.plan import (
    PLAN_VERSION,
    EncodedPlan,
    Plan,
    PlannedProcess,
    decode_plan,
    encode_plan,
    plan_process,
)


class Leaf(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.leaf_step)
        with builder.sequential() as block:
            block.task(self.leaf_block_step)

    def leaf_step(self) -> None: ...
    def leaf_block_step(self) -> None: ...


class Branch(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.branch_step)
        builder.sub_process(Leaf)

    def branch_step(self) -> None: ...


class Trunk(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.trunk_step)
        builder.sub_process(Branch)

    def trunk_step(self) -> None: ...


class ManySteps(ProcessDefinition):
    def items(self, count: int, **_: Any) -> Iterator[dict[str, Any]]:
        for number in range(count):
            yield {"number": number}

    def define_process(self, builder: Builder) -> None:
        builder.task(self.before)
        for iteration in builder.each(self.items):
            iteration.task(self.first)
            iteration.task(self.second)
        builder.task(self.after)

    def before(self, count: int) -> None: ...
    def first(self, number: int, **_: Any) -> None: ...
    def second(self, number: int, **_: Any) -> None: ...
    def after(self, count: int) -> None: ...


class RepeatedStep(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        for _ in range(100):
            builder.task(self.work)

    def work(self, **_: Any) -> None: ...


class TypedValues(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.use)

    def use(self, **_: Any) -> None: ...


class TakesAnything(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(data=None)
        builder.task(self.first)
        builder.task(self.consume)

    def first(self, **_: Any) -> None: ...
    def consume(self, data: Any) -> None: ...


def complex_process() -> Process:
    return ComplexProcess.build(identifier="run-1", items=[f"Item {n}" for n in range(25)])


def assert_same_plan(restored: Plan, original: Plan) -> None:
    assert restored.run_id == original.run_id
    assert restored.processes == original.processes
    assert restored.steps == original.steps
    assert restored.joins == original.joins
    assert restored.flow == original.flow


@pytest.mark.parametrize(
    "process",
    [
        complex_process(),
        MainProcess.build(identifier="run-2"),
        ConcurrentProcess.build(identifier="run-3"),
        Trunk.build(identifier="run-4"),
    ],
    ids=["complex", "main", "concurrent", "nested"],
)
def test_plan_survives_to_data_and_from_data(process: Process) -> None:
    """Steps, processes, joins and flow come back equal from the plan's plain data."""
    plan = plan_process(process)

    assert_same_plan(Plan.from_data(plan.to_data()), plan)
    assert Plan.from_data(plan.to_data()) == plan


class Limited(ProcessDefinition):
    concurrency_limit = 3
    concurrency_policy = "skip"

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(region=str)
        builder.task(self.work)

    def concurrency_key(self, **arguments: Any) -> str:
        return f"limited-{arguments['region']}"

    def work(self) -> None:
        pass


def test_the_concurrency_limit_is_planned_and_read_back_from_json() -> None:
    """The key the build made, the limit, policy and expiry travel with the stored plan."""
    plan = plan_process(Limited.build(region="eu"))

    decoded = decode_plan(encode_plan(plan, "json"), ["json"])

    assert decoded.concurrency == plan.concurrency
    assert plan.concurrency is not None
    assert (plan.concurrency.key, plan.concurrency.limit) == ("limited-eu", 3)
    assert plan.concurrency.policy.value == "skip"
    assert plan_process(complex_process()).concurrency is None


def test_plan_survives_the_json_serializer() -> None:
    """A plan encoded with the json serializer decodes to an equal plan."""
    plan = plan_process(complex_process())
    encoded = encode_plan(plan, "json")

    assert encoded.content_type == "application/json"
    assert isinstance(encoded.body, bytes)
    assert_same_plan(decode_plan(encoded, ["json"]), plan)


def test_plan_lists_processes_steps_and_joins_by_path() -> None:
    """The plan names each process by its registry reference and each step by its owner."""
    plan = plan_process(MainProcess.build(identifier="run-1"))

    assert plan.run_id == "run-1"
    assert plan.root == PlannedProcess("", reference_of(MainProcess), "MainProcess")
    assert plan.processes["1"].name == "ValidationProcess"
    assert list(plan.steps) == ["0", "1.0", "1.1", "2"]
    assert plan.steps["1.0"].process == "1"
    assert plan.steps["1.0"].description == "Check the schema"
    assert plan.step_name("1.1") == "ValidationProcess.check_constraints"
    assert plan.step_name("2") == "MainProcess.save_data"
    assert plan.joins == {}


def test_plan_data_holds_the_flow_and_version() -> None:
    """The plain data names its version and run and stores the flow as nested lists."""
    data = plan_process(ConcurrentProcess.build(identifier="run-1")).to_data()

    assert data["version"] == PLAN_VERSION
    assert data["run"] == "run-1"
    assert data["flow"] == [
        "chord",
        [["step", "0"], ["step", "1"], ["step", "2"]],
        ["join", ""],
    ]
    assert data["joins"] == {"": [""]}


def test_steps_in_one_scope_share_one_stored_scope() -> None:
    """A hundred steps added with the same arguments in scope store those arguments once."""
    data = plan_process(RepeatedStep.build(big=list(range(1000)))).to_data()

    assert len(data["steps"]) == 100
    assert data["scopes"] == [[None, {"big": list(range(1000))}]]


def test_each_iteration_stores_its_scope_once_for_all_its_steps() -> None:
    """Each over 100 items with two steps each stores 101 scopes, not one per step."""
    plan = plan_process(ManySteps.build(count=100))
    data = plan.to_data()

    assert len(data["steps"]) == 202
    assert len(data["scopes"]) == 101
    assert data["scopes"][0] == [None, {"count": 100}]
    assert data["steps"]["1"][3] == data["steps"]["2"][3]
    assert data["steps"]["0"][3] == data["steps"]["201"][3] == 0
    assert Plan.from_data(data).steps["101"].arguments == {"count": 100, "number": 50}


def test_encoded_plan_grows_linearly_with_the_number_of_each_items() -> None:
    """Doubling the files of IterativeProcess at most roughly doubles its stored plan.

    Each iteration's scope holds every argument in scope, including the whole
    ``files`` list, so without sharing the outer arguments the plan grows as N^2.
    """

    def size(count: int) -> int:
        files = [f"file-{n:05}.csv" for n in range(count)]
        return len(encode_plan(plan_process(IterativeProcess.build(files=files)), "json").body)

    assert size(1000) < 2.5 * size(500)


def test_json_keeps_the_types_of_date_datetime_decimal_and_uuid_arguments() -> None:
    """Kombu's json serializer brings date, datetime, Decimal and UUID back with their types."""
    values: dict[str, Any] = {
        "day": datetime.date(2024, 1, 31),
        "moment": datetime.datetime(2024, 1, 31, 12, 30, 5, 123456, tzinfo=datetime.timezone.utc),
        "naive": datetime.datetime(2024, 2, 1, 8, 0),
        "amount": decimal.Decimal("10.50"),
        "key": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "plain": ["text", 1, 2.5, None, True],
    }
    plan = plan_process(TypedValues.build(**values))

    arguments = decode_plan(encode_plan(plan, "json"), ["json"]).steps["0"].arguments

    assert dict(arguments) == values
    assert {name: type(value) for name, value in arguments.items()} == {
        name: type(value) for name, value in values.items()
    }
    assert str(arguments["amount"]) == "10.50"
    assert arguments["moment"].tzinfo == datetime.timezone.utc


def test_unserializable_argument_names_the_step_and_the_argument() -> None:
    """An arbitrary object as an argument raises ArgumentNotSerializableError naming where."""
    plan = plan_process(TakesAnything.build(data=object()))

    with pytest.raises(ArgumentNotSerializableError) as raised:
        encode_plan(plan, "json")

    message = str(raised.value)
    assert isinstance(raised.value, TypeError)
    assert isinstance(raised.value, TasktronautError)
    assert "step 0 " in message
    assert "TakesAnything.first" in message
    assert "'data'" in message
    assert "json" in message


def test_pickle_encoded_plan_is_refused_when_only_json_is_accepted() -> None:
    """A plan stored as pickle is not decoded by an app that accepts json only."""
    plan = plan_process(MainProcess.build(identifier="run-1"))
    encoded = encode_plan(plan, "pickle")

    assert encoded.content_type == "application/x-python-serialize"
    with pytest.raises(CorruptPlanError):
        decode_plan(encoded, ["json"])
    with pytest.raises(CorruptPlanError):
        decode_plan(encoded, ["application/json"])
    assert_same_plan(decode_plan(encoded, ["pickle"]), plan)


def test_undecodable_body_is_a_corrupt_plan() -> None:
    """Bytes that are not JSON raise CorruptPlanError."""
    encoded = EncodedPlan("application/json", "utf-8", b"{not json")

    with pytest.raises(CorruptPlanError):
        decode_plan(encoded, ["json"])


def valid_data() -> dict[str, Any]:
    return plan_process(MainProcess.build(identifier="run-1")).to_data()


@pytest.mark.parametrize(
    "data",
    [
        {"version": 99},
        {**valid_data(), "version": 99},
        {"version": PLAN_VERSION},
        {key: value for key, value in valid_data().items() if key != "flow"},
        {key: value for key, value in valid_data().items() if key != "scopes"},
        {key: value for key, value in valid_data().items() if key != "run"},
        {**valid_data(), "flow": ["loop", []]},
        {**valid_data(), "flow": ["chord", [["step", "0"]], ["chain", []]]},
        {**valid_data(), "scopes": []},
        {**valid_data(), "steps": {"0": ["", "load_data"]}},
        {**valid_data(), "processes": {"": ["only-a-reference"]}},
        None,
        "plan",
        [1, 2],
    ],
    ids=[
        "only-version-99",
        "version-99",
        "only-version",
        "no-flow",
        "no-scopes",
        "no-run",
        "unknown-flow-kind",
        "chord-body-not-an-action",
        "scope-index-out-of-range",
        "short-step",
        "short-process",
        "none",
        "string",
        "list",
    ],
)
def test_garbage_data_is_a_corrupt_plan(data: Any) -> None:
    """Data that is not a plan of this version raises CorruptPlanError."""
    with pytest.raises(CorruptPlanError, match="stored plan is not readable"):
        Plan.from_data(data)


@pytest.mark.parametrize("key", ["processes", "steps", "joins"])
def test_mapping_stored_as_a_list_is_a_corrupt_plan(key: str) -> None:
    """A plan whose processes, steps or joins are a list instead of a mapping is corrupt."""
    with pytest.raises(CorruptPlanError):
        Plan.from_data({**valid_data(), key: []})


def test_json_that_is_not_a_plan_is_a_corrupt_plan() -> None:
    """Valid JSON of the wrong shape raises CorruptPlanError from decode_plan."""
    for body in (b"null", b"[1, 2]", b'{"version": 1}'):
        with pytest.raises(CorruptPlanError):
            decode_plan(EncodedPlan("application/json", "utf-8", body), ["json"])


def test_lineage_of_nested_sub_processes_is_innermost_first() -> None:
    """Plan.lineage lists the processes that are or contain a path, innermost to root."""
    plan = plan_process(Trunk.build(identifier="run-1"))

    assert set(plan.processes) == {"", "1", "1.1"}
    assert plan.lineage("1.1.0") == ("1.1", "1", "")
    assert plan.lineage("1.1.1.0") == ("1.1", "1", "")
    assert plan.lineage("1.1") == ("1.1", "1", "")
    assert plan.lineage("") == ("",)
    assert plan.lineage("1.0") == ("1", "")
    assert plan.lineage("0") == ("",)
    assert plan.steps["1.1.1.0"].process == "1.1"
    assert plan.step_name("1.1.1.0") == "Leaf.leaf_block_step"
    assert plan.steps["1.1.1.0"].completes == ("1.1", "1", "")
    assert plan.steps["1.1.0"].completes == ()


def test_step_arguments_and_options_are_planned() -> None:
    """A step's planned arguments are those in scope, and its options those set."""
    process = ProcessWithArguments.build(
        name="report", count="3", date="2024-01-31", tags=["a"], data={"k": 1}
    )
    step = plan_process(process).steps["0"]

    assert step.method == "process_data"
    assert step.description == "Processes data input"
    assert step.arguments["count"] == 3
    assert step.arguments["date"] == datetime.date(2024, 1, 31)
    assert step.arguments["data"] == {"k": 1}
    assert step.options == TaskOptions()
    assert step.completes == ("",)
    assert Step("0") == plan_process(process).flow
