"""Tables for runs, hook claims, step records and the slots of concurrency keys."""

from __future__ import annotations

from django.db import models

from tasktronaut.concurrency import KEY_LENGTH

from ...stores.relational import DEFINITION_LENGTH


class RunRow(models.Model):
    """One run: its state, summary, progress and stored plan."""

    run_id = models.CharField(max_length=200, primary_key=True)
    state = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    step = models.CharField(max_length=1000, null=True)
    error = models.TextField(null=True)
    settled_at = models.DateTimeField(null=True)
    plan_type = models.CharField(max_length=100)
    plan_encoding = models.CharField(max_length=50)
    plan_body = models.BinaryField()
    started_at = models.DateTimeField(null=True)
    definition = models.CharField(max_length=DEFINITION_LENGTH, default="")
    arguments = models.TextField(default="")
    total = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    resumes = models.IntegerField(default=0)

    class Meta:
        # For listings, newest first: all runs, or those in a state, or of a definition.
        verbose_name = "run"
        permissions = [
            ("cancel_run", "Can cancel a run"),
            ("retry_run", "Can resume a failed or cancelled run"),
            ("run_again", "Can start a new run with a run's arguments"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="tasktronaut_run_created"),
            models.Index(fields=["state", "created_at"], name="tasktronaut_run_state"),
            models.Index(fields=["definition", "created_at"], name="tasktronaut_run_definition"),
        ]


class ClaimRow(models.Model):
    """A hook marker claimed once per run."""

    run_id = models.CharField(max_length=200)
    marker = models.CharField(max_length=1000)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_id", "marker"], name="tasktronaut_claim_once")
        ]


class ArrivalRow(models.Model):
    """A member of a concurrent section that has finished."""

    run_id = models.CharField(max_length=200)
    chord = models.CharField(max_length=1000)
    member = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run_id", "chord", "member"], name="tasktronaut_arrive_once"
            )
        ]


class StepRow(models.Model):
    """The record of one step of a run, as JSON."""

    run_id = models.CharField(max_length=200)
    path = models.CharField(max_length=1000)
    record = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run_id", "path"], name="tasktronaut_step_once")
        ]


class SlotRow(models.Model):
    """The runs holding or waiting for the slots of one concurrency key, as JSON."""

    concurrency_key = models.CharField(max_length=KEY_LENGTH, primary_key=True)
    holders = models.TextField()
