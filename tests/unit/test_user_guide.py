"""Every process of the user guide builds into exactly the tree the guide describes."""

from __future__ import annotations

import datetime

import pytest

from examples.user_guide import (
    ComplexProcess,
    ConcurrentProcess,
    ConditionalProcess,
    IterativeProcess,
    IterativeProcessWithDescriptions,
    MainProcess,
    MixedProcess,
    MyProcess,
    ProcessWithArguments,
    SequentialProcess,
    TransformingProcess,
    TransformingProcessWithDescription,
    ValidationProcess,
)
from tasktronaut import (
    BlockNode,
    Builder,
    ExecutionMode,
    InvalidArgumentsError,
    Process,
    ProcessDefinition,
    ProcessNode,
    TaskNode,
)

SEQUENTIAL = ExecutionMode.SEQUENTIAL
CONCURRENT = ExecutionMode.CONCURRENT


def outline(process: Process) -> list[tuple[str, str, str | None]]:
    """Each step as (path, method, description), in definition order."""
    return [(step.path, step.method, step.description) for step in process.steps()]


def shape(process: Process) -> list[tuple[str, str, str]]:
    """Each node as (path, node type, mode or method), in walk order."""
    result = []
    for node in process.walk():
        what = node.method if isinstance(node, TaskNode) else node.mode.value
        result.append((node.path, type(node).__name__, what))
    return result


def test_my_process_is_three_sequential_steps_in_order() -> None:
    """MyProcess runs step_one, step_two and step_three one after another."""
    process = MyProcess.build()

    assert process.definition is MyProcess
    assert shape(process) == [
        ("", "ProcessNode", "sequential"),
        ("0", "TaskNode", "step_one"),
        ("1", "TaskNode", "step_two"),
        ("2", "TaskNode", "step_three"),
    ]
    assert all(step.definition is MyProcess for step in process.steps())
    assert all(dict(step.arguments) == {} for step in process.steps())


def test_my_process_renders_as_indented_text() -> None:
    """The text rendering of MyProcess lists each step with its path."""
    assert MyProcess.build().render() == (
        "MyProcess (sequential process)\n├── 0 step_one\n├── 1 step_two\n└── 2 step_three"
    )


def test_sequential_process_has_a_sequential_root() -> None:
    """An explicit SEQUENTIAL mode gives a sequential root with task_a, task_b, task_c."""
    process = SequentialProcess.build()

    assert process.root.mode is SEQUENTIAL
    assert outline(process) == [
        ("0", "task_a", None),
        ("1", "task_b", None),
        ("2", "task_c", None),
    ]


def test_concurrent_process_has_a_concurrent_root() -> None:
    """process_execution_mode CONCURRENT makes the root process concurrent."""
    process = ConcurrentProcess.build()

    assert process.root.mode is CONCURRENT
    assert shape(process) == [
        ("", "ProcessNode", "concurrent"),
        ("0", "TaskNode", "task_a"),
        ("1", "TaskNode", "task_b"),
        ("2", "TaskNode", "task_c"),
    ]


def test_mixed_process_nests_a_sequential_and_a_concurrent_block() -> None:
    """MixedProcess puts its blocks between setup and cleanup, with dotted child paths."""
    process = MixedProcess.build()

    assert shape(process) == [
        ("", "ProcessNode", "sequential"),
        ("0", "TaskNode", "setup"),
        ("1", "BlockNode", "sequential"),
        ("1.0", "TaskNode", "step_one"),
        ("1.1", "TaskNode", "step_two"),
        ("2", "BlockNode", "concurrent"),
        ("2.0", "TaskNode", "parallel_task_a"),
        ("2.1", "TaskNode", "parallel_task_b"),
        ("3", "TaskNode", "cleanup"),
    ]
    assert [node.description for node in process.walk()] == [None] * 9


def test_mixed_process_renders_as_indented_text() -> None:
    """Blocks render with their mode and their children indented beneath them."""
    assert MixedProcess.build().render() == "\n".join(
        [
            "MixedProcess (sequential process)",
            "├── 0 setup",
            "├── 1 [sequential]",
            "│   ├── 1.0 step_one",
            "│   └── 1.1 step_two",
            "├── 2 [concurrent]",
            "│   ├── 2.0 parallel_task_a",
            "│   └── 2.1 parallel_task_b",
            "└── 3 cleanup",
        ]
    )


