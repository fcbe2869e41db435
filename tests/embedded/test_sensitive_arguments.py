"""On a worker, a sensitive value reaches the step but not Celery's messages, logs or signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery.signals import before_task_publish, task_failure, task_postrun, task_retry

from tasktronaut import (
    Builder,
    CancelProcessError,
    Context,
    ProcessDefinition,
    RedactedError,
    TaskOptions,
)
from tasktronaut_celery import EmbeddedBackend, ProcessCancelled, ProcessFailed, RunState

SECRET = "s3cret-7d41-b9"
MESSAGE_KEYS = {"run", "step", "join", "begin"}

received: list[str] = []


class FailsWithSecret(ProcessDefinition):
    """The step's exception, and its description, quote the password."""

    sensitive_arguments = ("password",)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.log_in, description=f"Log in with {builder.arguments['password']}")

    def log_in(self, password: str) -> None:
        received.append(password)
        raise PermissionError(f"password {password} refused")


class RetriesWithSecret(ProcessDefinition):
    """The first attempt's exception quotes the password; the retry succeeds."""

    sensitive_arguments = ("password",)
    task_options = TaskOptions(default_retry_delay=0)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.log_in, max_retries=1)

    def log_in(self, password: str, context: Context) -> None:
        received.append(password)
        if context.attempt == 1:
            raise ConnectionError(f"password {password} timed out")


class CancelsWithSecret(ProcessDefinition):
    """The step cancels the run with a reason that quotes the password."""

    sensitive_arguments = ("password",)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.log_in)

    def log_in(self, password: str) -> None:
        raise CancelProcessError(f"password {password} revoked")


class StartHookLeaks(ProcessDefinition):
    """``on_started`` (run by the start task, not a step) raises with the secret."""

    sensitive_arguments = ("password",)

    def define_process(self, builder: Builder) -> None:
        builder.task(self.never)

    def never(self, password: str) -> None:
        received.append(password)

    def on_started(self, identifier: str) -> None:
        raise RuntimeError(f"cannot start with {SECRET}")


class Shown:
    """What Celery publishes, signals and hands to its logs during a run, as text."""

    def __init__(self, run_prefix: str) -> None:
        self.prefix = run_prefix
        self.texts: list[str] = []
        self.message_kwargs: list[dict[str, Any]] = []
        self.failures: list[BaseException] = []
        self.retries: list[BaseException] = []
        self.failed = threading.Event()
        self.retried = threading.Event()

    def on_publish(self, body: Any = None, headers: Any = None, **_: Any) -> None:
        if str(headers.get("id", "")).startswith(self.prefix):
            self.texts += [repr(body), repr(headers)]
            self.message_kwargs.append(body[1])

    def on_failure(
        self, task_id: str = "", exception: Any = None, einfo: Any = None, **_: Any
    ) -> None:
        if task_id.startswith(self.prefix):
            self.texts += [repr(exception), str(einfo)]
            self.failures.append(exception)

    def on_retry(
        self, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
    ) -> None:
        if request.id.startswith(self.prefix):
            self.texts += [str(reason), repr(reason.exc), str(einfo)]
            self.retries.append(reason.exc)

    def on_postrun(self, task_id: str = "", state: str = "", **_: Any) -> None:
        """After Celery has logged how the task ended."""
        if not task_id.startswith(self.prefix):
            return
        if state == "FAILURE":
            self.failed.set()
        elif state == "RETRY":
            self.retried.set()


@contextmanager
def shown_by_celery(run_id: str) -> Iterator[Shown]:
    """Collect what Celery shows of the run with id ``run_id`` while the block runs."""
    shown = Shown(run_id)
    signals = [
        (before_task_publish, shown.on_publish),
        (task_failure, shown.on_failure),
        (task_retry, shown.on_retry),
        (task_postrun, shown.on_postrun),
    ]
    for signal, handler in signals:
        signal.connect(handler, weak=False)
    try:
        yield shown
    finally:
        for signal, handler in signals:
            signal.disconnect(handler)


@pytest.fixture(autouse=True)
def _logs_and_received(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    received.clear()
    yield
    received.clear()


def _assert_hidden(shown: Shown, caplog: pytest.LogCaptureFixture, *more: str) -> None:
    """The secret is nowhere Celery or the logs show; only run ids and paths travel."""
    everything = "\n".join([*shown.texts, caplog.text, *more])
    assert SECRET not in everything
    assert shown.message_kwargs, "no message of the run was published"
    for kwargs in shown.message_kwargs:
        assert set(kwargs) <= MESSAGE_KEYS


def test_a_failing_step_s_secret_is_hidden_from_celery_and_the_run_record(
    embedded: EmbeddedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """The step got the value; Celery saw a RedactedError; records and ProcessFailed are masked."""
    process = FailsWithSecret.build(password=SECRET)

    with shown_by_celery(process.identifier) as shown:
        run = process.enqueue(embedded)
        with pytest.raises(ProcessFailed) as failure:
            run.wait(timeout=30)
        assert shown.failed.wait(10), "Celery never reported the failure"

    assert received == [SECRET]
    assert failure.value.error == "PermissionError: password *** refused"
    assert [s.error for s in run.steps()] == ["PermissionError: password *** refused"]
    assert [s.description for s in run.steps()] == ["Log in with ***"]
    assert isinstance(shown.failures[0], RedactedError)
    assert "RedactedError: PermissionError: password *** refused" in caplog.text
    _assert_hidden(shown, caplog, str(failure.value), repr(run.record))


def test_a_retried_step_s_secret_is_hidden_from_the_retry_and_its_record(
    embedded: EmbeddedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery's retry carries the redacted exception; the retried attempt still gets the value."""
    process = RetriesWithSecret.build(password=SECRET)

    with shown_by_celery(process.identifier) as shown:
        run = process.enqueue(embedded).wait(timeout=30)
        assert shown.retried.wait(10), "Celery never reported the retry"

    assert received == [SECRET, SECRET]
    assert run.state is RunState.SUCCESS
    assert str(shown.retries[0]) == "ConnectionError: password *** timed out"
    _assert_hidden(shown, caplog, *(str(s.error) for s in run.steps()))


def test_a_cancel_reason_quoting_the_secret_is_hidden(
    embedded: EmbeddedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """ProcessCancelled's reason and the step's record show the mask."""
    process = CancelsWithSecret.build(password=SECRET)

    with shown_by_celery(process.identifier) as shown:
        run = process.enqueue(embedded)
        with pytest.raises(ProcessCancelled) as cancelled:
            run.wait(timeout=30)

    assert cancelled.value.reason == "CancelProcessError: password *** revoked"
    _assert_hidden(shown, caplog, str(cancelled.value), *(str(s.error) for s in run.steps()))


def test_a_hook_error_quoting_the_secret_is_hidden(
    embedded: EmbeddedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """A control task whose hook raised hands Celery a RedactedError too."""
    process = StartHookLeaks.build(password=SECRET)

    with shown_by_celery(process.identifier) as shown:
        run = process.enqueue(embedded)
        with pytest.raises(ProcessFailed) as failure:
            run.wait(timeout=30)
        assert shown.failed.wait(10), "Celery never reported the failure"

    assert (
        failure.value.error
        == "on_started of StartHookLeaks raised RuntimeError: cannot start with ***"
    )
    assert isinstance(shown.failures[0], RedactedError)
    assert received == []
    _assert_hidden(shown, caplog, str(failure.value))
