"""The compiler and canvas: every process becomes the Celery canvas the rules of compiler.py describe."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from celery import Celery, chain, chord, group
from celery.canvas import Signature

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
    Builder,
    ExecutionMode,
    Process,
    ProcessDefinition,
    ProcessNode,
    TaskOptions,
    task,
)
from tasktronaut_celery import CeleryBackend
from tasktronaut_celery.canvas import shape, to_signature
from tasktronaut_celery.compiler import Chain, Chord, Join, Step, actions, compile_process
from tasktronaut_celery.plan import Plan, plan_process
from tasktronaut_celery.protocol import BEGIN_TASK, JOIN_TASK, STEP_TASK

RUN = "run-1"


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("t", broker="memory://", backend="cache+memory://")
    CeleryBackend(app)
    return app


def leaves(signature: Signature) -> list[Signature]:
    """The task signatures of a canvas, in canvas order (chord header before body)."""
    if isinstance(signature, chord):
        return [leaf for member in signature.tasks for leaf in leaves(member)] + leaves(
            signature.body
        )
    if isinstance(signature, (chain, group)):
        return [leaf for member in signature.tasks for leaf in leaves(member)]
    return [signature]


def check_groups(signature: Signature) -> None:
    """No group stands alone, has fewer than two members, or is a direct member of a group."""
    assert not isinstance(signature, group), f"a bare group: {shape(signature)}"
    if isinstance(signature, chord):
        members = list(signature.tasks)
        assert len(members) >= 2, f"a chord header with {len(members)} member(s)"
        for member in members:
            assert not isinstance(member, group), f"a group in a group: {shape(signature)}"
            check_groups(member)
        check_groups(signature.body)
    elif isinstance(signature, chain):
        for member in signature.tasks:
            check_groups(member)


def check_leaves(plan: Plan, signature: Signature) -> None:
    """Every leaf is immutable, uniquely identified, named and carries only run and path."""
    seen_ids: set[str] = set()
    step_paths: list[str] = []
    join_paths: list[str] = []
    for leaf in leaves(signature):
        assert leaf.immutable, f"{leaf!r} is not immutable"
        task_id = leaf.options["task_id"]
        assert task_id not in seen_ids, f"task id {task_id} used twice"
        seen_ids.add(task_id)
        if leaf.task == STEP_TASK:
            path = leaf.kwargs["step"]
            step_paths.append(path)
            assert leaf.kwargs == {"run": plan.run_id, "step": path}
            assert task_id == f"{plan.run_id}:{path}"
            step = plan.steps[path]
            assert leaf.options["shadow"] == f"{plan.processes[step.process].name}.{step.method}"
        elif leaf.task == BEGIN_TASK:
            path = leaf.kwargs["begin"]
            assert path in plan.processes
            assert path != ""
            assert task_id == f"{plan.run_id}:{path}:begin"
        else:
            assert leaf.task == JOIN_TASK
            path = leaf.kwargs["join"]
            join_paths.append(path)
            assert leaf.kwargs == {"run": plan.run_id, "join": path}
            assert task_id == f"{plan.run_id}:{path or 'root'}:join"
        assert leaf.args == ()
    assert sorted(step_paths) == sorted(plan.steps), "every step appears exactly once"
    assert sorted(join_paths) == sorted(plan.joins), "every join appears exactly once"


def check_completes(process: Process) -> None:
    """Each (sub-)process is completed by exactly one action, after its steps, innermost first."""
    compiled = compile_process(process.root)
    order = list(actions(compiled.flow))
    processes = [node.path for node in process.walk() if isinstance(node, ProcessNode)]
    for path in processes:
        completers = [action for action, paths in compiled.completes.items() if path in paths]
        assert len(completers) == 1, f"process {path!r} completed by {completers}"
        (completer,) = completers
        assert completer in order
        position = order.index(completer)
        inside = [
            action
            for action in order
            if isinstance(action, Step) and (path == "" or action.path.startswith(path + "."))
        ]
        assert all(order.index(step) <= position for step in inside)
    for action, paths in compiled.completes.items():
        assert len(set(paths)) == len(paths)
        for inner, outer in itertools.pairwise(paths):
            assert outer == "" or inner.startswith(outer + "."), f"{paths} not innermost first"
            assert inner != ""
        assert action.path == paths[0] or action.path.startswith(paths[0] + ".") or paths[0] == ""


def compiled_shape(app: Celery, process: Process) -> str:
    """The shape of ``process``'s canvas, after checking every rule it must follow."""
    plan = plan_process(process)
    signature = to_signature(app, plan, plan.flow)
    check_groups(signature)
    check_leaves(plan, signature)
    check_completes(process)
    return shape(signature)


