"""A PostgreSQL database of its own for each test session, directly and through Django.

The database is created on first use and dropped when the session ends, so a
schema from an earlier version never lingers on a machine that keeps its
PostgreSQL between runs.
"""

from __future__ import annotations

import atexit
import functools
import os
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
    """Point Django at this session's database (once per process) and create its tables."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    if not settings.configured:
        url = urlparse(postgres_url())
        settings.configure(
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": url.path.lstrip("/"),
                    "USER": url.username or "",
                    "PASSWORD": url.password or "",
                    "HOST": url.hostname,
                    "PORT": url.port or 5432,
                }
            },
            INSTALLED_APPS=["django_celery_results", "tasktronaut_celery.contrib.django"],
            USE_TZ=True,
        )
        django.setup()
    call_command("migrate", verbosity=0)


def _close_django_connections() -> None:
    try:
        from django.conf import settings
        from django.db import connections
    except ImportError:
        return
    if settings.configured:
        connections.close_all()
