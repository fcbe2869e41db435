"""Django settings for the Tasktronaut example project.

Trimmed from ``django-admin startproject``: the admin (where the runs are
listed, inspected, cancelled, resumed and run again, and the periodic tasks of
django-celery-beat edited), the JSON views, Celery and Tasktronaut. Set ``DATABASE_URL`` (e.g.
``postgresql://user:password@localhost:5432/orders``) to use PostgreSQL
instead of the SQLite file, and ``CELERY_BROKER_URL`` to use another broker.
"""

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# SECURITY WARNING: set DJANGO_SECRET_KEY and DJANGO_DEBUG=0 in production.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-tasktronaut-example")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_results",  # the django-db result backend
    "django_celery_beat",  # schedules kept in the database, edited in the admin
    "tasktronaut_celery.contrib.django",  # Tasktronaut's run tables and the runs admin
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

STATIC_URL = "static/"

ROOT_URLCONF = "proj.urls"
WSGI_APPLICATION = "proj.wsgi.application"


def database(url: str | None) -> dict[str, Any]:
    """The ``default`` database: PostgreSQL from a ``DATABASE_URL``, else a SQLite file."""
    if not url:
        # The web server and every worker process write run state here: take
        # the write lock when a transaction begins (Django 5.1+) and wait for
        # it, or concurrent steps fail with "database is locked".
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "db.sqlite3",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
        }
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL: expected postgresql://..., not {url!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": parts.port or "",
    }


DATABASES = {"default": database(os.environ.get("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TIME_ZONE = "UTC"
USE_TZ = True

# Celery: read by proj/celery.py (namespace="CELERY").
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Tasktronaut keeps each run's state where Celery keeps results: with
# "django-db" that is this project's database (run `manage.py migrate`).
CELERY_RESULT_BACKEND = "django-db"
# Task events let Flower show every step under its own name.
CELERY_WORKER_SEND_TASK_EVENTS = True
