"""A PostgreSQL database of its own for each test session, directly and through Django.

The database is created on first use and dropped when the session ends, so a
schema from an earlier version never lingers on a machine that keeps its
PostgreSQL between runs.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import uuid
from urllib.parse import urlparse

from tests.services import POSTGRES_URL


@functools.cache
def postgres_url() -> str:
    """The URL of this session's fresh database (created on first call)."""
    import psycopg2

    server = urlparse(POSTGRES_URL)
    name = f"tasktronaut_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    connect = functools.partial(
        psycopg2.connect,
        host=server.hostname,
        port=server.port or 5432,
        user=server.username,
        password=server.password,
        dbname=server.path.lstrip("/") or "postgres",
    )
    connection = connect()
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()

    def drop() -> None:
        _close_django_connections()
        connection = connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()

    atexit.register(drop)
    return server._replace(path=f"/{name}").geturl()


def configure_django() -> None:
    """Configure Django (once per process) and create its tables.

    The database is this session's PostgreSQL database, or a SQLite file if
    ``TASKTRONAUT_TEST_DATABASE=sqlite`` (the admin's tests run again so).
    The admin is installed, with the URLs of ``tests.django_urls``.
    """
    import django
    from django.conf import settings
    from django.core.management import call_command

    if not settings.configured:
        settings.configure(
            DATABASES={"default": _django_database()},
            INSTALLED_APPS=[
                "django.contrib.admin",
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "django.contrib.messages",
                "django_celery_results",
                "tasktronaut_celery.contrib.django",
            ],
            MIDDLEWARE=[
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.middleware.csrf.CsrfViewMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
                "django.contrib.messages.middleware.MessageMiddleware",
            ],
            TEMPLATES=[
                {
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True,
                    "OPTIONS": {
                        "context_processors": [
                            "django.template.context_processors.request",
                            "django.contrib.auth.context_processors.auth",
                            "django.contrib.messages.context_processors.messages",
                        ]
                    },
                }
            ],
            ROOT_URLCONF="tests.django_urls",
            SECRET_KEY="tasktronaut-tests",
            STATIC_URL="/static/",
            USE_TZ=True,
            DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        )
        django.setup()
    call_command("migrate", verbosity=0)


def _django_database() -> dict[str, object]:
    if os.environ.get("TASKTRONAUT_TEST_DATABASE") == "sqlite":
        directory = tempfile.mkdtemp(prefix="tasktronaut-django-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(directory, "db.sqlite3"),
            # Worker threads write too: take the write lock at BEGIN, and wait for it.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
            "TEST": {"NAME": os.path.join(directory, "test.sqlite3")},
        }
    url = urlparse(postgres_url())
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": url.path.lstrip("/"),
        "USER": url.username or "",
        "PASSWORD": url.password or "",
        "HOST": url.hostname,
        "PORT": url.port or 5432,
    }


def _close_django_connections() -> None:
    try:
        from django.conf import settings
        from django.db import connections
    except ImportError:
        return
    if settings.configured:
        connections.close_all()
