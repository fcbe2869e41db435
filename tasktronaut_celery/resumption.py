"""What a resume of a failed or cancelled run runs again, and what it forgets of its end.

A run is resumed under its own id (:meth:`Run.retry <tasktronaut_celery.Run.retry>`).
What it did is read from the run store, action by action:

* a step is done once it has succeeded and the processes it ends have
  completed (``Claim.completed``: their ``on_completed`` returned);
* a join is done once it has been recorded passed (``Claim.passed``);
* the begin of a sub-process is done once its ``on_started`` has been claimed,
  unless that hook raised and failed the run.

The rest of the run's flow is what is not done: the first unfinished item of
each chain and everything after it, the unfinished members of a concurrent
section and its join. Each of its steps that has not succeeded is reset to a
PENDING record, which the resume's messages find; a step that succeeded but
whose processes did not complete is passed on, completing them, and is not
run again. The end of every process that did not complete is forgotten, so
the resume's outcome fires ``on_completed`` or ``on_failed`` for it once more;
``on_started`` does not fire again, except for a process whose ``on_started``
failed the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import compiler
from .claims import Claim
from .compiler import Action, Begin, Chain, Chord, Flow, Join, Step
from .errors import failed_hook
from .plan import Plan
from .store import RunRecord, StepRecord, StepState


@dataclass(frozen=True, slots=True)
class Resumption:
    """What resuming a run sends, resets and forgets.

    ``flow`` is the rest of the run's flow, sent again; ``reset`` the PENDING
    records stored over the steps that run again; ``drop`` the claims forgotten.
    """

    flow: Flow
    reset: Mapping[str, StepRecord]
    drop: frozenset[str]


def plan_resumption(
    plan: Plan, record: RunRecord, steps: Mapping[str, StepRecord], claimed: set[str]
) -> Resumption | None:
    """How to resume the run of ``plan`` from its ``record``, step records and claims.

    ``None`` if nothing of its flow remains to be done.
    """
    drop = {
        Claim.ended(process).marker
        for process in plan.processes
        if Claim.completed(process).marker not in claimed
    } & claimed
    failed_at = record.step
    if (
        failed_at is not None
        and failed_at in plan.processes
        and failed_hook(record.error or "") == "on_started"
    ):
        drop.add(Claim.started(failed_at).marker)
    kept = claimed - drop

    def done(action: Action) -> bool:
        if isinstance(action, Step):
            step = steps.get(action.path)
            completes = plan.steps[action.path].completes
            return (
                step is not None
                and step.state is StepState.SUCCESS
                and all(Claim.completed(process).marker in kept for process in completes)
            )
        if isinstance(action, Join):
            return Claim.passed(action.path).marker in kept
        return Claim.started(action.path).marker in kept

    rest = remaining(plan.flow, done)
    if rest is None:
        return None
    reset = {}
    for action in compiler.actions(rest):
        step = steps.get(action.path) if isinstance(action, Step) else None
        if isinstance(action, Step) and (step is None or step.state is not StepState.SUCCESS):
            reset[action.path] = StepRecord(StepState.PENDING, resumes=step.resumes if step else 0)
    return Resumption(rest, reset, frozenset(drop))


def remaining(flow: Flow, done: Callable[[Action], bool]) -> Flow | None:
    """What of ``flow`` is not ``done``; ``None`` if all of it is.

    A chain goes on from its first item not done; a concurrent section keeps
    its members not done and its join, or is only what remains of its join
    once every member is done.
    """
    if isinstance(flow, (Step, Join, Begin)):
        return None if done(flow) else flow
    if isinstance(flow, Chain):
        for index, item in enumerate(flow.items):
            first = remaining(item, done)
            if first is not None:
                following = flow.items[index + 1 :]
                return Chain((first, *following)) if following else first
        return None
    header = tuple(rest for member in flow.header if (rest := remaining(member, done)) is not None)
    if not header:
        return remaining(flow.body, done)
    return Chord(header, flow.body)
