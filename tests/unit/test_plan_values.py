"""Argument values in a stored plan: every serializer gives the step what the build made.

Models, enums and dataclasses that ``expected_arguments`` coerces into come back
as instances of their type; dicts that a decoder would read as something else
(kombu's ``__type__``/``__value__`` envelope) come back as the same dicts. What
would come back as anything else is refused at enqueue. Clients read plans
without the argument types: only workers rebuild typed values.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from pydantic import BaseModel, ConfigDict, Field, SecretStr, computed_field

from tasktronaut import Builder, ProcessDefinition
from tasktronaut_celery import (
    ArgumentNotSerializableError,
    CeleryBackend,
    CorruptPlanError,
    RunState,
)
from tasktronaut_celery import backend as backends
from tasktronaut_celery.plan import EncodedPlan, decode_plan, encode_plan, plan_process


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Size(str, enum.Enum):
    SMALL = "s"


class Settings(BaseModel):
    name: str
    when: datetime.date
    colour: Colour = Colour.RED
    extra: dict[str, Any] = {}


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Aliased(BaseModel):
    user_id: int = Field(alias="userId")


class Computed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    a: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def b(self) -> int:
        return self.a * 2


class WithSecret(BaseModel):
    token: SecretStr


class Excluded(BaseModel):
    a: int
    b: int = Field(exclude=True)


class Configured(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.expected_arguments(
            settings=Settings,
            colour=Colour,
            size=Size,
            point=Point,
            many=list[Settings],
            nested=dict[str, Point],
        )
        builder.task(self.use)

    def use(self, **arguments: Any) -> None: ...


class TakesAnything(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        builder.task(self.use)

    def use(self, **arguments: Any) -> None: ...


class KeepsSecrets(TakesAnything):
    sensitive_arguments = ("account",)


class ManySteps(ProcessDefinition):
    def define_process(self, builder: Builder) -> None:
        for _ in range(50):
            builder.task(self.use)

    def use(self, **arguments: Any) -> None: ...


def round_trip(process: Any, serializer: str = "json") -> dict[str, Any]:
    plan = plan_process(process)
    return dict(decode_plan(encode_plan(plan, serializer), [serializer]).steps["0"].arguments)


def configured() -> dict[str, Any]:
    return {
        "settings": {
            "name": "a",
            "when": "2026-01-02",
            "extra": {"__type__": "x", "__value__": 1},
        },
        "colour": "blue",
        "size": "s",
        "point": {"x": 1, "y": "2"},
        "many": [{"name": "b", "when": "2026-01-03", "colour": "blue"}],
        "nested": {"p": {"x": 3, "y": 4}},
    }


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_models_enums_and_dataclasses_arrive_as_the_instances_the_build_made(
    serializer: str,
) -> None:
    """Each value decodes equal to the coerced one and of its type, nested ones too."""
    process = Configured.build(**configured())
    built = dict(process.root.children[0].arguments)  # type: ignore[attr-defined]

    arrived = round_trip(process, serializer)

    assert arrived == built
    assert type(arrived["settings"]) is Settings
    assert arrived["settings"].when == datetime.date(2026, 1, 2)
    assert arrived["colour"] is Colour.BLUE
    assert arrived["size"] is Size.SMALL
    assert type(arrived["point"]) is Point
    assert type(arrived["many"][0]) is Settings
    assert arrived["many"][0].colour is Colour.BLUE
    assert type(arrived["nested"]["p"]) is Point


@pytest.mark.parametrize(
    "value",
    [
        {"__type__": "datetime", "__value__": "2026-01-01T00:00:00"},
        {"__type__": "nothing-kombu-knows", "__value__": 1},
        {"__type__": "x"},
        {"__tasktronaut__": "typed", "type": "os:system", "value": "true"},
        {"__tasktronaut__": "dict", "items": []},
        [{"deep": {"__type__": "uuid", "__value__": "not-a-uuid"}}],
        {1: "int keys", "__type__": "x"},
    ],
    ids=[
        "kombu-type",
        "unknown-kombu-type",
        "type-only",
        "own-marker",
        "own-dict",
        "nested",
        "int",
    ],
)
def test_dicts_a_decoder_would_misread_arrive_intact(value: Any) -> None:
    """Dicts shaped like kombu's (or the plan's own) markers are escaped, not interpreted."""
    arrived = round_trip(TakesAnything.build(value=value, same={"__type__": "x", "__value__": 1}))

    assert arrived == {"value": value, "same": {"__type__": "x", "__value__": 1}}


def test_argument_names_shaped_like_kombus_envelope_arrive_intact() -> None:
    """The layer of arguments is itself a dict: its names are escaped like any other dict."""
    assert round_trip(TakesAnything.build(__type__="date", __value__="x")) == {
        "__type__": "date",
        "__value__": "x",
    }


def test_a_type_defined_in_a_function_is_refused_at_enqueue_naming_the_argument() -> None:
    """A worker could never find it, so nothing is sent; the error says where and why."""

    class Local(BaseModel):
        n: int

    plan = plan_process(TakesAnything.build(local=Local(n=1)))

    with pytest.raises(ArgumentNotSerializableError, match=r"step 0 .*'local'.*top level"):
        encode_plan(plan, "json")


def test_a_model_that_cannot_be_dumped_is_refused_at_enqueue_naming_the_argument() -> None:
    """A model holding a value pydantic cannot dump as JSON raises ArgumentNotSerializableError."""
    model = Settings(name="a", when=datetime.date(2026, 1, 1), extra={"x": object()})

    with pytest.raises(ArgumentNotSerializableError, match=r"step 0 .*'settings'"):
        encode_plan(plan_process(TakesAnything.build(settings=model)), "json")


def test_a_type_the_decoding_process_has_not_imported_is_a_corrupt_plan_naming_it() -> None:
    """The type is looked up among imported modules only: a plan cannot make anyone import."""
    plan = plan_process(TakesAnything.build(colour=Colour.RED))
    encoded = encode_plan(plan, "json")
    reference = f"{__name__}:Colour".encode()
    body = encoded.body.replace(reference, b"not.imported.anywhere:Colour")
    assert body != encoded.body

    with pytest.raises(CorruptPlanError, match=r"not\.imported\.anywhere:Colour.*import"):
        decode_plan(EncodedPlan(encoded.content_type, encoded.content_encoding, body), ["json"])


@pytest.mark.parametrize("reference", ["os:system", f"{__name__}:configured", "os:path.join"])
def test_a_stored_type_that_is_no_model_enum_or_dataclass_is_refused(reference: str) -> None:
    """Only the kinds of type the plan stores are ever validated into."""
    plan = plan_process(TakesAnything.build(colour=Colour.RED))
    encoded = encode_plan(plan, "json")
    body = encoded.body.replace(f"{__name__}:Colour".encode(), reference.encode())

    with pytest.raises(CorruptPlanError, match="not a"):
        decode_plan(EncodedPlan(encoded.content_type, encoded.content_encoding, body), ["json"])


@pytest.mark.parametrize(
    "value",
    [Aliased(userId=5), Computed(a=1), [Aliased(userId=6)], {"n": Computed(a=2)}],
    ids=["alias", "computed-field", "in-list", "in-dict"],
)
def test_aliased_and_computed_fields_arrive_equal(value: Any) -> None:
    """Dumped by alias and without computed fields, the model validates back into its equal."""
    arrived = round_trip(TakesAnything.build(value=value))

    assert arrived == {"value": value}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (WithSecret(token=SecretStr("hunter22")), r"arrives as WithSecret\(token=SecretStr"),
        (
            Excluded(a=1, b=2),
            r"cannot be read back \(1 validation error for Excluded\s+b\s+Field required",
        ),
        ({1: "a"}, r"arrives as \{'1': 'a'\}"),
    ],
    ids=["secret", "excluded-field", "int-keys"],
)
def test_a_value_that_would_arrive_different_is_refused_at_enqueue(value: Any, why: str) -> None:
    """Nothing is stored: the error names process, step and argument, and what would arrive."""
    plan = plan_process(TakesAnything.build(value=value))

    with pytest.raises(ArgumentNotSerializableError) as refused:
        encode_plan(plan, "json")

    message = str(refused.value)
    assert message.startswith("TakesAnything: step 0 (TakesAnything.use): argument 'value' (")
    assert "does not survive the round trip on the app's 'json' serializer" in message
    assert re.search(why, message), message
    assert "hunter22" not in message


def test_a_sensitive_value_that_would_arrive_different_is_refused_without_showing_it() -> None:
    """What it would arrive as is masked: it is derived from the secret."""
    plan = plan_process(KeepsSecrets.build(account={"password": "hunter22", 1: "pin 4321"}))

    with pytest.raises(ArgumentNotSerializableError, match="argument 'account'") as refused:
        encode_plan(plan, "json")

    assert "hunter22" not in str(refused.value)
    assert "4321" not in str(refused.value)


def test_tuples_arrive_as_lists_and_are_not_refused() -> None:
    """JSON has no tuples: documented, and not a difference the check refuses."""
    assert round_trip(TakesAnything.build(value=(1, (2, 3)))) == {"value": [1, [2, 3]]}


def test_each_argument_layer_is_read_back_once_however_many_steps_share_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check decodes each stored layer once: enqueue stays linear in the layers."""
    from tasktronaut_celery import plan as plans

    decoded: list[Any] = []
    monkeypatch.setattr(plans, "decode_value", lambda data: decoded.append(data) or data)
    plan = plan_process(ManySteps.build(shared={"big": list(range(100))}))

    plans.encode_plan(plan, "json")

    assert len(plan.steps) == 50
    assert len(decoded) == 1


