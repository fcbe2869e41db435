"""Whether this worker's code can run a plan: every definition registered, every step there.

A client and its workers may run different versions of the code (a deploy
under way, a worker left behind). A worker checks a run's whole plan before
it runs anything of the run, so a run it could not finish fails up front
instead of after its first steps have had their effects. Definitions and
step methods are looked up by the rules the steps themselves are run by.
"""

from __future__ import annotations

from tasktronaut.backend import ProcessDefinition, resolve_definition, step_problem
from tasktronaut.errors import UnknownDefinitionError

from .plan import Plan

_SHOWN_PROBLEMS = 5


def code_mismatch(plan: Plan) -> str | None:
    """What of ``plan`` this worker's code lacks, or ``None`` if every part of it resolves.

    Each missing definition or method is named once, with the first step that
    needs it, however many steps (an ``each`` over many items) use it.
    """
    problems: list[str] = []
    definitions: dict[str, type[ProcessDefinition]] = {}
    for process in plan.processes.values():
        try:
            definitions[process.path] = resolve_definition(process.definition)
        except UnknownDefinitionError as error:
            problems.append(f"process {process.name}: {error}")
    seen: set[tuple[str, str]] = set()
    for step in plan.steps.values():
        definition = definitions.get(step.process)
        key = (step.process, step.method)
        if definition is None or key in seen:
            continue
        seen.add(key)
        problem = step_problem(definition, step.method)
        if problem is not None:
            reference = plan.processes[step.process].definition
            problems.append(
                f"step {step.path} ({plan.step_name(step.path)}): {reference}: {problem}"
            )
    if not problems:
        return None
    shown = "; ".join(problems[:_SHOWN_PROBLEMS])
    if len(problems) > _SHOWN_PROBLEMS:
        shown += f"; and {len(problems) - _SHOWN_PROBLEMS} more"
    return (
        f"this worker's code differs from the client's that enqueued run {plan.run_id} "
        f"({plan.root.name}): {shown}. Deploy the same code to the client and every worker; "
        "nothing of the run ran on this worker"
    )
