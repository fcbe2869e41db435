"""Runs kept in the Django database through the ORM (result backend ``django-db``)."""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from typing_extensions import override

from ...plan import EncodedPlan
from ...store import (
    UNFINISHED_STATES,
    RunRecord,
    RunState,
    RunStore,
    StepRecord,
    finished_fields,
    now,
    to_moment,
)
from .models import ArrivalRow, ClaimRow, RunRow, StepRow


class DjangoRunStore(RunStore):
    """A store on Django models; once-only changes rely on unique constraints."""

    @override
    def create(self, run_id: str, plan: EncodedPlan) -> bool:
        return _insert(
            RunRow,
            run_id=run_id,
            state=RunState.PENDING.value,
            created_at=now(),
            plan_type=plan.content_type,
            plan_encoding=plan.content_encoding,
            plan_body=plan.body,
        )

    @override
    def delete(self, run_id: str) -> None:
        with transaction.atomic():
            for model in (RunRow, ClaimRow, StepRow, ArrivalRow):
                model.objects.filter(run_id=run_id).delete()

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        row = RunRow.objects.filter(run_id=run_id).first()
        return EncodedPlan(row.plan_type, row.plan_encoding, bytes(row.plan_body)) if row else None

    @override
    def record(self, run_id: str) -> RunRecord | None:
        row = RunRow.objects.filter(run_id=run_id).defer("plan_body").first()
        if row is None:
            return None
        return RunRecord(
            RunState(row.state),
            to_moment(row.created_at),
            to_moment(row.finished_at),
            row.step,
            row.error,
            to_moment(row.settled_at),
        )

    @override
    def mark_running(self, run_id: str) -> None:
        RunRow.objects.filter(run_id=run_id, state=RunState.PENDING.value).update(
            state=RunState.RUNNING.value
        )

    @override
    def finish(
        self,
        run_id: str,
        state: RunState,
        step: str | None = None,
        error: str | None = None,
        settled: bool = False,
        unless_claimed: str | None = None,
    ) -> bool:
        values = finished_fields(state, step, error, settled)
        with transaction.atomic():
            rows = RunRow.objects.filter(run_id=run_id, state__in=UNFINISHED_STATES)
            ended = bool(rows.update(**values) == 1)
            # Read after the update, which holds the run's row: a claim made
            # meanwhile (see ``claim``) has been committed, and is seen here.
            claims = ClaimRow.objects.filter(run_id=run_id, marker=unless_claimed)
            if ended and unless_claimed is not None and claims.exists():
                transaction.set_rollback(True)
                return False
        return ended

    @override
    def settle(self, run_id: str) -> None:
        RunRow.objects.filter(run_id=run_id).update(settled_at=now())

    @override
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        if not unless_ended:
            return _insert(ClaimRow, run_id=run_id, marker=marker)
        try:
            with transaction.atomic():
                # A no-op update holds the run's row until the claim is committed,
                # so a concurrent ``finish`` either waits for it or ends the run first.
                rows = RunRow.objects.filter(run_id=run_id, state__in=UNFINISHED_STATES)
                if not rows.update(state=F("state")):
                    return False
                ClaimRow.objects.create(run_id=run_id, marker=marker)
        except IntegrityError:
            return False
        return True

    @override
    def claimed(self, run_id: str) -> set[str]:
        return set(ClaimRow.objects.filter(run_id=run_id).values_list("marker", flat=True))

    @override
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        inserted = _insert(ArrivalRow, run_id=run_id, chord=chord, member=member)
        if not inserted and not RunRow.objects.filter(run_id=run_id).exists():
            return 0
        return int(ArrivalRow.objects.filter(run_id=run_id, chord=chord).count())

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        encoded = json.dumps(record.to_json())
        for _ in range(2):  # update, else insert; a racing insert makes the update win
            if StepRow.objects.filter(run_id=run_id, path=path).update(record=encoded):
                return
            if _insert(StepRow, run_id=run_id, path=path, record=encoded):
                return

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        encoded = json.dumps(record.to_json())
        if expected is None:
            return _insert(StepRow, run_id=run_id, path=path, record=encoded)
        was = json.dumps(expected.to_json())
        rows = StepRow.objects.filter(run_id=run_id, path=path, record=was)
        return bool(rows.update(record=encoded))

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        row = StepRow.objects.filter(run_id=run_id, path=path).first()
        return StepRecord.from_json(json.loads(row.record)) if row else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        rows = StepRow.objects.filter(run_id=run_id).values_list("path", "record")
        return {path: StepRecord.from_json(json.loads(raw)) for path, raw in rows}


def _insert(model: Any, **fields: Any) -> bool:
    """Insert a row; ``False`` if its key exists, or if it belongs to no stored run."""
    if model is not RunRow and not RunRow.objects.filter(run_id=fields["run_id"]).exists():
        return False
    try:
        with transaction.atomic():
            model.objects.create(**fields)
    except IntegrityError:
        return False
    return True
