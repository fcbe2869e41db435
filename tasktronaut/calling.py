"""Passing the arguments in scope to a method according to its signature.

Tasks, ``each`` functions and ``transform`` functions all receive the arguments
their signature names (every argument if they take ``**kwargs``) and a
:class:`~tasktronaut.Context` if they have a ``context`` parameter. A signature is
inspected once per function and the answer cached.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CONTEXT_PARAMETER = "context"


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
