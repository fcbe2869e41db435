"""Runs in the Django admin: find them, see one step by step with its graph, act on it.

Registered for :class:`~.models.RunRow` when the app is installed, as
django-celery-results registers its results (``admin.site.unregister(RunRow)``
removes it). The pages read through the project's backend
(:func:`~.project.project_backend`), not through the model, so they show the
runs wherever the result backend keeps them: in this app's tables with
``django-db``, in Redis with a Redis result backend. The model only gives the
pages their place in the admin and their permissions: ``view_runrow`` to see
runs, and ``cancel_run``, ``retry_run`` and ``run_again`` for the actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.safestring import SafeString, mark_safe

from tasktronaut.errors import TasktronautError
from tasktronaut.render import STATE_COLOURS

from ... import listing
from ...backend import CeleryBackend
from ...errors import RunNotFoundError
from ...run import Run
from ...store import RunState
from .models import RunRow
from .project import project_backend

DATE_CHOICES: dict[str, tuple[str, timedelta]] = {
    "1h": ("Past hour", timedelta(hours=1)),
    "24h": ("Past 24 hours", timedelta(days=1)),
    "7d": ("Past 7 days", timedelta(days=7)),
    "30d": ("Past 30 days", timedelta(days=30)),
}
"""The date filter's choices: how recently the runs shown were created."""

RECENT_RUNS = 200
"""How many of the newest runs the definition filter takes its choices from."""

ACTION_PERMISSIONS = {
    "cancel": "tasktronaut.cancel_run",
    "retry": "tasktronaut.retry_run",
    "run_again": "tasktronaut.run_again",
}
"""The permission each action on a run needs, besides seeing runs."""


@dataclass(frozen=True)
class Choice:
    """One choice of a filter: its label, the page's query string with it, whether chosen."""

    label: str
    query: str
    selected: bool


@dataclass(frozen=True)
class Filter:
    """A filter of the run list, as the admin's sidebar shows it."""

    title: str
    choices: list[Choice]


