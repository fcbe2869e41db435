"""A whole worker killed mid-step (main process and children): the next worker finishes the run.

RabbitMQ hands the dead worker's unacknowledged message to the next consumer
at once. Redis keeps it aside until its visibility timeout has passed (five
seconds for these workers, an hour by default); a worker puts such messages
back in their queue when it starts, and every 100 s while it runs.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tasktronaut_celery import CeleryBackend, RunState
from tests.services import BROKERS
from tests.support import celery_worker, require, wait_until

from .crashing import (
    REPOSITORY,
    VISIBILITY_TIMEOUT,
    Crashable,
    OneAtATime,
    deliveries,
    kill_outright,
    open_gate,
    worker_env,
)
from .order import check_run
from .recorder import Recorder
from .worker_app import make_app

pytestmark = pytest.mark.reliability

APP = "tests.integration.worker_app"


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_a_run_completes_after_its_worker_is_killed_outright(
    broker: str, recorder: Recorder
) -> None:
    """SIGKILL to the worker's children and main process; a new worker completes the run."""
    require(BROKERS[broker], broker)
    client = CeleryBackend(make_app(BROKERS[broker], name=f"tasktronaut-kill-{broker}"))
    env = worker_env(broker)
    process = Crashable.build()

    with celery_worker(APP, f"doomed-{broker}@localhost", REPOSITORY, env, BROKERS[broker]) as w:
        run = process.enqueue(client)
        first = wait_until(lambda: deliveries(run.id)[:1], 30, "the step reaching a worker")[0]
        kill_outright(w)
    if broker == "redis":  # the next worker restores the message once it has timed out
        deadline = first["at"] + VISIBILITY_TIMEOUT + 1
        wait_until(lambda: time.time() > deadline, 30, "the visibility timeout passing")
    with celery_worker(APP, f"next-{broker}@localhost", REPOSITORY, env, BROKERS[broker]):
        second = wait_until(lambda: deliveries(run.id)[1:], 90, "the step delivered again")[0]
        open_gate(run.id)
        run.wait(timeout=60)

    assert second["ppid"] != first["ppid"]  # run by the new worker
    check_run(process, recorder.events(run.id))
    assert [s.deliveries for s in run.steps()] == [1, 2, 1, 1, 1]


@pytest.mark.parametrize("broker", sorted(BROKERS))
def test_a_worker_killed_outright_does_not_keep_its_runs_slot(broker: str) -> None:
    """The run holding the only slot finishes on the next worker, then the queued run starts."""
    require(BROKERS[broker], broker)
    client = CeleryBackend(make_app(BROKERS[broker], name=f"tasktronaut-kill-slot-{broker}"))
    env = worker_env(broker)
    group = uuid.uuid4().hex

    with celery_worker(
        APP, f"doomed-slot-{broker}@localhost", REPOSITORY, env, BROKERS[broker]
    ) as w:
        holding = OneAtATime.build(group=group).enqueue(client)
        waiting = OneAtATime.build(group=group).enqueue(client)
        first = wait_until(lambda: deliveries(holding.id)[:1], 30, "the step reaching a worker")[0]
        kill_outright(w)
    assert waiting.state is RunState.PENDING
    if broker == "redis":  # the next worker restores the message once it has timed out
        deadline = first["at"] + VISIBILITY_TIMEOUT + 1
        wait_until(lambda: time.time() > deadline, 30, "the visibility timeout passing")
    with celery_worker(APP, f"next-slot-{broker}@localhost", REPOSITORY, env, BROKERS[broker]):
        wait_until(lambda: deliveries(holding.id)[1:], 90, "the held step delivered again")
        open_gate(holding.id)
        assert holding.wait(timeout=60).state is RunState.SUCCESS
        wait_until(lambda: deliveries(waiting.id)[:1], 60, "the queued run starting")
        open_gate(waiting.id)
        assert waiting.wait(timeout=60).state is RunState.SUCCESS

    assert len(deliveries(waiting.id)) == 1
