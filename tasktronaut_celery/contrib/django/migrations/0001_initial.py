"""Create the run, claim and step tables."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    """The first schema."""

    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="RunRow",
            fields=[
                ("run_id", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("state", models.CharField(max_length=16)),
                ("created_at", models.FloatField()),
                ("finished_at", models.FloatField(null=True)),
                ("step", models.CharField(max_length=1000, null=True)),
                ("error", models.TextField(null=True)),
                ("settled_at", models.FloatField(null=True)),
                ("plan_type", models.CharField(max_length=100)),
                ("plan_encoding", models.CharField(max_length=50)),
                ("plan_body", models.BinaryField()),
            ],
        ),
        migrations.CreateModel(
            name="ClaimRow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("run_id", models.CharField(max_length=200)),
                ("marker", models.CharField(max_length=1000)),
            ],
        ),
        migrations.CreateModel(
            name="StepRow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("run_id", models.CharField(max_length=200)),
                ("path", models.CharField(max_length=1000)),
                ("record", models.TextField()),
            ],
        ),
        migrations.CreateModel(
            name="ArrivalRow",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                ("run_id", models.CharField(max_length=200)),
                ("chord", models.CharField(max_length=1000)),
                ("member", models.IntegerField()),
            ],
        ),
        migrations.AddConstraint(
            model_name="arrivalrow",
            constraint=models.UniqueConstraint(
                fields=("run_id", "chord", "member"), name="tasktronaut_arrive_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="claimrow",
            constraint=models.UniqueConstraint(
                fields=("run_id", "marker"), name="tasktronaut_claim_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="steprow",
            constraint=models.UniqueConstraint(
                fields=("run_id", "path"), name="tasktronaut_step_once"
            ),
        ),
    ]