# The user guide's processes


def test_my_process_is_a_chain_of_three_steps(app: Celery) -> None:
    """MyProcess compiles to one chain of its three steps."""
    assert compiled_shape(app, MyProcess.build(identifier=RUN)) == (
        "chain(MyProcess.step_one, MyProcess.step_two, MyProcess.step_three)"
    )


def test_sequential_process_is_a_chain(app: Celery) -> None:
    """SequentialProcess compiles to a chain of task_a, task_b and task_c."""
    assert compiled_shape(app, SequentialProcess.build(identifier=RUN)) == (
        "chain(SequentialProcess.task_a, SequentialProcess.task_b, SequentialProcess.task_c)"
    )


def test_concurrent_process_is_a_chord_with_the_root_join(app: Celery) -> None:
    """A concurrent root's three steps become a chord header whose body is the root join."""
    assert compiled_shape(app, ConcurrentProcess.build(identifier=RUN)) == (
        "chord([ConcurrentProcess.task_a, ConcurrentProcess.task_b, ConcurrentProcess.task_c],"
        " ConcurrentProcess:join)"
    )


def test_mixed_process_flattens_its_sequential_block_and_chords_into_cleanup(
    app: Celery,
) -> None:
    """The sequential block joins the chain and the concurrent block's chord body is cleanup."""
    assert compiled_shape(app, MixedProcess.build(identifier=RUN)) == (
        "chain(MixedProcess.setup, MixedProcess.step_one, MixedProcess.step_two, "
        "chord([MixedProcess.parallel_task_a, MixedProcess.parallel_task_b], MixedProcess.cleanup))"
    )


def test_process_with_arguments_is_a_single_step(app: Celery) -> None:
    """A one-step process compiles to that step's signature alone, with no chain around it."""
    process = ProcessWithArguments.build(
        identifier=RUN, name="report", count="3", date="2024-01-31", tags=["a"]
    )

    assert compiled_shape(app, process) == "ProcessWithArguments.process_data"


def test_conditional_process_with_default_options(app: Celery) -> None:
    """By default ConditionalProcess runs process, then log_results."""
    assert compiled_shape(app, ConditionalProcess.build(identifier=RUN)) == (
        "chain(ConditionalProcess.process, ConditionalProcess.log_results)"
    )


def test_conditional_process_with_validation_and_without_logging(app: Celery) -> None:
    """With validation on and logging off, ConditionalProcess runs validate_input, then process."""
    process = ConditionalProcess.build(
        identifier=RUN, options={"enable_validation": True, "enable_logging": False}
    )

    assert compiled_shape(app, process) == (
        "chain(ConditionalProcess.validate_input, ConditionalProcess.process)"
    )


def test_iterative_process_is_a_chain_of_one_step_per_file(app: Celery) -> None:
    """IterativeProcess over three files chains three process_file steps."""
    process = IterativeProcess.build(identifier=RUN, files=["a", "b", "c"])

    assert compiled_shape(app, process) == (
        "chain(IterativeProcess.process_file, IterativeProcess.process_file, "
        "IterativeProcess.process_file)"
    )


def test_iterative_process_with_descriptions_is_a_chain_of_one_step_per_file(
    app: Celery,
) -> None:
    """IterativeProcessWithDescriptions over three files chains three process_file steps."""
    process = IterativeProcessWithDescriptions.build(identifier=RUN, files=["a", "b", "c"])

    assert compiled_shape(app, process) == (
        "chain(IterativeProcessWithDescriptions.process_file, "
        "IterativeProcessWithDescriptions.process_file, "
        "IterativeProcessWithDescriptions.process_file)"
    )


