"""Keep each run's summary, start, progress and resumes; index the runs for listings.

The rows already there keep their runs: they read as runs with no summary or
progress (the new columns' defaults).
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

_DEFAULTS = {
    "definition": "''",
    "arguments": "''",
    "total": "0",
    "done": "0",
    "failed": "0",
    "resumes": "0",
}
"""The new columns that hold no NULL, and their defaults as SQL."""


def keep_defaults_in_the_database(apps: Any, schema_editor: Any) -> None:
    """Give the new columns their defaults in the database too (PostgreSQL).

    Django drops a default once the column is added; kept, it lets processes
    of the earlier version, still running during an upgrade, create runs.
    """
    if schema_editor.connection.vendor != "postgresql":
        return
    quote = schema_editor.quote_name
    table = quote(apps.get_model("tasktronaut", "RunRow")._meta.db_table)
    for column, default in _DEFAULTS.items():
        schema_editor.execute(
            f"ALTER TABLE {table} ALTER COLUMN {quote(column)} SET DEFAULT {default}"
        )


class Migration(migrations.Migration):
    """The run's summary, start, progress and resumes, and the listing indexes."""

    dependencies = [("tasktronaut", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="runrow",
            name="started_at",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="runrow",
            name="definition",
            field=models.CharField(default="", max_length=200),
        ),
        migrations.AddField(
            model_name="runrow",
            name="arguments",
            field=models.TextField(default=""),
        ),
        migrations.AddField(
            model_name="runrow",
            name="total",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="runrow",
            name="done",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="runrow",
            name="failed",
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name="runrow",
            name="resumes",
            field=models.IntegerField(default=0),
        ),
        migrations.RunPython(keep_defaults_in_the_database, migrations.RunPython.noop),
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
        # 0001 left out the verbose name Django gives these: no change in the database.
        migrations.AlterField(
            model_name="arrivalrow",
            name="id",
            field=models.BigAutoField(
                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
            ),
        ),
        migrations.AlterField(
            model_name="claimrow",
            name="id",
            field=models.BigAutoField(
                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
            ),
        ),
        migrations.AlterField(
            model_name="steprow",
            name="id",
            field=models.BigAutoField(
                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
            ),
        ),
    ]