def test_process_with_arguments_coerces_values_to_the_expected_types() -> None:
    """Strings from a command line become int and date; omitted Optional becomes None."""
    payload = object()
    process = ProcessWithArguments.build(
        name="report", count="3", date="2024-01-31", tags=("a", "b"), data=payload
    )

    (step,) = process.steps()
    assert (step.path, step.method, step.description) == (
        "0",
        "process_data",
        "Processes data input",
    )
    assert dict(step.arguments) == {
        "name": "report",
        "count": 3,
        "date": datetime.date(2024, 1, 31),
        "tags": ["a", "b"],
        "description": None,
        "data": payload,
    }
    assert type(step.arguments["count"]) is int
    assert type(step.arguments["date"]) is datetime.date
    assert step.arguments["data"] is payload
    assert dict(process.root.arguments) == dict(step.arguments)


@pytest.mark.parametrize("data", [None, 42, "text", {"nested": [1, 2]}])
def test_process_with_arguments_accepts_anything_for_an_untyped_argument(data: object) -> None:
    """``data=None`` in expected_arguments lets any value through unchanged."""
    process = ProcessWithArguments.build(
        name="n", count=1, date=datetime.date(2024, 1, 1), tags=[], data=data
    )

    assert next(process.steps()).arguments["data"] == data


def test_process_with_arguments_fills_omitted_optional_arguments_with_none() -> None:
    """Omitted ``description`` (Optional) and ``data`` (any) are in scope as None."""
    process = ProcessWithArguments.build(name="n", count=1, date="2024-02-29", tags=["x"])

    arguments = next(process.steps()).arguments
    assert arguments["description"] is None
    assert arguments["data"] is None


def test_process_with_arguments_keeps_a_given_optional_argument() -> None:
    """A value given for an Optional argument is kept, not replaced by None."""
    process = ProcessWithArguments.build(
        name="n", count=1, date="2024-02-29", tags=["x"], description="monthly"
    )

    assert next(process.steps()).arguments["description"] == "monthly"


def test_process_with_arguments_passes_unexpected_arguments_through() -> None:
    """Arguments not named in expected_arguments reach the step unchanged."""
    process = ProcessWithArguments.build(
        name="n", count=1, date="2024-02-29", tags=["x"], extra="3"
    )

    assert next(process.steps()).arguments["extra"] == "3"


def test_process_with_arguments_rejects_bad_values_naming_each_argument() -> None:
    """Invalid values fail the build with one ValueError naming every bad argument."""
    with pytest.raises(InvalidArgumentsError) as raised:
        ProcessWithArguments.build(name="n", count="three", date="soon", tags=["x"])

    assert isinstance(raised.value, ValueError)
    assert sorted(raised.value.problems) == ["count", "date"]
    assert "ProcessWithArguments" in str(raised.value)


def test_conditional_process_uses_the_option_defaults() -> None:
    """Without options, validation is off and logging is on."""
    process = ConditionalProcess.build()

    assert outline(process) == [("0", "process", None), ("1", "log_results", None)]
    assert dict(process.options) == {}


def test_conditional_process_follows_explicit_options() -> None:
    """Options given to build override both defaults."""
    process = ConditionalProcess.build(
        options={"enable_validation": True, "enable_logging": False}
    )

    assert outline(process) == [("0", "validate_input", None), ("1", "process", None)]
    assert dict(process.options) == {"enable_validation": True, "enable_logging": False}


def test_conditional_process_with_every_option_on_includes_every_step() -> None:
    """With both options on, all three steps are included in order."""
    process = ConditionalProcess.build(options={"enable_validation": True})

    assert [step.method for step in process.steps()] == [
        "validate_input",
        "process",
        "log_results",
    ]


@pytest.mark.parametrize(
    ("validation", "logging", "expected"),
    [
        ("true", "false", ["validate_input", "process"]),
        ("0", "1", ["process", "log_results"]),
        ("yes", "no", ["validate_input", "process"]),
    ],
)
def test_conditional_process_accepts_option_strings_from_a_command_line(
    validation: str, logging: str, expected: list[str]
) -> None:
    """Option values such as "true" and "0" are read as booleans."""
    process = ConditionalProcess.build(
        options={"enable_validation": validation, "enable_logging": logging}
    )

    assert [step.method for step in process.steps()] == expected


