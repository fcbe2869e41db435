"""Keep a run's times as datetimes, which the admin shows and filters on; add its permissions.

The times were seconds since the epoch. Each becomes a datetime column filled
from the old one (aware in UTC, or naive in the project's time zone when
``USE_TZ`` is off), so the rows already there keep their runs. Workers of the
earlier version write seconds: stop them before migrating (or after
migrating back).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone as django_timezone

_TIMES = ("created_at", "finished_at", "settled_at", "started_at")
_BATCH = 500


def _moment(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    if settings.USE_TZ:
        return moment
    local: datetime = django_timezone.make_naive(moment, django_timezone.get_default_timezone())
    return local


def _seconds(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if django_timezone.is_naive(moment):
        moment = django_timezone.make_aware(moment, django_timezone.get_default_timezone())
    return moment.timestamp()


def _copy(apps: Any, schema_editor: Any, source: str, target: str, convert: Any) -> None:
    """Copy each run's times from the columns ``<time><source>`` to ``<time><target>``."""
    runs = apps.get_model("tasktronaut", "RunRow").objects.using(schema_editor.connection.alias)
    fields = [name + target for name in _TIMES]
    keys = list(runs.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(keys), _BATCH):  # read a batch, then write it: never both at once
        batch = list(
            runs.filter(pk__in=keys[start : start + _BATCH]).only(*(n + source for n in _TIMES))
        )
        for run in batch:
            for name in _TIMES:
                setattr(run, name + target, convert(getattr(run, name + source)))
        runs.bulk_update(batch, fields)


def to_datetimes(apps: Any, schema_editor: Any) -> None:
    """Fill the new datetime columns from the seconds."""
    _copy(apps, schema_editor, "", "_moment", _moment)


def to_seconds(apps: Any, schema_editor: Any) -> None:
    """Fill the seconds columns again from the datetimes (migrating back)."""
    _copy(apps, schema_editor, "_moment", "", _seconds)


class Migration(migrations.Migration):
    """Datetime columns for the run's times; the run's own permissions."""

    dependencies = [("tasktronaut", "0002_run_summary_and_progress")]

    operations = [
        migrations.RemoveIndex(model_name="runrow", name="tasktronaut_run_created"),
        migrations.RemoveIndex(model_name="runrow", name="tasktronaut_run_state"),
        migrations.RemoveIndex(model_name="runrow", name="tasktronaut_run_definition"),
        # Nullable while both columns exist, so that migrating back can re-add it.
        migrations.AlterField(
            model_name="runrow",
            name="created_at",
            field=models.FloatField(null=True),
        ),
        *(
            migrations.AddField(
                model_name="runrow",
                name=f"{name}_moment",
                field=models.DateTimeField(null=True),
            )
            for name in _TIMES
        ),
        migrations.RunPython(to_datetimes, to_seconds),
        *(migrations.RemoveField(model_name="runrow", name=name) for name in _TIMES),
        *(
            migrations.RenameField(model_name="runrow", old_name=f"{name}_moment", new_name=name)
            for name in _TIMES
        ),
        migrations.AlterField(
            model_name="runrow",
            name="created_at",
            field=models.DateTimeField(),
        ),
        migrations.AddIndex(
            model_name="runrow",
            index=models.Index(fields=["created_at"], name="tasktronaut_run_created"),
        ),
        migrations.AddIndex(
            model_name="runrow",
            index=models.Index(fields=["state", "created_at"], name="tasktronaut_run_state"),
        ),
        migrations.AddIndex(
            model_name="runrow",
            index=models.Index(
                fields=["definition", "created_at"], name="tasktronaut_run_definition"
            ),
        ),
        migrations.AlterModelOptions(
            name="runrow",
            options={
                "verbose_name": "run",
                "permissions": [
                    ("cancel_run", "Can cancel a run"),
                    ("retry_run", "Can resume a failed or cancelled run"),
                    ("run_again", "Can start a new run with a run's arguments"),
                ],
            },
        ),
    ]
