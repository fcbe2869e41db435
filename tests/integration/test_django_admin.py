"""The runs admin, through Django's test client, with real workers running the runs.

Every page, filter and action, with runs kept where the project's result
backend keeps them: the Django database (``django-db``, the app of
``django_app``) or Redis (``worker_app``'s app, read through the listing
API). The database is this session's PostgreSQL, or SQLite when
``TASKTRONAUT_TEST_DATABASE=sqlite`` (``test_django_admin_on_sqlite.py``
runs this module so). Permissions are checked for each action.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker

from tasktronaut_celery import CeleryBackend, ProcessFailed, Run, RunState, StepState
from tasktronaut_celery.backend import backend_for
from tests.databases import configure_django
from tests.services import POSTGRES_URL
from tests.support import empty_queues, require, wait_until

from . import django_app
from .conftest import WORKER_QUEUES
from .django_app import COURIER_DOWN, HELD, RELEASED, Held, Shipment

CARD = "4111-1111-1111-1111"
pytestmark = pytest.mark.integration

ON_SQLITE = os.environ.get("TASKTRONAUT_TEST_DATABASE") == "sqlite"


@pytest.fixture(scope="module", autouse=True)
def django_database() -> None:
    if not ON_SQLITE:
        require(POSTGRES_URL, "PostgreSQL")
    configure_django()


@pytest.fixture(scope="module", params=["django-db", "redis"])
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, CeleryBackend]]:
    """A project's app reference and backend, its worker running in-process.

    One app at a time: Celery's in-process workers share one task registry,
    so the Redis app's worker starts once the Django one has stopped.
    """
    if request.param == "django-db":
        reference, app, queues = "tests.integration.django_app", django_app.app, [django_app.QUEUE]
    else:
        from . import worker_app

        reference, app, queues = "tests.integration.worker_app", worker_app.app, WORKER_QUEUES
    with app.connection_for_write() as connection:
        empty_queues(connection, queues)
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=queues,
    ):
        yield reference, backend_for(app)


@pytest.fixture
def backend(served: tuple[str, CeleryBackend]) -> Iterator[CeleryBackend]:
    """The project's backend, as the admin finds it from ``TASKTRONAUT_CELERY_APP``."""
    from django.test import override_settings

    reference, chosen = served
    COURIER_DOWN.clear()
    with override_settings(TASKTRONAUT_CELERY_APP=reference):
        yield chosen
    COURIER_DOWN.clear()


def user(*permissions: str) -> Any:
    """A new staff user holding the ``tasktronaut`` permissions named."""
    from django.contrib.auth.models import Permission, User

    created = User.objects.create_user(f"user-{uuid.uuid4().hex[:12]}", is_staff=True)
    created.user_permissions.set(
        Permission.objects.filter(content_type__app_label="tasktronaut", codename__in=permissions)
    )
    return created


def client_for(*permissions: str) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(user(*permissions))
    return client


@pytest.fixture
def viewer() -> Any:
    """A client of a staff user who may see runs, and do nothing to them."""
    return client_for("view_runrow")


@pytest.fixture
def operator() -> Any:
    """A client of a staff user who may see runs and take every action."""
    return client_for("view_runrow", "cancel_run", "retry_run", "run_again")


def ship(backend: CeleryBackend, order: int, *, courier_down: bool = False) -> Run:
    """A settled run of :class:`Shipment`; it fails at ``ship`` if the courier is down."""
    if courier_down:
        COURIER_DOWN.set()
    try:
        run = Shipment.build(order=order, card=CARD).enqueue(backend)
        with contextlib.suppress(ProcessFailed):
            run.wait(timeout=HELD)
    finally:
        COURIER_DOWN.clear()
    return run


def listed_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="run" data-run-id="([^"]+)"', html)


CHANGELIST = "/admin/tasktronaut/runrow/"


def page_of(run: Run) -> str:
    return f"{CHANGELIST}{run.id}/change/"


def test_the_changelist_shows_the_newest_runs_first_with_their_columns(
    backend: CeleryBackend, viewer: Any
) -> None:
    first, failed = ship(backend, 1), ship(backend, 2, courier_down=True)

    response = viewer.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    ids = listed_ids(html)
    assert ids.index(failed.id) < ids.index(first.id)
    row = html[html.index(f'data-run-id="{failed.id}"') :].split("</tr>")[0]
    assert 'data-state="FAILURE"' in row
    assert "Shipment" in row
    assert "3/4, 1 failed" in row
    assert "2: ConnectionError: courier API down (order 2, card ***)" in row
    assert CARD not in html


