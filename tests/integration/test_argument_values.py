"""Argument values on a real worker: each step gets what the build made, or the run fails.

Pydantic models, enums and dataclasses that ``expected_arguments`` coerces into
reach the step as instances of their type on Celery's default JSON serializer;
a dict shaped like kombu's ``__type__``/``__value__`` envelope reaches it as that
dict. A plan a worker cannot read ends the run FAILURE, so ``wait()`` returns.
The definitions live here: the in-process worker shares this module.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import os
import subprocess
import sys
import textwrap
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, Field

from tasktronaut import Builder, Context, NonRetryableProcessError, ProcessDefinition
from tasktronaut_celery import CeleryBackend, ProcessFailed, RunState, StepState
from tasktronaut_celery.canvas import start_signature
from tasktronaut_celery.plan import EncodedPlan, encode_plan, plan_process
from tests.support import wait_until

from .processes import wait_for_gate
from .recorder import Recorder
from .test_lifecycle import hooks, open_gate

pytestmark = pytest.mark.usefixtures("worker")

KOMBU_LOOKALIKES = [
    {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"},  # read as a datetime
    {"__type__": "acme-id", "__value__": 7},  # unknown to kombu: the plan was unreadable
]


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Settings(BaseModel):
    name: str
    when: datetime.date
    colour: Colour = Colour.RED


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Account(BaseModel):
    user_id: int = Field(alias="userId")


RAW = {
    "settings": {"name": "nightly", "when": "2026-01-02", "colour": "blue"},
    "colour": "blue",
    "point": {"x": 1, "y": "2"},
    "many": [{"name": "a", "when": "2026-01-03"}],
    "by_name": {"p": {"x": 3, "y": 4}},
}
EXPECTED = {
    "settings": Settings(name="nightly", when=datetime.date(2026, 1, 2), colour=Colour.BLUE),
    "colour": Colour.BLUE,
    "point": Point(1, 2),
    "many": [Settings(name="a", when=datetime.date(2026, 1, 3))],
    "by_name": {"p": Point(3, 4)},
}


class Configured(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(
            settings=Settings,
            colour=Colour,
            point=Point,
            many=list[Settings],
            by_name=dict[str, Point],
        )
        builder.task(self.check)

    def check(self, **arguments: Any) -> None:
        if arguments != EXPECTED or type(arguments["settings"]) is not Settings:
            raise NonRetryableProcessError(f"received {arguments!r}")


class TakesAnything(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.check)

    def check(self, value: Any, expected: Any) -> None:
        if value != expected or type(value) is not type(expected):
            raise NonRetryableProcessError(f"received {value!r}")


class GatedWithSettings(ProcessDefinition):
    """One step, waiting at the run's gate, whose argument only this module's type reads."""

    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(settings=Settings)
        builder.task(self.wait_at_gate)

    def wait_at_gate(self, context: Context, settings: Settings) -> None:
        wait_for_gate(context.process_id)


CLIENT = textwrap.dedent(
    """
    import sys
    from tasktronaut_celery import CeleryBackend, ProcessCancelled
    from tests.integration.worker_app import make_app

    assert "tests.integration.test_argument_values" not in sys.modules
    run = CeleryBackend(make_app(sys.argv[1])).run(sys.argv[2])
    print([(status.name, status.state.value) for status in run.steps()])
    print(run.cancel())
    try:
        run.wait(timeout=60)
    except ProcessCancelled as cancelled:
        print(cancelled)
    """
)


def test_models_enums_and_dataclasses_reach_the_step_as_the_built_instances(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """The default JSON serializer carries them; the step gets instances equal to the built ones."""
    run = Configured.build(**RAW).enqueue(backend).wait(timeout=60)

    (step,) = recorder.steps(run.id)
    types = {name: value[0] for name, value in step["arguments"].items()}
    assert types == {
        "settings": "Settings",
        "colour": "Colour",
        "point": "Point",
        "many": "list",
        "by_name": "dict",
    }


@pytest.mark.parametrize("value", KOMBU_LOOKALIKES, ids=["known-type", "unknown-type"])
def test_a_dict_shaped_like_kombus_envelope_reaches_the_step_intact(
    backend: CeleryBackend, value: dict[str, Any]
) -> None:
    """Before, it arrived as a datetime, or the plan was unreadable and the run stayed PENDING."""
    run = TakesAnything.build(value=value, expected=dict(value)).enqueue(backend)

    assert run.wait(timeout=60).state is RunState.SUCCESS


@pytest.mark.parametrize(
    ("value", "old", "new", "reason"),
    [
        ("x", b'"version": 1', b'"version": 99', "plan version 99"),
        (
            Colour.RED,
            f"{__name__}:Colour".encode(),
            b"gone.module:Colour",
            "gone.module:Colour is not known",
        ),
    ],
    ids=["unreadable", "unknown-type"],
)
def test_a_plan_the_worker_cannot_read_fails_the_run_with_the_reason(
    backend: CeleryBackend, value: Any, old: bytes, new: bytes, reason: str
) -> None:
    """The start message is refused and the run ends FAILURE saying why; no step ran."""
    plan = plan_process(
        TakesAnything.build(
            identifier=f"unreadable-{uuid.uuid4().hex}", value=value, expected=value
        )
    )
    encoded = encode_plan(plan, backend.app.conf.task_serializer)
    body = encoded.body.replace(old, new)
    assert body != encoded.body
    backend.store.create(
        plan.run_id, EncodedPlan(encoded.content_type, encoded.content_encoding, body)
    )
    start_signature(backend.app, plan, backend.control_queue).apply_async()
    run = backend.run(plan.run_id)

    with pytest.raises(ProcessFailed, match=reason):
        run.wait(timeout=60)

    assert run.state is RunState.FAILURE
    assert backend.store.step(plan.run_id, "0") is None  # no step state made up


def test_a_model_with_an_aliased_field_reaches_the_step_equal(backend: CeleryBackend) -> None:
    """Dumped by alias: before, the worker could not validate the dump and the run failed."""
    value = Account(userId=5)
    run = TakesAnything.build(value=value, expected=Account(userId=5)).enqueue(backend)

    assert run.wait(timeout=60).state is RunState.SUCCESS


def test_a_client_without_the_argument_types_shows_cancels_and_waits_for_the_run(
    backend: CeleryBackend, recorder: Recorder
) -> None:
    """The client reads no argument type; the cancelled run settles on the worker.

    Before, steps(), wait() and cancel() raised CorruptPlanError in such a
    client, the cancel after writing CANCELLED: the run never settled.
    """
    run = GatedWithSettings.build(settings=RAW["settings"]).enqueue(backend)
    wait_until(lambda: run.steps()[0].state is StepState.STARTED, 30, "the step starting")

    client = subprocess.run(
        [sys.executable, "-c", CLIENT, backend.app.conf.broker_url, run.id],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    open_gate(run.id)

    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines() == [
        "[('GatedWithSettings.wait_at_gate', 'STARTED')]",
        "True",
        f"run {run.id} was cancelled: cancelled by a client",
    ]
    assert run.record.settled_at is not None
    assert hooks(recorder, run.id) == [
        ("on_cancelled", "GatedWithSettings"),
        ("on_started", "GatedWithSettings"),
    ]
