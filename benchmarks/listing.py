"""Listing failed runs among 10,000: ``python -m benchmarks.listing``.

Fills each store with ``--runs`` runs (one in a hundred FAILURE, the rest
SUCCESS, created through the store as workers would leave them), then times
``backend.runs(state="failure")`` (the default 50 newest, the median of
``--repeat`` calls) and the whole ``tasktronaut runs --app ... --state failed``
command (a fresh interpreter each time: imports included), beside
``tasktronaut --version`` (the interpreter and imports alone). Redis keeps runs
in database 4; SQLAlchemy and Django in the PostgreSQL database
``tasktronaut_listing`` (emptied first). The apps are this module's
``redis_app``, ``sql_app`` and ``django_app``, for the command's ``--app``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery

from tasktronaut_celery import CeleryBackend, RunState
from tasktronaut_celery.plan import EncodedPlan
from tasktronaut_celery.store import RunStore, RunSummary
from tests.services import POSTGRES_URL, redis_db

REPOSITORY = Path(__file__).resolve().parents[1]
DATABASE = "tasktronaut_listing"
SQL_URL = POSTGRES_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
PLAN = EncodedPlan("application/json", "utf-8", b'{"version": 1}')


def _app(name: str, results: str) -> Celery:
    app = Celery(name, broker="memory://", backend=results)
    app.conf.update(result_expires=7 * 24 * 3600)
    return app


redis_app = _app("listing-redis", redis_db(4))
sql_app = _app("listing-sql", f"db+{SQL_URL}")
django_app = _app("listing-django", "django-db")


def _django() -> None:
    """Django configured on the benchmark's database, its tables migrated."""
    import django
    from django.conf import settings

    if not settings.configured:
        url = SQL_URL.replace("postgresql+psycopg2://", "postgresql://")
        user_host, _, name = url.removeprefix("postgresql://").rpartition("/")
        user, _, host_port = user_host.rpartition("@")
        host, _, port = host_port.partition(":")
        settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": name,
                    "USER": user,
                    "HOST": host,
                    "PORT": port or "5432",
                }
            },
            INSTALLED_APPS=["django_celery_results", "tasktronaut_celery.contrib.django"],
            USE_TZ=True,
        )
        django.setup()


if os.environ.get("LISTING_DJANGO"):  # the command's process, asked for django_app
    _django()


def fresh_database() -> None:
    import psycopg2

    admin = POSTGRES_URL.replace("postgresql+psycopg2://", "postgresql://")
    connection = psycopg2.connect(admin)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    connection.close()


def fill(store: RunStore, runs: int) -> None:
    """``runs`` ended runs, one in a hundred FAILURE at step 7 of 10."""
    for number in range(runs):
        run_id = f"listing-{number:06d}"
        store.create(run_id, PLAN, RunSummary("Shipment", f"order_id={number}", 10))
        store.mark_running(run_id)
        if number % 100 == 0:
            store.finish(run_id, RunState.FAILURE, step="7", error="ConnectionError: down")
        else:
            store.finish(run_id, RunState.SUCCESS)


def timed(call: Callable[[], object], repeat: int) -> float:
    """The median seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def command(*arguments: str, django: bool = False) -> Callable[[], object]:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    if django:
        environment["LISTING_DJANGO"] = "1"
    executable = str(Path(sys.executable).with_name("tasktronaut"))

    def run() -> None:
        subprocess.run([executable, *arguments], env=environment, check=True, capture_output=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    fresh_database()
    _django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    backends = {
        "redis": (CeleryBackend(redis_app), "benchmarks.listing:redis_app", False),
        "sqlalchemy": (CeleryBackend(sql_app), "benchmarks.listing:sql_app", False),
        "django": (CeleryBackend(django_app), "benchmarks.listing:django_app", True),
    }
    redis_app.backend.client.flushdb()
    print(f"{options.runs:,} runs per store, 1 in 100 failed; median of {options.repeat} (API)")
    startup = timed(command("--version"), 5)
    print(f"tasktronaut --version (interpreter and imports): {startup * 1000:.0f} ms")
    for name, (backend, app, django) in backends.items():
        began = time.perf_counter()
        fill(backend.store, options.runs)
        filled = time.perf_counter() - began
        failed = backend.runs(state="failure")
        api = timed(lambda backend=backend: backend.runs(state="failure"), options.repeat)
        cli = timed(command("runs", "--app", app, "--state", "failed", django=django), 5)
        print(
            f"{name:11} filled in {filled:5.1f} s; runs(state='failure') -> {len(failed)} runs "
            f"in {api * 1000:6.1f} ms; `tasktronaut runs --state failed` {cli * 1000:5.0f} ms"
        )


if __name__ == "__main__":
    main()
