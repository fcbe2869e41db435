"""Validation of process arguments and options with pydantic.

``expected_arguments(count=int)`` checks the arguments in scope with a pydantic
``TypeAdapter`` per type and replaces each value with its validated, coerced
form, so ``"3"`` from a command line reaches the task as ``3``. Every problem is
collected and reported at once.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .errors import InvalidArgumentsError
from .sensitive import NO_REDACTION, Redactor


def validate_arguments(
    process: str,
    arguments: Mapping[str, Any],
    expected: Mapping[str, Any],
    redactor: Redactor = NO_REDACTION,
) -> dict[str, Any]:
    """``arguments`` with every expected one validated; raises one error listing all problems.

    A type of ``None`` accepts any value. An argument whose type admits ``None``
    may be omitted and is then ``None``. Arguments not named in ``expected`` pass
    through unchanged. The problems show sensitive values as ``redactor`` hides them.
    """
    validated = dict(arguments)
    problems: dict[str, str] = {}
    for name, expected_type in expected.items():
        if name not in arguments:
            if admits_none(expected_type):
                validated[name] = None
            else:
                problems[name] = f"missing (expected {type_name(expected_type)})"
            continue
        if expected_type is None:
            continue
        try:
            validated[name] = adapter(expected_type).validate_python(arguments[name])
        except ValidationError as error:
            problems[name] = _describe(error, redactor, name, arguments[name], expected_type)
    if problems:
        raise InvalidArgumentsError(process, problems)
    return validated


def validate_option(process: str, name: str, value: Any) -> bool:
    """An option's value as a bool (``"true"``, ``1``... are accepted), or a clear error."""
    try:
        return bool(adapter(bool).validate_python(value))
    except ValidationError:
        problem = f"option must be true or false, got {value!r}"
        raise InvalidArgumentsError(process, {name: problem}) from None


def admits_none(expected_type: Any) -> bool:
    """Whether ``expected_type`` accepts ``None`` (``None`` itself, ``Optional``, ``Any``)."""
    if expected_type is None or expected_type is Any or expected_type is type(None):
        return True
    origin = typing.get_origin(expected_type)
    if origin is typing.Union or origin is types.UnionType:
        return any(admits_none(member) for member in typing.get_args(expected_type))
    if origin is typing.Annotated:
        return admits_none(typing.get_args(expected_type)[0])
    return False


def type_name(expected_type: Any) -> str:
    """A readable name for a type as the user wrote it."""
    if expected_type is None:
        return "any value"
    if isinstance(expected_type, type) and typing.get_origin(expected_type) is None:
        return expected_type.__qualname__
    return repr(expected_type).replace("typing.", "")


@functools.lru_cache(maxsize=1024)
def _cached_adapter(expected_type: Any) -> TypeAdapter[Any]:
    return TypeAdapter(expected_type)


def adapter(expected_type: Any) -> TypeAdapter[Any]:
    """The pydantic ``TypeAdapter`` for ``expected_type``, cached when the type is hashable."""
    try:
        return _cached_adapter(expected_type)
    except TypeError:  # an unhashable type annotation cannot be cached
        return TypeAdapter(expected_type)


def _describe(
    error: ValidationError, redactor: Redactor, name: str, value: Any, expected_type: Any
) -> str:
    details = "; ".join(
        (".".join(str(part) for part in item["loc"]) + ": " if item["loc"] else "") + item["msg"]
        for item in error.errors()
    )
    shown = redactor.shown(name, value)
    return f"expected {type_name(expected_type)}, got {shown}: {redactor.text(details)}"
