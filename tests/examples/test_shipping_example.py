"""``examples/shipping.py`` as ``docs/operating.rst`` runs it: fail, list, resume, prune."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import celery_worker, require

from .conftest import BROKER, REPOSITORY, RESULTS, flush

APP = "examples.shipping"
ENVIRONMENT = {"SHIPPING_BROKER": BROKER, "SHIPPING_RESULTS": RESULTS}


@pytest.fixture(scope="module", autouse=True)
def shipping_worker() -> Iterator[None]:
    """``celery -A examples.shipping worker`` on the examples' Redis databases."""
    require(BROKER, "Redis")
    flush(BROKER, RESULTS)
    env = {**os.environ, **ENVIRONMENT, "PYTHONPATH": str(REPOSITORY)}
    with celery_worker(APP, "shipping-example@localhost", REPOSITORY, env, BROKER):
        yield


def command(*arguments: str) -> subprocess.CompletedProcess[str]:
    """A command of the session in the docs, in a process of its own."""
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPOSITORY,
        env={**os.environ, **ENVIRONMENT, "PYTHONPATH": str(REPOSITORY)},
    )


def tasktronaut(*arguments: str) -> subprocess.CompletedProcess[str]:
    return command("-c", "from tasktronaut_celery.cli import main; main()", *arguments)


def test_orders_failed_while_the_carrier_was_down_resume_without_charging_again() -> None:
    assert command("-m", APP, "down").returncode == 0
    order = ["run", f"{APP}:Shipment", "order_id=1001", "card_token=tok_1001", "--app", APP]
    failed = tasktronaut(*order)
    assert failed.returncode == 1, failed.stderr
    run_id = failed.stdout.split()[1].rstrip(":")
    assert "Failed at step 2 (Shipment.book_carrier): ConnectionError" in failed.stderr

    listed = tasktronaut("runs", "--app", APP, "--state", "failed")
    assert command("-m", APP, "up").returncode == 0
    resumed = tasktronaut("retry", run_id, "--app", APP, "--wait")
    status = tasktronaut("status", run_id, "--app", APP)
    pruned = tasktronaut("prune", "--app", APP, "--older-than", "0s", "--state", "success")

    assert run_id in listed.stdout
    assert "2/4, 1 failed" in listed.stdout
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"Run {run_id} resumed (resume 1): 2 steps to run.")
    assert status.stdout.startswith(f"Run {run_id}: SUCCESS (resumed once)\n")
    charge = next(line for line in status.stdout.splitlines() if "charge_card" in line)
    assert charge.split()[2:5] == ["SUCCESS", "1", "0"]  # one attempt, run by no resume
    assert pruned.stdout == "Pruned 1 run.\n"
