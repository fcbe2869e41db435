"""The plans a worker process keeps: read once per run, the least recently used let go first."""

from __future__ import annotations

import pytest
from celery import Celery

from examples import user_guide
from tasktronaut_celery import runner
from tasktronaut_celery.plan import EncodedPlan, encode_plan, plan_process
from tasktronaut_celery.runner import Runner
from tasktronaut_celery.stores.memory import MemoryRunStore


class CountingStore(MemoryRunStore):
    """The memory store, counting the plans read from it."""

    def __init__(self) -> None:
        super().__init__()
        self.plans_read: list[str] = []

    def plan(self, run_id: str) -> EncodedPlan | None:
        self.plans_read.append(run_id)
        return super().plan(run_id)


def test_a_run_in_use_keeps_its_plan_while_others_come_and_go(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "_PLAN_CACHE_SIZE", 4)
    store = CountingStore()
    worker = Runner(Celery("t", broker="memory://"), store)
    run_ids = []
    for _ in range(10):
        plan = plan_process(user_guide.MixedProcess.build())
        store.create(plan.run_id, encode_plan(plan, "json"))
        run_ids.append(plan.run_id)
    busy = run_ids[0]

    for other in run_ids[1:]:
        worker.plan(busy, store.record(busy))
        worker.plan(other, store.record(other))

    assert store.plans_read.count(busy) == 1
    worker.plan(run_ids[1], store.record(run_ids[1]))  # let go: four newer runs were read since
    assert store.plans_read.count(run_ids[1]) == 2