class RunAdmin(admin.ModelAdmin):
    """The run list and each run's page, read through the project's backend."""

    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Runs are started by the project's code (or run again from a run's page)."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A run changes only by its workers and the actions on its page."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Runs are forgotten by ``backend.prune`` (``manage.py tasktronaut prune``)."""
        return False

    def get_urls(self) -> list[URLPattern]:
        """The run list and a run's page (which takes the actions), under the admin's login."""
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name=f"{self._names}_changelist",
            ),
            path(
                "<path:object_id>/change/",
                # The actions store and send runs at once: never inside a request's
                # transaction (ATOMIC_REQUESTS), which a worker could not see into.
                transaction.non_atomic_requests(self.admin_site.admin_view(self.run_view)),
                name=f"{self._names}_change",
            ),
        ]

    @property
    def _names(self) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}"

    def backend(self) -> CeleryBackend:
        """The backend the pages read through: the project's."""
        return project_backend()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The newest runs, filtered by state, definition and date, or the run searched for."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        query = request.GET
        searched = query.get("q", "").strip()
        created = query.get("created") or None
        errors: list[str] = []
        runs: list[Run] = []
        definitions: list[tuple[str, str]] = []
        try:
            backend = self.backend()
            until = _moment(query.get("until", ""))
            if searched:
                runs = _searched(backend, searched)
            else:
                runs = backend.runs(
                    state=query.get("state") or None,
                    definition=query.get("definition") or None,
                    since=DATE_CHOICES[created][1] if created in DATE_CHOICES else None,
                    until=until,
                    limit=self.list_per_page + 1,
                )
            definitions = _definitions(backend, query.get("definition") or None)
        except (TasktronautError, ImproperlyConfigured, ValueError) as error:
            errors.append(str(error))
            until = None
        older = None
        if len(runs) > self.list_per_page:
            runs = runs[: self.list_per_page]
            older = _query(query, until=runs[-1].record.created_at.isoformat())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Select run to view",
            "subtitle": None,
            "runs": [self._listed(run) for run in runs],
            "filters": [
                _filter(query, "state", "By state", [(s.value, s.value) for s in RunState]),
                _filter(query, "definition", "By definition", definitions),
                _filter(
                    query,
                    "created",
                    "By date created",
                    [(key, label) for key, (label, _) in DATE_CHOICES.items()],
                ),
            ],
            "searched": searched,
            "errors": errors,
            "older": older,
            "newest": _query(query, until=None) if until else None,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "tasktronaut/admin/run_list.html", context)

    def _listed(self, run: Run) -> dict[str, Any]:
        record = run.record
        return {
            "id": run.id,
            "url": self._run_url(run.id),
            "record": record,
            "started": _local(record.started_at),
            "colours": STATE_COLOURS.get(record.state.value),
            "progress": listing.progress(record),
            "duration": listing.duration(record),
            "failing_step": listing.failing_step(record),
        }

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """A run: its record, its steps, its graph coloured by state; POST takes an action."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        request.current_app = self.admin_site.name
        try:
            backend = self.backend()
            run = backend.run(unquote(object_id))
        except (TasktronautError, ImproperlyConfigured) as error:
            messages.error(request, str(error))
            return HttpResponseRedirect(self._url("changelist"))
        if request.method == "POST":
            return self._act(request, backend, run)
        record = run.record
        steps = run.steps()
        names = {step.path: step.name for step in steps}
        allowed = {name: request.user.has_perm(perm) for name, perm in ACTION_PERMISSIONS.items()}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{record.definition or 'Run'} {run.id}",
            "subtitle": None,
            "run": run,
            "record": record,
            "times": {
                name: _local(getattr(record, f"{name}_at"))
                for name in ("created", "started", "finished")
            },
            "colours": STATE_COLOURS.get(record.state.value),
            "progress": listing.progress(record),
            "duration": listing.duration(record),
            "steps": [
                (
                    step,
                    STATE_COLOURS.get(step.state.value),
                    _local(step.started_at),
                    _local(step.finished_at),
                )
                for step in steps
            ],
            "failing_step": _failing_step_label(record.step, names),
            "graph": _graph(run),
            "can_cancel": allowed["cancel"] and not record.state.finished,
            "can_retry": allowed["retry"]
            and record.state in (RunState.FAILURE, RunState.CANCELLED),
            "can_run_again": allowed["run_again"],
        }
        return TemplateResponse(request, "tasktronaut/admin/run_detail.html", context)

    def _act(self, request: HttpRequest, backend: CeleryBackend, run: Run) -> HttpResponse:
        """Take the action the form names, if allowed; say what happened on the page it leads to."""
        action = request.POST.get("action", "")
        if action not in ACTION_PERMISSIONS:
            messages.error(request, f"Unknown action {action!r}.")
            return HttpResponseRedirect(self._run_url(run.id))
        if not request.user.has_perm(ACTION_PERMISSIONS[action]):
            raise PermissionDenied
        try:
            if action == "cancel":
                if run.cancel():
                    messages.success(request, f"Run {run.id} was cancelled.")
                else:
                    messages.warning(request, f"Run {run.id} had already ended.")
            elif action == "retry":
                backend.retry(run.id)
                messages.success(request, f"Run {run.id} is resuming from where it stopped.")
            else:
                again = backend.run_again(run.id)
                messages.success(
                    request, f"Run {again.id} started with the arguments of {run.id}."
                )
                return HttpResponseRedirect(self._run_url(again.id))
        except (TasktronautError, ValueError) as error:
            messages.error(request, str(error))
        return HttpResponseRedirect(self._run_url(run.id))

    def _run_url(self, run_id: str) -> str:
        return self._url("change", quote(run_id))

    def _url(self, page: str, *args: str) -> str:
        """The URL of one of these pages on this admin site."""
        return str(reverse(f"{self.admin_site.name}:{self._names}_{page}", args=args))


def _graph(run: Run) -> SafeString | str:
    """The run's picture (drawn by svg.py, which escapes every text), or why there is none.

    Drawing rebuilds the run's tree from its definition as it is today, which
    fails for a run of an earlier version or of a definition that changed or
    cannot be imported here.
    """
    try:
        return mark_safe(run.to_svg())
    except TasktronautError as error:
        return f"No graph: {error}"


def _local(moment: datetime | None) -> datetime | None:
    """``moment`` in the project's time zone, as the admin shows times (``USE_TZ`` or not)."""
    if moment is None:
        return None
    local: datetime = timezone.localtime(moment, timezone.get_default_timezone())
    return local


def _moment(text: str) -> datetime | None:
    """The time of the ``until`` parameter, if any; ``ValueError`` if it is not one."""
    if not text:
        return None
    moment: datetime | None = parse_datetime(text)  # ValueError for 2024-13-45T00:00
    if moment is None:
        raise ValueError(f"until: {text!r} is not a date and time")
    return moment


def _failing_step_label(path: str | None, names: dict[str, str]) -> str:
    """Where the run failed: the step's path and name (a process's path has no name)."""
    if path is None:
        return ""
    name = names.get(path)
    return f"{path} ({name})" if name else path


def _searched(backend: CeleryBackend, searched: str) -> list[Run]:
    """The run whose id (its identifier) is ``searched``, if there is one."""
    try:
        return [backend.run(searched)]
    except RunNotFoundError:
        return []


def _definitions(backend: CeleryBackend, chosen: str | None) -> list[tuple[str, str]]:
    """The definitions of the newest runs (and the one chosen), as filter choices."""
    names = {run.record.definition for run in backend.runs(limit=RECENT_RUNS)}
    names.discard("")
    if chosen:
        names.add(chosen)
    return [(name, name) for name in sorted(names)]


def _filter(query: Any, key: str, title: str, options: list[tuple[str, str]]) -> Filter:
    """A sidebar filter setting ``key``: All, then each of ``options`` (value, label)."""
    current = query.get(key) or None
    choices = [Choice("All", _query(query, **{key: None, "until": None}), current is None)]
    choices += [
        Choice(label, _query(query, **{key: value, "until": None}), current == value)
        for value, label in options
    ]
    return Filter(title, choices)


def _query(query: Any, **changes: str | None) -> str:
    """The page's query string with ``changes`` (``None`` removes a key)."""
    values = {key: query.get(key) for key in query if key in ("state", "definition", "created")}
    values |= changes
    return "?" + urlencode({key: value for key, value in values.items() if value})


admin.site.register(RunRow, RunAdmin)