def test_the_filters_pick_runs_by_state_definition_and_date(
    backend: CeleryBackend, viewer: Any
) -> None:
    succeeded, failed = ship(backend, 3), ship(backend, 4, courier_down=True)

    by_state = listed_ids(viewer.get(CHANGELIST, {"state": "FAILURE"}).content.decode())
    by_definition = listed_ids(
        viewer.get(CHANGELIST, {"definition": "Shipment", "created": "1h"}).content.decode()
    )
    by_other_definition = listed_ids(
        viewer.get(CHANGELIST, {"definition": "Held"}).content.decode()
    )

    assert failed.id in by_state
    assert succeeded.id not in by_state
    assert {failed.id, succeeded.id} <= set(by_definition)
    assert failed.id not in by_other_definition
    sidebar = viewer.get(CHANGELIST).content.decode()
    assert '<a href="?definition=Shipment">Shipment</a>' in sidebar
    assert '<a href="?created=7d">Past 7 days</a>' in sidebar


def test_a_bad_filter_is_reported_on_the_page(backend: CeleryBackend, viewer: Any) -> None:
    response = viewer.get(CHANGELIST, {"state": "LOST"})

    assert response.status_code == 200
    assert "unknown run state &#x27;LOST&#x27;" in response.content.decode()


def test_search_finds_a_run_by_its_id(backend: CeleryBackend, viewer: Any) -> None:
    run = ship(backend, 5)

    assert listed_ids(viewer.get(CHANGELIST, {"q": run.id}).content.decode()) == [run.id]
    missing = viewer.get(CHANGELIST, {"q": "no-such-run"}).content.decode()
    assert listed_ids(missing) == []
    assert "No run has the id no-such-run." in missing