def test_a_client_reads_a_plan_whose_argument_types_it_has_not_imported() -> None:
    """Without typed values, models, enums and dataclasses are their JSON dumps; no lookup."""
    encoded = encode_plan(plan_process(Configured.build(**configured())), "json")
    body = encoded.body.replace(f"{__name__}:".encode(), b"not.imported.anywhere:")
    unknown = EncodedPlan(encoded.content_type, encoded.content_encoding, body)

    plan = decode_plan(unknown, ["json"], typed_values=False)

    arguments = plan.steps["0"].arguments
    assert plan.step_name("0") == "Configured.use"
    assert arguments["colour"] == "blue"
    assert arguments["point"] == {"x": 1, "y": 2}
    assert arguments["settings"]["extra"] == {"__type__": "x", "__value__": 1}
    assert arguments["many"][0]["when"] == "2026-01-03"


def unknown_type_run(backend: CeleryBackend, old: bytes, new: bytes) -> str:
    """A stored run whose plan names ``new`` where the build wrote ``old``; nothing sent."""
    plan = plan_process(TakesAnything.build(colour=Colour.RED))
    encoded = encode_plan(plan, "json")
    body = encoded.body.replace(old, new)
    assert body != encoded.body
    backend.store.create(plan.run_id, EncodedPlan(encoded.content_type, "utf-8", body))
    return plan.run_id


