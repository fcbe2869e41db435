"""Run stores, one per kind of Celery result backend, and the choice between them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import UnsupportedAppError

if TYPE_CHECKING:
    from celery import Celery

    from ..store import RunStore

_REDIS_SCHEMES = {"redis", "rediss", "redis+socket", "sentinel", "sentinels"}
_MEMORY_SCHEMES = {"cache+memory"}
_DJANGO_SCHEME = "django-db"
DJANGO_APP = "tasktronaut_celery.contrib.django"
_REFUSED = {
    "": "no result backend is configured",
    "disabled": "the result backend is disabled",
    "rpc": "the rpc:// result backend keeps results only for the client that sent the task",
    "amqp": "the amqp:// result backend keeps results only for the client that sent the task",
}


def backend_scheme(app: Celery) -> str:
    """The scheme of the app's ``result_backend`` setting, read without connecting."""
    url = app.conf.result_backend or ""
    if not isinstance(url, str):
        return type(url).__name__
    return url.partition("://")[0].lower() if "://" in url else url.lower()


def joins_chords_natively(app: Celery) -> bool:
    """Whether the app's result backend counts chord members itself (Redis, memory cache).

    Database backends join a chord by polling its members' results once a
    second (Celery's ``chord_unlock``), which adds up to a second per chord.
    """
    scheme = backend_scheme(app)
    return scheme in _REDIS_SCHEMES or scheme in _MEMORY_SCHEMES


def keeps_results_in_redis(app: Celery) -> bool:
    """Whether the app's result backend is Redis (Celery's ``redis_*`` settings apply)."""
    return backend_scheme(app) in _REDIS_SCHEMES


def chords_need_member_results(app: Celery) -> bool:
    """Whether the app's result backend reads chord members' stored results to join a chord.

    Redis counts each member as it returns (once per member, in Celery's own
    script), so members need store no result there; every other backend,
    the in-memory cache included, joins by reading the members' results.
    """
    return not keeps_results_in_redis(app)


def check_app(app: Celery) -> None:
    """Refuse an app whose result backend cannot hold run state, saying what to configure."""
    scheme = backend_scheme(app)
    if scheme in _REDIS_SCHEMES or scheme in _MEMORY_SCHEMES or scheme == _DJANGO_SCHEME:
        return
    if scheme.startswith("db+"):
        return
    reason = _REFUSED.get(scheme, f"the {scheme!r} result backend is not supported yet")
    raise UnsupportedAppError(
        f"Celery app {app.main!r}: {reason}. Tasktronaut keeps run state and chord joins in "
        "the result backend, so every worker and client must reach the same one: set "
        "result_backend to a Redis URL (e.g. 'redis://localhost:6379/0'), a database "
        "('db+postgresql://...', needs SQLAlchemy), 'django-db' (django-celery-results), "
        "or 'cache+memory://' for a single-process embedded app."
    )


def store_for(app: Celery) -> RunStore:
    """The run store that keeps runs in ``app``'s result backend."""
    check_app(app)
    scheme = backend_scheme(app)
    expires = app.conf.result_expires
    ttl = int(expires.total_seconds()) if hasattr(expires, "total_seconds") else int(expires or 0)
    if scheme in _MEMORY_SCHEMES:
        from .memory import MemoryRunStore

        return MemoryRunStore()
    if scheme.startswith("db+"):
        from .sql import SqlRunStore

        return SqlRunStore(*_database_settings(app))
    if scheme == _DJANGO_SCHEME:
        return _django_store(app)
    from .redis import RedisRunStore

    return RedisRunStore(app.backend.client, ttl=ttl or None)


def _database_settings(app: Celery) -> tuple[str, dict[str, Any]]:
    """The URL and engine options of ``app``'s ``db+...`` result backend, as Celery reads them.

    Read from the settings rather than from ``app.backend``: making Celery's
    database backend creates its own tables, which a client listing runs
    (``tasktronaut runs``) has no use for.
    """
    url = str(app.conf.result_backend).removeprefix("db+") or app.conf.database_url
    return url, dict(app.conf.database_engine_options or {})


def _django_store(app: Celery) -> RunStore:
    from django.apps import apps

    if not apps.is_installed(DJANGO_APP):
        raise UnsupportedAppError(
            f"Celery app {app.main!r} keeps results in the Django database (django-db): add "
            f"{DJANGO_APP!r} to INSTALLED_APPS and run 'manage.py migrate' so that "
            "Tasktronaut can keep its runs there too."
        )
    from ..contrib.django.store import DjangoRunStore

    return DjangoRunStore()
