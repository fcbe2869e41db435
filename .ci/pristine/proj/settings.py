"""Django settings for the ``[django]`` check: the two result apps on a SQLite file."""

import os

SECRET_KEY = "tasktronaut-pristine-check"
USE_TZ = True
INSTALLED_APPS = ["django_celery_results", "tasktronaut_celery.contrib.django"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["PRISTINE_DATABASE"],
    }
}