def test_older_runs_are_a_page_further(
    backend: CeleryBackend, viewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib import admin

    from tasktronaut_celery.contrib.django.models import RunRow

    runs = [ship(backend, order) for order in (6, 7, 8)]
    monkeypatch.setattr(admin.site._registry[RunRow], "list_per_page", 2)

    first = viewer.get(CHANGELIST, {"definition": "Shipment"}).content.decode()
    older = re.search(r'<a href="([^"]+)" class="older">', first)
    assert older is not None
    second = viewer.get(CHANGELIST + older.group(1).replace("&amp;", "&")).content.decode()

    assert listed_ids(first) == [runs[2].id, runs[1].id]
    assert listed_ids(second)[0] == runs[0].id


def test_a_run_page_shows_its_steps_graph_and_masked_error(
    backend: CeleryBackend, viewer: Any
) -> None:
    run = ship(backend, 9, courier_down=True)

    response = viewer.get(page_of(run))

    assert response.status_code == 200
    html = response.content.decode()
    steps = re.findall(r'<tr class="step" data-path="([^"]+)" data-state="([^"]+)">', html)
    assert steps == [("0", "SUCCESS"), ("1.0", "SUCCESS"), ("1.1", "SUCCESS"), ("2", "FAILURE")]
    graph = html[html.index('id="run-graph"') :]
    assert graph.index("<svg") < graph.index("</svg>")
    assert 'data-path="2" data-state="FAILURE"' in graph
    assert "courier API down (order 9, card ***)" in html
    assert "Book the courier" in html
    assert CARD not in html


def test_a_viewer_sees_no_actions_and_may_take_none(backend: CeleryBackend, viewer: Any) -> None:
    run = ship(backend, 10, courier_down=True)

    html = viewer.get(page_of(run)).content.decode()

    assert 'name="action"' not in html
    for action in ("cancel", "retry", "run_again"):
        assert viewer.post(page_of(run), {"action": action}).status_code == 403
    assert run.state is RunState.FAILURE


def test_staff_without_the_view_permission_is_refused(backend: CeleryBackend) -> None:
    run = ship(backend, 11)
    client = client_for()

    assert client.get(CHANGELIST).status_code == 403
    assert client.get(page_of(run)).status_code == 403


def test_anonymous_visitors_are_sent_to_log_in(backend: CeleryBackend) -> None:
    from django.test import Client

    response = Client().get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_retry_resumes_a_failed_run_from_its_failure(
    backend: CeleryBackend, operator: Any
) -> None:
    run = ship(backend, 12, courier_down=True)
    assert 'value="retry"' in operator.get(page_of(run)).content.decode()

    response = operator.post(page_of(run), {"action": "retry"}, follow=True)

    assert response.redirect_chain == [(page_of(run), 302)]
    assert f"Run {run.id} is resuming from where it stopped." in response.content.decode()
    assert run.wait(timeout=HELD).state is RunState.SUCCESS
    steps = {step.path: step for step in run.steps()}
    assert (steps["0"].attempts, steps["0"].resumes) == (1, 0)  # not run again
    assert steps["2"].resumes == 1
    assert "Resumed</th><td>1 time<" in operator.get(page_of(run)).content.decode()


def test_retry_of_a_run_that_succeeded_is_refused_with_its_reason(
    backend: CeleryBackend, operator: Any
) -> None:
    run = ship(backend, 13)

    response = operator.post(page_of(run), {"action": "retry"}, follow=True)

    assert "only a run that ended FAILURE or CANCELLED is resumed" in response.content.decode()
    assert run.state is RunState.SUCCESS


def test_cancel_ends_a_run_under_way(backend: CeleryBackend, operator: Any) -> None:
    run = Held.build().enqueue(backend)
    wait_until(lambda: run.state is RunState.RUNNING, HELD, "the held step starting")
    assert 'value="cancel"' in operator.get(page_of(run)).content.decode()

    response = operator.post(page_of(run), {"action": "cancel"}, follow=True)
    RELEASED.setdefault(run.id, threading.Event()).set()

    assert f"Run {run.id} was cancelled." in response.content.decode()
    assert run.record.state is RunState.CANCELLED


def test_run_again_starts_a_new_run_with_the_same_arguments(
    backend: CeleryBackend, operator: Any
) -> None:
    run = ship(backend, 14, courier_down=True)

    response = operator.post(page_of(run), {"action": "run_again"})

    assert response.status_code == 302
    again_id = re.fullmatch(rf"{CHANGELIST}(.+)/change/", response["Location"])
    assert again_id is not None
    assert again_id.group(1) != run.id
    again = backend.run(again_id.group(1))
    assert again.wait(timeout=HELD).state is RunState.SUCCESS
    assert again.record.arguments == run.record.arguments == "order=14, card=***"
    assert all(step.state is StepState.SUCCESS for step in again.steps())


def test_each_action_needs_its_own_permission(backend: CeleryBackend) -> None:
    run = ship(backend, 15, courier_down=True)
    may_retry = client_for("view_runrow", "retry_run")

    html = may_retry.get(page_of(run)).content.decode()
    assert 'value="retry"' in html
    assert 'value="run_again"' not in html
    assert may_retry.post(page_of(run), {"action": "run_again"}).status_code == 403
    assert may_retry.post(page_of(run), {"action": "retry"}).status_code == 302
    assert run.wait(timeout=HELD).state is RunState.SUCCESS


def test_an_unknown_run_page_leads_back_to_the_list(backend: CeleryBackend, viewer: Any) -> None:
    response = viewer.get(f"{CHANGELIST}no-such-run/change/", follow=True)

    assert response.redirect_chain == [(CHANGELIST, 302)]
    assert "Run &#x27;no-such-run&#x27; does not exist" in response.content.decode()


def test_a_bad_until_is_reported_on_the_page(backend: CeleryBackend, viewer: Any) -> None:
    response = viewer.get(CHANGELIST, {"until": "2024-13-45T00:00"})

    assert response.status_code == 200
    assert 'class="errornote"' in response.content.decode()


def test_the_date_filter_leaves_out_older_runs(
    backend: CeleryBackend, viewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tasktronaut_celery.contrib.django import admin

    run = ship(backend, 16)
    monkeypatch.setitem(admin.DATE_CHOICES, "1h", ("Past hour", timedelta(0)))  # from now on

    assert run.id in listed_ids(viewer.get(CHANGELIST).content.decode())
    assert listed_ids(viewer.get(CHANGELIST, {"created": "1h"}).content.decode()) == []


def test_actions_need_the_csrf_token(backend: CeleryBackend) -> None:
    from django.test import Client

    run = ship(backend, 17, courier_down=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user("view_runrow", "retry_run"))

    assert client.post(page_of(run), {"action": "retry"}).status_code == 403
    assert run.state is RunState.FAILURE


def test_actions_are_sent_outside_the_requests_transaction(
    backend: CeleryBackend, operator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ATOMIC_REQUESTS, a run started by an action is committed before its messages go."""
    from django.db import connections

    run = ship(backend, 18)
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)

    response = operator.post(page_of(run), {"action": "run_again"})

    again = backend.run(response["Location"].split("/")[-3])
    assert again.wait(timeout=HELD).state is RunState.SUCCESS


def test_a_run_whose_graph_cannot_be_drawn_still_shows(
    backend: CeleryBackend, viewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = ship(backend, 19)
    original = Shipment.define_process

    def with_one_more_step(self: Shipment, builder: Any) -> None:
        original(self, builder)
        builder.task(self.reserve)

    monkeypatch.setattr(Shipment, "define_process", with_one_more_step)  # a later version

    response = viewer.get(page_of(run))

    assert response.status_code == 200
    html = response.content.decode()
    assert "No graph: run" in html
    assert "builds another tree today" in html
    assert len(re.findall(r'<tr class="step"', html)) == 4


def test_a_project_app_that_cannot_be_found_is_reported(
    backend: CeleryBackend, viewer: Any
) -> None:
    from django.test import override_settings

    with override_settings(TASKTRONAUT_CELERY_APP="no_such_project"):
        response = viewer.get(CHANGELIST)

    assert response.status_code == 200
    assert "cannot import module &#x27;no_such_project&#x27;" in response.content.decode()


def test_run_again_gives_the_steps_the_real_arguments(
    backend: CeleryBackend, operator: Any
) -> None:
    from tasktronaut_celery.testing import StepHarness, harnessing

    run = ship(backend, 20)
    with harnessing(StepHarness()) as steps:
        response = operator.post(page_of(run), {"action": "run_again"})
        again = backend.run(response["Location"].split("/")[-3])
        again.wait(timeout=HELD)

    assert {call.arguments["card"] for call in steps.calls(run_id=again.id)} == {CARD}