@pytest.fixture
def client() -> CeleryBackend:
    """A client on an in-memory app: nothing consumes what it sends."""
    return CeleryBackend(Celery("client", broker="memory://", backend="cache+memory://"))


def test_a_client_that_has_not_imported_an_argument_type_shows_and_cancels_the_run(
    client: CeleryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """steps() and cancel() need no argument type; the cancel sends its settle message."""
    settles: list[tuple[Any, ...]] = []

    def settle_signature(*args: Any, **options: Any) -> SimpleNamespace:
        settles.append(args)
        return SimpleNamespace(apply_async=lambda: None)

    monkeypatch.setattr(backends, "settle_signature", settle_signature)
    run_id = unknown_type_run(client, f"{__name__}:Colour".encode(), b"gone.module:Colour")
    run = client.run(run_id)

    assert [status.name for status in run.steps()] == ["TakesAnything.use"]
    assert run.cancel() is True
    assert run.state is RunState.CANCELLED
    assert settles == [(client.app, run_id, "TakesAnything", None)]


def test_cancelling_a_run_whose_plan_is_unreadable_changes_nothing(client: CeleryBackend) -> None:
    """It raises before anything is written: no run left CANCELLED that nobody settles."""
    run_id = unknown_type_run(client, b'"version": 1', b'"version": 99')

    with pytest.raises(CorruptPlanError, match="plan version 99"):
        client.cancel(run_id)

    record = client.store.record(run_id)
    assert record is not None
    assert record.state is RunState.PENDING