def test_iterative_process_adds_one_step_per_item_with_its_filename() -> None:
    """Each yielded dict overlays the arguments of the step it produces."""
    process = IterativeProcess.build(files=["a.csv", "b.csv", "c.csv"])

    assert outline(process) == [
        ("0", "process_file", None),
        ("1", "process_file", None),
        ("2", "process_file", None),
    ]
    files = ["a.csv", "b.csv", "c.csv"]
    assert [dict(step.arguments) for step in process.steps()] == [
        {"files": files, "filename": "a.csv"},
        {"files": files, "filename": "b.csv"},
        {"files": files, "filename": "c.csv"},
    ]
    assert all(isinstance(node, (ProcessNode, TaskNode)) for node in process.walk())


def test_iterative_process_with_no_files_has_no_steps() -> None:
    """An each that yields nothing adds nothing."""
    process = IterativeProcess.build(files=[])

    assert process.root.children == ()
    assert len(process) == 0


def test_iterative_process_with_descriptions_describes_each_step() -> None:
    """The description yielded with each item becomes the description of its step."""
    process = IterativeProcessWithDescriptions.build(files=["a.csv", "b.csv"])

    assert outline(process) == [
        ("0", "process_file", "Processing a.csv"),
        ("1", "process_file", "Processing b.csv"),
    ]
    assert [step.arguments["filename"] for step in process.steps()] == ["a.csv", "b.csv"]


def test_transforming_process_hands_the_step_the_transformed_arguments() -> None:
    """The transform's result overlays the arguments; the original ones stay in scope."""
    process = TransformingProcess.build(raw_data="hello")

    assert outline(process) == [("0", "process", None)]
    assert dict(next(process.steps()).arguments) == {
        "raw_data": "hello",
        "processed_data": "HELLO",
    }


def test_transforming_process_with_description_describes_the_step() -> None:
    """A (dict, description) result sets the arguments and the step's description."""
    process = TransformingProcessWithDescription.build(item_id=21)

    assert outline(process) == [("0", "process", "Processing item 21")]
    assert dict(next(process.steps()).arguments) == {"item_id": 21, "processed_id": 42}


def test_validation_process_takes_its_descriptions_from_task_decorators() -> None:
    """ValidationProcess's steps carry their @task descriptions."""
    process = ValidationProcess.build()

    assert outline(process) == [
        ("0", "check_schema", "Check the schema"),
        ("1", "check_constraints", "Check the constraints"),
    ]


def test_main_process_inlines_the_validation_sub_process() -> None:
    """The sub-process becomes a process node at path 1 with steps 1.0 and 1.1."""
    process = MainProcess.build()

    assert shape(process) == [
        ("", "ProcessNode", "sequential"),
        ("0", "TaskNode", "load_data"),
        ("1", "ProcessNode", "sequential"),
        ("1.0", "TaskNode", "check_schema"),
        ("1.1", "TaskNode", "check_constraints"),
        ("2", "TaskNode", "save_data"),
    ]
    sub = process.find("1")
    assert isinstance(sub, ProcessNode)
    assert sub.definition is ValidationProcess
    assert [step.definition for step in process.steps()] == [
        MainProcess,
        ValidationProcess,
        ValidationProcess,
        MainProcess,
    ]
    assert outline(process) == [
        ("0", "load_data", None),
        ("1.0", "check_schema", "Check the schema"),
        ("1.1", "check_constraints", "Check the constraints"),
        ("2", "save_data", None),
    ]


def test_main_process_renders_its_sub_process_indented() -> None:
    """The sub-process renders as a process line with its steps beneath it."""
    assert MainProcess.build().render() == "\n".join(
        [
            "MainProcess (sequential process)",
            "├── 0 load_data",
            "├── 1 ValidationProcess (sequential process)",
            "│   ├── 1.0 check_schema - Check the schema",
            "│   └── 1.1 check_constraints - Check the constraints",
            "└── 2 save_data",
        ]
    )


