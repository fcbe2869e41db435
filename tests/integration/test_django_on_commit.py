"""``backend.enqueue_on_commit``: a run started in a Django transaction is sent at its commit.

The transaction is on this session's PostgreSQL database; the run's messages
go to a real worker on Redis. Nothing of a run is stored or sent before the
commit, and nothing at all if the transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.signals import before_task_publish

from examples.user_guide import MyProcess, ProcessWithArguments
from tasktronaut_celery import ArgumentNotSerializableError, RunNotFoundError, RunState
from tests.databases import configure_django
from tests.services import POSTGRES_URL
from tests.support import require

from . import worker_app

pytestmark = pytest.mark.usefixtures("django_database", "user_worker")


@pytest.fixture(scope="module")
def django_database() -> None:
    require(POSTGRES_URL, "PostgreSQL")
    configure_django()


@pytest.fixture
def sent() -> Iterator[list[str]]:
    """The task ids of the messages this process publishes during the test."""
    ids: list[str] = []

    def record(headers: dict[str, object], **_: object) -> None:
        ids.append(str(headers["id"]))

    before_task_publish.connect(record, weak=False)
    yield ids
    before_task_publish.disconnect(record)


class Boom(Exception):
    """The view's own error, rolling its transaction back."""


def test_a_run_started_in_a_transaction_is_sent_when_it_commits(sent: list[str]) -> None:
    from django.db import transaction

    with transaction.atomic():
        run = worker_app.backend.enqueue_on_commit(MyProcess.build())
        with pytest.raises(RunNotFoundError):
            run.record  # noqa: B018 - not stored until the commit
        assert sent == []

    assert [task_id for task_id in sent if task_id.startswith(run.id)] != []
    assert run.wait(timeout=30).state is RunState.SUCCESS


def test_a_rolled_back_transaction_sends_and_keeps_nothing(sent: list[str]) -> None:
    from django.db import transaction

    process = MyProcess.build()

    def view() -> None:
        with transaction.atomic():
            worker_app.backend.enqueue_on_commit(process)
            raise Boom

    with pytest.raises(Boom):
        view()

    assert sent == []
    assert worker_app.backend.store.record(process.identifier) is None


def test_bad_arguments_are_refused_at_once_inside_the_transaction(sent: list[str]) -> None:
    from django.db import transaction

    process = ProcessWithArguments.build(
        name="x", count=1, date="2026-01-01", tags=[], data=object()
    )
    with (
        transaction.atomic(),  # it goes on and commits: nothing was registered to run then
        pytest.raises(ArgumentNotSerializableError, match=r"step 0 .*'data'"),
    ):
        worker_app.backend.enqueue_on_commit(process)

    assert sent == []
    assert worker_app.backend.store.record(process.identifier) is None


def test_outside_a_transaction_the_run_is_sent_at_once(sent: list[str]) -> None:
    run = worker_app.backend.enqueue_on_commit(MyProcess.build())

    assert [task_id for task_id in sent if task_id.startswith(run.id)] != []
    assert run.wait(timeout=30).state is RunState.SUCCESS
