"""Keep the slots of each concurrency key (single flight): a new table, nothing else changes."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    """Create the table of slots."""

    dependencies = [
        ("tasktronaut", "0003_run_times_as_datetimes"),
    ]

    operations = [
        migrations.CreateModel(
            name="SlotRow",
            fields=[
                (
                    "concurrency_key",
                    models.CharField(max_length=200, primary_key=True, serialize=False),
                ),
                ("holders", models.TextField()),
            ],
        ),
    ]