def test_complex_process_makes_one_concurrent_block_per_batch_of_ten() -> None:
    """25 items give three batches, each a concurrent block of two described steps."""
    items = [f"Item {n}" for n in range(25)]
    process = ComplexProcess.build(items=items)

    assert shape(process) == [
        ("", "ProcessNode", "sequential"),
        ("0", "TaskNode", "setup"),
        ("1", "BlockNode", "concurrent"),
        ("1.0", "TaskNode", "process_item_a"),
        ("1.1", "TaskNode", "process_item_b"),
        ("2", "BlockNode", "concurrent"),
        ("2.0", "TaskNode", "process_item_a"),
        ("2.1", "TaskNode", "process_item_b"),
        ("3", "BlockNode", "concurrent"),
        ("3.0", "TaskNode", "process_item_a"),
        ("3.1", "TaskNode", "process_item_b"),
        ("4", "TaskNode", "finalize"),
    ]
    assert outline(process) == [
        ("0", "setup", None),
        ("1.0", "process_item_a", "Batch 0"),
        ("1.1", "process_item_b", "Batch 0"),
        ("2.0", "process_item_a", "Batch 1"),
        ("2.1", "process_item_b", "Batch 1"),
        ("3.0", "process_item_a", "Batch 2"),
        ("3.1", "process_item_b", "Batch 2"),
        ("4", "finalize", "Finalize"),
    ]
    assert len(process) == 8


def test_complex_process_steps_see_their_prepared_batch() -> None:
    """Each batch's steps see the batch as prepare_batch returned it, over the input items."""
    items = [f"Item {n}" for n in range(25)]
    process = ComplexProcess.build(items=items)

    for path, first, size in [("1.0", 0, 10), ("2.1", 10, 10), ("3.0", 20, 5)]:
        step = process.find(path)
        assert isinstance(step, TaskNode)
        expected_batch = [f"item {n}" for n in range(first, first + size)]
        assert dict(step.arguments) == {
            "items": items,
            "batch": expected_batch,
            "batch_size": size,
        }
    assert dict(process.find("4").arguments) == {"items": items}  # type: ignore[union-attr]


def test_complex_process_with_no_items_keeps_only_setup_and_finalize() -> None:
    """Without items, no batch blocks are made."""
    process = ComplexProcess.build(items=[])

    assert outline(process) == [("0", "setup", None), ("1", "finalize", "Finalize")]


class _OptionsInSubProcess(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.sub_process(ConditionalProcess)


class _ConcurrentSubProcess(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.sub_process(ConcurrentProcess, description="All at once")
        builder.sub_process(MainProcess)


def test_sub_processes_see_the_options_of_the_build() -> None:
    """Options given to the outer build are read by the sub-process's builder.option."""
    process = _OptionsInSubProcess.build(
        options={"enable_validation": True, "enable_logging": False}
    )

    assert outline(process) == [("0.0", "validate_input", None), ("0.1", "process", None)]


def test_a_concurrent_sub_process_contributes_a_concurrent_node() -> None:
    """A sub-process keeps its own execution mode; nested sub-processes get deeper paths."""
    process = _ConcurrentSubProcess.build()

    assert shape(process) == [
        ("", "ProcessNode", "sequential"),
        ("0", "ProcessNode", "concurrent"),
        ("0.0", "TaskNode", "task_a"),
        ("0.1", "TaskNode", "task_b"),
        ("0.2", "TaskNode", "task_c"),
        ("1", "ProcessNode", "sequential"),
        ("1.0", "TaskNode", "load_data"),
        ("1.1", "ProcessNode", "sequential"),
        ("1.1.0", "TaskNode", "check_schema"),
        ("1.1.1", "TaskNode", "check_constraints"),
        ("1.2", "TaskNode", "save_data"),
    ]
    assert process.find("0").description == "All at once"
    assert [step.description for step in process.steps()][:3] == ["All at once"] * 3


def test_no_user_guide_process_has_block_nodes_it_did_not_ask_for() -> None:
    """Each and transform leave no nodes of their own."""
    for process in [
        IterativeProcess.build(files=["a"]),
        TransformingProcess.build(raw_data="x"),
        TransformingProcessWithDescription.build(item_id=1),
    ]:
        assert not any(isinstance(node, BlockNode) for node in process.walk())
        assert [node.path for node in process.walk()] == ["", "0"]
