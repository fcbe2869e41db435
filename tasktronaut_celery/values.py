"""How argument values are stored in a plan, so that a step receives what the build made.

Serializers give back plain data, and kombu's JSON reads any dict whose keys are
exactly ``__type__`` and ``__value__`` as one of its own typed values (or fails on
a type it does not know). So before a plan is serialized every argument value is
walked, and after it is decoded walked back:

* a pydantic model, an ``Enum`` member or a dataclass instance, which
  ``expected_arguments`` coerces into, is stored as
  ``{"__tasktronaut__": "typed", "type": "module:QualName", "value": <its pydantic
  JSON dump>}`` and validated back into that type (the dump is by alias and
  leaves computed fields out, as validation expects; what still comes back
  different, such as a ``SecretStr`` pydantic dumps masked, is refused at enqueue
  by :func:`~tasktronaut_celery.plan.encode_plan`);
* a dict with a ``__type__`` or ``__tasktronaut__`` key is stored as
  ``{"__tasktronaut__": "dict", "items": [[key, value], ...]}``, so no decoder
  reads it as anything but a dict;
* lists, tuples and other dicts are walked; anything else is the serializer's.

A stored type is looked up among the modules this Python process has imported,
never imported on the plan's say-so (as definitions are: see
:mod:`tasktronaut.registry`), and must be a model, an enum or a dataclass. Only
workers, which pass the values to steps, need the types: a client that shows or
cancels a run decodes without them, each such value staying its JSON dump.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from typing import Any

from pydantic import BaseModel

from tasktronaut.arguments import adapter

from .errors import CorruptPlanError

MARKER = "__tasktronaut__"
_KOMBU_MARKER = "__type__"


def encode_value(value: Any) -> Any:
    """``value`` as plain data every serializer gives back unchanged; ``TypeError`` if it cannot be.

    The error says why a model, enum or dataclass cannot be stored.
    """
    if isinstance(value, dict):
        if MARKER in value or _KOMBU_MARKER in value:
            return {MARKER: "dict", "items": [[k, encode_value(v)] for k, v in value.items()]}
        return {k: encode_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode_value(item) for item in value]
    if isinstance(value, tuple):
        return tuple(encode_value(item) for item in value)
    if _typed(value):
        return {MARKER: "typed", "type": _reference(type(value)), "value": _dump(value)}
    return value


def decode_value(data: Any, typed: bool = True) -> Any:
    """The value :func:`encode_value` stored; ``CorruptPlanError`` for an unknown type.

    Without ``typed``, models, enums and dataclasses are left as their JSON
    dumps and no type is looked up.
    """
    if isinstance(data, dict):
        kind = data.get(MARKER)
        if kind == "dict":
            return {key: decode_value(value, typed) for key, value in data["items"]}
        if kind == "typed":
            if typed:
                return _validate(data["type"], data["value"])
            return decode_value(data["value"], typed)
        if kind is not None:
            raise ValueError(f"unknown stored value kind {kind!r}")
        return {k: decode_value(v, typed) for k, v in data.items()}
    if isinstance(data, list):
        return [decode_value(item, typed) for item in data]
    if isinstance(data, tuple):
        return tuple(decode_value(item, typed) for item in data)
    return data


def _typed(value: object) -> bool:
    """Whether ``value`` is stored as its type and pydantic dump."""
    return isinstance(value, (BaseModel, enum.Enum)) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    )


def _reference(cls: type) -> str:
    reference = f"{cls.__module__}:{cls.__qualname__}"
    if _lookup(reference) is not cls:
        raise TypeError(
            f"{cls.__qualname__} cannot be found again as {reference}: define it at the "
            "top level of a module that both clients and workers import"
        )
    return reference


def _dump(value: object) -> Any:
    # What validation reads back: field aliases, no computed fields. The dump is
    # plain JSON data, but a dict in it may still look like kombu's markers.
    dump = adapter(type(value)).dump_python(value, mode="json", by_alias=True, round_trip=True)
    return encode_value(dump)


def _validate(reference: str, stored: Any) -> Any:
    cls = _lookup(reference)
    if cls is None:
        raise CorruptPlanError(
            f"argument type {reference} is not known to this process: import the module "
            "that defines it where the worker starts (e.g. from the module of the "
            "process definition that uses it)"
        )
    if not isinstance(cls, type) or not (
        issubclass(cls, (BaseModel, enum.Enum)) or dataclasses.is_dataclass(cls)
    ):
        raise CorruptPlanError(
            f"argument type {reference} is not a pydantic model, an enum or a dataclass"
        )
    # As pydantic round-trips: the JSON dump validated as JSON (strict models accept it).
    return adapter(cls).validate_json(json.dumps(decode_value(stored)))


def _lookup(reference: str) -> object:
    """The object at ``module:qualname`` if that module is imported, else ``None``."""
    module_name, _, qualname = str(reference).partition(":")
    found: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found
