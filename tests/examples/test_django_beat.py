"""django-celery-beat's DatabaseScheduler starts Tasktronaut runs in the Django example.

As the example's README sets it up: a PeriodicTask in the database naming
``tasktronaut.scheduled`` with the definition and its JSON arguments, a real
``celery beat -S django_celery_beat.schedulers:DatabaseScheduler`` and a real
``celery worker``, all in subprocesses with the example's settings. The
schedule is one second (``"every": 1``), so a tick's run is named to the second.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest

from tests.support import celery_worker, require_modules, running, wait_until

from .conftest import BROKER, DJANGO_PROJECT, flush, manage

pytestmark = pytest.mark.integration

ENTRY = "reconcile-beat-test"

CREATE_PERIODIC_TASK = f"""
import json
from django_celery_beat.models import IntervalSchedule, PeriodicTask

every_second, _ = IntervalSchedule.objects.get_or_create(
    every=1, period=IntervalSchedule.SECONDS
)
PeriodicTask.objects.update_or_create(
    name="Reconcile the test warehouse",
    defaults=dict(
        task="tasktronaut.scheduled",
        interval=every_second,
        kwargs=json.dumps({{
            "definition": "orders.processes:ReconcileStock",
            "arguments": {{"warehouse": "test"}},
            "entry": "{ENTRY}",
            "every": 1,
        }}),
    ),
)
"""

LIST_RUNS = """
import json
from proj.celery import backend

runs = backend.runs(definition="ReconcileStock", limit=100)
print(json.dumps([
    {"id": run.id, "state": run.state.value, "arguments": run.record.arguments}
    for run in runs
]))
"""


def reconcile_runs(env: dict[str, str]) -> list[dict[str, Any]]:
    """The example's ReconcileStock runs, as the project's backend lists them."""
    listed = manage(env, "shell", "-c", LIST_RUNS)
    assert listed.returncode == 0, listed.stderr
    return list(json.loads(listed.stdout.strip().splitlines()[-1]))


def test_a_periodic_task_of_django_celery_beat_starts_runs(project_env: dict[str, str]) -> None:
    require_modules("django_celery_beat")
    flush(BROKER)
    env = {**project_env, "CELERY_SKIP_CHECKS": "1"}
    assert manage(env, "migrate", "--verbosity", "0").returncode == 0
    created = manage(env, "shell", "-c", CREATE_PERIODIC_TASK)
    assert created.returncode == 0, created.stderr
    beat = [
        sys.executable, "-m", "celery", "-A", "proj", "beat", "--loglevel", "INFO",
        "-S", "django_celery_beat.schedulers:DatabaseScheduler",
    ]  # fmt: skip

    with (
        celery_worker("proj", "django-beat@localhost", DJANGO_PROJECT, env, BROKER),
        running(beat, DJANGO_PROJECT, env),
    ):

        def two_succeeded() -> list[dict[str, Any]] | None:
            runs = [run for run in reconcile_runs(env) if run["id"].startswith(f"{ENTRY}@")]
            done = [run for run in runs if run["state"] == "SUCCESS"]
            return done if len(done) >= 2 else None

        succeeded = wait_until(two_succeeded, 60, "two runs of the periodic task succeeding")

    for run in succeeded:
        assert run["arguments"] == "warehouse='test'"
        assert re.fullmatch(rf"{ENTRY}@\d{{8}}T\d{{6}}Z", run["id"])