def test_transforming_process_is_a_single_step(app: Celery) -> None:
    """TransformingProcess compiles to its one process step."""
    process = TransformingProcess.build(identifier=RUN, raw_data="hello")

    assert compiled_shape(app, process) == "TransformingProcess.process"


def test_transforming_process_with_description_is_a_single_step(app: Celery) -> None:
    """TransformingProcessWithDescription compiles to its one process step."""
    process = TransformingProcessWithDescription.build(identifier=RUN, item_id=21)

    assert compiled_shape(app, process) == "TransformingProcessWithDescription.process"


def test_validation_process_is_a_chain_of_two_checks(app: Celery) -> None:
    """ValidationProcess chains check_schema and check_constraints."""
    assert compiled_shape(app, ValidationProcess.build(identifier=RUN)) == (
        "chain(ValidationProcess.check_schema, ValidationProcess.check_constraints)"
    )


def test_main_process_inlines_its_sequential_sub_process(app: Celery) -> None:
    """The sub-process's steps join MainProcess's chain under their own definition's name."""
    assert compiled_shape(app, MainProcess.build(identifier=RUN)) == (
        "chain(MainProcess.load_data, ValidationProcess.check_schema, "
        "ValidationProcess.check_constraints, MainProcess.save_data)"
    )


def test_main_process_sub_process_completes_at_its_last_step() -> None:
    """ValidationProcess completes at check_constraints, MainProcess at save_data."""
    compiled = compile_process(MainProcess.build(identifier=RUN).root)

    assert compiled.completes == {Step("1.1"): ("1",), Step("2"): ("",)}


def test_complex_process_chords_each_batch_and_joins_batches_in_a_row(app: Celery) -> None:
    """Three batches in a row: the first two end at a join, the last one at finalize."""
    process = ComplexProcess.build(identifier=RUN, items=[f"Item {n}" for n in range(25)])
    batch = "[ComplexProcess.process_item_a, ComplexProcess.process_item_b]"

    assert compiled_shape(app, process) == (
        f"chain(ComplexProcess.setup, chord({batch}, ComplexProcess:join), "
        f"chord({batch}, ComplexProcess:join), chord({batch}, ComplexProcess.finalize))"
    )
    assert compile_process(process.root).flow == Chain(
        (
            Step("0"),
            Chord((Step("1.0"), Step("1.1")), Join("1")),
            Chord((Step("2.0"), Step("2.1")), Join("2")),
            Chord((Step("3.0"), Step("3.1")), Step("4")),
        )
    )


# Purpose-built definitions


