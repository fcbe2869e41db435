"""RabbitMQ restarted while a run is under way: the workers reconnect and the run completes.

``rabbitmqctl stop_app`` closes every connection, as a broker restart or a
network cut does; durable queues and persistent messages survive it. The
step that was running when the broker went away may run a second time (its
message was not acknowledged, so RabbitMQ delivers it again): at least once
per step, as documented. Every other step runs exactly once, in order.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest
from kombu import Connection

from tasktronaut_celery import CeleryBackend
from tests.services import BROKERS
from tests.support import celery_worker, require, unavailable, wait_until

from .crashing import REPOSITORY, Crashable, deliveries, open_gate, worker_env
from .order import check_hooks, must_precede
from .recorder import Recorder
from .worker_app import make_app

pytestmark = pytest.mark.reliability

INTERRUPTED = "1"  # Crashable's waiting step: running while the broker restarts


def restart_rabbitmq() -> None:
    """Stop and start the RabbitMQ application, then wait until it serves channels again."""
    try:
        subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    finally:  # never leave the rest of the suite without a broker
        subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)

    def serves() -> bool:
        try:
            with Connection(BROKERS["rabbitmq"], connect_timeout=2) as connection:
                connection.default_channel.queue_declare(queue="celery", passive=True)
            return True
        except Exception:
            return False

    wait_until(serves, 60, "RabbitMQ serving channels again")


@pytest.mark.parametrize("dispatch", ["canvas", "worker"])
def test_a_run_completes_across_a_rabbitmq_restart(dispatch: str, recorder: Recorder) -> None:
    require(BROKERS["rabbitmq"], "RabbitMQ")
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed: cannot restart RabbitMQ")
    app = make_app(BROKERS["rabbitmq"], name=f"tasktronaut-restart-{dispatch}")
    client = CeleryBackend(app, canvas_limit=None if dispatch == "canvas" else 0)
    process = Crashable.build()
    env = worker_env("rabbitmq")

    with celery_worker(
        "tests.integration.worker_app", f"restart-{dispatch}@localhost", REPOSITORY, env,
        BROKERS["rabbitmq"],
    ):  # fmt: skip
        run = process.enqueue(client)
        wait_until(lambda: deliveries(run.id), 30, "the waiting step starting")
        restart_rabbitmq()
        open_gate(run.id, times=2)  # for the step and for its redelivered copy, if any
        run.wait(timeout=120)

    events = recorder.events(run.id)
    finished = [e for e in events if e["kind"] == "step"]
    runs = Counter(e["path"] for e in finished)
    assert set(runs) == {step.path for step in process.steps()}
    assert all(count == 1 for path, count in runs.items() if path != INTERRUPTED), runs
    assert runs[INTERRUPTED] in (1, 2)
    for earlier, later in must_precede(process):
        first_end = min(e["end"] for e in finished if e["path"] == earlier)
        assert all(first_end <= e["start"] for e in finished if e["path"] == later)
    check_hooks(process, events, ("on_started", "on_completed"))
