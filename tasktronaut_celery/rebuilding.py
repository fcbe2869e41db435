"""The tree a run's definition builds today, to check a resume and to draw a run.

A run's plan keeps what its tree was built from (the top-level definition's
arguments and options). Building it again tells whether the definition still
builds the same tree: a resume runs the stored plan, and refuses one that no
longer matches unless forced; a picture of a run is drawn from that tree,
coloured by the states of its steps; running a run again builds a new process
from it.
"""

from __future__ import annotations

import importlib

from tasktronaut import Process
from tasktronaut.backend import resolve_definition
from tasktronaut.builder import build_process

from .errors import PlanChangedError, RetryRefusedError
from .plan import Plan, plan_process


def rebuild(plan: Plan) -> Process:
    """The run's process as its definition builds it today, which must be the run's tree.

    Raises :class:`PlanChangedError` if it cannot be built (the run was
    enqueued by an earlier version, which kept no build inputs, or the
    definition cannot be imported or built with them) or builds another tree.
    """
    built = _build_again(plan, plan.run_id)
    if isinstance(built, str):
        raise PlanChangedError(f"run {plan.run_id}: {built}")
    changes = _differences(plan, built)
    if changes:
        raise PlanChangedError(
            f"run {plan.run_id}: {plan.root.name} builds another tree today ({'; '.join(changes)})"
        )
    return built


def build_anew(plan: Plan) -> Process:
    """A new process of the run's definition, built with the run's arguments and options.

    Under a new identifier, as the definition builds it today. Raises
    :class:`RetryRefusedError` if it cannot be built, saying why.
    """
    built = _build_again(plan, None)
    if isinstance(built, str):
        raise RetryRefusedError(f"run {plan.run_id} cannot be run again: {built}")
    return built


def _build_again(plan: Plan, identifier: str | None) -> Process | str:
    """The run's process built again under ``identifier`` (a new one if ``None``), or why not."""
    built_from = plan.built_from
    reference = plan.root.definition
    if built_from is None:
        return "it was enqueued by an earlier version, which did not keep its build inputs"
    try:
        importlib.import_module(reference.partition(":")[0])
        return build_process(
            resolve_definition(reference),
            identifier=identifier,
            options=built_from.options,
            arguments=dict(built_from.arguments),
        )
    except Exception as error:
        return f"{reference} no longer builds with the run's arguments ({error})"


def tree_changes(plan: Plan) -> list[str]:
    """How the tree the run's definition builds today differs from the run's plan; ``[]`` if not."""
    process = _build_again(plan, plan.run_id)
    return [process] if isinstance(process, str) else _differences(plan, process)


def _differences(plan: Plan, process: Process) -> list[str]:
    """How the tree of ``process`` differs from the run's plan, step by step."""
    today = plan_process(process)
    changes = [
        f"process {path or '(top level)'} is {today.processes[path].definition}, "
        f"was {plan.processes[path].definition}"
        for path in sorted(plan.processes.keys() & today.processes.keys())
        if today.processes[path].definition != plan.processes[path].definition
    ]
    added = sorted(today.steps.keys() - plan.steps.keys())
    gone = sorted(plan.steps.keys() - today.steps.keys())
    changes += [f"step {path} ({today.step_name(path)}) is new" for path in added]
    changes += [f"step {path} ({plan.step_name(path)}) is gone" for path in gone]
    changes += [
        f"step {path} is {today.step_name(path)}, was {plan.step_name(path)}"
        for path in sorted(plan.steps.keys() & today.steps.keys())
        if today.step_name(path) != plan.step_name(path)
    ]
    if not changes and today.flow != plan.flow:
        changes.append("its steps run in another order or concurrency")
    return changes
