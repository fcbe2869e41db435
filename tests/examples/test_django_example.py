"""The Django example as its README runs it: migrate, a ``celery worker``, ``runserver``.

Everything Django runs in subprocesses started in ``examples/django_project``
with the example's own settings, so this pytest process's Django settings (if
other tests configured them) play no part. The database is this session's
fresh PostgreSQL database; the broker is Redis database 13.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Any

import pytest

from .conftest import json_request, manage, wait_for_end

pytestmark = pytest.mark.integration

FULFIL_ORDER_42 = [
    ("0.0", "FulfilOrder.reserve_stock", "Reserve 2 x MUG-RED"),
    ("0.1", "FulfilOrder.reserve_stock", "Reserve 1 x TEE-M"),
    ("0.2", "FulfilOrder.reserve_stock", "Reserve 1 x CAP-BLUE"),
    ("1", "FulfilOrder.charge_payment", "Charge the customer's card"),
    ("2.0", "FulfilOrder.print_packing_slip", "Print the packing slip"),
    ("2.1", "FulfilOrder.book_courier", "Book the courier"),
    ("3.0", "NotifyCustomer.send_email", "Email the tracking link"),
    ("3.1", "NotifyCustomer.send_sms", "Text the tracking link"),
]


def test_fulfilling_an_order_runs_every_step(django_site: str) -> None:
    """POST answers 202 with a run id, and the run's progress ends SUCCESS with every step done."""
    status, started = json_request(f"{django_site}/orders/42/fulfil/", method="POST")

    assert status == 202

    def fetch_progress() -> dict[str, Any]:
        status, body = json_request(f"{django_site}/runs/{started['run_id']}/")
        assert status == 200
        return body

    progress = wait_for_end(fetch_progress)

    assert progress["state"] == "SUCCESS", progress
    steps = [(s["path"], s["name"], s["description"]) for s in progress["steps"]]
    assert steps == FULFIL_ORDER_42
    assert [(s["state"], s["attempts"]) for s in progress["steps"]] == [("SUCCESS", 1)] * 8
    assert progress["done"] == progress["total"] == 8


def test_an_unknown_run_is_404(django_site: str) -> None:
    """GET for a run id nobody enqueued answers 404 with a JSON error."""
    status, body = json_request(f"{django_site}/runs/no-such-run/")

    assert status == 404
    assert "no-such-run" in body["error"]


def test_fulfilling_is_post_only(django_site: str) -> None:
    """GET on the fulfil endpoint answers 405: starting a run takes a POST."""
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{django_site}/orders/42/fulfil/", timeout=10)

    assert error.value.code == 405


def test_manage_py_tasktronaut_acts_on_the_projects_runs(
    django_site: str, project_env: dict[str, str]
) -> None:
    """`manage.py tasktronaut ...` is the tasktronaut command, on the app `celery -A proj` finds."""
    ran = manage(project_env, "tasktronaut", "run", "orders.processes:FulfilOrder", "order_id=42")
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.split()[1].rstrip(":")

    listed = manage(project_env, "tasktronaut", "runs", "--definition", "FulfilOrder")
    shown = manage(project_env, "tasktronaut", "status", run_id)
    drawn = manage(project_env, "tasktronaut", "graph", "--run", run_id, "--format", "svg")
    cancelled = manage(project_env, "tasktronaut", "cancel", run_id)
    refused = manage(project_env, "tasktronaut", "retry", run_id)
    bad = manage(project_env, "tasktronaut", "runs", "--state", "bogus")
    pruned = manage(
        project_env, "tasktronaut", "prune", "--older-than", "0s", "--state", "success"
    )
    gone = manage(project_env, "tasktronaut", "status", run_id)

    assert "Succeeded in" in ran.stdout
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(run_id)]
    assert re.split(r"\s{2,}", row)[1:4] == ["FulfilOrder", "SUCCESS", "8/8"]
    assert shown.stdout.startswith(f"Run {run_id}: SUCCESS\n")
    assert drawn.stdout.startswith("<svg ")
    assert drawn.stdout.count('data-state="SUCCESS"') == 8
    assert cancelled.stdout.strip() == f"Run {run_id} had already ended: SUCCESS."
    assert (refused.returncode, bad.returncode) == (1, 2)
    assert "it is SUCCESS" in refused.stderr
    assert "unknown run state 'bogus'" in bad.stderr
    assert pruned.stdout.startswith("Pruned ")
    assert gone.returncode == 1
    assert f"run {run_id!r} does not exist" in gone.stderr