class OneMemberBlock(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent() as block:
            block.task(self.only)
        builder.task(self.last)

    def first(self) -> None: ...
    def only(self) -> None: ...
    def last(self) -> None: ...


class OneMemberBlockOfASequence(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent() as block, block.sequential() as inner:
            inner.task(self.a)
            inner.task(self.b)
        builder.task(self.last)

    def first(self) -> None: ...
    def a(self) -> None: ...
    def b(self) -> None: ...
    def last(self) -> None: ...


class EmptyBlock(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent():
            pass
        with builder.sequential():
            pass
        builder.task(self.last)

    def first(self) -> None: ...
    def last(self) -> None: ...


class EndsWithEmptyBlock(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent():
            pass

    def first(self) -> None: ...


class EmptyProcess(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        pass


class EmptyConcurrentProcess(ProcessDefinition):
    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        pass


class WithEmptySubProcess(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(EmptyProcess)
        builder.task(self.last)

    def first(self) -> None: ...
    def last(self) -> None: ...


class NestedConcurrent(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as outer:
            outer.task(self.a)
            with outer.concurrent() as inner:
                inner.task(self.b)
                inner.task(self.c)
        builder.task(self.after)

    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...
    def after(self) -> None: ...


class ConcurrentInSequenceInConcurrent(ProcessDefinition):
    """A concurrent block alone in a sequential block alone is still one concurrent block."""

    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        with builder.concurrent() as outer:
            outer.task(self.a)
            with outer.sequential() as middle, middle.concurrent() as inner:
                inner.task(self.b)
                inner.task(self.c)
        builder.task(self.after)

    def first(self) -> None: ...
    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...
    def after(self) -> None: ...


class TwoBlocksInARow(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as first:
            first.task(self.a)
            first.task(self.b)
        with builder.concurrent() as second:
            second.task(self.c)
            second.task(self.d)
        builder.task(self.after)

    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...
    def d(self) -> None: ...
    def after(self) -> None: ...


class EndsWithTwoBlocks(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as first:
            first.task(self.a)
            first.task(self.b)
        with builder.concurrent() as second:
            second.task(self.c)
            second.task(self.d)

    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...
    def d(self) -> None: ...


class ConcurrentPair(ProcessDefinition):
    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.x)
        builder.task(self.y)

    def x(self) -> None: ...
    def y(self) -> None: ...


class ConcurrentSubProcessInBlock(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as block:
            block.task(self.a)
            block.sub_process(ConcurrentPair)
        builder.task(self.after)

    def a(self) -> None: ...
    def after(self) -> None: ...


class ConcurrentSubProcessLast(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.first)
        builder.sub_process(ConcurrentPair)

    def first(self) -> None: ...


class OpenSequenceInBlock(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        with builder.concurrent() as block:
            block.task(self.a)
            with block.sequential() as sequence:
                sequence.task(self.b)
                with sequence.concurrent() as inner:
                    inner.task(self.c)
                    inner.task(self.d)
        builder.task(self.after)

    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...
    def d(self) -> None: ...
    def after(self) -> None: ...


class ConcurrentRoot(ProcessDefinition):
    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.a)
        with builder.sequential() as sequence:
            sequence.task(self.b)
            sequence.task(self.c)

    def a(self) -> None: ...
    def b(self) -> None: ...
    def c(self) -> None: ...


class ConcurrentRootOfOne(ProcessDefinition):
    process_execution_mode = ExecutionMode.CONCURRENT

    def define_process(self, builder: Builder) -> None:
        builder.task(self.a)

    def a(self) -> None: ...


class Innermost(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.i1)
        builder.task(self.i2)

    def i1(self) -> None: ...
    def i2(self) -> None: ...


class Middle(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.m1)
        builder.sub_process(Innermost)

    def m1(self) -> None: ...


class Outermost(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.o1)
        builder.sub_process(Middle)

    def o1(self) -> None: ...


class WithOptions(ProcessDefinition):
    task_options = TaskOptions(queue="default-queue", max_retries=2)

    def define_process(self, builder: Builder) -> None:
        builder.task(
            self.routed,
            queue="io",
            priority=5,
            time_limit=30,
            soft_time_limit=20,
            max_retries=3,
            default_retry_delay=1.5,
            retry_backoff=True,
            retry_backoff_max=60,
            retry_jitter=False,
        )
        builder.task(self.inherited)
        builder.task(self.decorated)
        builder.task(self.plain, queue="cpu")

    def routed(self) -> None: ...
    def inherited(self) -> None: ...

    @task(priority=9, time_limit=5)
    def decorated(self) -> None: ...

    def plain(self) -> None: ...


def test_one_member_concurrent_block_is_its_member_without_a_group(app: Celery) -> None:
    """A concurrent block of one step is just that step, in line in the chain."""
    assert compiled_shape(app, OneMemberBlock.build(identifier=RUN)) == (
        "chain(OneMemberBlock.first, OneMemberBlock.only, OneMemberBlock.last)"
    )


def test_one_member_concurrent_block_of_a_sequence_is_that_sequence(app: Celery) -> None:
    """A concurrent block whose only member is a sequential block runs that block in line."""
    assert compiled_shape(app, OneMemberBlockOfASequence.build(identifier=RUN)) == (
        "chain(OneMemberBlockOfASequence.first, OneMemberBlockOfASequence.a, "
        "OneMemberBlockOfASequence.b, OneMemberBlockOfASequence.last)"
    )


def test_empty_blocks_vanish(app: Celery) -> None:
    """Empty concurrent and sequential blocks leave nothing in the canvas."""
    assert compiled_shape(app, EmptyBlock.build(identifier=RUN)) == (
        "chain(EmptyBlock.first, EmptyBlock.last)"
    )


def test_process_ending_in_an_empty_block_ends_at_its_last_step(app: Celery) -> None:
    """An empty trailing block adds no join: the process completes at its last step."""
    process = EndsWithEmptyBlock.build(identifier=RUN)

    assert compiled_shape(app, process) == "EndsWithEmptyBlock.first"
    assert compile_process(process.root).completes == {Step("0"): ("",)}


def test_empty_process_is_a_single_join(app: Celery) -> None:
    """A process with no steps compiles to its root join alone."""
    process = EmptyProcess.build(identifier=RUN)
    plan = plan_process(process)

    assert compiled_shape(app, process) == "EmptyProcess:join"
    assert plan.flow == Join("")
    assert plan.joins == {"": ("",)}
    assert to_signature(app, plan, plan.flow).options["task_id"] == f"{RUN}:root:join"


def test_empty_concurrent_process_is_a_single_join(app: Celery) -> None:
    """A concurrent process with no steps compiles to its root join alone, with no group."""
    assert compiled_shape(app, EmptyConcurrentProcess.build(identifier=RUN)) == (
        "EmptyConcurrentProcess:join"
    )


def test_empty_sub_process_is_its_join_in_the_chain(app: Celery) -> None:
    """An empty sub-process is a join in its parent's chain, which completes it."""
    process = WithEmptySubProcess.build(identifier=RUN)

    assert compiled_shape(app, process) == (
        "chain(WithEmptySubProcess.first, EmptyProcess:join, WithEmptySubProcess.last)"
    )
    assert compile_process(process.root).completes == {Join("1"): ("1",), Step("2"): ("",)}


def test_concurrent_block_inside_a_concurrent_block_merges_into_one_header(
    app: Celery,
) -> None:
    """The inner block's members join the outer chord header; no group is nested."""
    process = NestedConcurrent.build(identifier=RUN)

    assert compiled_shape(app, process) == (
        "chord([NestedConcurrent.a, NestedConcurrent.b, NestedConcurrent.c], NestedConcurrent.after)"
    )
    assert compile_process(process.root).flow == Chord(
        (Step("0.0"), Step("0.1.0"), Step("0.1.1")), Step("1")
    )


def test_concurrent_block_alone_in_a_sequence_inside_a_concurrent_block_merges(
    app: Celery,
) -> None:
    """A sequential block holding only a concurrent block merges like that block itself."""
    assert compiled_shape(app, ConcurrentInSequenceInConcurrent.build(identifier=RUN)) == (
        "chain(ConcurrentInSequenceInConcurrent.first, chord([ConcurrentInSequenceInConcurrent.a,"
        " ConcurrentInSequenceInConcurrent.b, ConcurrentInSequenceInConcurrent.c],"
        " ConcurrentInSequenceInConcurrent.after))"
    )


def test_two_concurrent_blocks_in_a_row_put_a_join_after_the_first(app: Celery) -> None:
    """The first block's chord body is its own join; the second's is the step that follows."""
    process = TwoBlocksInARow.build(identifier=RUN)
    plan = plan_process(process)

    assert compiled_shape(app, process) == (
        "chain(chord([TwoBlocksInARow.a, TwoBlocksInARow.b], TwoBlocksInARow:join), "
        "chord([TwoBlocksInARow.c, TwoBlocksInARow.d], TwoBlocksInARow.after))"
    )
    assert plan.flow == Chain(
        (
            Chord((Step("0.0"), Step("0.1")), Join("0")),
            Chord((Step("1.0"), Step("1.1")), Step("2")),
        )
    )
    assert plan.joins == {"0": ()}


def test_process_ending_in_two_concurrent_blocks_ends_at_the_root_join(app: Celery) -> None:
    """The first block gets its own join, the second the root join that completes the run."""
    process = EndsWithTwoBlocks.build(identifier=RUN)
    plan = plan_process(process)

    assert compiled_shape(app, process) == (
        "chain(chord([EndsWithTwoBlocks.a, EndsWithTwoBlocks.b], EndsWithTwoBlocks:join), "
        "chord([EndsWithTwoBlocks.c, EndsWithTwoBlocks.d], EndsWithTwoBlocks:join))"
    )
    assert plan.flow == Chain(
        (Chord((Step("0.0"), Step("0.1")), Join("0")), Chord((Step("1.0"), Step("1.1")), Join("")))
    )
    assert plan.joins == {"0": (), "": ("",)}


def test_concurrent_sub_process_in_a_concurrent_block_keeps_its_own_chord(
    app: Celery,
) -> None:
    """A concurrent sub-process is not merged: it begins, then is a chord ending at its join."""
    process = ConcurrentSubProcessInBlock.build(identifier=RUN)
    plan = plan_process(process)

    assert compiled_shape(app, process) == (
        "chord([ConcurrentSubProcessInBlock.a, chain(ConcurrentPair:begin, "
        "chord([ConcurrentPair.x, ConcurrentPair.y], ConcurrentPair:join))], "
        "ConcurrentSubProcessInBlock.after)"
    )
    assert plan.joins == {"0.1": ("0.1",)}


def test_concurrent_sub_process_at_the_end_completes_both_processes_at_its_join(
    app: Celery,
) -> None:
    """The sub-process's join is the last action of both the sub-process and the root."""
    process = ConcurrentSubProcessLast.build(identifier=RUN)

    assert compiled_shape(app, process) == (
        "chain(ConcurrentSubProcessLast.first, ConcurrentPair:begin, "
        "chord([ConcurrentPair.x, ConcurrentPair.y], ConcurrentPair:join))"
    )
    assert compile_process(process.root).completes == {Join("1"): ("1", "")}


def test_sequence_ending_concurrently_inside_a_concurrent_block_gets_a_barrier_join(
    app: Celery,
) -> None:
    """The sequential member's inner chord ends at a join for that member, so the outer waits."""
    process = OpenSequenceInBlock.build(identifier=RUN)
    plan = plan_process(process)
    signature = to_signature(app, plan, plan.flow)

    assert compiled_shape(app, process) == (
        "chord([OpenSequenceInBlock.a, chain(OpenSequenceInBlock.b, "
        "chord([OpenSequenceInBlock.c, OpenSequenceInBlock.d], OpenSequenceInBlock:join))], "
        "OpenSequenceInBlock.after)"
    )
    assert plan.flow == Chord(
        (
            Step("0.0"),
            Chain((Step("0.1.0"), Chord((Step("0.1.1.0"), Step("0.1.1.1")), Join("0.1")))),
        ),
        Step("1"),
    )
    barrier = [leaf for leaf in leaves(signature) if leaf.task == JOIN_TASK]
    assert [leaf.options["task_id"] for leaf in barrier] == [f"{RUN}:0.1:join"]


def test_concurrent_root_process_is_a_chord_with_the_root_join(app: Celery) -> None:
    """A concurrent root's members form the header of a chord whose body is the root join."""
    process = ConcurrentRoot.build(identifier=RUN)
    plan = plan_process(process)
    signature = to_signature(app, plan, plan.flow)

    assert compiled_shape(app, process) == (
        "chord([ConcurrentRoot.a, chain(ConcurrentRoot.b, ConcurrentRoot.c)], ConcurrentRoot:join)"
    )
    assert isinstance(signature, chord)
    assert signature.body.options["task_id"] == f"{RUN}:root:join"
    assert plan.joins == {"": ("",)}


def test_concurrent_root_process_of_one_step_is_that_step(app: Celery) -> None:
    """A concurrent root with a single step needs neither a group nor a join."""
    process = ConcurrentRootOfOne.build(identifier=RUN)

    assert compiled_shape(app, process) == "ConcurrentRootOfOne.a"
    assert compile_process(process.root).completes == {Step("0"): ("",)}


def test_nested_sub_processes_complete_innermost_first_at_the_last_step(app: Celery) -> None:
    """The last step of three nested processes completes Innermost, then Middle, then the root."""
    process = Outermost.build(identifier=RUN)
    plan = plan_process(process)

    assert compiled_shape(app, process) == (
        "chain(Outermost.o1, Middle.m1, Innermost.i1, Innermost.i2)"
    )
    assert compile_process(process.root).completes == {Step("1.1.1"): ("1.1", "1", "")}
    assert plan.steps["1.1.1"].completes == ("1.1", "1", "")
    assert plan.steps["1.1.0"].completes == ()


def test_step_scheduling_options_become_signature_options(app: Celery) -> None:
    """queue, priority and the time limits travel as options; retry settings do not."""
    process = WithOptions.build(identifier=RUN)
    plan = plan_process(process)
    signature = to_signature(app, plan, plan.flow)
    check_groups(signature)
    check_leaves(plan, signature)
    routed, inherited, decorated, plain = leaves(signature)

    assert routed.options == {
        "task_id": f"{RUN}:0",
        "shadow": "WithOptions.routed",
        "queue": "io",
        "priority": 5,
        "time_limit": 30,
        "soft_time_limit": 20,
        "ignore_result": True,
    }
    assert inherited.options == {
        "task_id": f"{RUN}:1",
        "shadow": "WithOptions.inherited",
        "queue": "default-queue",
        "ignore_result": True,
    }
    assert decorated.options == {
        "task_id": f"{RUN}:2",
        "shadow": "WithOptions.decorated",
        "queue": "default-queue",
        "priority": 9,
        "time_limit": 5,
        "ignore_result": True,
    }
    assert plain.options == {
        "task_id": f"{RUN}:3",
        "shadow": "WithOptions.plain",
        "queue": "cpu",
        "ignore_result": True,
    }
    assert plan.steps["0"].options.max_retries == 3


def test_canvas_is_the_same_for_two_builds_with_the_same_identifier(app: Celery) -> None:
    """Task ids, kwargs and options depend only on the run id and the tree."""

    def described(process: Process) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        plan = plan_process(process)
        signature = to_signature(app, plan, plan.flow)
        return [(leaf.task, dict(leaf.kwargs), dict(leaf.options)) for leaf in leaves(signature)]

    items = [f"Item {n}" for n in range(25)]
    first = described(ComplexProcess.build(identifier=RUN, items=items))
    second = described(ComplexProcess.build(identifier=RUN, items=items))
    other = described(ComplexProcess.build(identifier="run-2", items=items))

    assert first == second
    assert [kwargs["run"] for _, kwargs, _ in other] == ["run-2"] * len(first)
    assert {options["task_id"] for _, _, options in first}.isdisjoint(
        options["task_id"] for _, _, options in other
    )


def test_canvas_leaves_follow_the_flow_actions_in_order(app: Celery) -> None:
    """The canvas holds exactly the flow's actions, in the same order."""
    process = ComplexProcess.build(identifier=RUN, items=[f"Item {n}" for n in range(25)])
    plan = plan_process(process)
    signature = to_signature(app, plan, plan.flow)
    from_canvas = [
        Step(leaf.kwargs["step"]) if leaf.task == STEP_TASK else Join(leaf.kwargs["join"])
        for leaf in leaves(signature)
    ]

    assert from_canvas == list(actions(plan.flow))
    assert len(from_canvas) == 10


def test_control_tasks_go_to_the_control_queue() -> None:
    """Joins and the start message take the backend's control queue; steps keep their own."""
    from tasktronaut_celery.canvas import start_signature

    app = Celery("control-queue", broker="memory://", backend="cache+memory://")
    plan = plan_process(ConcurrentProcess.build(identifier=RUN))

    signature = to_signature(app, plan, plan.flow, control_queue="control")

    assert signature.body.options["queue"] == "control"
    assert all("queue" not in member.options for member in signature.tasks)
    assert start_signature(app, plan, "control").options["queue"] == "control"
    assert "queue" not in start_signature(app, plan).options


def test_only_chord_members_keep_their_celery_results() -> None:
    """Messages ask Celery to keep a result only where a chord needs it to join."""
    app = Celery("results", broker="memory://", backend="cache+memory://")
    plan = plan_process(MixedProcess.build(identifier=RUN))

    signature = to_signature(app, plan, plan.flow)

    kept = {
        leaf.options["task_id"] for leaf in leaves(signature) if not leaf.options["ignore_result"]
    }
    assert kept == {f"{RUN}:2.0", f"{RUN}:2.1"}
