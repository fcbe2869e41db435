"""The semantics users rely on, on a real worker: concurrency, failure, retries, cancel."""

from __future__ import annotations

import datetime
import decimal
import uuid

import pytest
import redis
from celery import Celery

from tasktronaut_celery import (
    ArgumentNotSerializableError,
    CeleryBackend,
    ProcessCancelled,
    ProcessFailed,
    RunState,
    StepState,
)
from tests.services import BROKERS, EVENTS, RESULTS
from tests.support import wait_until

from . import processes
from .order import check_hooks
from .recorder import Recorder

pytestmark = pytest.mark.usefixtures("worker")


def windows(recorder: Recorder, run_id: str) -> dict[str, tuple[float, float]]:
    return {e["path"]: (e["start"], e["end"]) for e in recorder.steps(run_id)}


def test_concurrent_steps_overlap_and_the_next_step_waits(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """The three concurrent steps run at the same time; 'after' starts once all have ended."""
    run = processes.Overlapping.build().enqueue(backend).wait(timeout=60)

    spans = windows(recorder, run.id)
    concurrent = [spans[path] for path in ("0.0", "0.1", "0.2")]
    assert max(start for start, _ in concurrent) < min(end for _, end in concurrent)
    assert spans["1"][0] >= max(end for _, end in concurrent)


def test_a_failed_step_fails_the_run_and_nothing_after_it_runs(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """wait() raises ProcessFailed naming the step and error; on_failed fires once."""
    run = processes.FailsOnce.build().enqueue(backend)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)

    assert failure.value.step == "1"
    assert failure.value.step_name == "FailsOnce.explode"
    assert "ValueError: the ledger does not balance" in failure.value.error
    assert run.state is RunState.FAILURE
    assert [e["path"] for e in recorder.steps(run.id)] == ["0", "1"]
    states = {s.path: s.state for s in run.steps()}
    assert states == {"0": StepState.SUCCESS, "1": StepState.FAILURE, "2": StepState.SKIPPED}
    (failed,) = recorder.hooks(run.id, "on_failed")
    assert failed["step"] == "explode"
    assert "the ledger does not balance" in failed["error"]
    assert recorder.hooks(run.id, "on_completed") == []


def test_a_step_is_retried_until_it_succeeds(backend: CeleryBackend, recorder: Recorder) -> None:
    """Flaky fails twice, succeeds on attempt 3; Context.attempt counts 1, 2, 3."""
    run = processes.Flaky.build().enqueue(backend).wait(timeout=60)

    attempts = [(e["path"], e["attempt"], e["outcome"] == "ok") for e in recorder.steps(run.id)]
    assert attempts == [("0", 1, False), ("0", 2, False), ("0", 3, True), ("1", 1, True)]
    flaky, after = run.steps()
    assert (flaky.state, flaky.attempts) == (StepState.SUCCESS, 3)
    assert (after.state, after.attempts) == (StepState.SUCCESS, 1)
    check_hooks(processes.Flaky.build(), recorder.events(run.id), ("on_started", "on_completed"))


def test_a_step_that_keeps_failing_fails_the_run_once_its_retries_are_spent(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """max_retries=2: three attempts, then the run fails with the last attempt's error."""
    run = processes.GivesUp.build().enqueue(backend)

    with pytest.raises(ProcessFailed, match="ConnectionError: attempt 3 failed"):
        run.wait(timeout=60)

    assert [e["attempt"] for e in recorder.steps(run.id)] == [1, 2, 3]
    assert [(s.state, s.attempts) for s in run.steps()] == [
        (StepState.FAILURE, 3), (StepState.SKIPPED, 0),
    ]  # fmt: skip
    assert len(recorder.hooks(run.id, "on_failed")) == 1


def test_non_retryable_error_fails_at_once_despite_retries(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """NonRetryableProcessError ends the step on its first attempt."""
    run = processes.NonRetryable.build().enqueue(backend)

    with pytest.raises(ProcessFailed, match="the account is closed"):
        run.wait(timeout=60)

    assert [e["attempt"] for e in recorder.steps(run.id)] == [1]
    assert run.steps()[0].attempts == 1


def test_without_retries_a_failing_step_runs_once(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """Like Celery, no retries happen unless asked for."""
    run = processes.FailsOnce.build().enqueue(backend)

    with pytest.raises(ProcessFailed):
        run.wait(timeout=60)

    assert [e["attempt"] for e in recorder.steps(run.id) if e["path"] == "1"] == [1]


_SIBLING_ENDS = (StepState.SUCCESS, StepState.SKIPPED)


def test_a_failing_branch_stops_the_step_after_the_concurrent_block(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """The sibling branch finishes (or, not started yet, never starts); the step after never runs."""
    run = processes.FailsInConcurrentBlock.build().enqueue(backend)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)

    assert failure.value.step == "0.1"
    sibling = wait_until(
        lambda: next(
            (s for s in run.steps() if s.path == "0.0" and s.state in _SIBLING_ENDS), None
        ),
        30,
        "the sibling branch ending",
    )  # SKIPPED: its message came after the run had failed (on a busy machine)
    recorded = {e["path"] for e in recorder.steps(run.id)}
    assert recorded == ({"0.0", "0.1"} if sibling.state is StepState.SUCCESS else {"0.1"})
    assert len(recorder.hooks(run.id, "on_failed")) == 1


def test_a_failure_in_a_sub_process_fires_on_failed_once_per_process(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """Inner and FailsInSubProcess each get on_failed exactly once; 'never' never runs."""
    run = processes.FailsInSubProcess.build().enqueue(backend)

    with pytest.raises(ProcessFailed) as failure:
        run.wait(timeout=60)

    assert failure.value.step_name == "Inner.explode"
    failed = sorted(e["process"] for e in recorder.hooks(run.id, "on_failed"))
    assert failed == ["FailsInSubProcess", "Inner"]
    assert [e["path"] for e in recorder.steps(run.id)] == ["0", "1.0", "1.1"]


def test_a_step_can_cancel_its_run(backend: CeleryBackend, recorder: Recorder) -> None:
    """CancelProcessError ends the run CANCELLED; later steps never run; on_cancelled once."""
    run = processes.CancelsItself.build().enqueue(backend)

    with pytest.raises(ProcessCancelled, match="customer withdrew the order"):
        run.wait(timeout=60)

    assert run.state is RunState.CANCELLED
    assert [e["path"] for e in recorder.steps(run.id)] == ["0", "1"]
    assert [e["process"] for e in recorder.hooks(run.id, "on_cancelled")] == ["CancelsItself"]
    assert [s.state for s in run.steps()] == [
        StepState.SUCCESS,
        StepState.CANCELLED,
        StepState.SKIPPED,
    ]


def test_a_client_cancel_stops_every_step_not_yet_started(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """Cancelled while a step runs: that step finishes, nothing after it starts."""
    run = processes.Gated.build().enqueue(backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the first step starting")

    assert run.cancel() is True
    assert run.cancel() is False
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")

    with pytest.raises(ProcessCancelled):
        run.wait(timeout=60)
    wait_until(lambda: len(recorder.hooks(run.id, "on_cancelled")) == 1, 30, "on_cancelled")
    wait_until(lambda: run.steps()[0].state is StepState.SUCCESS, 30, "the first step succeeding")
    assert [e["path"] for e in recorder.steps(run.id)] == ["0"]
    assert [s.state for s in run.steps()][1:] == [StepState.SKIPPED] * 3


def test_another_client_reattaches_to_a_run_by_id(backend: CeleryBackend, broker: str) -> None:
    """A second app object (think: another web request) sees the same state and steps."""
    run = processes.Gated.build().enqueue(backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the first step starting")
    other = CeleryBackend(Celery("another-client", broker=BROKERS[broker], backend=RESULTS))

    attached = other.run(run.id)
    assert attached.state is RunState.RUNNING
    assert [s.path for s in attached.steps()] == [s.path for s in run.steps()]
    redis.Redis.from_url(EVENTS).rpush(processes.gate_key(run.id), "open")
    attached.cancel()
    with pytest.raises(ProcessCancelled):
        run.wait(timeout=60)


def test_typed_arguments_arrive_with_their_types(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """date, datetime, Decimal and UUID survive the JSON serializer; strings are coerced."""
    ref = uuid.uuid4()
    run = (
        processes.Typed.build(
            day="2026-11-29",
            at=datetime.datetime(2026, 11, 29, 13, 30),
            amount="12.50",
            ref=str(ref),
            count="7",
            tags=["x"],
        )
        .enqueue(backend)
        .wait(timeout=60)
    )

    (step,) = recorder.steps(run.id)
    types = {name: value[0] for name, value in step["arguments"].items()}
    assert types == {
        "day": "date",
        "at": "datetime",
        "amount": "Decimal",
        "ref": "UUID",
        "count": "int",
        "tags": "list",
    }
    assert step["arguments"]["amount"][1] == repr(decimal.Decimal("12.50"))


def test_an_unserializable_argument_is_refused_before_anything_is_sent(broker: str) -> None:
    """The error names the step and argument; no run is stored and no message is queued."""
    from examples.user_guide import ProcessWithArguments

    queue = f"unconsumed-{uuid.uuid4().hex}"
    app = Celery("refused-client", broker=BROKERS[broker], backend=RESULTS)
    app.conf.task_default_queue = queue
    client = CeleryBackend(app)
    process = ProcessWithArguments.build(
        name="x", count=1, date="2026-01-01", tags=[], data=object()
    )

    with pytest.raises(ArgumentNotSerializableError, match=r"step 0 .*'data'"):
        process.enqueue(client)

    assert client.store.record(process.identifier) is None
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        _, waiting, _ = channel.queue_declare(queue=queue, auto_delete=True)
        channel.queue_delete(queue)
    assert waiting == 0


def test_a_concurrent_root_runs_each_item_with_its_own_arguments(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """Every branch of a concurrent each saw its own name."""
    names = [f"tenant-{i}" for i in range(6)]
    run = processes.ConcurrentRoot.build(names=names).enqueue(backend).wait(timeout=60)

    seen = sorted(e["arguments"]["name"][1] for e in recorder.steps(run.id))
    assert seen == names
    check_hooks(
        processes.ConcurrentRoot.build(names=names),
        recorder.events(run.id),
        ("on_started", "on_completed"),
    )


def test_a_step_goes_to_the_queue_its_options_name(backend: CeleryBackend) -> None:
    """The 'special' step is taken from the 'special' queue, the other from the default one."""
    run = processes.Routed.build().enqueue(backend).wait(timeout=60)

    queues = redis.Redis.from_url(EVENTS).hgetall(f"test-queues:{run.id}")
    assert queues == {b"0": b"celery", b"1": b"special"}
