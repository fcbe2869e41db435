"""How a dispatcher stores a step's success: ahead of what follows, where that is safe."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from celery import Celery

from examples.user_guide import MixedProcess
from tasktronaut_celery.compiler import Step
from tasktronaut_celery.dispatch import CanvasDispatch
from tasktronaut_celery.plan import encode_plan, plan_process
from tasktronaut_celery.store import StepRecord, StepState
from tasktronaut_celery.stores.memory import MemoryRunStore

SUCCEEDED = StepRecord(StepState.SUCCESS, attempts=1, started_at=1.0, finished_at=2.0)


class RecordingStore(MemoryRunStore):
    """The memory store, noting how each step record was written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str]] = []

    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        self.writes.append(("put_step", path))
        super().put_step(run_id, path, record)

    @contextmanager
    def putting_step(self, run_id: str, path: str, record: StepRecord) -> Iterator[None]:
        self.writes.append(("putting_step", path))
        yield
        super().put_step(run_id, path, record)


def test_canvas_keeps_a_chain_steps_success_under_way_but_stores_a_members_at_once() -> None:
    """A chain step's record stays under way until closed; a chord member's is stored at once.

    Celery counts a chord member on the result backend's own Redis pool, so
    the member does not hold a connection of it meanwhile.
    """
    plan = plan_process(MixedProcess.build(), canvas_limit=None)
    store = RecordingStore()
    store.create(plan.run_id, encode_plan(plan, "json"))
    dispatch = CanvasDispatch(plan, Celery("t", broker="memory://"), store, None)
    by_method = {step.method: path for path, step in plan.steps.items()}
    chained, member = by_method["step_one"], by_method["parallel_task_a"]

    under_way = dispatch.after(Step(chained), succeeded=SUCCEEDED)
    stored_before_closing = store.step(plan.run_id, chained)
    assert isinstance(under_way, ExitStack)
    under_way.close()
    assert dispatch.after(Step(member), succeeded=SUCCEEDED) is None

    assert store.writes == [("putting_step", chained), ("put_step", member)]
    assert stored_before_closing is None
    assert store.step(plan.run_id, chained) == store.step(plan.run_id, member) == SUCCEEDED
