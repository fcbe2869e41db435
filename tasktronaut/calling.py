"""Passing the arguments in scope to a method according to its signature.

Tasks, ``each`` functions and ``transform`` functions all receive the arguments
their signature names (every argument if they take ``**kwargs``) and a
:class:`~tasktronaut.Context` if they have a ``context`` parameter. A signature is
inspected once per function and the answer cached. They are called
synchronously, so ``async def`` ones are refused, and a few names are reserved
(:data:`RESERVED_ARGUMENTS`): no argument can reach a method under them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTEXT_PARAMETER = "context"

RESERVED_ARGUMENTS = {
    "self": "steps and build functions are methods, and self is their instance",
    CONTEXT_PARAMETER: "a step's context parameter receives its Context",
    "identifier": "build(identifier=...) names the run",
    "options": "build(options=...) holds the options builder.option reads",
}
"""Names an argument cannot have, and why."""


def reserved_problems(names: Iterable[str]) -> dict[str, str]:
    """Why each of ``names`` that is reserved cannot name an argument."""
    return {
        name: f"argument name {name!r} is reserved: {RESERVED_ARGUMENTS[name]}"
        for name in names
        if name in RESERVED_ARGUMENTS
    }


def is_async(func: object) -> bool:
    """Whether calling ``func`` only makes a coroutine (or async iterator) and runs none of it.

    Decorated functions are unwrapped, so an ``@asynccontextmanager`` counts.
    """
    function = inspect.unwrap(getattr(func, "__func__", func))  # type: ignore[arg-type]
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Which keyword arguments a function takes, decided once from its signature."""

    accepted: frozenset[str]
    required: frozenset[str]
    takes_any_keyword: bool
    takes_context: bool
    positional_only: tuple[str, ...]

    def select(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The subset of ``arguments`` this function accepts."""
        if self.takes_any_keyword:
            return {k: v for k, v in arguments.items() if k != CONTEXT_PARAMETER}
        return {k: v for k, v in arguments.items() if k in self.accepted}

    def missing(self, arguments: Mapping[str, Any]) -> list[str]:
        """Required parameters that ``arguments`` does not provide, sorted by name."""
        return sorted(name for name in self.required if name not in arguments)


def call_spec(func: Callable[..., Any]) -> CallSpec:
    """The :class:`CallSpec` of ``func``; bound methods share their function's spec."""
    return _spec_of_function(getattr(func, "__func__", func), inspect.ismethod(func))


@functools.lru_cache(maxsize=4096)
def _spec_of_function(function: Callable[..., Any], bound: bool) -> CallSpec:
    parameters = list(inspect.signature(function).parameters.values())
    if bound and parameters:
        parameters = parameters[1:]  # ``self`` is supplied by the bound method
    accepted: set[str] = set()
    required: set[str] = set()
    positional_only: list[str] = []
    takes_any_keyword = takes_context = False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_any_keyword = True
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        elif parameter.name == CONTEXT_PARAMETER:
            takes_context = True
        elif parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            if parameter.default is inspect.Parameter.empty:
                positional_only.append(parameter.name)
        else:
            accepted.add(parameter.name)
            if parameter.default is inspect.Parameter.empty:
                required.add(parameter.name)
    return CallSpec(
        accepted=frozenset(accepted),
        required=frozenset(required),
        takes_any_keyword=takes_any_keyword,
        takes_context=takes_context,
        positional_only=tuple(positional_only),
    )


def signature_problem(func: Callable[..., Any], arguments: Mapping[str, Any]) -> str | None:
    """Why ``func`` cannot be called with ``arguments`` in scope, or ``None`` if it can."""
    if is_async(func):
        name = getattr(func, "__name__", repr(func))
        return (
            f"{name} is an async def, and Tasktronaut calls it synchronously: its body "
            "would never run; make it a plain def (asyncio.run(...) inside it can await)"
        )
    spec = call_spec(func)
    if spec.positional_only:
        names = ", ".join(spec.positional_only)
        return f"its positional-only parameter(s) {names} cannot be passed by name"
    missing = spec.missing(arguments)
    if missing:
        in_scope = ", ".join(sorted(arguments)) or "none"
        return f"missing argument(s) {', '.join(missing)} (in scope: {in_scope})"
    return None


def invoke(
    func: Callable[..., Any],
    arguments: Mapping[str, Any],
    context: Callable[[], Any] | None = None,
) -> Any:
    """Call ``func`` with the arguments it accepts, and a context if it wants one.

    ``context`` is a factory so that the context is only made for functions
    that take it.
    """
    spec = call_spec(func)
    kwargs = spec.select(arguments)
    if spec.takes_context and context is not None:
        kwargs[CONTEXT_PARAMETER] = context()
    return func(**kwargs)
